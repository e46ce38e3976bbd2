//! Caption fidelity of moving-shapes models (training/src/fidelity.rs with the
//! rule-based reader of evaluator/src/shapes.rs), on real data: moving-shapes
//! videos that the test encodes as MP4 files with GStreamer and imports in colour
//! and in grey, and tiny models trained briefly on them with tch.
//!
//! - The imported videos themselves, fed to the same scoring function as
//!   generated videos, score 1.0: a generator that drew exactly the data would
//!   score perfectly (this checks the scoring path, not a model).
//! - On tiny RGB and grey models, the report has one row per caption of the
//!   split with N videos each, exact is at most each attribute's accuracy, and
//!   the rows average to the totals; the same seed gives the same report.
//! - The CLI scores a shapes model without `--evaluator`, and refuses a folder set
//!   of another grammar by naming it and what is supported.
//!
//! Needs the project venv (source build-env.sh) and GStreamer (x264enc).
mod common;

use common::shapes::{write_video, SIZE};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use syncdraw_data::bouncing::Split;
use syncdraw_data::folder::{import, FolderDataset, ImportOptions};
use syncdraw_data::shapes;
use syncdraw_data::video_io::{FrameRule, FrameSpec};
use syncdraw_data::Pixels;
use syncdraw_format::{Grammar, Role, Slot};
use syncdraw_training::backend::tch_backend::Products;
use syncdraw_training::checkpoint::{self, Checkpoint};
use syncdraw_training::fidelity::{
    score_shape_videos, shapes_fidelity, FidelityError, Reader, ShapeScore, ShapesFidelityReport,
    NO_SHAPE,
};
use syncdraw_training::model::{DecoderKind, DrawOrder, ModelConfig, Variant};
use syncdraw_training::source::{DataSource, FolderSource};
use syncdraw_training::train::{
    train, CanvasInit, CaptionEncoderKind, OptimizerOptions, TrainOptions, CHECKPOINT,
};
use tch::{Device, Kind, Tensor};

const FRAMES: usize = 6;
/// Videos per (colour, shape, motion) combination in the folder.
const PER_COMBINATION: usize = 2;

/// The imported sets: (temporary directory, RGB set, grey set). Every
/// combination twice as a 12-frame MP4 of 32x32, imported as 6 frames: 18
/// training and 18 test videos per set.
fn sets() -> &'static (tempfile::TempDir, PathBuf, PathBuf) {
    static SETS: OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> = OnceLock::new();
    SETS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tmp");
        let mut csv = String::from("video,caption\n");
        for (i, v) in shapes::all_videos(PER_COMBINATION).into_iter().enumerate() {
            let name = format!("v{i:02}.mp4");
            write_video(dir.path(), &name, v, 12, 100 + i as u64);
            csv.push_str(&format!("{name},{}\n", v.caption()));
        }
        std::fs::write(dir.path().join("captions.csv"), csv).expect("write");
        let mut out = Vec::new();
        for (name, channels) in [("shapes-rgb", 3), ("shapes-grey", 1)] {
            let set = dir.path().join(name);
            let report = import(
                &ImportOptions {
                    videos: dir.path().to_path_buf(),
                    captions: dir.path().join("captions.csv"),
                    grammar: shapes::grammar(),
                    spec: FrameSpec {
                        frames: FRAMES,
                        height: SIZE,
                        width: SIZE,
                        channels,
                        rule: FrameRule::Start,
                    },
                    out: set.clone(),
                },
                false,
            )
            .expect("import");
            assert_eq!((report.train, report.test), (18, 18), "{report:?}");
            out.push(set);
        }
        let grey = out.pop().unwrap();
        let rgb = out.pop().unwrap();
        (dir, rgb, grey)
    })
}

/// libtorch's random generator is global to the process and training and
/// fidelity seed it: tests that train or draw hold this lock.
fn lock() -> MutexGuard<'static, ()> {
    static L: Mutex<()> = Mutex::new(());
    L.lock().unwrap_or_else(|e| e.into_inner())
}

/// `n` x `n` fractions are equal up to rounding.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// The captions of the moving-shapes grammar in the split, as `DataSource` lists them.
fn split_captions(set: &Path, split: Split) -> Vec<String> {
    let (source, _, _) = FolderSource::open(set).expect("the imported set");
    DataSource::Folder(source).captions(split)
}

/// Every real video of `split` of `set`, grouped by caption in the order the
/// model's split lists its captions, scored by the function that scores
/// generated videos, and the report made of those rows.
fn score_real(set: &Path, split: Split) -> ShapesFidelityReport {
    let file = match split {
        Split::Train => "train.sdfv",
        Split::Test => "test.sdfv",
    };
    let data = FolderDataset::read(&set.join(file)).expect("read");
    let channels = data.header.spec.channels;
    let mut rows = Vec::new();
    for caption in split_captions(set, split) {
        let videos: Vec<f32> = (0..data.len())
            .filter(|&i| data.header.videos[i].caption == caption)
            .flat_map(|i| data.video(i).iter().map(|&p| f32::from(p) / 255.0))
            .collect();
        let per = FRAMES * channels * SIZE * SIZE;
        assert_eq!(
            videos.len(),
            PER_COMBINATION * per,
            "{caption}: {PER_COMBINATION} real videos"
        );
        let videos = Tensor::from_slice(&videos).reshape([
            PER_COMBINATION as i64,
            FRAMES as i64,
            channels as i64,
            SIZE as i64,
            SIZE as i64,
        ]);
        rows.push(score_shape_videos(&caption, &videos).expect("scored"));
    }
    ShapesFidelityReport::from_rows(rows, PER_COMBINATION, channels == 3)
}

/// A perfect generator scores perfectly: the real videos of each split (the
/// test split's combinations are the held-out ones), through the scoring of
/// generated videos, are all read as their caption, in colour and in grey.
#[test]
fn real_imported_videos_score_one_through_the_fidelity_scoring() {
    let (_, rgb, grey) = sets();
    for (set, colour) in [(rgb, true), (grey, false)] {
        for split in [Split::Test, Split::Train] {
            let r = score_real(set, split);
            eprintln!(
                "real {} {split:?}: {:?}",
                if colour { "RGB" } else { "grey" },
                r.overall
            );
            assert_eq!(r.per_caption.len(), 9, "9 combinations per split");
            assert_eq!(r.overall.videos, 9 * PER_COMBINATION);
            let perfect = ShapeScore {
                videos: 9 * PER_COMBINATION,
                exact: 1.0,
                colour: colour.then_some(1.0),
                shape: 1.0,
                motion: 1.0,
                seen: 1.0,
            };
            assert_eq!(r.overall, perfect, "{:#?}", r.per_caption);
            assert_eq!(r.mean_caption_exact, 1.0);
            for row in &r.per_caption {
                assert_eq!(row.score.exact, 1.0, "{row:?}");
                // Grey readings name the shape and motion, not the colour.
                let want = if colour {
                    row.caption.clone()
                } else {
                    let words: Vec<&str> = row.caption.split(' ').collect();
                    format!("a {}", words[2..].join(" "))
                };
                assert_eq!(row.most_decoded, want);
            }
            let want: Vec<&str> = if colour {
                vec!["colour", "shape", "motion"]
            } else {
                vec!["shape", "motion"]
            };
            assert_eq!(r.attributes, want);
        }
    }
    // Not vacuous: the same videos scored as another caption (each colour
    // shifted to the next) are read as their own, so the colour is wrong and
    // the shape and motion right.
    let data = FolderDataset::read(&rgb.join("test.sdfv")).expect("read");
    let video: Vec<f32> = data
        .video(0)
        .iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect();
    let video = Tensor::from_slice(&video).reshape([1, FRAMES as i64, 3, SIZE as i64, SIZE as i64]);
    let truth = &data.header.videos[0].caption;
    let colours: Vec<&str> = shapes::COLOURS.iter().map(|c| c.0).collect();
    let this = colours
        .iter()
        .position(|c| truth.split(' ').nth(1) == Some(*c))
        .expect("a colour");
    let other = truth.replacen(colours[this], colours[(this + 1) % 3], 1);
    let row = score_shape_videos(&other, &video).expect("scored");
    assert_eq!(
        (
            row.score.exact,
            row.score.colour,
            row.score.shape,
            row.score.motion
        ),
        (0.0, Some(0.0), 1.0, 1.0),
        "{other} scored against a video of {truth}: {row:?}"
    );
    assert_eq!(&row.most_decoded, truth);
    // A black video shows no shape: wrong on every attribute, and said so.
    let black = Tensor::zeros(
        [1, FRAMES as i64, 3, SIZE as i64, SIZE as i64],
        (Kind::Float, Device::Cpu),
    );
    let row = score_shape_videos(truth, &black).expect("scored");
    assert_eq!(
        (row.score.seen, row.score.exact, row.score.shape),
        (0.0, 0.0, 0.0)
    );
    assert_eq!(row.most_decoded, NO_SHAPE);
}

fn options(run_dir: &Path, set: &Path, channels: i64, steps: u64) -> TrainOptions {
    tch::set_num_threads(1);
    let (source, _, _) = FolderSource::open(set).expect("the imported set");
    TrainOptions {
        run_dir: run_dir.to_path_buf(),
        model: ModelConfig {
            encoder_caption: true,
            variant: Variant::Syncdraw,
            frames: FRAMES as i64,
            channels,
            height: SIZE as i64,
            width: SIZE as i64,
            timesteps: 2,
            read_k: 3,
            write_k: 4,
            enc_size: 16,
            dec_size: 16,
            z_dim: 4,
            caption: None,
            decoder: DecoderKind::WhatWhere,
            bounded_windows: true,
            forget_bias: 0.0,
            stable_filterbank: true,
            temporal_k: None,
            canvas_init: None,
            draw_order: DrawOrder::Together,
            objects: None,
        },
        data: DataSource::Folder(source),
        pixels: Pixels::Grey,
        captions: Some(CaptionEncoderKind::Slots),
        canvas_init: CanvasInit::DataMean,
        steps,
        seed: 3,
        checkpoint_every: steps,
        eval_every: 0,
        eval_videos: 4,
        log_every: steps,
        resume: false,
        device: Device::Cpu,
        optimizer: OptimizerOptions {
            lr: Some(3e-3),
            batch: Some(4),
            ..Default::default()
        },
        cache_dir: run_dir.join("cache"),
        time_limit: None,
        init_from: None,
        warm_start: None,
        freeze_decoder: false,
        kl_weight: 1.0,
        slot_dropout: 0.0,
        layer_targets: None,
        products: Products::F32,
        canvas_step: Default::default(),
        ema_decay: None,
        progress: false,
    }
}

/// A tiny captioned model trained `steps` steps on `set`.
fn tiny_model(run_dir: &Path, set: &Path, channels: i64, steps: u64) -> Checkpoint {
    train(&options(run_dir, set, channels, steps)).expect("trains");
    checkpoint::load(&run_dir.join(CHECKPOINT), Device::Cpu).expect("checkpoint")
}

/// The report's numbers agree with each other: each caption has `n` videos,
/// exact is at most each attribute (and each at most `seen`), and with the
/// same number of videos per caption the rows average to the totals.
fn assert_consistent(r: &ShapesFidelityReport, captions: &[String], n: usize, colour: bool) {
    assert!(r.captions);
    assert_eq!(r.videos_per_caption, n);
    let got: Vec<&String> = r.per_caption.iter().map(|c| &c.caption).collect();
    assert_eq!(
        got,
        captions.iter().collect::<Vec<_>>(),
        "one row per caption, in order"
    );
    let grammar = shapes::grammar();
    for row in &r.per_caption {
        let s = &row.score;
        assert_eq!(s.videos, n, "{row:?}");
        assert_eq!(s.colour.is_some(), colour, "{row:?}");
        let attrs: Vec<f64> = s.colour.into_iter().chain([s.shape, s.motion]).collect();
        for f in attrs.iter().chain([&s.exact, &s.seen]) {
            assert!((0.0..=1.0).contains(f), "{row:?}");
            // A fraction of n videos.
            assert!(close(f * n as f64, (f * n as f64).round()), "{row:?}");
        }
        for a in attrs {
            assert!(s.exact <= a && a <= s.seen, "{row:?}");
        }
        // The most frequent reading is a reading: a caption of the grammar
        // (without the colour for grey), or no shape.
        if row.most_decoded != NO_SHAPE {
            let reading = if colour {
                row.most_decoded.clone()
            } else {
                row.most_decoded.replacen("a ", "a red ", 1)
            };
            grammar
                .parse(&reading)
                .unwrap_or_else(|e| panic!("{row:?}: {e}"));
        }
    }
    let rows = r.per_caption.len() as f64;
    let mean = |f: &dyn Fn(&ShapeScore) -> f64| {
        r.per_caption.iter().map(|c| f(&c.score)).sum::<f64>() / rows
    };
    let o = &r.overall;
    assert_eq!(o.videos, n * captions.len());
    assert!(close(o.exact, mean(&|s| s.exact)), "{o:?}");
    assert!(close(o.shape, mean(&|s| s.shape)), "{o:?}");
    assert!(close(o.motion, mean(&|s| s.motion)), "{o:?}");
    assert!(close(o.seen, mean(&|s| s.seen)), "{o:?}");
    match o.colour {
        Some(c) => assert!(close(c, mean(&|s| s.colour.unwrap()))),
        None => assert!(!colour),
    }
    assert!(close(r.mean_caption_exact, o.exact));
    assert!(o.exact <= o.shape.min(o.motion).min(o.colour.unwrap_or(1.0)));
}

/// `fidelity` on tiny RGB and grey models trained a few steps on the imported
/// sets: N videos per caption of the chosen split, consistent numbers, the
/// same report for the same seed.
#[test]
fn fidelity_scores_tiny_rgb_and_grey_shapes_models() {
    let _serial = lock();
    let (_, rgb, grey) = sets();
    let runs = tempfile::tempdir().expect("tmp");
    for (set, channels) in [(rgb, 3i64), (grey, 1)] {
        // 200 steps: enough for the model to draw shapes the reader finds (at
        // 40 steps every frame is still under the reader's 0.2 peak), so the
        // numbers checked below are not all zero.
        let ck = tiny_model(
            &runs.path().join(format!("c{channels}")),
            set,
            channels,
            200,
        );
        assert_eq!(Reader::of(&ck.meta.data).expect("a reader"), Reader::Shapes);
        let colour = channels == 3;
        let n = 3;
        let r = shapes_fidelity(&ck.model, &ck.meta, Split::Test, n, 7, 1.0).expect("scored");
        eprintln!(
            "tiny {channels}-channel model, test captions: {:?}",
            r.overall
        );
        let tests = split_captions(set, Split::Test);
        assert_eq!(tests.len(), 9);
        assert_consistent(&r, &tests, n, colour);
        assert!(r.overall.seen > 0.0, "no shape drawn: {:?}", r.overall);
        assert_eq!(r.attributes.len(), if colour { 3 } else { 2 });
        // Same seed, same videos, same report; the training captions on request.
        let again = shapes_fidelity(&ck.model, &ck.meta, Split::Test, n, 7, 1.0).expect("scored");
        assert_eq!(again.overall, r.overall);
        let seen = shapes_fidelity(&ck.model, &ck.meta, Split::Train, 2, 7, 1.0).expect("scored");
        assert_consistent(&seen, &split_captions(set, Split::Train), 2, colour);
    }
}

fn cli(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_syncdraw-train"))
        .args(["--threads", "1"])
        .args(args)
        .output()
        .expect("runs syncdraw-train")
}

/// `syncdraw-train fidelity` on an RGB shapes model, without `--evaluator`; and
/// a folder set of another grammar refused by name.
#[test]
fn the_cli_scores_a_shapes_model_and_refuses_other_grammars() {
    let _serial = lock();
    let (_, rgb, _) = sets();
    let run = tempfile::tempdir().expect("tmp");
    let ck = tiny_model(run.path(), rgb, 3, 20);
    let path = run.path().join(CHECKPOINT);
    let out = cli(&[
        "fidelity".as_ref(),
        "--checkpoint".as_ref(),
        path.as_os_str(),
        "--videos-per-caption".as_ref(),
        "2".as_ref(),
        "--captions".as_ref(),
        "train".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let per = json["per_caption"].as_array().unwrap();
    assert_eq!(per.len(), 9);
    assert_eq!(
        (
            json["split"].as_str(),
            &json["captions"],
            &json["videos_per_caption"]
        ),
        (Some("train"), &per.len().into(), &2.into())
    );
    assert_eq!(json["dataset"], "folder:shapes-rgb");
    assert!(
        json["reader"].as_str().unwrap().contains("shapes"),
        "{json}"
    );
    assert!(json.get("evaluator").is_none(), "{json}");
    assert_eq!(
        json["attributes"],
        serde_json::json!(["colour", "shape", "motion"])
    );
    for key in ["exact", "colour", "shape", "motion", "seen"] {
        let f = json["overall"][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&f), "{key}: {json}");
    }
    assert_eq!(json["overall"]["videos"], 18);
    for row in per {
        assert_eq!(row["score"]["videos"], 2, "{row}");
        assert!(row["most_decoded"].is_string(), "{row}");
    }

    // The same model recorded as trained on a set of another grammar.
    let other = Grammar {
        object: "a {colour} {animal} is {action}".into(),
        joiner: "and".into(),
        min_objects: 1,
        max_objects: 1,
        slots: vec![
            Slot {
                name: "colour".into(),
                role: Role::What,
                values: vec!["red".into(), "green".into(), "blue".into()],
            },
            Slot {
                name: "animal".into(),
                role: Role::What,
                values: vec!["cat".into(), "dog".into(), "fox".into()],
            },
            Slot {
                name: "action".into(),
                role: Role::Where,
                values: vec!["running".into(), "jumping".into()],
            },
        ],
    };
    let mut meta = ck.meta.clone();
    let DataSource::Folder(f) = &mut meta.data else {
        panic!("a folder set")
    };
    f.grammar = other.clone();
    meta.grammar = Some(other);
    let err = shapes_fidelity(&ck.model, &meta, Split::Test, 1, 1, 1.0).expect_err("refused");
    assert!(matches!(err, FidelityError::NoReader { .. }), "{err}");
    let refused = run.path().join("other.safetensors");
    checkpoint::save(&refused, &ck.model, None, &meta).expect("save");
    let out = cli(&[
        "fidelity".as_ref(),
        "--checkpoint".as_ref(),
        refused.as_os_str(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for said in [
        "a <red|green|blue> <cat|dog|fox> is <running|jumping>",
        "Bouncing MNIST",
        "a <red|green|blue> <square|circle|triangle> is moving <up and down|left and right>",
    ] {
        assert!(
            stderr.contains(said),
            "the refusal should say {said:?}: {stderr}"
        );
    }
}

/// A Bouncing MNIST model still needs the digit evaluator, and says so.
#[test]
fn a_digit_model_without_an_evaluator_is_told_to_pass_one() {
    let model = common::root().join("models/mnist1-captions.safetensors");
    let out = cli(&[
        "fidelity".as_ref(),
        "--checkpoint".as_ref(),
        model.as_os_str(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--evaluator") && stderr.contains("Bouncing MNIST"),
        "{stderr}"
    );
}
