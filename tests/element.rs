// SPDX-License-Identifier: MIT OR Apache-2.0
//! syncdrawsrc through gst_check::Harness, with the synthetic test models
//! (tests/make_test_models.py): caps, timestamps, EOS, live mode, caption changes,
//! caption grammar (format 2) and words (format 1), seeds, model choice, errors.
//! These test the element, not generation quality.

mod common;

use common::*;
use gst::prelude::*;
use gst_check::Harness;
use gstsyncdraw::syncdrawsrc::{
    convert,
    model::{CaptionCodec, ModelInfo},
    select,
};

fn harness(props: &[(&str, &str)]) -> Harness {
    init();
    let h = Harness::new("syncdrawsrc");
    set_props(&h.element().unwrap(), props);
    h
}

fn model_prop() -> String {
    synth("synth1-caption.onnx").display().to_string()
}

/// The format-1 (word vocabulary) synthetic model.
fn words_model_prop() -> String {
    synth("synth1-words.onnx").display().to_string()
}

/// The video bytes of `clips` clips of `model` for `caption` and `seed`, as GRAY8.
fn render(model: &str, caption: &str, seed: &str, clips: &str) -> Vec<Vec<u8>> {
    let mut h = harness(&[
        ("model-location", model),
        ("caption", caption),
        ("clips", clips),
        ("seed", seed),
        ("execution-provider", "cpu"),
    ]);
    h.set_sink_caps_str("video/x-raw,format=GRAY8");
    h.play();
    bytes(&pull_all(&mut h))
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

/// Batches above 16 clips are computed in several ONNX Runtime calls on the CPU,
/// and `parallel-batches` computes batches side by side on their own sessions:
/// neither may change the clips or their order.
#[test]
fn chunked_and_parallel_batches_keep_the_clips_in_order() {
    let m = model_prop();
    let run = |batch: &str, parallel: &str| {
        let mut h = harness(&[
            ("model-location", &m),
            ("caption", CAPTION),
            ("clips", "37"),
            ("seed", "42"),
            ("batch-size", batch),
            ("parallel-batches", parallel),
        ]);
        h.play();
        bytes(&pull_all(&mut h))
    };
    let one_at_a_time = run("1", "1");
    assert_eq!(one_at_a_time.len(), 37 * SYNTH_FRAMES);
    // 37 clips in one batch: calls of 16, 16 and 5.
    assert_eq!(run("37", "1"), one_at_a_time, "chunked batch");
    assert_eq!(run("1", "2"), one_at_a_time, "two sessions, batch 1");
    assert_eq!(run("5", "3"), one_at_a_time, "three sessions, batch 5");
    assert_eq!(run("20", "0"), one_at_a_time, "one session per core");
    assert_ne!(one_at_a_time[0], one_at_a_time[36 * SYNTH_FRAMES]);
}

/// Live mode on the harness's test clock: one clock wait per frame, latency of one
/// frame plus one batch's inference, and a caption change applied from the next clip.
#[test]
fn live_caption_change_applies_from_next_clip() {
    live_caption_change("1");
}

/// The same with three inference threads: the clips computed ahead with the old
/// caption come back from several threads, are all dropped, and the new ones
/// come in order.
#[test]
fn live_caption_change_with_parallel_batches() {
    live_caption_change("3");
}

fn live_caption_change(parallel_batches: &str) {
    let m = model_prop();
    let other = "digit 7 is moving left and right";
    let record = |first: &str, change_to: Option<&str>| {
        let mut h = harness(&[
            ("model-location", &m),
            ("caption", first),
            ("clips", "3"),
            ("seed", "11"),
            ("is-live", "true"),
            ("parallel-batches", parallel_batches),
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
                let latency = h.query_latency().expect("a live latency");
                assert!(
                    latency > gst::ClockTime::from_mseconds(100)
                        && latency < gst::ClockTime::from_mseconds(100 + 5_000),
                    "latency {latency}: one frame at 10 fps plus the first batch's inference"
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

/// Captions outside the grammar set while playing: each posts a warning naming what
/// is wrong and the accepted form, the property keeps the previous caption, and the
/// clips are those of the previous caption, byte for byte.
#[test]
fn invalid_caption_while_playing_warns_and_keeps_caption() {
    let m = model_prop();
    let mut h = harness(&[
        ("model-location", &m),
        ("caption", CAPTION),
        ("clips", "2"),
        ("seed", "17"),
        ("execution-provider", "cpu"),
    ]);
    h.set_sink_caps_str("video/x-raw,format=GRAY8");
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    h.play();
    let first = h.pull().unwrap();
    let element = h.element().unwrap();
    let refused = [
        (
            "digit 3 is flying",
            vec!["word 4 \"flying\"", "(\"moving\")"],
        ),
        (
            TWO_DIGITS,
            vec!["describes 2 objects; this model draws exactly 1"],
        ),
        (
            "digit 3 is moving",
            vec!["stops too early", "motion: up and down, left and right"],
        ),
    ];
    for (caption, reasons) in &refused {
        element.set_property("caption", *caption);
        assert_eq!(
            element.property::<String>("caption"),
            CAPTION,
            "{caption:?}"
        );
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(5),
                &[gst::MessageType::Warning],
            )
            .unwrap_or_else(|| panic!("a warning on the bus for {caption:?}"));
        let gst::MessageView::Warning(w) = msg.view() else {
            unreachable!()
        };
        let text = w.error().to_string();
        assert!(text.starts_with("Caption not changed"), "{text}");
        for r in reasons {
            assert!(text.contains(r), "{caption:?}: {r:?} not in {text}");
        }
        assert!(text.contains(FORM), "the accepted form is shown: {text}");
    }
    // Streaming goes on with the old caption: the same bytes as a run without changes.
    let mut got = vec![first.map_readable().unwrap().to_vec()];
    got.extend(bytes(&pull_all(&mut h)));
    assert_eq!(got.len(), 2 * SYNTH_FRAMES);
    assert_eq!(got, render(&m, CAPTION, "17", "2"));
}

/// A caption outside the grammar fails the start with the offending word, what the
/// grammar expected there and the form it accepts.
#[test]
fn caption_outside_grammar_at_start_names_word_and_accepted_form() {
    let m = model_prop();
    let cases = [
        (
            "digit 3 is flying over the moon",
            "word 4 \"flying\" is not what the grammar expects here (\"moving\")",
        ),
        (
            "digit 3 is moving sideways",
            "word 5 \"sideways\" is not what the grammar expects here (motion: up and down, left and right)",
        ),
        (
            "digit three is moving up and down",
            "word 2 \"three\" is not what the grammar expects here (digit: 0, 1, 2",
        ),
        (
            "digit 3 is moving up and down and",
            "stops too early: another object after the joiner must follow",
        ),
    ];
    for (caption, reason) in cases {
        let e = start_error(&[("model-location", &m), ("caption", caption)])
            .unwrap_or_else(|| panic!("{caption:?}: start must fail"));
        let text = error_text(&e);
        assert!(e.0.matches(gst::LibraryError::Settings), "{text}");
        assert!(text.contains(&format!("caption {caption:?}")), "{text}");
        assert!(text.contains(reason), "{reason:?} not in {text}");
        assert!(
            text.contains(&format!(
                "accepted: 1 of \"{FORM}\" joined by \"and\", for example \"digit 0 is moving up and down\""
            )),
            "{text}"
        );
        assert!(text.contains(&m), "the model is named: {text}");
    }
}

#[test]
fn object_count_empty_and_huge_captions_for_grammar_model() {
    let m = model_prop();
    let e =
        start_error(&[("model-location", &m), ("caption", TWO_DIGITS)]).expect("start must fail");
    let text = error_text(&e);
    assert!(
        text.contains("describes 2 objects; this model draws exactly 1"),
        "{text}"
    );
    let two = synth("synth2-caption.onnx").display().to_string();
    let e =
        start_error(&[("model-location", &two), ("caption", CAPTION)]).expect("start must fail");
    let text = error_text(&e);
    assert!(
        text.contains("describes 1 objects; this model draws exactly 2"),
        "{text}"
    );
    assert!(text.contains("accepted: 2 of"), "{text}");
    let e = start_error(&[("model-location", &m), ("caption", "")]).expect("start must fail");
    let text = error_text(&e);
    assert!(text.contains("caption is empty; accepted: 1 of"), "{text}");
    let huge = format!("{CAPTION} ").repeat(40);
    let e = start_error(&[("model-location", &m), ("caption", &huge)]).expect("start must fail");
    let text = error_text(&e);
    assert!(
        text.contains(&format!(
            "caption is {} bytes long; at most 1024 are accepted",
            huge.len()
        )),
        "{text}"
    );
}

/// Format-1 models keep their word tokenizer: unknown words, too many words and
/// empty captions are refused with the known words.
#[test]
fn format_1_captions_name_unknown_words_and_known_words() {
    let m = words_model_prop();
    let e = start_error(&[
        ("model-location", &m),
        ("caption", "digit 3 is flying over the moon"),
    ])
    .expect("start must fail");
    let text = error_text(&e);
    assert!(e.0.matches(gst::LibraryError::Settings), "{text}");
    assert!(
        text.contains("words this model does not know: flying, over, moon"),
        "{text}"
    );
    assert!(text.contains("known words: digit 0 1 2"), "{text}");
    assert!(!text.contains("<pad>"), "{text}");
    let e = start_error(&[
        ("model-location", &m),
        ("caption", "digit 3 is moving up and down and up"),
    ])
    .expect("start must fail");
    assert!(
        error_text(&e).contains("has 9 words; this model reads at most 7"),
        "{}",
        error_text(&e)
    );
    let e = start_error(&[("model-location", &m), ("caption", "")]).expect("start must fail");
    assert!(
        error_text(&e).contains("caption is empty; known words: digit"),
        "{}",
        error_text(&e)
    );
    // A caption it knows runs, and the caption changes the video.
    let a = render(&m, CAPTION, "4", "1");
    assert_eq!(a.len(), SYNTH_FRAMES);
    assert_ne!(a, render(&m, "digit 7 is moving left and right", "4", "1"));
}

/// Case, spacing and punctuation do not change what a caption means: the variants
/// give the canonical caption's video byte for byte, while another caption does not.
#[test]
fn caption_case_and_spacing_variants_give_the_same_video() {
    let one = model_prop();
    let two = synth("synth2-caption.onnx").display().to_string();
    let words = words_model_prop();
    let cases: [(&str, &str, &str, &[&str]); 3] = [
        (
            &one,
            CAPTION,
            "digit 3 is moving left and right",
            &[
                "Digit 3 IS moving Up And Down",
                "  digit   3 is\tmoving\nup-and-down.  ",
                "DIGIT 3, IS MOVING: UP AND DOWN!",
            ],
        ),
        (
            &two,
            TWO_DIGITS,
            "digit 2 is moving left and right and digit 1 is moving up and down",
            &["Digit 1 is moving up and down, AND digit 2 is moving left-and-right."],
        ),
        (
            &words,
            CAPTION,
            "digit 4 is moving up and down",
            &["DIGIT 3 is moving: up/and/down"],
        ),
    ];
    for (model, canonical, other, variants) in cases {
        let want = render(model, canonical, "21", "1");
        assert_eq!(want.len(), SYNTH_FRAMES);
        assert_ne!(
            want,
            render(model, other, "21", "1"),
            "{model}: the caption must change the video"
        );
        for v in variants {
            assert_eq!(render(model, v, "21", "1"), want, "{model}: {v:?}");
        }
    }
}

/// A colour model (3 channels) is emitted in colour: RGB as the model's R, G and B
/// planes interleaved, I420 with chroma that is not neutral, GRAY8 as its luma.
#[test]
fn a_colour_model_renders_rgb_and_i420() {
    let model = synth("colour/synth1-rgb.onnx");
    let frames = |format: &str| {
        let mut h = harness(&[
            ("model-location", model.to_str().unwrap()),
            ("caption", CAPTION),
            ("seed", "4"),
            ("execution-provider", "cpu"),
        ]);
        h.set_sink_caps_str(&format!("video/x-raw,format={format}"));
        h.play();
        let b = h.pull().expect("a frame");
        let caps = h.sinkpad().unwrap().current_caps().expect("caps");
        let info = gst_video::VideoInfo::from_caps(&caps).expect("video caps");
        let data = b.map_readable().unwrap().to_vec();
        (data, info)
    };
    let (rgb, info) = frames("RGB");
    let (w, h) = (info.width() as usize, info.height() as usize);
    let stride = info.stride()[0] as usize;
    let pixel = |x: usize, y: usize| {
        let i = y * stride + 3 * x;
        (rgb[i], rgb[i + 1], rgb[i + 2])
    };
    let coloured = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let (r, g, b) = pixel(x, y);
            r.abs_diff(g) > 8 || g.abs_diff(b) > 8
        })
        .count();
    assert!(
        coloured > w * h / 4,
        "only {coloured} of {} pixels differ between channels: a grey detour?",
        w * h
    );
    let (i420, info) = frames("I420");
    let u = &i420[info.offset()[1]..info.offset()[1] + (w / 2) * (h / 2)];
    let off_neutral = u.iter().filter(|&&c| c.abs_diff(128) > 4).count();
    assert!(
        off_neutral > u.len() / 4,
        "U plane almost neutral: {off_neutral} of {}",
        u.len()
    );
    // GRAY8 is the luma of the same frame: close to the I420 luma plane.
    let (grey, ginfo) = frames("GRAY8");
    let gs = ginfo.stride()[0] as usize;
    let is = info.stride()[0] as usize;
    let mut diff = 0u64;
    for y in 0..h {
        for x in 0..w {
            diff += grey[y * gs + x].abs_diff(i420[y * is + x]) as u64;
        }
    }
    assert!(
        diff as f64 / ((w * h) as f64) < 20.0,
        "GRAY8 is not the frame's luma"
    );
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
    let cases: [(&str, &[&str]); 11] = [
        (
            "bad-version.onnx",
            &[
                "syncdraw.format_version is \"3\"",
                "this element reads versions [1, 2]",
                "Export the model again",
                "syncdraw-train export",
            ],
        ),
        ("bad-missing-frames.onnx", &["syncdraw.frames is missing"]),
        ("bad-no-canvases.onnx", &["no output named \"canvases\""]),
        ("bad-video-shape.onnx", &["output \"video\" has shape"]),
        ("bad-input-name.onnx", &["no input named \"z\""]),
        (
            "bad-vocab-null.onnx",
            &["caption_length is 7 but syncdraw.vocabulary is null"],
        ),
        (
            "bad-grammar-missing.onnx",
            &["metadata key syncdraw.caption_grammar is missing"],
        ),
        (
            "bad-grammar-null.onnx",
            &["caption_length is 2 but syncdraw.caption_grammar is null"],
        ),
        (
            "bad-grammar-json.onnx",
            &["syncdraw.caption_grammar is not valid"],
        ),
        (
            "bad-grammar-length.onnx",
            &["the grammar gives 2 ids per caption but caption_length is 4"],
        ),
        (
            "bad-grammar-invalid.onnx",
            &["syncdraw.caption_grammar is not valid: slot \"motion\" appears 0 times in the template"],
        ),
    ];
    for (file, reasons) in cases {
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
        for reason in reasons {
            assert!(text.contains(reason), "{file}: {reason:?} not in {text}");
        }
        assert!(text.contains(p.to_str().unwrap()), "{file}: {text}");
    }
}

/// Crafted files: truncated, a length field far past the end of the file, an
/// input of the wrong element type, an output with NaN. Each gives one clear
/// error naming the file, never a panic or an abort.
#[test]
fn crafted_models_fail_with_reason() {
    let cases: [(&str, &str); 4] = [
        ("bad-truncated.onnx", "runs past the end of the file"),
        ("bad-huge-length.onnx", "runs past the end of the file"),
        (
            "bad-z-type.onnx",
            "input \"z\" has element type f64, expected f32",
        ),
        (
            "bad-nan-output.onnx",
            "output \"video\" holds NaN (clip 0, value 5",
        ),
    ];
    for (file, reason) in cases {
        let p = synth(&format!("bad/{file}"));
        let e = start_error(&[
            ("model-location", p.to_str().unwrap()),
            ("caption", CAPTION),
        ])
        .unwrap_or_else(|| panic!("{file}: start must fail"));
        let text = error_text(&e);
        assert!(text.contains(reason), "{file}: {reason:?} not in {text}");
        if file != "bad-nan-output.onnx" {
            assert!(text.contains(p.to_str().unwrap()), "{file}: {text}");
        }
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

/// The model chosen without model-location: the one-digit grammar model for a
/// one-digit caption, the two-digit one for two digits, and when none fits, every
/// model's reason.
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
        pick("Digit 7 is moving LEFT and right.").unwrap(),
        "synth1-caption.onnx"
    );
    assert_eq!(pick(TWO_DIGITS).unwrap(), "synth2-caption.onnx");
    assert_eq!(
        pick("digit 9 is moving left and right and digit 9 is moving left and right").unwrap(),
        "synth2-caption.onnx"
    );
    assert_eq!(pick("").unwrap(), "synth1-uncond.onnx");
    assert_eq!(pick(" , ").unwrap(), "synth1-uncond.onnx");
    // No grammar parses it, but the format-1 model knows every word.
    assert_eq!(pick("digit 3 moving up").unwrap(), "synth1-words.onnx");

    // None fits: each caption model says why.
    let err = pick("digit 3 is flying").unwrap_err().to_string();
    for reason in [
        "no model in ",
        " fits caption \"digit 3 is flying\"",
        "synth1-caption.onnx: caption \"digit 3 is flying\": word 4 \"flying\" is not what the grammar expects here (\"moving\"); accepted: 1 of",
        "synth2-caption.onnx: caption \"digit 3 is flying\": word 4 \"flying\" is not what the grammar expects here (\"moving\"); accepted: 2 of",
        "synth1-words.onnx: caption \"digit 3 is flying\" uses words this model does not know: flying",
        "Set model-location to choose a model",
    ] {
        assert!(err.contains(reason), "{reason:?} not in {err}");
    }
    let three = format!("{TWO_DIGITS} and digit 3 is moving up and down");
    let err = pick(&three).unwrap_err().to_string();
    for reason in [
        "synth1-caption.onnx: caption ",
        "describes 3 objects; this model draws exactly 1",
        "synth2-caption.onnx: caption ",
        "describes 3 objects; this model draws exactly 2",
        "synth1-words.onnx: caption ",
        "has 23 words; this model reads at most 7",
    ] {
        assert!(err.contains(reason), "{reason:?} not in {err}");
    }
    assert_eq!(
        err.matches("\n  ").count(),
        3,
        "one line per caption model: {err}"
    );

    let err = select::select(CAPTION, &[std::path::PathBuf::from("/nonexistent")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent"), "{err}");
}

/// Models that break the contract are skipped by the choice, and named with their
/// reason when no model fits.
#[test]
fn model_selection_skips_and_reports_broken_models() {
    init();
    let dir = fresh_dir("syncdraw-select-bad");
    for (from, to) in [
        ("bad/bad-version.onnx", "a-version.onnx"),
        ("bad/bad-grammar-length.onnx", "b-length.onnx"),
        ("synth1-caption.onnx", "c-one.onnx"),
    ] {
        std::fs::copy(synth(from), dir.join(to)).unwrap();
    }
    let dirs = vec![dir.clone()];
    let chosen = select::select(CAPTION, &dirs).expect("the good model fits");
    assert_eq!(chosen.path, dir.join("c-one.onnx"));
    let err = select::select("digit 3 is flying", &dirs)
        .unwrap_err()
        .to_string();
    for reason in [
        "a-version.onnx breaks the syncdraw model contract (docs/model-format.md): syncdraw.format_version is \"3\"; this element reads versions [1, 2]",
        "b-length.onnx breaks the syncdraw model contract (docs/model-format.md): the grammar gives 2 ids per caption but caption_length is 4",
        "c-one.onnx: caption \"digit 3 is flying\": word 4 \"flying\"",
    ] {
        assert!(err.contains(reason), "{reason:?} not in {err}");
    }
    let err = select::select("", &dirs).unwrap_err().to_string();
    assert!(
        err.contains("the caption is empty and there is no unconditional model"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
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
        (SYNTH_STEPS, 8, 2)
    );
    assert_eq!(m.dataset.as_deref(), Some("synthetic-test"));
    assert_eq!(m.example_captions, [CAPTION]);
    let Some(CaptionCodec::Grammar(g)) = &m.captions else {
        panic!(
            "a format-2 model reads captions by grammar: {:?}",
            m.captions
        )
    };
    assert_eq!((g.min_objects, g.max_objects, g.ids_len()), (1, 1, 2));
    assert_eq!(m.encode(CAPTION).unwrap(), Some(vec![4, 1]));

    let m2 = ModelInfo::read(&synth("synth2-caption.onnx")).unwrap();
    assert_eq!(m2.caption_length, 4);
    assert_eq!(m2.example_captions, [TWO_DIGITS]);
    assert_eq!(m2.encode(TWO_DIGITS).unwrap(), Some(vec![2, 1, 3, 2]));

    let w = ModelInfo::read(&synth("synth1-words.onnx")).unwrap();
    assert!(
        matches!(&w.captions, Some(CaptionCodec::Words { length: 7, .. })),
        "a format-1 model reads words: {:?}",
        w.captions
    );
    assert_eq!(
        w.encode("digit 3").unwrap(),
        Some(vec![1, 5, 0, 0, 0, 0, 0])
    );

    let u = ModelInfo::read(&synth("synth1-uncond.onnx")).unwrap();
    assert!(!u.is_conditional() && u.captions.is_none());
}
