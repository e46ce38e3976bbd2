//! Colour models on an imported folder set (`train --data SET`): a tiny RGB
//! model trains on moving-shapes MP4 files that the test encodes and imports with
//! GStreamer, resumes exactly, exports to ONNX that ONNX Runtime runs as the tch
//! decoder does, and the exported model renders in a real `syncdrawsrc` pipeline
//! as RGB and I420 frames equal to what the model draws. Also: read and write of
//! colour frames are the grey read and write of each channel.
//!
//! Needs the project venv (source build-env.sh), gst-launch-1.0 and the release
//! plugin (`cargo build --release --workspace`).
mod common;

use common::onnx::{check_with_onnx_checker, max_abs_diff, metadata, read_model, run_ort};
use common::plugin::PluginEnv;
use common::shapes::{folder, SIZE};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use syncdraw_data::bouncing::Split;
use syncdraw_data::folder::{import, FolderDataset, ImportOptions};
use syncdraw_data::shapes;
use syncdraw_data::video_io::{FrameRule, FrameSpec};
use syncdraw_data::Pixels;
use syncdraw_training::backend::tch_backend::Products;
use syncdraw_training::backend::TchBackend;
use syncdraw_training::checkpoint::{self, Meta};
use syncdraw_training::export::{export, export_model};
use syncdraw_training::model::filterbank::{Geometry, TemporalWindow, Window};
use syncdraw_training::model::read::read;
use syncdraw_training::model::write::write;
use syncdraw_training::model::{DecoderKind, DrawOrder, ModelConfig, SyncDraw, Variant};
use syncdraw_training::source::{DataSource, FolderSource, SourceError};
use syncdraw_training::train::{
    train, CanvasInit, CaptionEncoderKind, OptimizerOptions, TrainError, TrainOptions, CHECKPOINT,
};
use tch::{Device, Kind, Tensor};

const FRAMES: usize = 6;
const T: i64 = 3;
const Z: i64 = 8;

/// The moving-shapes folder (18 MP4 files and three bad entries) imported in
/// colour, 6 frames of 32x32: 9 training and 9 test videos.
fn set() -> &'static Path {
    static SET: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &SET.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tmp");
        folder(dir.path(), true);
        let out = dir.path().join("shapes-rgb");
        let report = import(
            &ImportOptions {
                videos: dir.path().to_path_buf(),
                captions: dir.path().join("captions.csv"),
                grammar: shapes::grammar(),
                spec: FrameSpec {
                    frames: FRAMES,
                    height: SIZE,
                    width: SIZE,
                    channels: 3,
                    rule: FrameRule::Start,
                },
                out: out.clone(),
            },
            false,
        )
        .expect("import");
        assert_eq!((report.train, report.test), (9, 9), "{report:?}");
        (dir, out)
    })
    .1
}

/// libtorch's random generator is global to the process and training seeds it
/// per step: tests that train or draw hold this lock.
fn lock() -> MutexGuard<'static, ()> {
    static L: Mutex<()> = Mutex::new(());
    L.lock().unwrap_or_else(|e| e.into_inner())
}

fn options(run_dir: &Path, set: &Path, variant: Variant, steps: u64) -> TrainOptions {
    tch::set_num_threads(1);
    let (source, _, _) = FolderSource::open(set).expect("the imported set");
    TrainOptions {
        run_dir: run_dir.to_path_buf(),
        model: ModelConfig {
            encoder_caption: true,
            variant,
            frames: FRAMES as i64,
            channels: 3,
            height: SIZE as i64,
            width: SIZE as i64,
            timesteps: T,
            read_k: 4,
            write_k: 5,
            enc_size: 32,
            dec_size: 32,
            z_dim: Z,
            caption: None,
            decoder: DecoderKind::WhatWhere,
            bounded_windows: true,
            forget_bias: 0.0,
            stable_filterbank: true,
            temporal_k: (variant == Variant::Baseline).then_some(3),
            canvas_init: None,
            draw_order: DrawOrder::Together,
            objects: None,
        },
        data: DataSource::Folder(source),
        pixels: Pixels::Grey,
        captions: Some(CaptionEncoderKind::Slots),
        canvas_init: CanvasInit::DataMean,
        steps,
        seed: 5,
        checkpoint_every: 4,
        eval_every: 0,
        eval_videos: 9,
        log_every: 2,
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

fn load(run_dir: &Path) -> checkpoint::Checkpoint {
    checkpoint::load(&run_dir.join(CHECKPOINT), Device::Cpu).expect("checkpoint")
}

#[test]
fn an_rgb_model_trains_on_an_imported_set_and_resumes_exactly() {
    let _serial = lock();
    let set = set();
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let summary = train(&options(a.path(), set, Variant::Syncdraw, 8)).expect("uninterrupted");
    let test = summary.test.expect("final evaluation");
    assert_eq!(test.videos, 9, "evaluated on the set's test split");
    assert!(test.nll.is_finite() && summary.last_loss.is_finite());
    train(&options(b.path(), set, Variant::Syncdraw, 4)).expect("first half");
    let mut opts = options(b.path(), set, Variant::Syncdraw, 8);
    opts.resume = true;
    train(&opts).expect("second half");

    let (ca, cb) = (load(a.path()), load(b.path()));
    assert_eq!((ca.meta.step, cb.meta.step), (8, 8));
    // The checkpoint records the folder set, its grammar, frames, size and channels.
    let DataSource::Folder(f) = &ca.meta.data else {
        panic!("not recorded as a folder set: {:?}", ca.meta.data)
    };
    assert_eq!(f.dir, set.canonicalize().unwrap());
    assert_eq!(f.grammar, shapes::grammar());
    assert_eq!(
        (f.frames, f.channels, f.height, f.width),
        (FRAMES, 3, SIZE, SIZE)
    );
    assert_eq!((f.train_videos, f.test_videos), (9, 9));
    assert_eq!(ca.meta.grammar.as_ref(), Some(&shapes::grammar()));
    assert_eq!(ca.meta.model.channels, 3);
    assert_eq!(ca.meta.data.name(), "folder:shapes-rgb");
    // A colour patch per frame and channel: 3 x 6 x 5 x 5 values a step.
    let patch = ca.model.vs.variables()["decoder.write_patch.w"].size();
    assert!(patch.contains(&(3 * 6 * 5 * 5)), "{patch:?}");

    let (va, vb) = (ca.model.vs.variables(), cb.model.vs.variables());
    assert_eq!(va.len(), vb.len());
    for (name, t) in &va {
        let d = (t - &vb[name]).abs().max().double_value(&[]);
        assert!(d == 0.0, "{name} differs by {d} after resume");
    }
    let (sa, sb) = (ca.adam.expect("adam state"), cb.adam.expect("adam state"));
    for (name, (m, v)) in &sa {
        assert!(
            m.equal(&sb[name].0) && v.equal(&sb[name].1),
            "optimizer state {name} differs"
        );
    }
}

#[test]
fn a_folder_set_refuses_binarisation_other_shapes_and_a_changed_set() {
    let _serial = lock();
    let set = set();
    let runs = tempfile::tempdir().expect("tmp");
    // Binarisation is defined per digit image: refused, and nothing is written.
    let dir = runs.path().join("binarised");
    let mut opts = options(&dir, set, Variant::Syncdraw, 2);
    opts.pixels = Pixels::Binarized;
    let err = train(&opts).expect_err("refused");
    assert!(
        matches!(err, TrainError::Source(SourceError::NoBinarization(_))),
        "{err}"
    );
    assert!(err.to_string().contains("digit"), "{err}");
    assert!(!dir.exists(), "a refused run leaves no directory");
    // A grey model on colour videos.
    let mut opts = options(&runs.path().join("grey"), set, Variant::Syncdraw, 2);
    opts.model.channels = 1;
    let err = train(&opts).expect_err("refused");
    assert!(err.to_string().contains("channels"), "{err}");

    // A set imported again (here: one pixel changed) is not resumed on.
    let copy = runs.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["train.sdfv", "test.sdfv"] {
        std::fs::copy(set.join(f), copy.join(f)).unwrap();
    }
    let run = runs.path().join("run");
    train(&options(&run, &copy, Variant::Syncdraw, 2)).expect("trains on the copy");
    let mut d = FolderDataset::read(&copy.join("train.sdfv")).unwrap();
    d.pixels[0] = d.pixels[0].wrapping_add(1);
    d.write(&copy.join("train.sdfv")).unwrap();
    let mut opts = options(&run, &copy, Variant::Syncdraw, 4);
    opts.resume = true;
    let err = train(&opts).expect_err("the set changed");
    assert!(
        matches!(err, TrainError::Source(SourceError::Mismatch { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("changed"), "{err}");
}

/// Ids of test-split captions (never seen in training), `n` of them.
fn caption_ids(meta: &Meta, n: usize) -> (Vec<String>, Tensor) {
    let codec = meta.captions().expect("captioned");
    let pool = meta.data.captions(Split::Test);
    let captions: Vec<String> = (0..n).map(|i| pool[i % pool.len()].clone()).collect();
    let ids: Vec<i64> = captions
        .iter()
        .flat_map(|c| codec.encode(c).unwrap())
        .collect();
    let ids = Tensor::from_slice(&ids).reshape([n as i64, codec.length() as i64]);
    (captions, ids)
}

/// The exported graph in ONNX Runtime against the tch decoder, batch 1 and 7.
fn assert_matches_tch(model: &SyncDraw, meta: &Meta, path: &Path) {
    let c = &meta.model;
    for batch in [1usize, 7] {
        let z = Tensor::randn([batch as i64, T, Z], (Kind::Float, Device::Cpu));
        let (_, ids) = caption_ids(meta, batch);
        let (video, canvases) = tch::no_grad(|| model.generate(&z, Some(&ids)));
        let onnx = run_ort(path, &z, Some(&ids));
        for (name, t) in [("video", &video), ("canvases", &canvases)] {
            let (shape, got) = &onnx[name];
            let want_shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
            assert_eq!(shape, &want_shape, "{name} shape at batch {batch}");
            let want = Vec::<f32>::try_from(&t.reshape([-1])).unwrap();
            let diff = max_abs_diff(got, &want);
            eprintln!(
                "{} colour batch {batch} {name}: max abs diff {diff:e}",
                c.variant.name()
            );
            assert!(
                diff <= 1e-4,
                "{} {name} differs from tch by {diff} at batch {batch}",
                c.variant.name()
            );
        }
        let (vshape, v) = &onnx["video"];
        assert_eq!(
            vshape,
            &[batch, FRAMES, 3, SIZE, SIZE],
            "video is [batch, frames, channels, height, width]"
        );
        // Not a grey video repeated three times.
        let plane = SIZE * SIZE;
        let spread = v
            .chunks_exact(3 * plane)
            .flat_map(|f| (0..plane).map(move |i| (f[i] - f[plane + i]).abs()))
            .fold(0f32, f32::max);
        assert!(spread > 1e-3, "the R and G planes are equal ({spread})");
        let (_, cs) = &onnx["canvases"];
        let per = v.len() / batch;
        for b in 0..batch {
            let last = &cs[(b * T as usize + T as usize - 1) * per..][..per];
            let diff = max_abs_diff(last, &v[b * per..][..per]);
            assert!(diff <= 1e-5, "last canvas and video differ by {diff}");
        }
    }
}

/// Quantises as the element does: [0, 1] to 0..=255, rounded.
fn q(v: f32) -> i32 {
    (v.clamp(0.0, 1.0) * 255.0).round() as i32
}

fn largest_difference(a: &[u8], b: &[i32]) -> i32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as i32 - y).abs())
        .max()
        .unwrap_or(0)
}

#[test]
fn an_rgb_model_exports_as_its_tch_decoder_and_renders_rgb_and_i420() {
    let _serial = lock();
    let set = set();
    let run = tempfile::tempdir().expect("tmp");
    train(&options(run.path(), set, Variant::Syncdraw, 30)).expect("trains");
    let ckpt = run.path().join(CHECKPOINT);
    let out = run.path().join("shapes-rgb.onnx");
    let summary = export(&ckpt, &out).expect("exports");
    assert_eq!(summary.channels, 3);
    check_with_onnx_checker(&[&out]);

    let m = read_model(&out);
    let meta = metadata(&m);
    assert_eq!(meta["syncdraw.channels"], "3");
    assert_eq!(meta["syncdraw.format_version"], "2");
    assert_eq!(meta["syncdraw.dataset"], "folder:shapes-rgb");
    assert_eq!(meta["syncdraw.caption_length"], "3");
    let g: syncdraw_format::Grammar =
        serde_json::from_str(&meta["syncdraw.caption_grammar"]).unwrap();
    assert_eq!(g, shapes::grammar());
    let examples: Vec<String> = serde_json::from_str(&meta["syncdraw.example_captions"]).unwrap();
    assert!(examples.len() >= 3, "{examples:?}");
    let ck = load(run.path());
    let held_out = ck.meta.data.captions(Split::Test);
    assert!(held_out.contains(&examples[0]), "{examples:?}");
    for e in &examples {
        g.encode(e).unwrap();
    }
    tch::manual_seed(11);
    assert_matches_tch(&ck.model, &ck.meta, &out);

    // The element: z = 0 (temperature 0), so the frames are exactly what the
    // model draws for the caption.
    let caption = "a red square is moving left and right";
    assert!(held_out.iter().any(|c| c == caption), "a held-out caption");
    let ids = ck.meta.captions().unwrap().encode(caption).unwrap();
    let ids = Tensor::from_slice(&ids).reshape([1, -1]);
    let z = Tensor::zeros([1, T, Z], (Kind::Float, Device::Cpu));
    let (video, _) = tch::no_grad(|| ck.model.generate(&z, Some(&ids)));
    let v = Vec::<f32>::try_from(&video.reshape([-1])).unwrap(); // [N, 3, H, W]
    let plane = SIZE * SIZE;
    let at = |f: usize, c: usize, i: usize| v[(f * 3 + c) * plane + i];

    let env = PluginEnv::new("colour");
    let props = [
        format!("caption={caption}"),
        "temperature=0".to_string(),
        "clips=1".to_string(),
        "execution-provider=cpu".to_string(),
    ];
    let props: Vec<&str> = props.iter().map(String::as_str).collect();

    // RGB: the R, G and B planes interleaved per pixel, in that order.
    let (rgb, _) = env.render(&out, &props, "video/x-raw,format=RGB", "clip.rgb");
    assert_eq!(rgb.len(), FRAMES * plane * 3, "one clip of 6 RGB frames");
    let expect = |order: [usize; 3]| -> Vec<i32> {
        (0..FRAMES)
            .flat_map(|f| (0..plane).flat_map(move |i| order.map(|c| q(at(f, c, i)))))
            .collect()
    };
    let d = largest_difference(&rgb, &expect([0, 1, 2]));
    eprintln!("RGB: largest difference from the model's frames {d} levels");
    assert!(d <= 1, "RGB frames differ from the model's by {d} levels");
    for order in [[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
        let d = largest_difference(&rgb, &expect(order));
        eprintln!("RGB against channels {order:?}: {d} levels");
        assert!(
            d > 2,
            "channels {order:?} would pass too ({d}): a vacuous test"
        );
    }

    // I420, BT.601 limited range: luma of the three planes, chroma averaged over
    // 2x2 pixels.
    let (yuv, printed) = env.render(
        &out,
        &props,
        "video/x-raw,format=I420,colorimetry=bt601",
        "clip.i420",
    );
    assert!(printed.contains("bt601"), "{printed}");
    let half = SIZE / 2;
    let frame_len = plane + 2 * half * half;
    assert_eq!(yuv.len(), FRAMES * frame_len, "one clip of 6 I420 frames");
    let (kr, kb) = (0.299f32, 0.114f32);
    let luma = |f: usize, i: usize| {
        let (r, g, b) = (
            at(f, 0, i).clamp(0.0, 1.0),
            at(f, 1, i).clamp(0.0, 1.0),
            at(f, 2, i).clamp(0.0, 1.0),
        );
        (r, g, b, kr * r + (1.0 - kr - kb) * g + kb * b)
    };
    let mut want = Vec::with_capacity(yuv.len());
    for f in 0..FRAMES {
        want.extend((0..plane).map(|i| (16.0 + 219.0 * luma(f, i).3).round() as i32));
        for chroma in [0, 1] {
            for cy in 0..half {
                for cx in 0..half {
                    let mut sum = 0.0;
                    for (y, x) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let (r, _, b, l) = luma(f, (2 * cy + y) * SIZE + 2 * cx + x);
                        sum += if chroma == 0 {
                            (b - l) / (2.0 * (1.0 - kb)) + 0.5
                        } else {
                            (r - l) / (2.0 * (1.0 - kr)) + 0.5
                        };
                    }
                    want.push((16.0 + 224.0 * sum / 4.0).round() as i32);
                }
            }
        }
    }
    let d = largest_difference(&yuv, &want);
    eprintln!("I420: largest difference from the model's colours {d} levels");
    assert!(
        d <= 1,
        "I420 frames differ from the model's colours by {d} levels"
    );
    let u = &yuv[plane..plane + half * half];
    let off_neutral = u.iter().filter(|&&c| c.abs_diff(128) > 2).count();
    eprintln!(
        "I420: {off_neutral} of {} U samples of frame 0 off neutral",
        u.len()
    );
    assert!(off_neutral > 0, "the U plane is neutral: a grey frame");
}

#[test]
fn colour_global_and_baseline_export_as_their_tch_decoders() {
    let _serial = lock();
    let set = set();
    let dir = tempfile::tempdir().expect("tmp");
    let mut files = Vec::new();
    for variant in [Variant::Global, Variant::Baseline] {
        let run = dir.path().join(variant.name());
        train(&options(&run, set, variant, 6)).expect("trains");
        let ck = load(&run);
        let out = dir.path().join(format!("{}.onnx", variant.name()));
        export_model(&ck.model, &ck.meta, &out).expect("exports");
        tch::manual_seed(3);
        assert_matches_tch(&ck.model, &ck.meta, &out);
        files.push(out);
    }
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    check_with_onnx_checker(&paths);
}

fn random_window(f: i64, temporal: bool) -> Window<Tensor> {
    let u = |lo: f64, hi: f64| Tensor::rand([2, f, 1], (Kind::Float, Device::Cpu)) * (hi - lo) + lo;
    Window {
        g_row: u(4.0, 12.0),
        g_col: u(4.0, 14.0),
        sigma2: u(0.5, 3.0),
        delta: u(0.5, 2.5),
        gamma: u(0.5, 2.0),
        temporal: temporal.then(|| TemporalWindow {
            g: u(1.5, 3.5),
            sigma2: u(0.5, 2.0),
            delta: u(0.3, 1.0),
        }),
    }
}

/// The paper's read and write apply the same filterbanks to each channel (as
/// DRAW does for colour images): a colour read is the grey read of each plane,
/// a colour write the grey write of each channel's patch, for per-frame,
/// shared and cuboid windows.
#[test]
fn colour_read_and_write_are_the_grey_ones_per_channel() {
    let _serial = lock();
    tch::manual_seed(2);
    let (n, h, w, k, kt) = (4i64, 16i64, 18i64, 3i64, 2i64);
    for (temporal, groups) in [(false, n), (false, 1), (true, 1)] {
        let grey = Geometry {
            height: h,
            width: w,
            frames: n,
            k,
            temporal_k: kt,
            groups,
            channels: 1,
            bounded: false,
            stable: true,
        };
        let colour = Geometry {
            channels: 3,
            ..grey
        };
        let win = random_window(groups, temporal);
        let g = if temporal { kt } else { n };
        let x = Tensor::randn([2, n, 3, h, w], (Kind::Float, Device::Cpu));
        let p = Tensor::randn([2, g, 3, k, k], (Kind::Float, Device::Cpu));
        let be = &mut TchBackend::new(Device::Cpu);
        let r = read(be, &win, &[&x], colour).remove(0);
        let wr = write(be, &win, &p, colour);
        assert_eq!(r.size(), [2, g, 3, k, k]);
        assert_eq!(wr.size(), [2, n, 3, h, w]);
        for c in 0..3 {
            let plane = x.select(2, c).contiguous();
            let r1 = read(be, &win, &[&plane], grey).remove(0);
            let w1 = write(be, &win, &p.select(2, c).contiguous(), grey);
            let dr = (r.select(2, c) - r1).abs().max().double_value(&[]);
            let dw = (wr.select(2, c) - w1).abs().max().double_value(&[]);
            assert!(
                dr < 1e-5 && dw < 1e-5,
                "temporal={temporal} groups={groups} channel {c}: read differs by {dr}, write by {dw}"
            );
        }
    }
}

/// `syncdraw-train train --data SET` trains a colour model on the set, with the
/// set's frames, size and channels; the generation options are refused with it.
#[test]
fn the_cli_trains_on_a_folder_set() {
    let set = set();
    let run = tempfile::tempdir().expect("tmp");
    let cli = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_syncdraw-train"))
            .args(["--threads", "1", "train", "--run-dir"])
            .arg(run.path())
            .arg("--data")
            .arg(set)
            .args([
                "--steps",
                "2",
                "--batch",
                "4",
                "--timesteps",
                "2",
                "--read-k",
                "3",
                "--write-k",
                "3",
                "--enc-size",
                "16",
                "--dec-size",
                "16",
                "--z-dim",
                "4",
                "--eval-every",
                "0",
                "--log-every",
                "1",
                "--device",
                "cpu",
            ])
            .args(extra)
            .output()
            .expect("runs syncdraw-train")
    };
    let refused = cli(&["--digits", "2"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("--digits") && err.contains("--data"), "{err}");
    let out = cli(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = checkpoint::read_meta(&run.path().join(CHECKPOINT)).expect("meta");
    assert_eq!(meta.step, 2);
    assert_eq!(
        (meta.model.frames, meta.model.channels, meta.model.height),
        (FRAMES as i64, 3, SIZE as i64)
    );
    assert!(
        matches!(meta.data, DataSource::Folder(_)),
        "{:?}",
        meta.data
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["folder"]["channels"], 3);
    assert!(config.get("dataset").is_none(), "{config}");
}
