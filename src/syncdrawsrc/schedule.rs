// SPDX-License-Identifier: MIT OR Apache-2.0
//! The clip scheduler of `syncdrawsrc`: which clips to ask the inference worker
//! for, which generated clip to push next, and what to do with clips made before
//! the caption or temperature changed. Plain state, without GStreamer or ONNX
//! Runtime, so it is tested here on its own; imp.rs drives it from `create()`.
//!
//! Clips are numbered from 0 for the stream; clip `i` of a seed always gets the
//! same noise (inference::prior_noise), so a clip asked for again after a caption
//! change keeps its number. With L inference threads (worker.rs: one on CUDA; on
//! the CPU as many as `parallel-batches` asks for, one per core by default), at
//! most L + 1 batches are held besides the clip being pushed (waiting or being
//! computed), and the next batch is asked for as soon as at most L are: every
//! thread then has its next request queued when it finishes one and never waits
//! for the streaming thread to hand it over.

use std::collections::VecDeque;

use super::inference::{Clip, Request};
use super::model::ModelInfo;

/// The caption and temperature the clips are generated with.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub caption: String,
    pub tokens: Option<Vec<i64>>,
    pub temperature: f32,
    /// The settings' `params_version` they were taken at.
    pub version: u64,
}

/// What [`Schedule::advance`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A clip is current: push its frames.
    Clip,
    /// Every clip asked for (`clips`) has been started.
    Eos,
    /// No up-to-date clip is ready: one has to be asked for or waited for.
    Wait,
}

#[derive(Default)]
pub struct Schedule {
    pub params: Option<Params>,
    /// A `params_version` whose caption was refused (to warn once).
    refused_version: Option<u64>,
    /// The clip being pushed and the index of its next frame.
    pub clip: Option<Clip>,
    pub clip_frame: usize,
    /// Clips generated and not yet pushed, oldest first.
    ready: VecDeque<Clip>,
    /// Clips of each request with the worker, oldest first.
    in_flight: VecDeque<usize>,
    /// Index of the first clip of the next request.
    next_request: u64,
    /// Clips started so far (for `clips`).
    clips_started: u64,
}

impl Schedule {
    pub fn new(params: Params) -> Schedule {
        Schedule {
            params: Some(params),
            ..Default::default()
        }
    }

    /// Whether the current clip is used up (or there is none yet).
    pub fn needs_clip(&self) -> bool {
        self.clip
            .as_ref()
            .is_none_or(|c| self.clip_frame >= c.frames)
    }

    /// Takes the settings' caption and temperature if their `version` is new. A
    /// caption the model cannot read keeps the current parameters and returns
    /// why, once per version.
    pub fn refresh(
        &mut self,
        model: &ModelInfo,
        caption: &str,
        temperature: f32,
        version: u64,
    ) -> Option<String> {
        let current = self.params.as_ref()?;
        if current.version == version || self.refused_version == Some(version) {
            return None;
        }
        match model.encode(caption) {
            Ok(tokens) => {
                // Clips made or being made with the old parameters are stale: the
                // waiting ones are dropped now, the ones being computed when they
                // arrive (advance), and the next request starts again at the
                // first clip not yet pushed, with the same numbers. Clips are
                // pushed in order, so that is clip number `clips_started`.
                self.ready.clear();
                self.next_request = self.clips_started;
                self.params = Some(Params {
                    caption: caption.to_owned(),
                    tokens,
                    temperature,
                    version,
                });
                None
            }
            Err(e) => {
                self.refused_version = Some(version);
                Some(e.to_string())
            }
        }
    }

    /// Whether a request is with the worker.
    pub fn in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// The request to send next, if one is due: at most `lanes` batches of clips
    /// (one per inference thread) are waiting or being computed, and clips remain
    /// (`clips` = 0: no limit). Call [`Schedule::sent`] once the worker has it.
    pub fn due(&self, batch_size: usize, clips: u64, lanes: usize) -> Option<Request> {
        let batch = batch_size.max(1);
        let pending = self.ready.len() + self.in_flight.iter().sum::<usize>();
        if pending > batch * lanes.max(1) {
            return None;
        }
        let params = self.params.as_ref()?;
        let mut count = batch as u64;
        if clips > 0 {
            count = count.min(clips.saturating_sub(self.next_request));
        }
        (count > 0).then(|| Request {
            first: self.next_request,
            count: count as usize,
            tokens: params.tokens.clone(),
            temperature: params.temperature,
            caption: params.caption.clone(),
            params_version: params.version,
        })
    }

    /// The worker took `req`.
    pub fn sent(&mut self, req: &Request) {
        self.in_flight.push_back(req.count);
        self.next_request = req.first + req.count as u64;
    }

    /// The worker's answer to the oldest request in flight.
    pub fn received(&mut self, clips: Vec<Clip>) {
        self.in_flight.pop_front();
        self.ready.extend(clips);
    }

    /// The oldest request in flight failed.
    pub fn failed(&mut self) {
        self.in_flight.pop_front();
    }

    /// Makes the next up-to-date generated clip current. Clips made with older
    /// parameters are dropped: [`Schedule::refresh`] has already asked for their
    /// numbers again.
    pub fn advance(&mut self, clips: u64) -> Next {
        if clips > 0 && self.clips_started >= clips {
            return Next::Eos;
        }
        let version = self.params.as_ref().map(|p| p.version);
        while let Some(clip) = self.ready.pop_front() {
            if Some(clip.params_version) == version {
                self.clips_started += 1;
                self.clip = Some(clip);
                self.clip_frame = 0;
                return Next::Clip;
            }
        }
        Next::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syncdrawsrc::inference::ClipData;

    fn params(version: u64) -> Params {
        Params {
            caption: format!("caption {version}"),
            tokens: Some(vec![version as i64]),
            temperature: 1.0,
            version,
        }
    }

    /// What the worker would give for `req`: one 2-frame clip per number.
    fn answer(req: &Request) -> Vec<Clip> {
        (0..req.count as u64)
            .map(|i| Clip {
                index: req.first + i,
                params_version: req.params_version,
                caption: req.caption.clone(),
                frames: 2,
                data: ClipData::from_vec(vec![0.0; 2]),
            })
            .collect()
    }

    /// Runs the schedule like create() does until EOS or `limit` clips; returns the
    /// (clip number, params version) of every clip made current.
    fn play(s: &mut Schedule, batch: usize, clips: u64, limit: usize) -> Vec<(u64, u64)> {
        let mut shown = Vec::new();
        while shown.len() < limit {
            match s.advance(clips) {
                Next::Clip => {
                    let c = s.clip.as_ref().expect("current clip");
                    shown.push((c.index, c.params_version));
                    s.clip_frame = c.frames;
                }
                Next::Eos => break,
                Next::Wait => match s.due(batch, clips, 1) {
                    Some(req) => {
                        s.sent(&req);
                        s.received(answer(&req));
                    }
                    None if !s.in_flight() => break,
                    None => unreachable!("in flight without a worker"),
                },
            }
            if let Some(req) = s.due(batch, clips, 1) {
                s.sent(&req);
                s.received(answer(&req));
            }
        }
        shown
    }

    #[test]
    fn clips_come_in_order_and_stop_at_the_limit() {
        let mut s = Schedule::new(params(0));
        let shown = play(&mut s, 4, 10, 100);
        let numbers: Vec<u64> = shown.iter().map(|c| c.0).collect();
        assert_eq!(numbers, (0..10).collect::<Vec<_>>());
        assert_eq!(s.advance(10), Next::Eos);
        assert!(
            s.due(4, 10, 1).is_none(),
            "nothing asked for past the limit"
        );
    }

    #[test]
    fn at_most_two_batches_are_held() {
        let mut s = Schedule::new(params(0));
        let first = s.due(3, 0, 1).expect("first request");
        assert_eq!((first.first, first.count), (0, 3));
        s.sent(&first);
        // One batch is being computed: the next one is queued behind it, so the
        // worker starts it without waiting for the streaming thread.
        let second = s.due(3, 0, 1).expect("second request, queued");
        assert_eq!((second.first, second.count), (3, 3));
        s.sent(&second);
        assert!(s.due(3, 0, 1).is_none(), "two batches out");
        s.received(answer(&first));
        assert!(
            s.due(3, 0, 1).is_none(),
            "two batches out, one of them ready"
        );
        assert_eq!(s.advance(0), Next::Clip);
        assert!(
            s.due(3, 0, 1).is_none(),
            "five waiting or computed is still more than a batch"
        );
        s.received(answer(&second));
        assert_eq!(s.advance(0), Next::Clip);
        assert_eq!(s.advance(0), Next::Clip);
        assert_eq!(s.due(3, 0, 1).map(|r| r.first), Some(6));
        assert_eq!(s.advance(0), Next::Clip);
        assert_eq!(s.clip.as_ref().map(|c| c.index), Some(3));
    }

    #[test]
    fn a_new_caption_while_two_requests_are_out_asks_each_clip_once() {
        let model = crate::syncdrawsrc::model::tests::grammar_model();
        let caption = |d: u8| format!("digit {d} is moving up and down");
        let params = |d: u8, version: u64| Params {
            caption: caption(d),
            tokens: model.encode(&caption(d)).expect("valid"),
            temperature: 1.0,
            version,
        };
        let mut s = Schedule::new(params(3, 0));
        let a = s.due(1, 0, 1).expect("a");
        s.sent(&a);
        let b = s.due(1, 0, 1).expect("b");
        s.sent(&b);
        assert_eq!((a.first, b.first), (0, 1));
        // The caption changes while clips 0 and 1 are being computed.
        assert_eq!(s.refresh(&model, &caption(5), 1.0, 1), None);
        s.received(answer(&a));
        assert_eq!(s.advance(0), Next::Wait, "clip 0 is stale");
        let again = s.due(1, 0, 1).expect("clip 0 again");
        assert_eq!((again.first, again.params_version), (0, 1));
        s.sent(&again);
        s.received(answer(&b));
        assert_eq!(s.advance(0), Next::Wait, "clip 1 is stale");
        let next = s.due(1, 0, 1).expect("clip 1 again");
        assert_eq!((next.first, next.params_version), (1, 1));
        s.sent(&next);
        s.received(answer(&again));
        s.received(answer(&next));
        let mut shown = Vec::new();
        while s.advance(0) == Next::Clip {
            let c = s.clip.as_ref().expect("current");
            shown.push((c.index, c.params_version));
        }
        assert_eq!(shown, vec![(0, 1), (1, 1)], "each clip once, new caption");
    }

    #[test]
    fn a_new_caption_drops_stale_clips_and_asks_again_with_the_same_numbers() {
        let model = crate::syncdrawsrc::model::tests::grammar_model();
        let mut s = Schedule::new(Params {
            caption: "digit 3 is moving up and down".into(),
            tokens: model
                .encode("digit 3 is moving up and down")
                .expect("valid"),
            temperature: 1.0,
            version: 0,
        });
        let req = s.due(4, 0, 1).expect("request");
        s.sent(&req);
        s.received(answer(&req));
        assert_eq!(s.advance(0), Next::Clip); // clip 0 with version 0
                                              // The caption changes while clips 1..3 wait.
        assert_eq!(
            s.refresh(&model, "digit 7 is moving left and right", 0.5, 1),
            None
        );
        assert_eq!(s.params.as_ref().map(|p| p.temperature), Some(0.5));
        assert_eq!(s.advance(0), Next::Wait, "clips 1..3 are stale");
        let again = s.due(4, 0, 1).expect("asked again");
        assert_eq!((again.first, again.params_version), (1, 1));
        assert_eq!(again.caption, "digit 7 is moving left and right");
        s.sent(&again);
        s.received(answer(&again));
        assert_eq!(s.advance(0), Next::Clip);
        assert_eq!(
            s.clip.as_ref().map(|c| (c.index, c.params_version)),
            Some((1, 1))
        );
    }

    #[test]
    fn a_caption_outside_the_grammar_keeps_the_current_one_and_warns_once() {
        let model = crate::syncdrawsrc::model::tests::grammar_model();
        let mut s = Schedule::new(params(0));
        let warning = s.refresh(&model, "digit 3 is flying", 1.0, 1);
        assert!(warning.is_some_and(|w| w.contains("flying")));
        assert_eq!(s.params, Some(params(0)));
        assert_eq!(s.refresh(&model, "digit 3 is flying", 1.0, 1), None, "once");
        assert_eq!(
            s.refresh(&model, "digit 3 is moving up and down", 1.0, 1),
            None
        );
        assert_eq!(s.params, Some(params(0)), "version 1 was refused");
        assert_eq!(
            s.refresh(&model, "digit 3 is moving up and down", 1.0, 2),
            None
        );
        assert_eq!(s.params.as_ref().map(|p| p.version), Some(2));
    }

    #[test]
    fn one_batch_more_than_threads_is_out() {
        let mut s = Schedule::new(params(1));
        let mut sent = Vec::new();
        for want in [0, 2, 4] {
            let req = s
                .due(2, 0, 2)
                .expect("a thread is free or one batch is queued");
            assert_eq!(req.first, want);
            s.sent(&req);
            sent.push(req);
        }
        assert!(
            s.due(2, 0, 2).is_none(),
            "three batches out with two threads"
        );
        // The oldest answer arrives: its clips wait, so still three batches out.
        s.received(answer(&sent[0]));
        assert!(s.due(2, 0, 2).is_none());
        // One of its clips starts: two batches and a clip are out, still too many.
        assert_eq!(s.advance(0), Next::Clip);
        assert!(s.due(2, 0, 2).is_none());
        // Both have started: two batches out, one per thread, so the next is due.
        s.clip_frame = 2;
        assert_eq!(s.advance(0), Next::Clip);
        assert_eq!(s.due(2, 0, 2).map(|r| r.first), Some(6));
    }
}
