// SPDX-License-Identifier: MIT OR Apache-2.0
//! The batch renderer of examples/batch_render.rs (its code, included here): many
//! captions to MP4 files in one process, going on past a bad caption.

mod common;

#[path = "../examples/batch_render.rs"]
#[allow(dead_code)]
mod batch_render;

use batch_render::{file_name, parse_args, read_captions, render_all, Done, Options, Shard};
use common::*;
use gst::prelude::*;
use gstsyncdraw::render::RenderError;
use gstsyncdraw::syncdrawsrc::ExecutionProvider;

#[test]
fn renders_many_captions_and_goes_on_past_a_bad_one() {
    init();
    batch_render::init().expect("init");
    let model = caption_model();
    let out_dir = fresh_dir("syncdraw-batch");
    let opts = Options {
        out_dir: out_dir.clone(),
        model: Some(model.path.clone()),
        seed: Some(9),
        clips: 1,
        execution_provider: ExecutionProvider::Cpu,
        shard: None,
        ..Options::default()
    };
    let captions = vec![
        model.caption.clone(),
        "digit 3 is flying over the moon".to_owned(),
        model.caption.to_uppercase(),
    ];
    let mut reported = Vec::new();
    let outcomes = render_all(&opts, &captions, |i, o| {
        reported.push((i, o.result.is_ok()))
    });
    // The bad caption is reported first (before anything is drawn), the others as
    // their files are done.
    assert_eq!(reported.len(), 3);
    assert_eq!(reported[0], (1, false));
    reported.sort();
    assert_eq!(reported, [(0, true), (1, false), (2, true)]);

    // The bad caption says why, and left no file behind.
    let bad = &outcomes[1];
    let err = bad.result.as_ref().expect_err("an unknown word must fail");
    assert!(matches!(err, RenderError::Caption(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("flying"), "{text}");
    // With what the model accepts: its grammar (format 2) or its words (format 1).
    let accepted = model
        .info
        .captions
        .as_ref()
        .expect("a caption model")
        .accepted();
    assert!(text.contains(&accepted), "{accepted:?} not in {text}");
    assert!(!bad.file.exists(), "no file for a failed caption");

    // The good ones are complete MP4 files with the caption as the title.
    for o in [&outcomes[0], &outcomes[2]] {
        assert!(o.result.is_ok(), "{:?}", o.result);
        let expected = out_dir.join(file_name(
            if o.caption == captions[0] { 1 } else { 3 },
            &o.caption,
        ));
        assert_eq!(o.file, expected);
        let d = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(60)).expect("discoverer");
        let uri = gst::glib::filename_to_uri(&o.file, None).expect("URI");
        let info = d.discover_uri(&uri).expect("discover");
        let video = info.video_streams();
        assert_eq!(video.len(), 1, "{}", o.file.display());
        assert_eq!(
            (video[0].width() as usize, video[0].height() as usize),
            (model.info.width, model.info.height)
        );
        #[allow(deprecated)]
        let tags = info.tags().expect("file tags");
        let title = tags.get::<gst::tags::Title>().expect("a title tag");
        assert_eq!(title.get(), o.caption);
        // One clip at 10 fps, to the nearest frame.
        let ns = info.duration().expect("duration").nseconds();
        let frames = (ns * 10 + 500_000_000) / 1_000_000_000;
        assert_eq!(frames as usize, model.info.frames, "duration {ns} ns");
    }
    // No .part files remain.
    let leftovers: Vec<_> = std::fs::read_dir(&out_dir)
        .expect("read the output directory")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn arguments_and_caption_files() {
    let (opts, captions) = parse_args(
        [
            "--seed",
            "5",
            "--clips",
            "2",
            "--execution-provider",
            "cpu",
            "--out-dir",
            "/tmp/x",
            "digit 1",
            "--",
            "--not-an-option",
        ]
        .map(String::from),
    )
    .expect("valid arguments");
    assert_eq!(opts.seed, Some(5));
    assert_eq!(opts.clips, 2);
    assert_eq!(opts.execution_provider, ExecutionProvider::Cpu);
    assert_eq!(opts.out_dir, std::path::PathBuf::from("/tmp/x"));
    assert_eq!(captions, ["digit 1", "--not-an-option"]);

    let (opts, _) = parse_args(["--shard", "2/8", "x"].map(String::from)).expect("a shard");
    assert_eq!(opts.shard, Some(Shard { index: 2, count: 8 }));
    assert_eq!(
        opts.temperature,
        syncdraw_format::DEFAULT_TEMPERATURE,
        "the element's temperature by default"
    );
    let (opts, _) =
        parse_args(["--temperature", "0.5", "x"].map(String::from)).expect("a temperature");
    assert_eq!(opts.temperature, 0.5);
    for bad in [
        vec!["--shard", "0/8", "x"],
        vec!["--shard", "9/8", "x"],
        vec!["--shard", "1/0", "x"],
        vec!["--shard", "two", "x"],
        vec!["--seed", "-3", "x"],
        vec!["--temperature", "-1", "x"],
        vec!["--temperature", "nan", "x"],
        vec!["--clips", "0", "x"],
        vec!["--execution-provider", "tpu", "x"],
        vec!["--bogus", "x"],
        vec!["--seed"],
        vec![],
        vec!["--captions", "/nonexistent/captions.txt"],
    ] {
        let args: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
        assert!(parse_args(args).is_err(), "{bad:?} must be refused");
    }

    let text = "# captions\ndigit 1 is moving up\n\n  digit 2 is bouncing  \n";
    assert_eq!(
        read_captions(text.as_bytes()).expect("read"),
        ["digit 1 is moving up", "digit 2 is bouncing"]
    );
    assert_eq!(
        file_name(7, "Digit 3, moving up-and-down!"),
        "007-digit-3-moving-up-and-down.mp4"
    );
    assert_eq!(file_name(1, ""), "001-unconditional.mp4");
}

/// Shards 1/N .. N/N render every caption exactly once between them, and a run
/// started again skips the files that are there and leaves them untouched.
#[test]
fn shards_partition_the_captions_and_a_rerun_skips_what_is_done() {
    init();
    batch_render::init().expect("init");
    let model = synth("synth1-caption.onnx");
    let out_dir = fresh_dir("syncdraw-shards");
    let captions: Vec<String> = (0..7)
        .map(|i| {
            format!(
                "digit {i} is moving {}",
                if i % 2 == 0 {
                    "up and down"
                } else {
                    "left and right"
                }
            )
        })
        .collect();
    let opts = |shard| Options {
        out_dir: out_dir.clone(),
        model: Some(model.clone()),
        seed: Some(3),
        clips: 1,
        execution_provider: ExecutionProvider::Cpu,
        shard: Some(shard),
        ..Options::default()
    };
    let mut numbers = Vec::new();
    for index in 1..=3 {
        let outcomes = render_all(&opts(Shard { index, count: 3 }), &captions, |_, _| {});
        for o in &outcomes {
            assert_eq!(o.result.as_ref().ok(), Some(&Done::Rendered), "{o:?}");
        }
        numbers.extend(outcomes.iter().map(|o| o.number));
    }
    numbers.sort();
    assert_eq!(
        numbers,
        (1..=7).collect::<Vec<_>>(),
        "every caption exactly once"
    );
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let expected: Vec<String> = captions
        .iter()
        .enumerate()
        .map(|(i, c)| file_name(i + 1, c))
        .collect();
    assert_eq!(files, expected);

    // Started again: nothing is rendered, and the files are the same bytes.
    let before: Vec<Vec<u8>> = expected
        .iter()
        .map(|f| std::fs::read(out_dir.join(f)).unwrap())
        .collect();
    let again = render_all(&opts(Shard { index: 2, count: 3 }), &captions, |_, _| {});
    assert_eq!(again.len(), 2, "shard 2/3 has captions 2 and 5");
    assert!(again
        .iter()
        .all(|o| o.result.as_ref().ok() == Some(&Done::Skipped)));
    for (f, b) in expected.iter().zip(&before) {
        assert_eq!(&std::fs::read(out_dir.join(f)).unwrap(), b, "{f} changed");
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// The luma of every frame of a video file, decoded by GStreamer.
fn decode_luma(file: &std::path::Path) -> Vec<Vec<u8>> {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! video/x-raw,format=GRAY8 ! appsink name=sink sync=false",
        file.display()
    ))
    .expect("decode pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let sink = pipeline
        .by_name("sink")
        .expect("appsink")
        .downcast::<gst_app::AppSink>()
        .expect("an appsink");
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let mut frames = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let buffer = sample.buffer().expect("buffer");
        frames.push(buffer.map_readable().expect("map").to_vec());
    }
    pipeline.set_state(gst::State::Null).expect("NULL");
    frames
}

/// `syncdrawsrc caption=... seed=... ! x264enc ! mp4mux ! filesink`.
fn render_with_element(model: &std::path::Path, caption: &str, seed: i64, file: &std::path::Path) {
    let pipeline = gst::parse::launch(&format!(
        "syncdrawsrc model-location=\"{}\" caption=\"{caption}\" seed={seed} execution-provider=cpu ! x264enc ! mp4mux ! filesink location=\"{}\"",
        model.display(),
        file.display()
    ))
    .expect("render pipeline");
    pipeline.set_state(gst::State::Playing).expect("PLAYING");
    let bus = pipeline.bus().expect("bus");
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS");
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    pipeline.set_state(gst::State::Null).expect("NULL");
}

fn mean_abs_diff(a: &[Vec<u8>], b: &[Vec<u8>]) -> f64 {
    assert_eq!(a.len(), b.len(), "frame counts");
    let (mut sum, mut n) = (0u64, 0u64);
    for (fa, fb) in a.iter().zip(b) {
        assert_eq!(fa.len(), fb.len());
        for (x, y) in fa.iter().zip(fb) {
            sum += (*x as i64 - *y as i64).unsigned_abs();
            n += 1;
        }
    }
    sum as f64 / n as f64
}

/// Captions drawn together, many in one ONNX Runtime call, give the files the
/// element gives for each caption alone with the same seed (to within a level of
/// rounding noise after H.264), and another seed gives other frames.
#[test]
fn batched_captions_match_single_caption_renders_of_the_same_seed() {
    init();
    batch_render::init().expect("init");
    let model = caption_model();
    let out_dir = fresh_dir("syncdraw-batched");
    let captions: Vec<String> = [
        "digit 3 is moving up and down",
        "digit 8 is moving left and right",
        "digit 0 is moving left and right",
    ]
    .into_iter()
    .filter(|c| model.info.encode(c).is_ok())
    .map(String::from)
    .chain([model.caption.clone()])
    .collect();
    let opts = Options {
        out_dir: out_dir.clone(),
        model: Some(model.path.clone()),
        seed: Some(21),
        clips: 2,
        execution_provider: ExecutionProvider::Cpu,
        ..Options::default()
    };
    let outcomes = render_all(&opts, &captions, |_, _| {});
    for (o, caption) in outcomes.iter().zip(&captions) {
        assert_eq!(o.result.as_ref().ok(), Some(&Done::Rendered), "{o:?}");
        let batched = decode_luma(&o.file);
        assert_eq!(batched.len(), 2 * model.info.frames, "two clips");

        let alone = out_dir.join("alone.mp4");
        let pipeline_caption = caption.replace('"', "");
        let _ = std::fs::remove_file(&alone);
        // The element's clips=1 default draws clip 0; the batch renderer's first clip
        // is clip 0 of the same seed.
        render_with_element(&model.path, &pipeline_caption, 21, &alone);
        let single = decode_luma(&alone);
        let n = model.info.frames;
        let same = mean_abs_diff(&batched[..n], &single[..n]);
        assert!(same < 0.5, "{caption:?}: mean difference {same} levels");
        render_with_element(&model.path, &pipeline_caption, 22, &alone);
        let other = mean_abs_diff(&batched[..n], &decode_luma(&alone)[..n]);
        eprintln!("{caption:?}: same seed {same:.3} levels apart, another seed {other:.2}");
        assert!(
            other > 4.0 * same.max(0.5),
            "{caption:?}: another seed differs by {other} only"
        );
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}
