//! The fused canvas step (training/src/fused) against the model's own read and
//! write math run by libtorch with autograd: the same canvas and glimpses, and
//! the same gradients of every window parameter, patch and canvas value, for
//! both forms of the kernels; and the fused training step against the plain
//! one: the same loss and the same gradient of every parameter. CPU only, real
//! tch.
mod common;

use common::training_lock;
use syncdraw_training::backend::tch_backend::TchBackend;
use syncdraw_training::checkpoint;
use syncdraw_training::fused::frame::Kernels;
use syncdraw_training::fused::{step, FusedCanvas, Grid, GridGrads, Read, Write};
use syncdraw_training::model::filterbank::{Geometry, Window};
use syncdraw_training::model::read::read;
use syncdraw_training::model::window_stats::WindowStats;
use syncdraw_training::model::write::write;
use syncdraw_training::model::{DecoderKind, DrawOrder, ModelConfig, SyncDraw, Variant};
use syncdraw_training::source::DataSource;
use syncdraw_training::train::{
    slots_config, train, CanvasInit, CanvasStep, CaptionEncoderKind, OptimizerOptions, TrainOptions,
};
use tch::{Device, Kind, Tensor};

const B: i64 = 2;
const N: i64 = 3;
const S: i64 = 64;
const K: i64 = 10;

fn geometry() -> Geometry {
    Geometry {
        height: S,
        width: S,
        frames: N,
        k: K,
        temporal_k: K,
        groups: N,
        channels: 1,
        bounded: true,
        stable: true,
    }
}

/// A leaf [B, N, 1] uniform in [lo, hi).
fn param(lo: f64, hi: f64) -> Tensor {
    (Tensor::rand([B, N, 1], (Kind::Float, Device::Cpu)) * (hi - lo) + lo).set_requires_grad(true)
}

/// Windows as trained models have them: centres inside the frame, strides of
/// 2-8 pixels, sigma^2 from 0.5 to 10, intensities around 1.
fn window() -> Window<Tensor> {
    Window {
        g_row: param(15.0, 50.0),
        g_col: param(15.0, 50.0),
        sigma2: param(0.5, 10.0),
        delta: param(2.0, 8.0),
        gamma: param(0.3, 3.0),
        temporal: None,
    }
}

fn params(w: &Window<Tensor>) -> Vec<&Tensor> {
    vec![&w.g_row, &w.g_col, &w.sigma2, &w.delta, &w.gamma]
}

fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.detach().contiguous().view([-1])).expect("f32 values")
}

fn grad(t: &Tensor) -> Vec<f32> {
    values(&t.grad())
}

/// Largest difference relative to the larger of the two vectors' largest magnitudes.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a
        .iter()
        .chain(b)
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn compare(kernels: Kernels) {
    tch::manual_seed(7);
    let geo = geometry();
    let be = &mut TchBackend::new(Device::Cpu);
    let (ww, rw) = (window(), window());
    let patch = Tensor::randn([B, N, K, K], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let c0 = (Tensor::randn([B, N, S, S], (Kind::Float, Device::Cpu)) * 2.0 - 3.0)
        .set_requires_grad(true);
    let x = Tensor::rand([B, N, S, S], (Kind::Float, Device::Cpu));
    // Upstream gradients of the step's outputs.
    let dc = Tensor::randn([B, N, S, S], (Kind::Float, Device::Cpu)) * 0.1;
    let dgx = Tensor::randn([B, N, K, K], (Kind::Float, Device::Cpu));
    let dgs = Tensor::randn([B, N, K, K], (Kind::Float, Device::Cpu));

    // libtorch: c1 = c0 + write, glimpses of x and sigmoid(c1) (eq. 5, 9, 10).
    let c1 = &c0 + write(be, &ww, &patch, geo);
    let shown = c1.sigmoid();
    let glimpses = read(be, &rw, &[&x, &shown], geo);
    let objective = (&c1 * &dc).sum(Kind::Float)
        + (&glimpses[0] * &dgx).sum(Kind::Float)
        + (&glimpses[1] * &dgs).sum(Kind::Float);
    objective.backward();
    let mut plain: Vec<Vec<f32>> = params(&ww)
        .into_iter()
        .chain(params(&rw))
        .map(grad)
        .collect();
    plain.push(grad(&patch));
    plain.push(grad(&c0));
    for t in params(&ww)
        .into_iter()
        .chain(params(&rw))
        .chain([&patch, &c0])
    {
        let _ = t.grad().zero_();
    }

    // Fused: the window parameters and w / gamma from libtorch, the rest here.
    let p = &patch / ww.gamma.unsqueeze(3);
    let frames = (B * N) as usize;
    let mut fused = FusedCanvas::with_kernels(2, kernels);
    assert_eq!(fused.kernels(), kernels);
    let grid_values = |w: &Window<Tensor>| [&w.g_row, &w.g_col, &w.delta, &w.sigma2].map(values);
    let (wv, rv) = (grid_values(&ww), grid_values(&rw));

    let (p_v, r_gamma_v) = (values(&p), values(&rw.gamma));
    let wr = Write {
        grid: grid(&wv),
        patch: &p_v,
    };
    let rd = Read {
        grid: grid(&rv),
        gamma: &r_gamma_v,
    };
    let mut canvas = values(&c0);
    let x_v = values(&x);
    let mut gx = vec![0f32; frames * (K * K) as usize];
    let mut gs = gx.clone();
    fused.forward(
        0,
        &mut canvas,
        &x_v,
        Some(wr),
        Some(rd),
        &mut gx,
        &mut gs,
        None,
    );
    assert!(rel_diff(&canvas, &values(&c1)) < 1e-5, "canvas");
    assert!(rel_diff(&gx, &values(&glimpses[0])) < 1e-5, "glimpse of x");
    assert!(
        rel_diff(&gs, &values(&glimpses[1])) < 1e-5,
        "glimpse of the canvas"
    );

    let mut dcanvas = values(&dc);
    let (wg, rg) = fused.backward(
        0,
        &mut dcanvas,
        &x_v,
        Some(wr),
        Some(rd),
        &values(&dgx),
        &values(&dgs),
        None,
    );
    let (wg, rg) = (wg.expect("write gradients"), rg.expect("read gradients"));
    let shaped = |v: &[f32], like: &Tensor| Tensor::from_slice(v).view(like.size().as_slice());
    let push_grid = |w: &Window<Tensor>, g: &GridGrads| {
        [
            (&w.g_row, &g.g_row),
            (&w.g_col, &g.g_col),
            (&w.delta, &g.delta),
            (&w.sigma2, &g.sigma2),
        ]
        .into_iter()
        .map(|(t, g)| (t * shaped(g, t)).sum(Kind::Float))
        .fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |a, b| a + b)
    };
    let pushed = push_grid(&ww, &wg.grid)
        + push_grid(&rw, &rg.grid)
        + (&p * shaped(&wg.patch, &p)).sum(Kind::Float)
        + (&rw.gamma * shaped(&rg.gamma, &rw.gamma)).sum(Kind::Float);
    pushed.backward();
    let mut mine: Vec<Vec<f32>> = params(&ww)
        .into_iter()
        .chain(params(&rw))
        .map(grad)
        .collect();
    mine.push(grad(&patch));
    mine.push(dcanvas);
    let names = [
        "write g_row",
        "write g_col",
        "write sigma2",
        "write delta",
        "write gamma",
        "read g_row",
        "read g_col",
        "read sigma2",
        "read delta",
        "read gamma",
        "patch",
        "canvas",
    ];
    for ((name, a), b) in names.iter().zip(&plain).zip(&mine) {
        let d = rel_diff(a, b);
        assert!(d < 1e-4, "{kernels:?}: gradient of {name} differs by {d:e}");
    }
}

#[test]
fn the_fused_step_matches_libtorch_with_the_fast_kernels() {
    // Seeds libtorch's global generator: not while another test trains.
    let _serial = training_lock();
    let fast = Kernels::detect();
    if fast == Kernels::Portable {
        eprintln!("this CPU has no AVX2 + FMA: only the portable kernels run here");
    }
    compare(fast);
}

#[test]
fn the_fused_step_matches_libtorch_with_the_portable_kernels() {
    // Seeds libtorch's global generator: not while another test trains.
    let _serial = training_lock();
    compare(Kernels::Portable);
}

/// A small model of the sizes the kernels take (64 x 64 frames, grids of 10).
fn small_model(variant: Variant, captions: bool, decoder: DecoderKind) -> ModelConfig {
    ModelConfig {
        encoder_caption: true,
        variant,
        frames: N,
        channels: 1,
        height: S,
        width: S,
        timesteps: 3,
        read_k: K,
        write_k: K,
        enc_size: 32,
        dec_size: 32,
        z_dim: 4,
        caption: captions.then(|| slots_config(&syncdraw_data::bouncing::grammar(1))),
        decoder,
        bounded_windows: true,
        forget_bias: 1.0,
        canvas_init: Some(-3.0),
        draw_order: DrawOrder::Together,
        objects: None,
        stable_filterbank: true,
        temporal_k: None,
    }
}

/// The small model with two objects drawn in turn (`draw_order`), each in a
/// block of two of the four steps: captioned with two digits' slots, or
/// unconditional with two objects.
fn on_layers(draw_order: DrawOrder, captions: bool, decoder: DecoderKind) -> ModelConfig {
    ModelConfig {
        timesteps: 4,
        caption: captions.then(|| slots_config(&syncdraw_data::bouncing::grammar(2))),
        objects: (!captions).then_some(2),
        draw_order,
        ..small_model(Variant::Syncdraw, false, decoder)
    }
}

#[test]
fn only_the_models_the_kernels_take_run_fused() {
    let base = || small_model(Variant::Syncdraw, true, DecoderKind::WhatWhere);
    assert!(step::supported(&base()));
    assert!(step::supported(&small_model(
        Variant::Global,
        false,
        DecoderKind::Joint
    )));
    for draw_order in [
        DrawOrder::InTurn,
        DrawOrder::Layers,
        DrawOrder::LayersInterleaved,
    ] {
        assert!(step::supported(&on_layers(
            draw_order,
            true,
            DecoderKind::WhatWhere
        )));
    }
    let refused = [
        ModelConfig {
            variant: Variant::Baseline,
            temporal_k: Some(5),
            ..base()
        },
        ModelConfig {
            channels: 3,
            ..base()
        },
        ModelConfig {
            stable_filterbank: false,
            ..base()
        },
        ModelConfig {
            height: 32,
            width: 32,
            ..base()
        },
        ModelConfig {
            read_k: 5,
            ..base()
        },
        // Layers inferred in turn: two objects only (three take libtorch's
        // operations), where the same model in blocks runs fused.
        ModelConfig {
            objects: Some(3),
            timesteps: 6,
            ..on_layers(DrawOrder::LayersInterleaved, false, DecoderKind::WhatWhere)
        },
    ];
    assert!(step::supported(&ModelConfig {
        objects: Some(3),
        timesteps: 6,
        ..on_layers(DrawOrder::Layers, false, DecoderKind::WhatWhere)
    }));
    for c in refused {
        assert!(!step::supported(&c), "{c:?}");
    }
}

/// Every parameter's gradient, by name.
fn gradients(model: &SyncDraw) -> Vec<(String, Vec<f32>)> {
    let mut v: Vec<(String, Vec<f32>)> = model
        .vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, grad(&t)))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn zero_grads(model: &SyncDraw) {
    for (_, t) in model.vs.variables() {
        let mut g = t.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}

/// Every parameter's gradient in `a` and `b` ([`gradients`]) agrees to `tol`
/// (relative).
fn assert_same_gradients(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: parameters");
    for ((name, a), (other, b)) in a.iter().zip(b) {
        assert_eq!(name, other);
        let d = rel_diff(a, b);
        assert!(d < tol, "{what}: gradient of {name} differs by {d:e}");
    }
}

/// The plain and fused steps of `config` agree; with `weight`, both with layer
/// targets (random objects' videos of two objects) of that weight.
fn compare_steps(config: ModelConfig, kernels: Kernels, weight: Option<f64>) {
    assert!(step::supported(&config));
    tch::manual_seed(11);
    let model = SyncDraw::new(&config, Device::Cpu);
    let x = Tensor::rand([B, N, S, S], (Kind::Float, Device::Cpu)).round();
    let eps = Tensor::randn(
        [B, config.timesteps, config.z_dim],
        (Kind::Float, Device::Cpu),
    );
    // Slot ids (digit, motion) of one or two objects per video.
    let ids = config.caption.as_ref().map(|cc| match cc.length() {
        2 => Tensor::from_slice(&[4i64, 1, 8, 0]).reshape([2, 2]),
        _ => Tensor::from_slice(&[4i64, 1, 8, 0, 2, 0, 7, 1]).reshape([2, 4]),
    });
    let kl_weight = 1.5;
    let targets = weight.map(|w| {
        (
            Tensor::rand([B, 2, N, S, S], (Kind::Float, Device::Cpu)).round(),
            w,
        )
    });

    let mut plain_stats = WindowStats::default();
    let products = syncdraw_training::backend::tch_backend::Products::F32;
    let plain = model.loss_observed(
        &x,
        ids.as_ref(),
        &eps,
        Some(&mut plain_stats),
        products,
        targets.as_ref().map(|(t, _)| t),
    );
    let mut objective = &plain.reconstruction + &plain.kl * kl_weight;
    if let (Some(layer), Some((_, w))) = (&plain.layer_targets, &targets) {
        objective += layer * *w;
    }
    objective.mean(Kind::Float).backward();
    let plain_grads = gradients(&model);
    zero_grads(&model);

    // The fused step with every gradient defined (zeroed after the plain step),
    // as at every training step but the first; the first, where none is defined
    // yet (the encoder's W_x gets its gradient another way then), is below.
    let mut canvas = FusedCanvas::with_kernels(2, kernels);
    let mut fused_stats = WindowStats::default();
    let fused = step::loss_and_backward(
        &model,
        &mut canvas,
        &x,
        ids.as_ref(),
        &eps,
        kl_weight,
        targets.as_ref().map(|(t, w)| (t, *w)),
        Some(&mut fused_stats),
    );
    let fused_grads = gradients(&model);
    let first = {
        tch::manual_seed(11);
        let fresh = SyncDraw::new(&config, Device::Cpu);
        let targets = targets.as_ref().map(|(t, w)| (t, *w));
        step::loss_and_backward(
            &fresh,
            &mut canvas,
            &x,
            ids.as_ref(),
            &eps,
            kl_weight,
            targets,
            None,
        );
        gradients(&fresh)
    };
    let what = format!("{:?} {kernels:?}", config.variant);
    assert_same_gradients(&first, &fused_grads, 1e-6, &format!("{what}, a first step"));

    for (what, a, b) in [
        (
            "reconstruction",
            &plain.reconstruction,
            &fused.reconstruction,
        ),
        ("kl", &plain.kl, &fused.kl),
        ("log q/p", &plain.log_q_over_p, &fused.log_q_over_p),
    ] {
        let d = rel_diff(&values(a), &values(b));
        assert!(
            d < 1e-5,
            "{:?} {kernels:?}: {what} differs by {d:e}",
            config.variant
        );
    }
    match (&plain.layer_targets, &fused.layer_targets) {
        (Some(a), Some(b)) => {
            let d = rel_diff(&values(a), &values(b));
            assert!(d < 1e-5, "{what}: the layer-target term differs by {d:e}");
        }
        (None, None) => assert!(targets.is_none()),
        _ => panic!("{what}: only one step has the layer-target term"),
    }
    assert_same_gradients(&plain_grads, &fused_grads, 1e-4, &what);
    let (p, f) = (
        numbers(&plain_stats.finish()),
        numbers(&fused_stats.finish()),
    );
    assert!(!p.is_empty() && p.len() == f.len(), "window statistics");
    assert!(rel_diff(&p, &f) < 1e-4, "window statistics differ");
}

/// Every number of a value's JSON form, in order.
fn numbers(v: &impl serde::Serialize) -> Vec<f32> {
    fn walk(v: &serde_json::Value, out: &mut Vec<f32>) {
        match v {
            serde_json::Value::Number(n) => out.push(n.as_f64().unwrap_or(f64::NAN) as f32),
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(o) => o.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&serde_json::to_value(v).expect("json"), &mut out);
    out
}

#[test]
fn the_fused_training_step_has_the_plain_steps_loss_and_gradients() {
    // Seeds libtorch's global generator: not while another test trains.
    let _serial = training_lock();
    let configs = [
        small_model(Variant::Syncdraw, true, DecoderKind::WhatWhere),
        small_model(Variant::Global, false, DecoderKind::Joint),
        // Unbounded windows, a canvas starting at zero, a joint decoder that
        // reads the caption.
        ModelConfig {
            bounded_windows: false,
            canvas_init: None,
            ..small_model(Variant::Syncdraw, true, DecoderKind::Joint)
        },
        // An encoder that does not read the caption (only the decoder does).
        ModelConfig {
            encoder_caption: false,
            ..small_model(Variant::Syncdraw, true, DecoderKind::WhatWhere)
        },
        // Two objects drawn in turn: on canvas layers of their own, captioned
        // or not, and on one canvas.
        on_layers(DrawOrder::Layers, true, DecoderKind::WhatWhere),
        on_layers(DrawOrder::Layers, false, DecoderKind::WhatWhere),
        on_layers(DrawOrder::InTurn, true, DecoderKind::Joint),
        // Layers inferred in turn, captioned or not; and with blocks of
        // unequal length (T = 5: steps 0-2 and 3-4, taken 0, 3, 1, 4, 2).
        on_layers(DrawOrder::LayersInterleaved, true, DecoderKind::WhatWhere),
        on_layers(DrawOrder::LayersInterleaved, false, DecoderKind::Joint),
        ModelConfig {
            timesteps: 5,
            ..on_layers(DrawOrder::LayersInterleaved, true, DecoderKind::WhatWhere)
        },
    ];
    for kernels in [Kernels::detect(), Kernels::Portable] {
        for config in &configs {
            compare_steps(config.clone(), kernels, None);
        }
        // Layer targets (`train --layer-targets`): every layer scored alone
        // against its object's video, in the loss and in every gradient.
        for draw_order in [DrawOrder::Layers, DrawOrder::LayersInterleaved] {
            let layers = on_layers(draw_order, true, DecoderKind::WhatWhere);
            compare_steps(layers, kernels, Some(0.7));
        }
    }
}

/// `steps` steps of the small captioned model on 16 generated videos.
fn small_run(
    dir: &std::path::Path,
    cache: &std::path::Path,
    steps: u64,
    canvas_step: CanvasStep,
) -> TrainOptions {
    let mut dataset = syncdraw_data::DatasetConfig::new(1);
    dataset.train_size = 16;
    dataset.test_size = 8;
    dataset.video.frames = N as usize;
    TrainOptions {
        run_dir: dir.to_path_buf(),
        model: small_model(Variant::Syncdraw, true, DecoderKind::WhatWhere),
        data: DataSource::Generated(dataset),
        pixels: syncdraw_data::Pixels::Grey,
        captions: Some(CaptionEncoderKind::Slots),
        canvas_init: CanvasInit::DataMean,
        steps,
        seed: 5,
        checkpoint_every: 10,
        eval_every: 0,
        eval_videos: 8,
        log_every: 1,
        resume: false,
        device: Device::Cpu,
        optimizer: OptimizerOptions {
            batch: Some(4),
            ..Default::default()
        },
        cache_dir: cache.to_path_buf(),
        time_limit: None,
        init_from: None,
        warm_start: None,
        freeze_decoder: false,
        kl_weight: 1.0,
        slot_dropout: 0.0,
        layer_targets: None,
        products: syncdraw_training::backend::tch_backend::Products::F32,
        canvas_step,
        ema_decay: None,
        progress: false,
    }
}

/// The weights and the optimizer's moments of a run's checkpoint, by name (the
/// run's metadata, with its clock times, is left out).
fn checkpoint_tensors(dir: &std::path::Path) -> Vec<(String, Tensor)> {
    let mut t = Tensor::read_safetensors(dir.join("checkpoint.safetensors")).expect("checkpoint");
    t.retain(|(_, t)| t.kind() == Kind::Float);
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

/// A few steps of `train` with each canvas step, from the same seed: the same
/// losses and, after three Adam updates, the same weights; for the small
/// captioned model, and for two captioned digits on layers inferred in turn.
#[test]
fn training_runs_alike_with_either_canvas_step() {
    let _serial = training_lock();
    let cache = tempfile::tempdir().expect("tmp");
    for two_in_turn in [false, true] {
        runs_alike(cache.path(), two_in_turn);
    }
}

fn runs_alike(cache: &std::path::Path, two_in_turn: bool) {
    let run = |canvas_step: CanvasStep| {
        let dir = tempfile::tempdir().expect("tmp");
        let mut opts = small_run(dir.path(), cache, 3, canvas_step);
        if two_in_turn {
            opts.model = on_layers(DrawOrder::LayersInterleaved, true, DecoderKind::WhatWhere);
            let DataSource::Generated(d) = &opts.data else {
                unreachable!("small_run generates its videos")
            };
            let mut two = syncdraw_data::DatasetConfig::new(2);
            (two.train_size, two.test_size, two.video) =
                (d.train_size, d.test_size, d.video.clone());
            opts.data = DataSource::Generated(two);
        }
        train(&opts).expect("training runs");
        // The run records the step it trained with: fused where asked for and
        // the CPU has AVX2 + FMA.
        let ran = checkpoint::load(&dir.path().join("checkpoint.safetensors"), Device::Cpu)
            .expect("checkpoint")
            .meta
            .canvas_step;
        let fast = Kernels::detect() == Kernels::Avx2;
        let expected = if canvas_step == CanvasStep::Fused && fast {
            CanvasStep::Fused
        } else {
            CanvasStep::Plain
        };
        assert_eq!(ran, expected);
        let losses: Vec<f32> = std::fs::read_to_string(dir.path().join("metrics.jsonl"))
            .expect("metrics")
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("json")["loss"]
                    .as_f64()
                    .expect("loss") as f32
            })
            .collect();
        (losses, checkpoint_tensors(dir.path()))
    };
    let (fused_losses, fused_weights) = run(CanvasStep::Fused);
    let (plain_losses, plain_weights) = run(CanvasStep::Plain);
    assert_eq!(fused_losses.len(), 3);
    assert!(
        rel_diff(&fused_losses, &plain_losses) < 1e-5,
        "{fused_losses:?} against {plain_losses:?}"
    );
    assert_eq!(fused_weights.len(), plain_weights.len());
    if Kernels::detect() == Kernels::Avx2 {
        // The plain step is deterministic: had the fused run taken it too, the
        // two would agree to the bit.
        assert!(
            fused_weights
                .iter()
                .zip(&plain_weights)
                .any(|((_, a), (_, b))| !a.equal(b)),
            "the fused run ended with the plain run's weights to the bit"
        );
    }
    for ((name, a), (_, b)) in fused_weights.iter().zip(&plain_weights) {
        let d = rel_diff(&values(a), &values(b));
        assert!(d < 1e-3, "{name} differs by {d:e} after three steps");
    }
}

/// A fused run stopped after two steps and resumed ends where an uninterrupted
/// one does, bit for bit (each frame's kernels run alone, whatever thread takes
/// it, so the step is deterministic).
#[test]
fn a_resumed_fused_run_matches_an_uninterrupted_one() {
    let _serial = training_lock();
    let cache = tempfile::tempdir().expect("tmp");
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    train(&small_run(a.path(), cache.path(), 4, CanvasStep::Fused)).expect("uninterrupted");
    train(&small_run(b.path(), cache.path(), 2, CanvasStep::Fused)).expect("first half");
    let mut rest = small_run(b.path(), cache.path(), 4, CanvasStep::Fused);
    rest.resume = true;
    train(&rest).expect("second half");
    let (ta, tb) = (checkpoint_tensors(a.path()), checkpoint_tensors(b.path()));
    assert!(!ta.is_empty() && ta.len() == tb.len());
    for ((name, x), (_, y)) in ta.iter().zip(&tb) {
        assert!(x.equal(y), "{name} differs after resuming");
    }
}

fn grid(v: &[Vec<f32>; 4]) -> Grid<'_> {
    Grid {
        g_row: &v[0],
        g_col: &v[1],
        delta: &v[2],
        sigma2: &v[3],
    }
}
