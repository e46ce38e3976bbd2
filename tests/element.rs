// SPDX-License-Identifier: MIT OR Apache-2.0
//! syncdrawsrc through gst_check::Harness, with the synthetic test models
//! (tests/make_test_models.py): caps, timestamps, EOS, live mode, caption changes,
//! seeds, errors. These test the element, not generation quality.

mod common;

use common::*;
use gst::prelude::*;
use gst_check::Harness;
use gstsyncdraw::syncdrawsrc::{convert, model::ModelInfo, select};

fn harness(props: &[(&str, &str)]) -> Harness {
    init();
    let h = Harness::new("syncdrawsrc");
    set_props(&h.element().unwrap(), props);
    h
}

fn model_prop() -> String {
    synth("synth1-caption.onnx").display().to_string()
}

/// Pulls buffers until EOS; returns them.
fn pull_all(h: &mut Harness) -> Vec<gst::Buffer> {
    let mut out = Vec::new();
    loop {
        match h.pull_until_eos() {
            Ok(Some(b)) => out.push(b),
            Ok(None) => break,
            Err(e) => panic!("no buffer and no EOS: {e}"),
        }
    }
    out
}

fn bytes(buffers: &[gst::Buffer]) -> Vec<Vec<u8>> {
    buffers
        .iter()
        .map(|b| b.map_readable().unwrap().to_vec())
        .collect()
}

#[test]
fn default_caps_are_i420_model_size_10fps() {
    let m = model_prop();
    let mut h = harness(&[("model-location", &m), ("caption", CAPTION), ("clips", "1")]);
    h.play();
    let buf = h.pull().unwrap();
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
    assert_eq!(info.format(), gst_video::VideoFormat::I420, "{caps}");
    assert_eq!((info.width(), info.height()), (SYNTH_SIZE, SYNTH_SIZE));
    assert_eq!(info.fps(), gst::Fraction::new(10, 1));
    assert_eq!(
        info.interlace_mode(),
        gst_video::VideoInterlaceMode::Progressive
    );
    assert_eq!(buf.size(), info.size());
}

#[test]
fn every_format_negotiates_and_fills_frames() {
    let m = model_prop();
    for format in convert::FORMATS {
        let mut h = harness(&[
            ("model-location", &m),
            ("caption", CAPTION),
            ("clips", "1"),
            ("seed", "3"),
        ]);
        h.set_sink_caps_str(&format!("video/x-raw,format={}", format.to_str()));
        h.play();
        let buffers = pull_all(&mut h);
        assert_eq!(buffers.len(), SYNTH_FRAMES, "{format:?}");
        let caps = h.sinkpad().unwrap().current_caps().unwrap();
        let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
        assert_eq!(info.format(), *format);
        assert_eq!((info.width(), info.height()), (SYNTH_SIZE, SYNTH_SIZE));
        for b in &buffers {
            assert_eq!(b.size(), info.size(), "{format:?}");
            let map = b.map_readable().unwrap();
            let first = map[0];
            assert!(map.iter().any(|&x| x != first), "{format:?}: blank frame");
        }
    }
}

#[test]
fn timestamps_are_exact_over_many_clips() {
    let m = model_prop();
    let clips = 7u64;
    let mut h = harness(&[
        ("model-location", &m),
        ("caption", CAPTION),
        ("clips", &clips.to_string()),
        ("batch-size", "3"),
    ]);
    // An awkward rate, to catch drift.
    h.set_sink_caps_str("video/x-raw,framerate=30000/1001");
    h.play();
    let buffers = pull_all(&mut h);
    assert_eq!(buffers.len() as u64, clips * SYNTH_FRAMES as u64);
    let t = |n: u64| gst::ClockTime::from_nseconds(n * 1001 * 1_000_000_000 / 30000);
    for (n, b) in buffers.iter().enumerate() {
        let n = n as u64;
        assert_eq!(b.pts(), Some(t(n)), "pts of buffer {n}");
        assert_eq!(
            b.duration(),
            Some(t(n + 1) - t(n)),
            "duration of buffer {n}"
        );
        assert_eq!(b.offset(), n);
        assert_eq!(b.offset_end(), n + 1);
    }
}

#[test]
fn eos_after_clips_and_num_buffers() {
    let m = model_prop();
    let mut h = harness(&[("model-location", &m), ("caption", CAPTION), ("clips", "2")]);
    h.play();
    assert_eq!(pull_all(&mut h).len(), 2 * SYNTH_FRAMES);

    let mut h = harness(&[
        ("model-location", &m),
        ("caption", CAPTION),
        ("clips", "0"),
        ("num-buffers", "13"),
    ]);
    h.play();
    assert_eq!(pull_all(&mut h).len(), 13);
}

#[test]
fn show_steps_emits_every_drawing_step() {
    let m = model_prop();
    let mut h = harness(&[
        ("model-location", &m),
        ("caption", CAPTION),
        ("clips", "2"),
        ("seed", "5"),
        ("show-steps", "true"),
        ("batch-size", "2"),
    ]);
    h.set_sink_caps_str("video/x-raw,format=GRAY8");
    h.play();
    let steps = bytes(&pull_all(&mut h));
    assert_eq!(steps.len(), 2 * SYNTH_STEPS * SYNTH_FRAMES);

    // The last step of each clip is the video itself.
    let mut h = harness(&[
        ("model-location", &m),
        ("caption", CAPTION),
        ("clips", "2"),
        ("seed", "5"),
    ]);
    h.set_sink_caps_str("video/x-raw,format=GRAY8");
    h.play();
    let video = bytes(&pull_all(&mut h));
    let per_clip = SYNTH_STEPS * SYNTH_FRAMES;
    for clip in 0..2 {
        let last_step =
            &steps[clip * per_clip + (SYNTH_STEPS - 1) * SYNTH_FRAMES..(clip + 1) * per_clip];
        assert_eq!(
            last_step,
            &video[clip * SYNTH_FRAMES..(clip + 1) * SYNTH_FRAMES]
        );
    }
}

#[test]
fn same_seed_same_bytes_different_seed_different_video() {
    let m = model_prop();
    let run = |seed: &str, batch: &str| {
        let mut h = harness(&[
            ("model-location", &m),
            ("caption", CAPTION),
            ("clips", "3"),
            ("seed", seed),
            ("batch-size", batch),
        ]);
        h.play();
        bytes(&pull_all(&mut h))
    };
    let a = run("42", "1");
    assert_eq!(a, run("42", "1"), "same seed must give the same bytes");
    assert_eq!(
        a,
        run("42", "3"),
        "the batch size must not change the clips"
    );
    assert_ne!(a, run("43", "1"), "different seeds must differ");
    // Unset seed: fresh samples every time.
    assert_ne!(run("-1", "1"), run("-1", "1"));
    // Clips of one run differ from each other.
    assert_ne!(a[0], a[SYNTH_FRAMES]);
}

/// Live mode on the harness's test clock: one clock wait per frame, latency of one
/// frame, and a caption change applied from the next clip.
#[test]
fn live_caption_change_applies_from_next_clip() {
    let m = model_prop();
    let other = "digit 7 is moving left and right";
    let record = |first: &str, change_to: Option<&str>| {
        let mut h = harness(&[
            ("model-location", &m),
            ("caption", first),
            ("clips", "3"),
            ("seed", "11"),
            ("is-live", "true"),
        ]);
        h.use_testclock();
        h.play();
        let mut frames = Vec::new();
        for n in 0..3 * SYNTH_FRAMES {
            h.crank_single_clock_wait().unwrap();
            let b = h.pull().unwrap();
            frames.push(b.map_readable().unwrap().to_vec());
            if n == 0 {
                if let Some(c) = change_to {
                    h.element().unwrap().set_property("caption", c);
                }
                assert_eq!(
                    h.query_latency(),
                    Some(gst::ClockTime::from_mseconds(100)),
                    "latency of one frame at 10 fps"
                );
            }
        }
        let mut titles = Vec::new();
        while let Some(ev) = h.try_pull_event() {
            if let gst::EventView::Tag(t) = ev.view() {
                if let Some(title) = t.tag().get::<gst::tags::Title>() {
                    titles.push(title.get().to_string());
                }
            }
        }
        (frames, titles)
    };
    let (changed, titles) = record(CAPTION, Some(other));
    let (first_only, _) = record(CAPTION, None);
    let (other_only, _) = record(other, None);
    let n = SYNTH_FRAMES;
    assert_eq!(
        changed[..n],
        first_only[..n],
        "the current clip keeps its caption"
    );
    assert_eq!(
        changed[n..],
        other_only[n..],
        "the next clips use the new caption"
    );
    assert_ne!(changed[n..], first_only[n..]);
    assert_eq!(titles, [CAPTION, other], "title tags");
}

#[test]
fn invalid_caption_while_playing_warns_and_keeps_caption() {
    let m = model_prop();
    let mut h = harness(&[
        ("model-location", &m),
        ("caption", CAPTION),
        ("clips", "2"),
        ("execution-provider", "cpu"),
    ]);
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    h.play();
    h.pull().unwrap();
    let element = h.element().unwrap();
    element.set_property("caption", "digit 3 is flying");
    assert_eq!(element.property::<String>("caption"), CAPTION);
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(5),
            &[gst::MessageType::Warning],
        )
        .expect("a warning on the bus");
    let gst::MessageView::Warning(w) = msg.view() else {
        unreachable!()
    };
    let text = w.error().to_string();
    assert!(text.contains("flying"), "{text}");
    assert!(text.contains("moving"), "the vocabulary is listed: {text}");
    // Streaming goes on with the old caption.
    assert_eq!(pull_all(&mut h).len(), 2 * SYNTH_FRAMES - 1);
}

#[test]
fn unknown_words_at_start_name_words_and_vocabulary() {
    let m = model_prop();
    let e = start_error(&[
        ("model-location", &m),
        ("caption", "digit 3 is flying over the moon"),
    ])
    .expect("start must fail");
    let text = error_text(&e);
    assert!(e.0.matches(gst::LibraryError::Settings), "{text}");
    assert!(text.contains("flying, over, moon"), "{text}");
    assert!(text.contains("vocabulary is: digit 0 1 2"), "{text}");
}

#[test]
fn caption_too_long_or_empty_for_model() {
    let m = model_prop();
    let e = start_error(&[
        ("model-location", &m),
        ("caption", "digit 3 is moving up and down and up"),
    ])
    .expect("start must fail");
    assert!(error_text(&e).contains("at most 7"), "{}", error_text(&e));
    let e = start_error(&[("model-location", &m), ("caption", "")]).expect("start must fail");
    assert!(error_text(&e).contains("no words"), "{}", error_text(&e));
}

#[test]
fn missing_model_is_not_found_with_path() {
    let e = start_error(&[
        ("model-location", "/nonexistent/dir/model.onnx"),
        ("caption", CAPTION),
    ])
    .expect("start must fail");
    assert!(
        e.0.matches(gst::ResourceError::NotFound),
        "{}",
        error_text(&e)
    );
    assert!(error_text(&e).contains("/nonexistent/dir/model.onnx"));
}

#[test]
fn corrupt_model_fails_with_path_and_reason() {
    let p = synth("bad/bad-corrupt.onnx");
    let e = start_error(&[
        ("model-location", p.to_str().unwrap()),
        ("caption", CAPTION),
    ])
    .expect("start must fail");
    let text = error_text(&e);
    assert!(e.0.matches(gst::LibraryError::Settings), "{text}");
    assert!(text.contains(p.to_str().unwrap()), "{text}");
    assert!(text.contains("not a valid ONNX file"), "{text}");
}

#[test]
fn contract_breaking_models_fail_with_reason() {
    let cases = [
        ("bad-version.onnx", "format_version"),
        ("bad-missing-frames.onnx", "syncdraw.frames is missing"),
        ("bad-no-canvases.onnx", "no output named \"canvases\""),
        ("bad-video-shape.onnx", "output \"video\" has shape"),
        ("bad-input-name.onnx", "no input named \"z\""),
        ("bad-vocab-null.onnx", "vocabulary is null"),
    ];
    for (file, reason) in cases {
        let p = synth(&format!("bad/{file}"));
        let e = start_error(&[
            ("model-location", p.to_str().unwrap()),
            ("caption", CAPTION),
        ])
        .unwrap_or_else(|| panic!("{file}: start must fail"));
        let text = error_text(&e);
        assert!(e.0.matches(gst::LibraryError::Settings), "{file}: {text}");
        assert!(
            text.contains("breaks the syncdraw model contract"),
            "{file}: {text}"
        );
        assert!(text.contains(reason), "{file}: {text}");
        assert!(text.contains(p.to_str().unwrap()), "{file}: {text}");
    }
}

#[test]
fn execution_providers() {
    let m = model_prop();
    // cpu always works.
    assert!(start_error(&[
        ("model-location", &m),
        ("caption", CAPTION),
        ("execution-provider", "cpu")
    ])
    .is_none());
    // cuda: works on a CUDA machine with the GPU build of ONNX Runtime, else a clear error.
    if let Some(e) = start_error(&[
        ("model-location", &m),
        ("caption", CAPTION),
        ("execution-provider", "cuda"),
    ]) {
        let text = error_text(&e);
        assert!(
            text.contains("CUDA execution provider cannot be used"),
            "{text}"
        );
    }
    // auto: falls back to the CPU with a warning saying why.
    init();
    let pipeline = gst::parse::launch(&format!(
        "syncdrawsrc model-location={m} caption=\"{CAPTION}\" clips=1 ! fakesink"
    ))
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut warning = None;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(30)) {
        match msg.view() {
            gst::MessageView::Warning(w) => warning = Some(w.error().to_string()),
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{}", e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    if let Some(w) = warning {
        assert!(w.contains("CUDA cannot be used, running on the CPU"), "{w}");
    }
}

#[test]
fn model_selection_rule() {
    init();
    let dirs = vec![synth_dir().to_path_buf()];
    let pick = |caption: &str| {
        select::select(caption, &dirs)
            .map(|m| m.path.file_name().unwrap().to_string_lossy().into_owned())
    };
    assert_eq!(pick(CAPTION).unwrap(), "synth1-caption.onnx");
    assert_eq!(
        pick("digit 1 and digit 2 are bouncing up and down").unwrap(),
        "synth2-caption.onnx",
        "more words than the 7 of the small model"
    );
    assert_eq!(pick("").unwrap(), "synth1-uncond.onnx");
    assert_eq!(pick(" , ").unwrap(), "synth1-uncond.onnx");
    let err = pick("digit 3 is flying").unwrap_err().to_string();
    assert!(err.contains("flying"), "{err}");
    let err = select::select(CAPTION, &[std::path::PathBuf::from("/nonexistent")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent"), "{err}");
}

#[test]
fn metadata_reader_reads_contract_fields() {
    init();
    let m = ModelInfo::read(&synth("synth1-caption.onnx")).unwrap();
    assert_eq!(
        (m.frames, m.height, m.width, m.channels),
        (SYNTH_FRAMES, 32, 32, 1)
    );
    assert_eq!(
        (m.timesteps, m.z_dim, m.caption_length),
        (SYNTH_STEPS, 8, 7)
    );
    assert_eq!(m.dataset.as_deref(), Some("synthetic-test"));
    assert_eq!(m.example_captions, [CAPTION]);
    let u = ModelInfo::read(&synth("synth1-uncond.onnx")).unwrap();
    assert!(!u.is_conditional() && u.vocabulary.is_none());
}
