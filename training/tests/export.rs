//! ONNX export: the exported graph, run by ONNX Runtime, gives what the tch decoder
//! gives on the same z and captions; the file passes the ONNX checker and carries
//! the metadata of docs/model-format.md; bad checkpoints leave no file behind.
//!
//! Needs the project venv (scripts/setup.sh): ONNX Runtime 1.31.1 from its
//! onnxruntime wheel (or $ORT_DYLIB_PATH) and python's `onnx` package.
mod common;

use common::onnx::{check_with_onnx_checker, max_abs_diff, read_model, run_ort};
use onnx_protobuf::tensor_shape_proto::dimension;
use onnx_protobuf::{type_proto, ValueInfoProto};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use syncdraw_data::bouncing::{contents, grammar, VideoSpec};
use syncdraw_data::{Dataset, DatasetConfig, DigitSource, Digits, Split};
use syncdraw_format::{CaptionCodec, Grammar, Vocabulary};
use syncdraw_training::backend::tch_backend::Products;
use syncdraw_training::checkpoint::{self, Meta, FORMAT};
use syncdraw_training::export::{export, export_model, ExportError};
use syncdraw_training::model::{DecoderKind, DrawOrder, ModelConfig, SyncDraw, Variant};
use syncdraw_training::source::DataSource;
use syncdraw_training::train::{slots_config, words_config};
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

const FRAMES: i64 = 4;
const SIZE: i64 = 32;
const T: i64 = 3;
const Z: i64 = 5;
/// Word caption length L (format 1): longer than any one-digit caption (7 words),
/// so padding is used.
const L: i64 = 9;

/// How a test model reads captions.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cap {
    None,
    /// Format 1: word LSTM, joint decoder.
    Words,
    /// Format 2: grammar slots, what-where decoder, bounded windows.
    Slots,
}
const TOLERANCE: f32 = 1e-4;

struct Data {
    dataset: DatasetConfig,
    train: Dataset,
    vocab: Vocabulary,
    grammar: Grammar,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let dataset = DatasetConfig {
            digits: 1,
            train_size: 64,
            test_size: 8,
            seed: 3,
            video: VideoSpec {
                frames: FRAMES as usize,
                size: SIZE as usize,
                speed: 0.2,
            },
            source: DigitSource::Bundled,
        };
        let digits = Digits::load(&dataset.source).expect("bundled digits");
        let train = Dataset::generate(&dataset, &digits, Split::Train).expect("data");
        let captions: Vec<String> = [Split::Train, Split::Test]
            .into_iter()
            .flat_map(|s| contents(1, s))
            .map(|c| c.caption())
            .collect();
        let vocab = Vocabulary::from_captions(captions.iter().map(String::as_str));
        Data {
            dataset,
            train,
            vocab,
            grammar: grammar(1),
        }
    })
}

fn codec(cap: Cap) -> Option<CaptionCodec> {
    match cap {
        Cap::None => None,
        Cap::Words => Some(CaptionCodec::Words {
            vocabulary: data().vocab.clone(),
            length: L as usize,
        }),
        Cap::Slots => Some(CaptionCodec::Grammar(data().grammar.clone())),
    }
}

fn config(variant: Variant, cap: Cap) -> ModelConfig {
    ModelConfig {
        encoder_caption: true,
        variant,
        frames: FRAMES,
        channels: 1,
        height: SIZE,
        width: SIZE,
        timesteps: T,
        read_k: 3,
        write_k: 4,
        enc_size: 24,
        dec_size: 24,
        z_dim: Z,
        caption: match cap {
            Cap::None => None,
            Cap::Words => Some(words_config(&data().vocab, L as usize)),
            Cap::Slots => Some(slots_config(&data().grammar)),
        },
        decoder: if cap == Cap::Slots {
            DecoderKind::WhatWhere
        } else {
            DecoderKind::Joint
        },
        bounded_windows: cap == Cap::Slots,
        // The slots model also starts from a learned canvas and a forget bias, so
        // parity covers c^0.
        forget_bias: if cap == Cap::Slots { 1.0 } else { 0.0 },
        canvas_init: (cap == Cap::Slots).then_some(-0.5),
        stable_filterbank: cap == Cap::Slots,
        // The Baseline's temporal grid smaller than its spatial ones (3 and 4).
        temporal_k: (variant == Variant::Baseline).then_some(2),
        draw_order: DrawOrder::Together,
        objects: None,
    }
}

/// A small model trained for a few Adam steps on bouncing digits.
fn trained(variant: Variant, cap: Cap, steps: u64) -> (SyncDraw, Meta) {
    tch::set_num_threads(1);
    tch::manual_seed(7);
    let d = data();
    let config = config(variant, cap);
    let codec = codec(cap);
    let model = SyncDraw::new(&config, Device::Cpu);
    let mut opt = nn::Adam::default().build(&model.vs, 3e-3).unwrap();
    let batch = 8usize;
    for step in 0..steps as usize {
        let idx: Vec<usize> = (0..batch)
            .map(|i| (step * batch + i) % d.train.len())
            .collect();
        let pixels: Vec<f32> = idx
            .iter()
            .flat_map(|&i| d.train.video(i).iter().map(|&p| p as f32 / 255.0))
            .collect();
        let x = Tensor::from_slice(&pixels).reshape([batch as i64, FRAMES, SIZE, SIZE]);
        let caption = codec.as_ref().map(|c| {
            let ids: Vec<i64> = idx
                .iter()
                .flat_map(|&i| c.encode(&d.train.videos[i].caption).unwrap())
                .collect();
            Tensor::from_slice(&ids).reshape([batch as i64, c.length() as i64])
        });
        let eps = Tensor::randn([batch as i64, T, Z], (Kind::Float, Device::Cpu));
        let loss = model
            .loss(&x, caption.as_ref(), &eps)
            .nll()
            .mean(Kind::Float);
        opt.backward_step(&loss);
    }
    let meta = Meta {
        format: FORMAT.into(),
        model: config,
        vocabulary: (cap == Cap::Words).then(|| d.vocab.clone()),
        grammar: (cap == Cap::Slots).then(|| d.grammar.clone()),
        data: DataSource::Generated(d.dataset.clone()),
        pixels: Default::default(),
        step: steps,
        seed: 7,
        test_nll: (cap != Cap::None).then_some(1234.5),
        train_seconds: 0.0,
        device: "cpu".into(),
        steps_before: 0,
        initialised_from: None,
        frozen: Vec::new(),
        kl_weight: 1.0,
        slot_dropout: 0.0,
        layer_targets: 0.0,
        lr: 1e-3,
        beta1: 0.5,
        clip: 10.0,
        batch: 64,
        products: Products::F32,
        canvas_step: syncdraw_training::train::CanvasStep::Plain,
        ema_decay: None,
        averaged: false,
    };
    (model, meta)
}

/// Captions the codec accepts: for words, of different lengths (all padded to
/// L); for the grammar, every digit and motion, in varied case and spacing.
fn captions(n: usize, codec: &CaptionCodec) -> Vec<String> {
    if let CaptionCodec::Grammar(g) = codec {
        let pool = [
            "digit 3 is moving up and down",
            "digit 0 is moving left and right",
            "Digit 7, is moving up-and-down",
            "digit 2 is moving  LEFT and right",
            "digit 9 is moving left and right",
            "digit 4 is moving up and down",
            "digit 1 is moving up and down",
        ];
        // Two-object grammars: two of them joined, the second varying apart.
        return (0..n)
            .map(|i| {
                let one = pool[i % pool.len()].to_string();
                match g.max_objects {
                    1 => one,
                    _ => format!("{one} and {}", pool[(3 * i + 1) % pool.len()]),
                }
            })
            .collect();
    }
    let pool = [
        "digit 3 is moving up and down",
        "digit 0 is moving left and right",
        "Digit 7, moving up-and-down",
        "digit 2",
        "digit 9 is moving left and right",
        "digit 4 is moving up and down",
        "left",
    ];
    (0..n).map(|i| pool[i % pool.len()].to_string()).collect()
}

/// Runs `path` and the tch decoder on the same inputs at batch 1 and 7.
fn assert_matches_tch(model: &SyncDraw, meta: &Meta, path: &Path) {
    let c = &meta.model;
    for batch in [1usize, 7] {
        let z = Tensor::randn([batch as i64, T, Z], (Kind::Float, Device::Cpu));
        let caption = meta.captions().map(|codec| {
            let ids: Vec<i64> = captions(batch, &codec)
                .iter()
                .flat_map(|s| codec.encode(s).unwrap())
                .collect();
            Tensor::from_slice(&ids).reshape([batch as i64, codec.length() as i64])
        });
        let (video, canvases) = tch::no_grad(|| model.generate(&z, caption.as_ref()));
        let onnx = run_ort(path, &z, caption.as_ref());
        for (name, t) in [("video", &video), ("canvases", &canvases)] {
            let (shape, got) = &onnx[name];
            let want_shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
            assert_eq!(shape, &want_shape, "{name} shape at batch {batch}");
            let want = Vec::<f32>::try_from(&t.reshape([-1])).unwrap();
            let diff = max_abs_diff(got, &want);
            eprintln!(
                "{} captioned={} batch {batch} {name}: max abs diff {diff:e}",
                c.variant.name(),
                c.caption.is_some()
            );
            assert!(
                diff <= TOLERANCE,
                "{} {:?}: {name} differs from tch by {diff} at batch {batch}",
                c.variant.name(),
                c.caption.is_some()
            );
            assert!(
                got.iter().all(|v| (0.0..=1.0).contains(v)),
                "{name} in [0, 1]"
            );
            let (lo, hi) = got
                .iter()
                .fold((1f32, 0f32), |(l, h), &v| (l.min(v), h.max(v)));
            assert!(
                hi - lo > 1e-2,
                "{name} is nearly constant ({lo}..{hi}): a vacuous test"
            );
        }
        // canvases[:, T-1] is the video: the one accumulated step by step, the
        // other one product of every step's write factors (decoder.rs).
        let (_, v) = &onnx["video"];
        let (_, cs) = &onnx["canvases"];
        let per = v.len() / batch;
        for b in 0..batch {
            let last = &cs[(b * T as usize + T as usize - 1) * per..][..per];
            let diff = max_abs_diff(last, &v[b * per..][..per]);
            assert!(diff <= 1e-5, "last canvas and video differ by {diff}");
        }
    }
}

fn dims(v: &ValueInfoProto) -> (i32, Vec<String>) {
    let Some(type_proto::Value::TensorType(t)) = &v.type_.value else {
        panic!("{} is not a tensor", v.name)
    };
    let d = t
        .shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(dimension::Value::DimValue(n)) => n.to_string(),
            Some(dimension::Value::DimParam(s)) => s.clone(),
            _ => "?".into(),
        })
        .collect();
    (t.elem_type, d)
}

/// Trains, saves a checkpoint, exports it through `export` (the CLI path), and
/// compares with the tch decoder of the reloaded checkpoint.
fn roundtrip(variant: Variant, cap: Cap) -> (tempfile::TempDir, PathBuf) {
    let (model, meta) = trained(variant, cap, 30);
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("model.safetensors");
    checkpoint::save(&ckpt, &model, None, &meta).unwrap();
    let out = dir.path().join("model.onnx");
    let summary = export(&ckpt, &out).unwrap();
    assert_eq!(summary.path, out);
    assert_eq!(summary.bytes, std::fs::metadata(&out).unwrap().len());
    assert_eq!(
        summary.caption_length,
        codec(cap).map_or(0, |c| c.length() as i64)
    );
    let loaded = checkpoint::load(&ckpt, Device::Cpu).unwrap();
    assert_matches_tch(&loaded.model, &loaded.meta, &out);
    // The in-memory export writes the same bytes.
    let again = dir.path().join("again.onnx");
    export_model(&model, &meta, &again).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    (dir, out)
}

#[test]
fn syncdraw_captioned_matches_tch() {
    let (_dir, out) = roundtrip(Variant::Syncdraw, Cap::Slots);
    check_with_onnx_checker(&[&out]);

    let m = read_model(&out);
    assert_eq!(m.ir_version, 8);
    assert_eq!(m.opset_import.len(), 1);
    assert_eq!(
        (m.opset_import[0].domain.as_str(), m.opset_import[0].version),
        ("", 17)
    );
    assert_eq!(m.producer_name, "syncdraw-train");
    let g = m.graph.as_ref().unwrap();
    let io = |vs: &[ValueInfoProto]| -> Vec<(String, i32, Vec<String>)> {
        vs.iter()
            .map(|v| {
                let (t, d) = dims(v);
                (v.name.clone(), t, d)
            })
            .collect()
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        io(&g.input),
        vec![
            ("z".into(), 1, s(&["batch", "3", "5"])),
            ("caption".into(), 7, s(&["batch", "2"])),
        ]
    );
    assert_eq!(
        io(&g.output),
        vec![
            ("video".into(), 1, s(&["batch", "4", "1", "32", "32"])),
            (
                "canvases".into(),
                1,
                s(&["batch", "3", "4", "1", "32", "32"])
            ),
        ]
    );
    let meta: HashMap<&str, &str> = m
        .metadata_props
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    let expect = [
        ("syncdraw.format_version", "2"),
        ("syncdraw.frames", "4"),
        ("syncdraw.height", "32"),
        ("syncdraw.width", "32"),
        ("syncdraw.channels", "1"),
        ("syncdraw.timesteps", "3"),
        ("syncdraw.z_dim", "5"),
        ("syncdraw.caption_length", "2"),
        ("syncdraw.dataset", "bouncing-mnist-1"),
        ("syncdraw.variant", "syncdraw"),
        ("syncdraw.training_steps", "30"),
        ("syncdraw.test_nll", "1234.5"),
    ];
    for (k, v) in expect {
        assert_eq!(meta.get(k), Some(&v), "{k}");
    }
    assert_eq!(meta.len(), 14, "{meta:?}");
    // The grammar the element parses with is the one training encoded with.
    let g: Grammar = serde_json::from_str(meta["syncdraw.caption_grammar"]).unwrap();
    assert_eq!(g, data().grammar);
    let examples: Vec<String> = serde_json::from_str(meta["syncdraw.example_captions"]).unwrap();
    assert!(examples.len() >= 3, "{examples:?}");
    for e in &examples {
        g.encode(e).unwrap();
    }
}

/// Two-digit captions drawn in turn (`--draw-order in-turn`, and `layers`, each
/// object on a canvas layer of its own): T = 3 steps split unevenly (steps 0-1
/// draw the first object, step 2 the second), so the graph's per-step caption
/// features, zero states and layers must follow the training code's blocks
/// exactly.
#[test]
fn objects_drawn_in_turn_match_tch() {
    for order in [DrawOrder::InTurn, DrawOrder::Layers] {
        for captioned in [true, false] {
            in_turn_matches_tch(order, captioned);
        }
    }
}

/// With `captioned` false: an unconditional model with two objects of its own
/// (`ModelConfig::objects`), whose blocks read z alone.
fn in_turn_matches_tch(order: DrawOrder, captioned: bool) {
    tch::set_num_threads(1);
    tch::manual_seed(21);
    let two = grammar(2);
    let mut config = if captioned {
        let mut c = config(Variant::Syncdraw, Cap::Slots);
        c.caption = Some(slots_config(&two));
        c
    } else {
        let mut c = config(Variant::Syncdraw, Cap::None);
        c.objects = Some(2);
        c
    };
    config.draw_order = order;
    assert_eq!(config.layered(), order == DrawOrder::Layers);
    assert_eq!(
        (0..T).map(|t| config.object_of_step(t)).collect::<Vec<_>>(),
        vec![Some(0), Some(0), Some(1)]
    );
    let model = SyncDraw::new(&config, Device::Cpu);
    let mut dataset = data().dataset.clone();
    dataset.digits = 2;
    let meta = Meta {
        format: FORMAT.into(),
        model: config,
        vocabulary: None,
        grammar: captioned.then_some(two),
        data: DataSource::Generated(dataset),
        pixels: Default::default(),
        step: 0,
        seed: 21,
        test_nll: None,
        train_seconds: 0.0,
        device: "cpu".into(),
        steps_before: 0,
        initialised_from: None,
        frozen: Vec::new(),
        kl_weight: 1.0,
        slot_dropout: 0.0,
        layer_targets: 0.0,
        lr: 1e-3,
        beta1: 0.5,
        clip: 10.0,
        batch: 64,
        products: Products::F32,
        canvas_step: syncdraw_training::train::CanvasStep::Plain,
        ema_decay: None,
        averaged: false,
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("in-turn.onnx");
    export_model(&model, &meta, &out).unwrap();
    check_with_onnx_checker(&[&out]);
    assert_matches_tch(&model, &meta, &out);
}

/// Models with the format-1 word encoder still export, as format 1.
#[test]
fn syncdraw_words_matches_tch_as_format_1() {
    let (_dir, out) = roundtrip(Variant::Syncdraw, Cap::Words);
    check_with_onnx_checker(&[&out]);
    let m = read_model(&out);
    let meta: HashMap<&str, &str> = m
        .metadata_props
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(meta["syncdraw.format_version"], "1");
    assert_eq!(meta["syncdraw.caption_length"], "9");
    assert!(!meta.contains_key("syncdraw.caption_grammar"));
    let vocab: Vocabulary = serde_json::from_str(meta["syncdraw.vocabulary"]).unwrap();
    assert_eq!(vocab, data().vocab);
}

#[test]
fn syncdraw_unconditional_matches_tch() {
    let (_dir, out) = roundtrip(Variant::Syncdraw, Cap::None);
    check_with_onnx_checker(&[&out]);
    let m = read_model(&out);
    let g = m.graph.as_ref().unwrap();
    assert_eq!(g.input.len(), 1, "no caption input");
    let meta: HashMap<&str, &str> = m
        .metadata_props
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(meta["syncdraw.caption_length"], "0");
    assert_eq!(meta["syncdraw.format_version"], "2");
    assert_eq!(meta["syncdraw.caption_grammar"], "null");
    assert_eq!(meta["syncdraw.example_captions"], "[]");
    assert_eq!(meta["syncdraw.test_nll"], "null");
}

#[test]
fn global_and_baseline_match_tch() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for variant in [Variant::Global, Variant::Baseline] {
        for cap in [Cap::Slots, Cap::None] {
            let (model, meta) = trained(variant, cap, 12);
            let out = dir.path().join(format!("{}-{cap:?}.onnx", variant.name()));
            export_model(&model, &meta, &out).unwrap();
            assert_matches_tch(&model, &meta, &out);
            files.push(out);
        }
    }
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    check_with_onnx_checker(&paths);
}

/// Nothing but `keep` in `dir`: no output, no temporary file.
fn assert_only(dir: &Path, keep: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut keep: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
    keep.sort();
    assert_eq!(names, keep);
}

#[test]
fn bad_checkpoints_give_clear_errors_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("out.onnx");
    let message = |ckpt: &Path| -> String {
        let e = export(ckpt, &out).expect_err("export must fail");
        assert!(matches!(e, ExportError::Checkpoint(_)), "{e:?}");
        assert!(!out.exists(), "no output after: {e}");
        e.to_string()
    };

    // Missing.
    let m = message(&d.join("nope.safetensors"));
    assert!(
        m.contains("nope.safetensors") && m.contains("does not exist"),
        "{m}"
    );
    assert_only(d, &[]);

    // Truncated: a real checkpoint cut in half.
    let (model, meta) = trained(Variant::Syncdraw, Cap::Slots, 1);
    let full = d.join("full.safetensors");
    checkpoint::save(&full, &model, None, &meta).unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let cut = d.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let m = message(&cut);
    assert!(m.contains("cut.safetensors"), "{m}");

    // Foreign: random bytes, an empty file, a safetensors file of something else.
    let random = d.join("random.bin");
    std::fs::write(
        &random,
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let m = message(&random);
    assert!(m.contains("random.bin"), "{m}");
    let empty = d.join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    message(&empty);
    let other = d.join("other.safetensors");
    Tensor::write_safetensors(
        &[("weight", Tensor::ones([3, 3], (Kind::Float, Device::Cpu)))],
        &other,
    )
    .unwrap();
    let m = message(&other);
    assert!(m.contains("not a syncdraw checkpoint"), "{m}");
    assert_only(
        d,
        &[
            "full.safetensors",
            "cut.safetensors",
            "random.bin",
            "empty.safetensors",
            "other.safetensors",
        ],
    );

    // A failed export leaves an existing model untouched.
    std::fs::write(&out, b"previous model").unwrap();
    assert!(export(&cut, &out).is_err());
    assert_eq!(std::fs::read(&out).unwrap(), b"previous model");

    // A good one replaces it, with no temporary file left.
    export(&full, &out).unwrap();
    assert_ne!(std::fs::read(&out).unwrap(), b"previous model");
    assert_only(
        d,
        &[
            "full.safetensors",
            "cut.safetensors",
            "random.bin",
            "empty.safetensors",
            "other.safetensors",
            "out.onnx",
        ],
    );
}

#[test]
fn inconsistent_model_is_refused() {
    let (model, mut meta) = trained(Variant::Syncdraw, Cap::Slots, 1);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.onnx");
    meta.grammar = None;
    let e = export_model(&model, &meta, &out).expect_err("no grammar");
    assert!(e.to_string().contains("no grammar or vocabulary"), "{e}");
    assert!(!out.exists());
}
