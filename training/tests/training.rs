//! Attention math against hand-computed values, the properties of captioned
//! Bouncing MNIST, the training-dynamics options, and tiny training runs (loss
//! falls, resume is exact, NaN stops it, unknown caption words are refused). CPU
//! only, real tch.
mod common;

use common::training_lock;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use syncdraw_data::bouncing::{contents, grammar, image_pools, render, Motion, VideoSpec};
use syncdraw_data::mnist::DIGIT_SIZE;
use syncdraw_data::{Dataset, DatasetConfig, DigitSource, Digits, Pixels, Split};
use syncdraw_training::backend::tch_backend::Products;
use syncdraw_training::backend::tch_backend::TchBackend;
use syncdraw_training::checkpoint;
use syncdraw_training::model::filterbank::{Geometry, TemporalWindow, Window};
use syncdraw_training::model::read::read;
use syncdraw_training::model::write::write;
use syncdraw_training::model::{DecoderKind, DrawOrder, ModelConfig, Variant};
use syncdraw_training::source::DataSource;
use syncdraw_training::train::{
    mean_logit, train, CanvasInit, CaptionEncoderKind, OptimizerOptions, TrainError, TrainOptions,
};
use tch::{Device, Kind, Tensor};

fn col(values: &[f32]) -> Tensor {
    // [B=1, F, 1]
    Tensor::from_slice(values).reshape([1, values.len() as i64, 1])
}

/// A window per frame with the given centres, stride 1 and a tiny variance, so that
/// every filter is (numerically) a one-hot row: read becomes an exact crop.
fn crop_window(rows: &[f32], cols: &[f32]) -> Window<Tensor> {
    let f = rows.len();
    Window {
        g_row: col(rows),
        g_col: col(cols),
        sigma2: col(&vec![0.01; f]),
        delta: col(&vec![1.0; f]),
        gamma: col(&vec![1.0; f]),
        temporal: None,
    }
}

#[test]
fn read_with_unit_stride_and_tiny_sigma_is_the_crop_of_every_frame() {
    // Draws from libtorch's global generator: one test at a time.
    let _serial = training_lock();
    let (n, h, w, k) = (3i64, 16i64, 20i64, 4i64);
    let geo = Geometry {
        height: h,
        width: w,
        frames: n,
        k,
        temporal_k: k,
        groups: n,
        channels: 1,
        bounded: false,
        stable: false,
    };
    tch::manual_seed(0);
    let video = Tensor::rand([1, n, h, w], (Kind::Float, Device::Cpu));
    // K = 4: grid points at g - 1.5, g - 0.5, g + 0.5, g + 1.5 (1-based pixels), so a
    // centre g = r + 2.5 covers 1-based rows r+1..r+4, i.e. 0-based rows r..r+3.
    let (r0, c0) = ([0i64, 5, 12], [3i64, 16, 9]);
    let rows: Vec<f32> = r0.iter().map(|&r| r as f32 + 2.5).collect();
    let cols: Vec<f32> = c0.iter().map(|&c| c as f32 + 2.5).collect();
    let mut be = TchBackend::new(Device::Cpu);
    let glimpse = read(&mut be, &crop_window(&rows, &cols), &[&video], geo).remove(0);
    assert_eq!(glimpse.size(), [1, n, k, k]);
    for i in 0..n as usize {
        let expected = video
            .get(0)
            .get(i as i64)
            .narrow(0, r0[i], k)
            .narrow(1, c0[i], k);
        let got = glimpse.get(0).get(i as i64);
        let diff = (&got - &expected).abs().max().double_value(&[]);
        assert!(
            diff < 1e-5,
            "frame {i}: read differs from the crop by {diff}"
        );
    }
    // gamma scales the read (eq. 5).
    let mut win = crop_window(&rows, &cols);
    win.gamma = col(&[2.0, 2.0, 2.0]);
    let doubled = read(&mut be, &win, &[&video], geo).remove(0);
    assert!((&doubled - &glimpse * 2.0).abs().max().double_value(&[]) < 1e-5);
}

#[test]
fn filterbank_rows_are_normalised_gaussians_at_the_grid_points() {
    use syncdraw_training::model::filterbank::filterbank;
    let mut be = TchBackend::new(Device::Cpu);
    // g = 8, delta = 2, K = 3: mu = 8 + (u - 2) * 2 = 6, 8, 10; sigma^2 = 1. The
    // stable normalisation gives the same rows.
    for stable in [false, true] {
        let f = filterbank(
            &mut be,
            &col(&[8.0]),
            &col(&[2.0]),
            &col(&[1.0]),
            3,
            16,
            stable,
        );
        assert_eq!(f.size(), [1, 1, 3, 16]);
        for (u, mu) in [6.0f64, 8.0, 10.0].iter().enumerate() {
            let row = f.get(0).get(0).get(u as i64);
            let sum = row.sum(Kind::Double).double_value(&[]);
            assert!((sum - 1.0).abs() < 1e-5, "row {u} sums to {sum}");
            let z: f64 = (1..=16)
                .map(|a| (-(a as f64 - mu).powi(2) / 2.0).exp())
                .sum();
            for a in 1..=16i64 {
                let want = (-(a as f64 - mu).powi(2) / 2.0).exp() / z;
                let got = row.double_value(&[a - 1]);
                assert!((got - want).abs() < 1e-6, "F[{u},{a}] = {got}, want {want}");
            }
        }
    }
}

/// One training step's objective (the negative ELBO of one fixed batch of 6 grey
/// videos with fixed noise) and every parameter's gradient, by name, for each of
/// two set-ups of the same weights (seed 21; the batch from seed 22). libtorch's
/// random generator is global: the draws hold a lock, so the tests that call this
/// do not interleave their draws.
type StepResult = (f64, Vec<(String, Tensor)>);
fn two_steps(a: (&ModelConfig, Products), b: (&ModelConfig, Products)) -> (StepResult, StepResult) {
    use syncdraw_training::model::SyncDraw;
    // The second model gets the first's weights by copy, whatever the
    // generator's state after the first (the caller holds `training_lock`).
    tch::manual_seed(21);
    let first = SyncDraw::new(a.0, Device::Cpu);
    let mut second = SyncDraw::new(b.0, Device::Cpu);
    tch::no_grad(|| second.vs.copy(&first.vs)).expect("the two models have the same variables");
    tch::manual_seed(22);
    let x = Tensor::rand([6, 4, 32, 32], (Kind::Float, Device::Cpu));
    let eps = Tensor::randn([6, 4, 8], (Kind::Float, Device::Cpu));
    let step = |model: &SyncDraw, products: Products| {
        let loss = model.loss_observed(&x, None, &eps, None, products, None);
        let objective = loss.nll().mean(Kind::Float);
        objective.backward();
        let mut named: Vec<(String, Tensor)> = model
            .vs
            .variables()
            .into_iter()
            .map(|(name, v)| (name, v.grad().copy()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        (objective.double_value(&[]), named)
    };
    (step(&first, a.1), step(&second, b.1))
}

/// The training step with the stable filterbank (a softmax over each row's
/// exponents, read.rs reading x and x_hat through one set of filterbanks) gives
/// the loss and gradients of the paper's normaliser written out step by step,
/// where the two are the same function: a tiny model whose windows keep every
/// row well inside the frame (so no row sum nears the floor). The same weights,
/// the same batch, the same noise; every gradient to float tolerance.
#[test]
fn the_softmax_filterbank_step_has_the_plain_steps_loss_and_gradients() {
    // Draws from libtorch's global generator: one test at a time.
    let _serial = training_lock();
    let mut config = tiny_options(Path::new("."), Path::new("."), 1).model;
    config.stable_filterbank = false;
    let mut fast_config = config.clone();
    fast_config.stable_filterbank = true;
    let ((plain_loss, plain), (fast_loss, fast)) =
        two_steps((&config, Products::F32), (&fast_config, Products::F32));
    assert!(
        (plain_loss - fast_loss).abs() < 1e-5 * plain_loss.abs(),
        "loss {fast_loss} against the plain step's {plain_loss}"
    );
    assert_eq!(plain.len(), fast.len());
    for ((name, p), (_, f)) in plain.iter().zip(&fast) {
        let scale = p.abs().max().double_value(&[]).max(1e-3);
        let diff = (p - f).abs().max().double_value(&[]);
        assert!(
            diff <= 1e-4 * scale,
            "{name}: gradients differ by {diff} (largest {scale})"
        );
    }
}

/// The bf16 products (`train --products bf16`) compute the f32 step's loss and
/// gradients to bf16's precision: every parameter's gradient (summed over the
/// T drawing steps that use it) is within 5 % of the f32 one in norm; and the
/// products really are rounded (the gradients are not the f32 ones to the bit).
#[test]
fn the_bf16_products_step_has_the_f32_steps_loss_and_gradients() {
    // Draws from libtorch's global generator: one test at a time.
    let _serial = training_lock();
    let config = tiny_options(Path::new("."), Path::new("."), 1).model;
    let ((f32_loss, f32_grads), (bf16_loss, bf16_grads)) =
        two_steps((&config, Products::F32), (&config, Products::Bf16));
    assert!(
        f32_grads
            .iter()
            .zip(&bf16_grads)
            .any(|((_, p), (_, b))| !p.equal(b)),
        "the bf16 step gave the f32 gradients to the bit: its products were not rounded"
    );
    assert!(
        (f32_loss - bf16_loss).abs() < 5e-3 * f32_loss.abs(),
        "loss {bf16_loss} against the f32 step's {f32_loss}"
    );
    assert_eq!(f32_grads.len(), bf16_grads.len());
    for ((name, p), (_, b)) in f32_grads.iter().zip(&bf16_grads) {
        let norm = p.norm().double_value(&[]);
        if norm < 1e-6 {
            continue;
        }
        let rel = (p - b).norm().double_value(&[]) / norm;
        assert!(
            rel < 0.05,
            "{name}: the bf16 gradient is {rel:.4} of the f32 one's norm away from it"
        );
    }
}

/// `train --products`: the checkpoint records the number format of the run
/// that wrote it, and a resumed run that changes it records the new one.
#[test]
fn the_checkpoint_records_the_products_of_its_run() {
    let _serial = training_lock();
    let (run, cache) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let mut opts = tiny_options(run.path(), cache.path(), 1);
    opts.products = Products::Bf16;
    let summary = train(&opts).expect("bf16 run");
    let meta = checkpoint::load(&summary.checkpoint, Device::Cpu)
        .expect("checkpoint")
        .meta;
    assert_eq!(meta.products, Products::Bf16);
    opts.products = Products::F32;
    opts.resume = true;
    opts.steps = 2;
    let summary = train(&opts).expect("resumed in f32");
    let meta = checkpoint::load(&summary.checkpoint, Device::Cpu)
        .expect("checkpoint")
        .meta;
    assert_eq!((meta.step, meta.products), (2, Products::F32));
}

fn random_window(f: i64, temporal: bool) -> Window<Tensor> {
    let u = |lo: f64, hi: f64| Tensor::rand([1, f, 1], (Kind::Float, Device::Cpu)) * (hi - lo) + lo;
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

/// write (eq. 9) is the transpose of read (eq. 5): <read(x), p> = gamma^2 <x, write(p)>
/// for per-frame windows, and for the Baseline's spatio-temporal cuboid (with a
/// temporal grid as large as the spatial one, and smaller); two videos read
/// through one window give what each gives read alone; and read is linear in the
/// video.
#[test]
fn write_is_the_transpose_of_read() {
    // Draws from libtorch's global generator: one test at a time.
    let _serial = training_lock();
    tch::manual_seed(1);
    let (n, h, w, k) = (4i64, 16i64, 18i64, 3i64);
    // The cuboid with as many temporal points as spatial ones, and with fewer.
    for (temporal, groups, kt) in [(false, n, k), (false, 1, k), (true, 1, k), (true, 1, 2)] {
        let geo = Geometry {
            height: h,
            width: w,
            frames: n,
            k,
            temporal_k: kt,
            groups,
            channels: 1,
            bounded: false,
            stable: false,
        };
        let win = random_window(groups, temporal);
        let g = if temporal { kt } else { n };
        let x = Tensor::randn([1, n, h, w], (Kind::Float, Device::Cpu));
        let p = Tensor::randn([1, g, k, k], (Kind::Float, Device::Cpu));
        let mut be = TchBackend::new(Device::Cpu);
        let r = read(&mut be, &win, &[&x], geo).remove(0);
        // Videos read together (the encoder's x and x_hat) share the window's
        // filterbanks and give what each gives read alone.
        let y = Tensor::randn([1, n, h, w], (Kind::Float, Device::Cpu));
        let both = read(&mut be, &win, &[&x, &y], geo);
        let alone = read(&mut be, &win, &[&y], geo).remove(0);
        assert_eq!(both.len(), 2);
        assert!(
            both[0].equal(&r) && both[1].equal(&alone),
            "reading two videos at once"
        );
        // read is linear in the video: the encoder reads x_hat = x - sigmoid(c) as
        // read(x) - read(sigmoid(c)) (syncdraw.rs).
        let diff = read(&mut be, &win, &[&(&x - &y)], geo).remove(0);
        let err = (&diff - (&r - &alone)).abs().max().double_value(&[]);
        let scale = diff.abs().max().double_value(&[]).max(1.0);
        assert!(
            err < 1e-5 * scale,
            "temporal={temporal} groups={groups}: read(x - y) differs from read(x) - read(y) by {err}"
        );
        let wr = write(&mut be, &win, &p, geo);
        assert_eq!(wr.size(), [1, n, h, w]);
        // read multiplies by gamma, write divides by it: scale write back by gamma^2.
        let gamma2 = (&win.gamma * &win.gamma).reshape([1, groups, 1, 1]);
        let lhs = (&r * &p).sum(Kind::Double).double_value(&[]);
        let rhs = (&x * (&wr * &gamma2)).sum(Kind::Double).double_value(&[]);
        assert!(
            (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
            "temporal={temporal} groups={groups} K_t={kt}: <read x, p> = {lhs}, gamma^2 <x, write p> = {rhs}"
        );
    }
}

/// The write as computed (1/gamma on the patch, filterbank divisions as reciprocals,
/// exponents held at -80) equals eq. 9 written plainly, F_p^T w F_q / gamma with
/// exp(-(a - mu)^2 / 2 sigma^2) / Z, in value and in its gradients with respect to
/// the patch and every window parameter, for windows inside and far outside the frame.
#[test]
fn computed_write_equals_the_plain_formula_with_gradients() {
    // Draws from libtorch's global generator: one test at a time.
    let _serial = training_lock();
    tch::manual_seed(5);
    let (n, h, w, k) = (3i64, 16i64, 18i64, 4i64);
    let geo = Geometry {
        height: h,
        width: w,
        frames: n,
        k,
        temporal_k: k,
        groups: n,
        channels: 1,
        bounded: false,
        stable: false,
    };
    for far in [false, true] {
        let mut win = random_window(n, false);
        if far {
            // Centres 60 px outside the frame: most weights underflow.
            win.g_row = &win.g_row - 60.0;
        }
        let params = [&win.g_row, &win.g_col, &win.sigma2, &win.delta, &win.gamma];
        let leaves: Vec<Tensor> = params
            .iter()
            .map(|t| t.detach().set_requires_grad(true))
            .collect();
        let patch = Tensor::randn([1, n, k, k], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let bind = |l: &[Tensor]| Window {
            g_row: l[0].shallow_clone(),
            g_col: l[1].shallow_clone(),
            sigma2: l[2].shallow_clone(),
            delta: l[3].shallow_clone(),
            gamma: l[4].shallow_clone(),
            temporal: None,
        };
        let mut be = TchBackend::new(Device::Cpu);
        let computed = write(&mut be, &bind(&leaves), &patch, geo);

        // Eq. 1-4 and 9 written plainly, on the same leaves.
        let plain_bank = |g: &Tensor, size: i64| {
            let u =
                Tensor::arange_start(1, k + 1, (Kind::Float, Device::Cpu)) - (k as f64 / 2.0 + 0.5);
            let mu = g + u.reshape([1, 1, k]) * &leaves[3]; // [1, N, K]
            let a = Tensor::arange_start(1, size + 1, (Kind::Float, Device::Cpu))
                .reshape([1, 1, 1, size]);
            let d = a - mu.unsqueeze(3);
            let f = (-(&d * &d) / (leaves[2].unsqueeze(3) * 2.0)).exp();
            let z = f
                .sum_dim_intlist([3].as_slice(), true, Kind::Float)
                .clamp_min(1e-8);
            f / z
        };
        let f_row = plain_bank(&leaves[0], h);
        let f_col = plain_bank(&leaves[1], w);
        let plain = f_row.transpose(2, 3).matmul(&patch).matmul(&f_col) / leaves[4].unsqueeze(3);

        let diff = (&computed - &plain).abs().max().double_value(&[]);
        let scale = plain.abs().max().double_value(&[]).max(1e-6);
        assert!(
            diff <= 1e-5 * scale,
            "far={far}: values differ by {diff} (max {scale})"
        );
        let probe = Tensor::randn_like(&plain);
        let grads = |out: &Tensor| {
            let mut inputs: Vec<&Tensor> = leaves.iter().collect();
            inputs.push(&patch);
            Tensor::run_backward(&[(out * &probe).sum(Kind::Float)], &inputs, true, false)
        };
        for (i, (a, b)) in grads(&computed).iter().zip(grads(&plain)).enumerate() {
            let d = (a - &b).abs().max().double_value(&[]);
            let s = b.abs().max().double_value(&[]).max(1e-6);
            assert!(
                d <= 1e-4 * s,
                "far={far}: gradient {i} differs by {d} (max {s})"
            );
        }
    }
}

fn small_config(digits: usize) -> DatasetConfig {
    let mut c = DatasetConfig::new(digits);
    c.train_size = 300;
    c.test_size = 100;
    c.seed = 7;
    c
}

fn dataset(digits: usize, split: Split) -> (Dataset, Digits) {
    let c = small_config(digits);
    let d = Digits::load(&DigitSource::Bundled).expect("bundled digits");
    (Dataset::generate(&c, &d, split).expect("generate"), d)
}

/// Centre of mass (row, col) of every frame of one video.
fn centres(data: &Dataset, i: usize) -> Vec<(f64, f64)> {
    let s = data.config.video.size;
    data.video(i)
        .chunks(s * s)
        .map(|f| {
            let (mut m, mut r, mut c) = (0.0, 0.0, 0.0);
            for (j, &p) in f.iter().enumerate() {
                let p = p as f64;
                m += p;
                r += p * (j / s) as f64;
                c += p * (j % s) as f64;
            }
            (r / m, c / m)
        })
        .collect()
}

#[test]
fn captions_name_the_motion_that_is_rendered() {
    let (data, _) = dataset(1, Split::Train);
    let mut seen = HashSet::new();
    for (i, v) in data.videos.iter().enumerate() {
        let c = centres(&data, i);
        let spread = |f: fn(&(f64, f64)) -> f64| {
            let xs: Vec<f64> = c.iter().map(f).collect();
            xs.iter().cloned().fold(f64::MIN, f64::max)
                - xs.iter().cloned().fold(f64::MAX, f64::min)
        };
        let (rows, cols) = (spread(|p| p.0), spread(|p| p.1));
        let motion = v.tracks[0].motion;
        seen.insert(motion);
        // Pixels, not labels: an up-and-down digit's column never changes.
        match motion {
            Motion::UpDown => {
                assert!(v.caption.ends_with("up and down"), "{}", v.caption);
                assert!(
                    cols < 1e-9 && rows > 5.0,
                    "video {i} ({}) moves rows {rows} cols {cols}",
                    v.caption
                );
            }
            Motion::LeftRight => {
                assert!(v.caption.ends_with("left and right"), "{}", v.caption);
                assert!(
                    rows < 1e-9 && cols > 5.0,
                    "video {i} ({}) moves rows {rows} cols {cols}",
                    v.caption
                );
            }
        }
        assert_eq!(
            v.caption,
            format!("digit {} is moving {}", v.tracks[0].digit, motion.words())
        );
    }
    assert_eq!(seen.len(), 2);
}

#[test]
fn digits_stay_in_the_frame_move_at_the_stated_speed_and_bounce() {
    let (data, digits) = dataset(2, Split::Train);
    let spec = &data.config.video;
    let range = (spec.size - DIGIT_SIZE) as i64;
    let step = (spec.speed * range as f32).round() as i64;
    let mut bounces = 0;
    for v in &data.videos {
        for t in &v.tracks {
            assert_eq!(t.positions.len(), spec.frames);
            let moving: Vec<i64> = t
                .positions
                .iter()
                .map(|&(r, c)| {
                    assert!(
                        (r as i64) <= range && (c as i64) <= range,
                        "{:?} outside the frame",
                        (r, c)
                    );
                    if t.motion == Motion::UpDown {
                        r as i64
                    } else {
                        c as i64
                    }
                })
                .collect();
            for w in moving.windows(2) {
                assert!(
                    (w[1] - w[0]).abs() <= step + 1,
                    "moved {} px, speed is {step}",
                    (w[1] - w[0]).abs()
                );
            }
            bounces += moving
                .windows(3)
                .filter(|w| (w[1] - w[0]).signum() * (w[2] - w[1]).signum() < 0)
                .count();
            assert_eq!(digits.labels[t.image], t.digit);
        }
    }
    assert!(
        bounces > data.videos.len() / 2,
        "only {bounces} bounces in {} videos",
        data.videos.len()
    );
    // Two digits are added and clipped (the paper), not combined by max (the
    // authors' code): every pixel is the saturating sum of the two digits alone.
    let mut overlapping = 0;
    for (i, v) in data.videos.iter().enumerate() {
        let a = render(spec, &digits, &v.tracks[..1]);
        let b = render(spec, &digits, &v.tracks[1..]);
        for ((&p, &x), &y) in data.video(i).iter().zip(&a).zip(&b) {
            assert_eq!(p, x.saturating_add(y), "video {i}: not the clipped sum");
            overlapping += usize::from(x > 0 && y > 0 && x.max(y) < p);
        }
    }
    assert!(overlapping > 0, "no overlapping digits: adding is untested");
    let (one, _) = dataset(1, Split::Train);
    let s = spec.size;
    for i in 0..one.len() {
        // A single digit is never cut by the border: every frame has the same ink.
        let ink: Vec<u64> = one
            .video(i)
            .chunks(s * s)
            .map(|f| f.iter().map(|&p| p as u64).sum())
            .collect();
        assert!(
            ink.iter().all(|&x| x == ink[0]),
            "video {i} loses ink at the border: {ink:?}"
        );
    }
}

#[test]
fn train_and_test_split_by_caption_and_digit_image() {
    for digits in [1, 2] {
        let (train, _) = dataset(digits, Split::Train);
        let (test, _) = dataset(digits, Split::Test);
        let captions = |d: &Dataset| {
            d.videos
                .iter()
                .map(|v| v.caption.clone())
                .collect::<HashSet<_>>()
        };
        let images = |d: &Dataset| {
            d.videos
                .iter()
                .flat_map(|v| v.tracks.iter().map(|t| t.image))
                .collect::<HashSet<_>>()
        };
        assert!(
            captions(&train).is_disjoint(&captions(&test)),
            "{digits} digits: a caption is in both splits"
        );
        assert!(
            images(&train).is_disjoint(&images(&test)),
            "{digits} digits: a digit image is in both splits"
        );
        let (tr, te) = (
            contents(digits, Split::Train),
            contents(digits, Split::Test),
        );
        if digits == 1 {
            assert_eq!((tr.len(), te.len()), (10, 10));
            for d in 0..10u8 {
                let m = |cs: &Vec<_>| {
                    cs.iter()
                        .filter(|c: &&syncdraw_data::bouncing::Content| c.0[0].0 == d)
                        .count()
                };
                assert_eq!(
                    (m(&tr), m(&te)),
                    (1, 1),
                    "digit {d} needs one motion in each split"
                );
            }
        } else {
            let mut per_pair: HashMap<(u8, u8), (usize, usize)> = HashMap::new();
            for c in &tr {
                per_pair.entry((c.0[0].0, c.0[1].0)).or_default().0 += 1;
            }
            for c in &te {
                per_pair.entry((c.0[0].0, c.0[1].0)).or_default().1 += 1;
            }
            assert!(
                per_pair.values().all(|&n| n == (2, 2)),
                "every ordered pair: 2 combinations each side"
            );
        }
    }
    let d = Digits::load(&DigitSource::Bundled).expect("bundled digits");
    let (a, b) = (
        image_pools(&d, Split::Train, 7),
        image_pools(&d, Split::Test, 7),
    );
    for k in 0..10 {
        assert!(a[k].iter().all(|i| !b[k].contains(i)));
    }
}

#[test]
fn data_is_deterministic_and_cached_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = small_config(1);
    let first = Dataset::load_or_generate(&c, Split::Test, dir.path()).expect("generate");
    let files: Vec<_> = walk(dir.path());
    assert_eq!(files.len(), 1, "one cache file per split: {files:?}");
    let again = Dataset::load_or_generate(&c, Split::Test, dir.path()).expect("load");
    assert_eq!(first.pixels, again.pixels);
    let d = Digits::load(&DigitSource::Bundled).expect("digits");
    let fresh = Dataset::generate(&c, &d, Split::Test).expect("generate");
    assert_eq!(first.pixels, fresh.pixels);
    assert_eq!(first.videos, fresh.videos);
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).expect("readdir").flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// The tiny data set of [`tiny_options`]: 256 training and 64 test videos of
/// 4 frames of 32 x 32 with `digits` digits.
fn tiny_data(digits: usize) -> DatasetConfig {
    let mut dataset = DatasetConfig::new(digits);
    dataset.train_size = 256;
    dataset.test_size = 64;
    dataset.video = VideoSpec {
        frames: 4,
        size: 32,
        speed: 0.2,
    };
    dataset
}

fn tiny_options(run_dir: &Path, cache: &Path, steps: u64) -> TrainOptions {
    let dataset = tiny_data(1);
    TrainOptions {
        run_dir: run_dir.to_path_buf(),
        model: ModelConfig {
            encoder_caption: true,
            variant: Variant::Syncdraw,
            frames: 4,
            channels: 1,
            height: 32,
            width: 32,
            timesteps: 4,
            read_k: 5,
            write_k: 5,
            enc_size: 64,
            dec_size: 64,
            z_dim: 8,
            caption: None,
            decoder: DecoderKind::WhatWhere,
            bounded_windows: true,
            forget_bias: 0.0,
            canvas_init: None,
            draw_order: DrawOrder::Together,
            objects: None,
            stable_filterbank: false,
            temporal_k: None,
        },
        data: DataSource::Generated(dataset),
        pixels: Pixels::Grey,
        captions: Some(CaptionEncoderKind::Slots),
        canvas_init: CanvasInit::Zero,
        steps,
        seed: 3,
        checkpoint_every: 10,
        eval_every: 0,
        eval_videos: 64,
        log_every: 10,
        resume: false,
        device: Device::Cpu,
        optimizer: OptimizerOptions {
            batch: Some(16),
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
        products: Products::F32,
        canvas_step: Default::default(),
        ema_decay: None,
        progress: false,
    }
}

fn metrics(run_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .expect("metrics log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// The first 10 steps' mean loss is at least 1.4 times the last 10 steps' (of 60).
/// (With bounded windows the first steps start far lower than unbounded ones did,
/// about 2,800 nats here against 1,870 after 60 steps.)
#[test]
fn tiny_model_learns_loss_falls_by_1_4x() {
    let _serial = training_lock();
    let (run, cache) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let summary = train(&tiny_options(run.path(), cache.path(), 60)).expect("training runs");
    assert_eq!(summary.step, 60);
    let m = metrics(run.path());
    assert_eq!(m.len(), 6, "one metrics line per 10 steps");
    for line in &m {
        for att in ["read", "write"] {
            let dead = line["windows"][att]["dead_rows"]
                .as_array()
                .expect("window statistics in every metrics line");
            assert_eq!(dead.len(), 4, "one value per frame");
            assert!(dead
                .iter()
                .all(|v| (0.0..=1.0).contains(&v.as_f64().expect("share"))));
        }
    }
    let (first, last) = (
        m[0]["loss"].as_f64().expect("loss"),
        m[5]["loss"].as_f64().expect("loss"),
    );
    assert!(last * 1.4 < first, "loss fell from {first} to {last} only");
    // One canvas, grey pixels: no layer term.
    assert!(m[5]["test_nll"].is_f64() && m[5].get("test_layer_targets").is_none());
    let test = summary.test.expect("final evaluation");
    assert!(
        test.nll.is_finite() && (test.nll - test.reconstruction - test.kl).abs() < 1e-3 * test.nll
    );
    for f in ["config.json", "checkpoint.safetensors"] {
        assert!(run.path().join(f).exists(), "run dir lacks {f}");
    }
}

/// Layer targets (`train --layer-targets`): a captioned two-digit run on
/// layers trains with them (the term logged, its weight recorded and kept on
/// resume, the weights other than without them, the same with weight 0), and
/// runs without each object's video or without layers are refused with what
/// they need.
#[test]
fn layer_targets_train_are_recorded_and_refused_where_they_cannot_apply() {
    let _serial = training_lock();
    let cache = tempfile::tempdir().expect("tmp");
    let on_layers = |dir: &Path, steps, weight: Option<f64>| {
        let mut o = tiny_options(dir, cache.path(), steps);
        o.data = DataSource::Generated(tiny_data(2));
        o.pixels = Pixels::Binarized;
        o.model.draw_order = DrawOrder::Layers;
        o.layer_targets = weight;
        o
    };
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let load = |d: &tempfile::TempDir| {
        checkpoint::load(&d.path().join("checkpoint.safetensors"), Device::Cpu).expect("load")
    };
    for (dir, weight) in dirs.iter().zip([Some(1.0), None, Some(0.0)]) {
        train(&on_layers(dir.path(), 10, weight)).expect("trains");
    }
    let (with, without, zero) = (load(&dirs[0]), load(&dirs[1]), load(&dirs[2]));
    assert_eq!(with.meta.layer_targets, 1.0);
    assert_eq!(without.meta.layer_targets, 0.0);
    let (vw, vo, vz) = (
        with.model.vs.variables(),
        without.model.vs.variables(),
        zero.model.vs.variables(),
    );
    assert!(
        vw.iter().any(|(name, t)| !t.equal(&vo[name])),
        "the layer targets changed no weight"
    );
    assert!(
        vo.iter().all(|(name, t)| t.equal(&vz[name])),
        "weight 0 is not the run without layer targets"
    );
    let logged = metrics(dirs[0].path());
    let term = logged[0]["layer_targets"]
        .as_f64()
        .expect("the term is logged");
    assert!(term.is_finite() && term > 0.0, "{term}");
    assert!(metrics(dirs[1].path())[0].get("layer_targets").is_none());
    // The test evaluation scores each layer against its own digit, with the
    // term in training or not.
    for dir in &dirs[..2] {
        let m = metrics(dir.path());
        let last = m.last().expect("a line");
        assert!(last["test_nll"].is_f64(), "{last}");
        let t = last["test_layer_targets"].as_f64().expect("the test term");
        assert!(t.is_finite() && t > 0.0, "{t}");
    }
    // A resumed run keeps the weight.
    let resumed = TrainOptions {
        resume: true,
        ..on_layers(dirs[0].path(), 12, None)
    };
    train(&resumed).expect("resumes");
    assert_eq!(load(&dirs[0]).meta.layer_targets, 1.0);

    // --init-from a model on layers with --draw-order layers-interleaved
    // infers the same model in turn (recorded in the model and its
    // metadata); the default order keeps the checkpoint's.
    let from = dirs[1].path().join("checkpoint.safetensors");
    for (order, kept) in [
        (DrawOrder::LayersInterleaved, DrawOrder::LayersInterleaved),
        (DrawOrder::Together, DrawOrder::Layers),
    ] {
        let d = tempfile::tempdir().expect("tmp");
        let mut o = on_layers(d.path(), 2, None);
        o.init_from = Some(from.clone());
        o.model.draw_order = order;
        train(&o).expect("starts from the layered weights");
        let ck = load(&d);
        assert_eq!(ck.meta.model.draw_order, kept);
        assert_eq!(ck.model.config.draw_order, kept);
    }

    // Refused, with what is needed: grey pixels, no layers, no captions.
    let refused = |o: TrainOptions| train(&o).err().map(|e| e.to_string()).expect("refused");
    let d = tempfile::tempdir().expect("tmp");
    let run = d.path().join("run");
    let grey = refused(TrainOptions {
        pixels: Pixels::Grey,
        ..on_layers(&run, 2, Some(1.0))
    });
    assert!(grey.contains("--binarize"), "{grey}");
    assert!(!run.exists(), "a refused run leaves no directory");
    let d = tempfile::tempdir().expect("tmp");
    let mut one_canvas = on_layers(d.path(), 2, Some(1.0));
    one_canvas.model.draw_order = DrawOrder::Together;
    let one_canvas = refused(one_canvas);
    assert!(one_canvas.contains("--draw-order layers"), "{one_canvas}");
    let d = tempfile::tempdir().expect("tmp");
    let uncaptioned = refused(TrainOptions {
        captions: None,
        ..on_layers(d.path(), 2, Some(1.0))
    });
    assert!(uncaptioned.contains("caption slots"), "{uncaptioned}");
}

#[test]
fn resume_continues_exactly_where_an_uninterrupted_run_would_be() {
    resume_is_exact(Pixels::Grey);
}

/// Binarised runs draw a fresh Bernoulli sample of every batch; the sample is
/// seeded by the step, so a resumed run still matches an uninterrupted one.
#[test]
fn binarized_runs_record_their_pixels_and_resume_exactly() {
    resume_is_exact(Pixels::Binarized);
    // And the pixels really are binarised: the same run on grey pixels ends with
    // other weights after a few steps.
    let _serial = training_lock();
    let cache = tempfile::tempdir().expect("tmp");
    let (g, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    for (dir, pixels) in [(&g, Pixels::Grey), (&b, Pixels::Binarized)] {
        let opts = TrainOptions {
            pixels,
            ..tiny_options(dir.path(), cache.path(), 5)
        };
        train(&opts).expect("trains");
    }
    let load = |d: &tempfile::TempDir| {
        checkpoint::load(&d.path().join("checkpoint.safetensors"), Device::Cpu).expect("load")
    };
    let (cg, cb) = (load(&g), load(&b));
    let (vg, vb) = (cg.model.vs.variables(), cb.model.vs.variables());
    assert!(
        vg.iter().any(|(name, t)| !t.equal(&vb[name])),
        "grey and binarised runs trained on the same pixels"
    );
}

fn resume_is_exact(pixels: Pixels) {
    let _serial = training_lock();
    let cache = tempfile::tempdir().expect("tmp");
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let options = |dir: &Path, steps| TrainOptions {
        pixels,
        ..tiny_options(dir, cache.path(), steps)
    };
    let summary = train(&options(a.path(), 20)).expect("uninterrupted");
    assert!(summary.test.expect("final evaluation").nll.is_finite());
    train(&options(b.path(), 10)).expect("first half");
    // Without --resume an existing run is not overwritten.
    assert!(matches!(
        train(&options(b.path(), 20)),
        Err(TrainError::RunExists(_))
    ));
    let mut opts = options(b.path(), 20);
    opts.resume = true;
    train(&opts).expect("second half");
    let ca = checkpoint::load(&a.path().join("checkpoint.safetensors"), Device::Cpu).expect("a");
    let cb = checkpoint::load(&b.path().join("checkpoint.safetensors"), Device::Cpu).expect("b");
    assert_eq!((ca.meta.step, cb.meta.step), (20, 20));
    assert_eq!((ca.meta.pixels, cb.meta.pixels), (pixels, pixels));
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

/// A moving average of the weights (`ema_decay`): after each step it is
/// d a + (1 - d) w of the step's weights; it is evaluated beside the weights
/// (`test_nll_average`), checkpointed, continued exactly by a resumed run, and
/// started afresh by a run continued with init_from.
#[test]
fn the_moving_average_of_the_weights_is_kept_evaluated_and_resumed_exactly() {
    let _serial = training_lock();
    let cache = tempfile::tempdir().expect("tmp");
    let decay = 0.9;
    let options = |dir: &Path, steps| TrainOptions {
        ema_decay: Some(decay),
        eval_every: 5,
        ..tiny_options(dir, cache.path(), steps)
    };
    let load = |dir: &Path| {
        checkpoint::load(&dir.join("checkpoint.safetensors"), Device::Cpu).expect("checkpoint")
    };
    // The update: the average after step 2 from the average and weights after
    // steps 1 and 2 (runs of one and two steps take the same first step).
    let (one, two) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    train(&options(one.path(), 1)).expect("one step");
    train(&options(two.path(), 2)).expect("two steps");
    let (c1, c2) = (load(one.path()), load(two.path()));
    assert_eq!(c2.meta.ema_decay, Some(decay));
    let (a1, a2) = (
        c1.average.expect("an average"),
        c2.average.expect("an average"),
    );
    let weights = c2.model.vs.variables();
    assert_eq!(a2.len(), weights.len(), "every trained weight is averaged");
    let mut moved = false;
    for (name, w) in &weights {
        let expected = &a1[name] * decay + w * (1.0 - decay);
        let d = (&a2[name] - &expected).abs().max().double_value(&[]);
        assert!(
            d < 1e-6,
            "{name}: the average is off the update rule by {d}"
        );
        moved |= !a2[name].equal(w);
    }
    assert!(moved, "the average is the weights themselves");

    // Evaluated beside the weights, and resumed exactly.
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    train(&options(a.path(), 20)).expect("uninterrupted");
    train(&options(b.path(), 10)).expect("first half");
    let mut resumed = TrainOptions {
        ema_decay: None,
        ..options(b.path(), 20)
    };
    resumed.resume = true;
    train(&resumed).expect("second half, keeping the recorded decay");
    let (ca, cb) = (load(a.path()), load(b.path()));
    assert_eq!(
        cb.meta.ema_decay,
        Some(decay),
        "the resumed run kept its decay"
    );
    let (va, vb) = (ca.average.expect("average"), cb.average.expect("average"));
    for (name, t) in &va {
        assert!(
            t.equal(&vb[name]),
            "the average of {name} differs after resume"
        );
    }
    let evals: Vec<(f64, f64)> = metrics(a.path())
        .iter()
        .filter_map(|l| Some((l["test_nll"].as_f64()?, l["test_nll_average"].as_f64()?)))
        .collect();
    assert_eq!(evals.len(), 4, "an evaluation of both every 5 steps");
    assert!(evals.iter().all(|(w, a)| w.is_finite() && a.is_finite()));
    assert!(
        evals.iter().any(|(w, a)| w != a),
        "the average was evaluated as the weights: {evals:?}"
    );

    // init_from starts a fresh optimizer and no average unless asked for.
    let c = tempfile::tempdir().expect("tmp");
    let init = TrainOptions {
        init_from: Some(a.path().join("checkpoint.safetensors")),
        ema_decay: None,
        ..tiny_options(c.path(), cache.path(), 2)
    };
    train(&init).expect("continued");
    let cc = load(c.path());
    assert_eq!(cc.meta.ema_decay, None);
    assert!(cc.average.is_none());
    // A decay of 1 would never move: refused before anything is written.
    let d = tempfile::tempdir().expect("tmp");
    let bad = TrainOptions {
        ema_decay: Some(1.0),
        ..tiny_options(d.path(), cache.path(), 2)
    };
    assert!(matches!(train(&bad), Err(TrainError::Invalid(_))));
    assert!(!d.path().join("checkpoint.safetensors").exists());
}

/// A run's Adam settings (learning rate, beta1, clipping) and batch size reach
/// the optimizer (a run with the paper's beta1 and clip ends elsewhere), are
/// kept when it is resumed (so the resumed half trains as the uninterrupted run
/// did) and when continued with init_from; an explicit value replaces the
/// run's own and is recorded.
#[test]
fn a_continued_run_keeps_its_optimizer_settings() {
    let _serial = training_lock();
    let cache = tempfile::tempdir().expect("tmp");
    let (a, b, c, d) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let ours = OptimizerOptions {
        lr: Some(3e-3),
        beta1: Some(0.9),
        clip: Some(0.0),
        batch: Some(8),
    };
    let options = |dir: &Path, steps| TrainOptions {
        optimizer: ours,
        ..tiny_options(dir, cache.path(), steps)
    };
    let ckpt = |d: &tempfile::TempDir| {
        checkpoint::load(&d.path().join("checkpoint.safetensors"), Device::Cpu).expect("load")
    };
    let settings = |m: &checkpoint::Meta| (m.lr, m.beta1, m.clip, m.batch);
    train(&options(a.path(), 20)).expect("uninterrupted");
    train(&options(b.path(), 10)).expect("first half");
    let resumed = TrainOptions {
        resume: true,
        optimizer: OptimizerOptions::default(),
        ..options(b.path(), 20)
    };
    train(&resumed).expect("second half, no settings given");
    let paper = TrainOptions {
        optimizer: OptimizerOptions {
            lr: Some(3e-3),
            batch: Some(8),
            ..Default::default()
        },
        ..tiny_options(d.path(), cache.path(), 20)
    };
    train(&paper).expect("the paper's beta1 and clip");
    let (ca, cb, cd) = (ckpt(&a), ckpt(&b), ckpt(&d));
    assert_eq!(settings(&ca.meta), (3e-3, 0.9, 0.0, 8));
    assert_eq!(settings(&cb.meta), (3e-3, 0.9, 0.0, 8));
    assert_eq!(settings(&cd.meta), (3e-3, 0.5, 10.0, 8));
    let (va, vb, vd) = (
        ca.model.vs.variables(),
        cb.model.vs.variables(),
        cd.model.vs.variables(),
    );
    for (name, t) in &va {
        assert!(
            t.equal(&vb[name]),
            "{name}: the resumed half did not train with the run's own Adam settings and batch"
        );
    }
    assert!(
        va.iter().any(|(name, t)| !t.equal(&vd[name])),
        "beta1 0.9 without clipping trained exactly as beta1 0.5 with clip 10"
    );
    // init_from: a new run from these weights keeps their settings...
    let from = b.path().join("checkpoint.safetensors");
    let continued = TrainOptions {
        init_from: Some(from.clone()),
        optimizer: OptimizerOptions::default(),
        ..tiny_options(c.path(), cache.path(), 2)
    };
    train(&continued).expect("continued with init_from");
    assert_eq!(settings(&ckpt(&c).meta), (3e-3, 0.9, 0.0, 8));
    // ...and explicit values on resume replace them and are recorded.
    let lowered = TrainOptions {
        resume: true,
        optimizer: OptimizerOptions {
            lr: Some(1e-4),
            beta1: Some(0.5),
            clip: Some(5.0),
            batch: Some(12),
        },
        ..tiny_options(c.path(), cache.path(), 4)
    };
    train(&lowered).expect("resumed with other settings");
    let cc = ckpt(&c);
    assert_eq!(cc.meta.step, 4);
    assert_eq!(settings(&cc.meta), (1e-4, 0.5, 5.0, 12));
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(c.path().join("config.json")).expect("config.json"),
    )
    .expect("json");
    assert_eq!(config["lr"].as_f64(), Some(1e-4));
    assert_eq!(config["beta1"].as_f64(), Some(0.5));
    assert_eq!(config["clip"].as_f64(), Some(5.0));
    assert_eq!(config["batch"].as_u64(), Some(12));
}

/// Adam settings it cannot train with are refused before the run directory is
/// made, with a message that says what is accepted.
#[test]
fn impossible_optimizer_settings_are_refused_before_anything_is_written() {
    let cache = tempfile::tempdir().expect("tmp");
    let root = tempfile::tempdir().expect("tmp");
    let dir = root.path().join("run");
    for (optimizer, words) in [
        (
            OptimizerOptions {
                beta1: Some(1.0),
                ..Default::default()
            },
            "beta1 must be at least 0 and below 1",
        ),
        (
            OptimizerOptions {
                clip: Some(f64::NAN),
                ..Default::default()
            },
            "0: no clipping",
        ),
    ] {
        let opts = TrainOptions {
            optimizer,
            ..tiny_options(&dir, cache.path(), 2)
        };
        let err = train(&opts).expect_err("refused");
        assert!(err.to_string().contains(words), "{err}");
        assert!(
            !dir.exists(),
            "the run directory was made for a refused run"
        );
    }
}

#[test]
fn nan_stops_training_and_keeps_the_last_good_checkpoint() {
    let _serial = training_lock();
    let (run, cache) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    train(&tiny_options(run.path(), cache.path(), 10)).expect("good steps");
    let ckpt = run.path().join("checkpoint.safetensors");
    let before = std::fs::read(&ckpt).expect("checkpoint");
    let mut opts = tiny_options(run.path(), cache.path(), 30);
    opts.resume = true;
    opts.optimizer.lr = Some(f64::NAN);
    let err = train(&opts).expect_err("a NaN learning rate must stop training");
    assert!(matches!(err, TrainError::NonFinite { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("NaN") && msg.contains(&ckpt.display().to_string()),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(&ckpt).expect("checkpoint"),
        before,
        "the good checkpoint was overwritten"
    );
    let ck = checkpoint::load(&ckpt, Device::Cpu).expect("still loads");
    assert_eq!(ck.meta.step, 10);
}

/// Training reads captions with the same grammar the exported model carries, so
/// the element (which parses with that grammar) gives every caption the ids the
/// model was trained on: digit + 1, then motion + 1 in `Motion::ALL` order.
#[test]
fn every_data_set_caption_parses_to_its_content() {
    for digits in [1, 2] {
        let g = grammar(digits);
        g.validate().expect("the Bouncing MNIST grammar is valid");
        for split in [Split::Train, Split::Test] {
            for content in contents(digits, split) {
                let ids = g.encode(&content.caption()).expect("data captions parse");
                let want: Vec<i64> = content
                    .0
                    .iter()
                    .flat_map(|(d, m)| {
                        let m = Motion::ALL.iter().position(|x| x == m).unwrap();
                        [*d as i64 + 1, m as i64 + 1]
                    })
                    .collect();
                assert_eq!(ids, want, "{}", content.caption());
            }
        }
    }
    let e = grammar(1)
        .encode("Digit 3 is dancing up and down")
        .expect_err("unknown word");
    assert!(e.to_string().contains("\"dancing\""), "{e}");
}

/// An attention layer with weights 50 times too large and decoder states of
/// 5 x N(0, 1): raw window outputs in the hundreds, the extreme states a stalled
/// run can reach. Returns the layer and `batch` states.
fn extreme_window_layer(
    seed: i64,
    frames: i64,
    batch: i64,
) -> (syncdraw_training::model::layers::LinearParams, Tensor) {
    tch::manual_seed(seed);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let layer =
        syncdraw_training::model::layers::LinearParams::new(&(vs.root() / "w"), 8, 5 * frames);
    tch::no_grad(|| {
        layer
            .w
            .shallow_clone()
            .copy_(&(Tensor::randn_like(&layer.w) * 50.0));
    });
    let h = Tensor::randn([batch, 8], (Kind::Float, Device::Cpu)) * 5.0;
    (layer, h)
}

/// Bounded windows keep every grid centre near the frame whatever the decoder
/// state, and leave small raw values almost unchanged; unbounded ones do not.
#[test]
fn bounded_windows_keep_centres_near_the_frame() {
    // Draws from libtorch's global generator: one test at a time.
    let _serial = training_lock();
    use syncdraw_training::model::filterbank::window;
    let (frames, size) = (4i64, 64i64);
    let (layer, h) = extreme_window_layer(11, frames, 32);
    let centres = |bounded: bool| {
        let geo = Geometry {
            height: size,
            width: size,
            frames,
            k: 10,
            temporal_k: 10,
            groups: frames,
            channels: 1,
            bounded,
            stable: false,
        };
        let mut be = TchBackend::new(Device::Cpu);
        let lin = layer.bind(&mut be);
        let w = window(&mut be, &lin, &h, geo, false);
        Tensor::cat(&[w.g_row, w.g_col], 0)
    };
    // (A+1)/2 (g~ + 1) with |g~| < 1.2: within [-0.2, 2.2] x (A+1)/2, i.e. at
    // most 10 % of the frame size outside it.
    let (lo, hi) = (-0.2 * 65.0 / 2.0, 2.2 * 65.0 / 2.0);
    let b = centres(true);
    let (bmin, bmax) = (b.min().double_value(&[]), b.max().double_value(&[]));
    assert!(
        bmin >= lo - 1e-3 && bmax <= hi + 1e-3,
        "bounded centres {bmin}..{bmax}"
    );
    let u = centres(false);
    let (umin, umax) = (u.min().double_value(&[]), u.max().double_value(&[]));
    assert!(
        umin < lo || umax > hi,
        "the unbounded layer must leave the frame here"
    );

    // Near zero the bound is the identity: 1.2 tanh(r / 1.2) ~ r.
    tch::no_grad(|| {
        layer
            .w
            .shallow_clone()
            .copy_(&(Tensor::randn_like(&layer.w) * 1e-3));
        let _ = layer.b.shallow_clone().zero_();
    });
    let d = (centres(true) - centres(false))
        .abs()
        .max()
        .double_value(&[]);
    assert!(d < 1e-3, "small raw values change by {d}");
}

/// The logged window statistics see dead filterbank rows: windows far off the
/// frame have every row under the normaliser floor, a window in the middle of the
/// frame has none, and the centres are reported in pixels.
#[test]
fn window_statistics_report_centres_and_dead_rows() {
    use syncdraw_training::model::window_stats::AttentionStats;
    let (frames, size, k) = (2i64, 32i64, 5i64);
    let geo = Geometry {
        height: size,
        width: size,
        frames,
        k,
        temporal_k: k,
        groups: frames,
        channels: 1,
        bounded: false,
        stable: false,
    };
    let col = |v: [f32; 2]| Tensor::from_slice(&v).reshape([1, 2, 1]).repeat([3, 1, 1]);
    // Frame 0 centred in the frame, frame 1 centred 100 px below and right of it.
    let w = Window {
        g_row: col([16.5, 116.5]),
        g_col: col([16.5, 116.5]),
        sigma2: col([1.0, 1.0]),
        delta: col([2.0, 2.0]),
        gamma: col([1.0, 3.0]),
        temporal: None,
    };
    let mut stats = AttentionStats::default();
    stats.add(&w, geo);
    stats.add(&w, geo);
    let stats = stats.finish();
    assert_eq!(stats.dead_rows, vec![0.0, 1.0]);
    assert_eq!(stats.worst_dead(), 1.0);
    assert!((stats.centre_row[1] - 116.5).abs() < 1e-4);
    assert!((stats.gamma[1] - 3.0).abs() < 1e-6 && (stats.sigma[0] - 1.0).abs() < 1e-6);
    // A window whose grid straddles the edge: of its K = 5 rows (centre 33,
    // stride 4: rows at 25, 29, 33, 37, 41) the last two lie over 6 sigma past
    // pixel 32.
    let edge = Window {
        g_row: col([33.0, 33.0]),
        g_col: col([16.5, 16.5]),
        sigma2: col([0.25, 0.25]),
        delta: col([4.0, 4.0]),
        gamma: col([1.0, 1.0]),
        temporal: None,
    };
    let mut stats = AttentionStats::default();
    stats.add(&edge, geo);
    // Rows of F_p: 2 of 5 dead; F_q: none; the share is over both axes.
    assert_eq!(stats.finish().dead_rows, vec![0.2, 0.2]);
}

fn tiny_captioned_config(digits: usize) -> ModelConfig {
    let mut c = tiny_options(Path::new("."), Path::new("."), 1).model;
    c.caption = Some(syncdraw_training::train::slots_config(&grammar(digits)));
    c
}

/// A two-digit model warm-started from a one-digit one draws, before any training,
/// exactly what the one-digit model draws for the first object, whatever the
/// second object says (its caption inputs start at zero), and the encoder's
/// bound is the same too: the grown rows sit where the second object's features
/// enter every LSTM.
#[test]
fn a_warm_started_two_digit_model_starts_as_the_one_digit_model() {
    // Draws from libtorch's global generator: one test at a time.
    let _serial = training_lock();
    use syncdraw_training::model::SyncDraw;
    use syncdraw_training::warm_start::warm_start;
    tch::manual_seed(11);
    let one = SyncDraw::new(&tiny_captioned_config(1), Device::Cpu);
    tch::manual_seed(12);
    let two = SyncDraw::new(&tiny_captioned_config(2), Device::Cpu);
    let done = warm_start(&two, &one).expect("compatible models");
    // Encoder LSTM and the what and where decoder LSTMs take caption inputs.
    assert_eq!(done.grown.len(), 3, "grown: {:?}", done.grown);
    assert!(!done.copied.is_empty());

    let c = &one.config;
    tch::manual_seed(13);
    let z = Tensor::randn([2, c.timesteps, c.z_dim], (Kind::Float, Device::Cpu));
    let first = Tensor::from_slice(&[4i64, 1, 8, 2]).reshape([2, 2]);
    let (video_one, _) = one.generate(&z, Some(&first));
    for second in [[1i64, 1, 10, 2], [3, 2, 7, 1]] {
        let second = Tensor::from_slice(&second).reshape([2, 2]);
        let ids = Tensor::cat(&[&first, &second], 1);
        let (video_two, _) = two.generate(&z, Some(&ids));
        let diff = (&video_two - &video_one).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "generation differs by {diff}");

        let x = Tensor::rand([2, c.frames, c.height, c.width], (Kind::Float, Device::Cpu));
        let (l1, l2) = (one.loss(&x, Some(&first), &z), two.loss(&x, Some(&ids), &z));
        let diff = (l1.nll() - l2.nll()).abs().max().double_value(&[]);
        assert!(diff < 1e-2, "the bounds differ by {diff} nats");
    }
    // The added object's inputs then matter once they are trained: a model of
    // another size is refused with the name of the weight.
    let mut other = tiny_captioned_config(2);
    other.dec_size = 32;
    let err = warm_start(&SyncDraw::new(&other, Device::Cpu), &one).expect_err("sizes differ");
    assert!(err.to_string().contains("shape"), "{err}");
}

/// A model warm-started from one with fewer drawing steps (same objects) copies
/// every weight unchanged, and draws in its first T steps exactly the canvas the
/// source draws from the same latents; its added steps then go on writing
/// (`train --warm-start W --timesteps 32` from a T = 10 model).
#[test]
fn a_model_with_more_steps_starts_with_the_source_drawing() {
    // Draws from libtorch's global generator: one test at a time.
    let _serial = training_lock();
    use syncdraw_training::model::SyncDraw;
    use syncdraw_training::warm_start::warm_start;
    tch::manual_seed(21);
    let short = SyncDraw::new(&tiny_captioned_config(1), Device::Cpu);
    let t = short.config.timesteps;
    let mut config = tiny_captioned_config(1);
    config.timesteps = 2 * t;
    tch::manual_seed(22);
    let long = SyncDraw::new(&config, Device::Cpu);
    let done = warm_start(&long, &short).expect("compatible models");
    assert!(done.grown.is_empty(), "grown: {:?}", done.grown);
    assert_eq!(done.copied.len(), short.vs.variables().len());

    tch::manual_seed(23);
    let z = Tensor::randn([2, 2 * t, config.z_dim], (Kind::Float, Device::Cpu));
    let ids = Tensor::from_slice(&[4i64, 1, 8, 2]).reshape([2, 2]);
    let (video, _) = short.generate(&z.narrow(1, 0, t), Some(&ids));
    let (longer, canvases) = long.generate(&z, Some(&ids));
    let shown = canvases.select(1, t - 1);
    let diff = (&shown - &video).abs().max().double_value(&[]);
    assert!(diff < 1e-6, "the first {t} steps differ by {diff}");
    // The added steps write: the video is not the source's.
    let moved = (&longer - &video).abs().max().double_value(&[]);
    assert!(moved > 1e-4, "the added steps drew nothing ({moved})");
}

/// `--encoder-caption false`: a model whose encoder does not read the caption
/// warm-starts from one whose encoder does, with every decoder weight copied
/// (it draws the same video from the same latents and caption) and the
/// encoder's input weight less the caption's rows; its encoder weight is
/// smaller by exactly the caption's size, and it trains.
#[test]
fn an_encoder_without_the_caption_warm_starts_from_one_with_it() {
    let _serial = training_lock();
    use syncdraw_training::model::SyncDraw;
    use syncdraw_training::warm_start::warm_start;
    tch::manual_seed(31);
    let source = SyncDraw::new(&tiny_captioned_config(1), Device::Cpu);
    let mut config = tiny_captioned_config(1);
    config.encoder_caption = false;
    tch::manual_seed(32);
    let target = SyncDraw::new(&config, Device::Cpu);
    let done = warm_start(&target, &source).expect("compatible models");
    assert_eq!(done.shrunk, vec!["encoder.enc.wx".to_string()]);
    assert!(done.grown.is_empty(), "grown: {:?}", done.grown);
    let (from, to) = (source.vs.variables(), target.vs.variables());
    let (wx_from, wx_to) = (&from["encoder.enc.wx"], &to["encoder.enc.wx"]);
    let caption = source.config.caption_size();
    assert!(caption > 0);
    assert_eq!(wx_from.size()[0] - wx_to.size()[0], caption);
    assert!(wx_to.equal(&wx_from.narrow(0, 0, wx_to.size()[0])));
    for (name, v) in &to {
        if name != "encoder.enc.wx" {
            assert!(v.equal(&from[name]), "{name} was not copied");
        }
    }
    tch::manual_seed(33);
    let z = Tensor::randn(
        [2, config.timesteps, config.z_dim],
        (Kind::Float, Device::Cpu),
    );
    let ids = Tensor::from_slice(&[4i64, 1, 8, 2]).reshape([2, 2]);
    let (a, _) = source.generate(&z, Some(&ids));
    let (b, _) = target.generate(&z, Some(&ids));
    assert!(a.equal(&b), "the decoder draws differently");
    // A run of it trains and keeps the setting.
    let (run, cache) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let mut opts = tiny_options(run.path(), cache.path(), 10);
    opts.model.encoder_caption = false;
    let summary = train(&opts).expect("run without the caption in the encoder");
    let ck = checkpoint::load(&summary.checkpoint, Device::Cpu).expect("checkpoint");
    assert!(!ck.meta.model.encoder_caption);
    assert!(summary.last_loss.is_finite());
}

/// `--draw-order in-turn`: the steps of the first object's block read only its
/// slots (the canvases up to the switch do not depend on the second object, and
/// differ once its block starts), every block starts from the zero state (the
/// objects can be swapped with their latents), the one-step-at-a-time decoder of training
/// draws what the generation graph draws, a one-digit model warm-starts every
/// decoder weight unchanged (only the encoder, which reads S whole, grows), and a
/// word-encoder model is refused.
#[test]
fn objects_drawn_in_turn_read_only_their_own_slots() {
    // Draws from libtorch's global generator: one test at a time.
    let _serial = training_lock();
    use syncdraw_training::model::SyncDraw;
    use syncdraw_training::warm_start::warm_start;
    let mut config = tiny_captioned_config(2);
    config.draw_order = DrawOrder::InTurn;
    let c = config.clone();
    let half = c.timesteps / 2;
    assert_eq!(c.object_of_step(half - 1), Some(0));
    assert_eq!(c.object_of_step(half), Some(1));
    tch::manual_seed(31);
    let two = SyncDraw::new(&config, Device::Cpu);
    let z = Tensor::randn([2, c.timesteps, c.z_dim], (Kind::Float, Device::Cpu));
    let ids = |v: [i64; 4]| Tensor::from_slice(&v).reshape([1, 4]).repeat([2, 1]);
    let (a, b) = (ids([4, 1, 8, 2]), ids([4, 1, 3, 1]));
    let (_, canvases_a) = two.generate(&z, Some(&a));
    let (_, canvases_b) = two.generate(&z, Some(&b));
    let differ = |t: i64| {
        (canvases_a.select(1, t) - canvases_b.select(1, t))
            .abs()
            .max()
            .double_value(&[])
    };
    for t in 0..half {
        assert_eq!(differ(t), 0.0, "step {t} read the second object");
    }
    assert!(differ(half) > 1e-4, "the second object's block ignores it");
    // Each block starts from the zero state and reads only its object and its
    // latents, so the objects are drawn apart: swapping them in the caption
    // together with their blocks of z draws the same video (the canvas is a sum).
    assert_eq!(c.step_blocks(), vec![(0, half), (half, half)]);
    let swapped_z = Tensor::cat(&[z.narrow(1, half, half), z.narrow(1, 0, half)], 1);
    let (video_a, _) = two.generate(&z, Some(&a));
    let (video_swapped, _) = two.generate(&swapped_z, Some(&ids([8, 2, 4, 1])));
    let diff = (&video_a - &video_swapped).abs().max().double_value(&[]);
    assert!(
        diff < 1e-5,
        "objects swapped with their latents differ by {diff}"
    );

    // Training's step-by-step decoder is the generation graph's.
    let be = &mut TchBackend::new(Device::Cpu);
    let dec = two.decoder.bind(be);
    let s = dec.caption_embedding(be, Some(&a));
    let (mut state, mut canvas) = (None, None);
    for t in 0..c.timesteps {
        let next = dec.step(be, &z.select(1, t), s.as_ref(), state.as_ref(), t);
        let w = dec.write(be, &next);
        canvas = Some(match canvas {
            None => dec.first_canvas(be, w),
            Some(prev) => prev + w,
        });
        state = Some(next);
    }
    let stepped = canvas.expect("T >= 1").sigmoid();
    let (video, _) = two.generate(&z, Some(&a));
    let diff = (stepped.reshape([-1]) - video.reshape([-1]))
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 1e-5, "step-by-step and generated differ by {diff}");

    // From a one-digit model, only the encoder's caption inputs grow.
    tch::manual_seed(32);
    let one = SyncDraw::new(&tiny_captioned_config(1), Device::Cpu);
    let done = warm_start(&two, &one).expect("compatible models");
    assert_eq!(done.grown.len(), 1, "grown: {:?}", done.grown);
    assert!(done.grown[0].starts_with("encoder"), "{:?}", done.grown);

    let (run, cache) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let mut opts = tiny_options(run.path(), cache.path(), 1);
    opts.model.draw_order = DrawOrder::InTurn;
    opts.model.decoder = DecoderKind::Joint;
    opts.captions = Some(syncdraw_training::train::CaptionEncoderKind::Words);
    let err = train(&opts).expect_err("refused");
    assert!(err.to_string().contains("in-turn"), "{err}");
}

/// `--draw-order layers` is the composition of one-object drawings: a two-digit
/// model warm-started from a one-digit one, with twice its steps, draws before any
/// training exactly the union of what the one-digit model draws for each object
/// with that object's block of latents, p = 1 - (1 - p_first)(1 - p_second); and
/// the training loop's layers are the generation graph's.
#[test]
fn objects_on_layers_compose_one_object_drawings() {
    // Draws from libtorch's global generator: one test at a time.
    let _serial = training_lock();
    use syncdraw_training::model::SyncDraw;
    use syncdraw_training::warm_start::warm_start;
    tch::manual_seed(41);
    let one = SyncDraw::new(&tiny_captioned_config(1), Device::Cpu);
    let mut config = tiny_captioned_config(2);
    config.draw_order = DrawOrder::Layers;
    config.timesteps = 2 * one.config.timesteps;
    let two = SyncDraw::new(&config, Device::Cpu);
    warm_start(&two, &one).expect("compatible models");
    let t1 = one.config.timesteps;
    let z = Tensor::randn([3, 2 * t1, config.z_dim], (Kind::Float, Device::Cpu));
    let ids = |v: [i64; 4]| Tensor::from_slice(&v).reshape([1, 4]).repeat([3, 1]);
    let both = ids([4, 1, 8, 2]);
    let (first, _) = one.generate(&z.narrow(1, 0, t1), Some(&both.narrow(1, 0, 2)));
    let (second, _) = one.generate(&z.narrow(1, t1, t1), Some(&both.narrow(1, 2, 2)));
    let (video, canvases) = two.generate(&z, Some(&both));
    let union: Tensor = 1.0 - (1.0 - &first) * (1.0 - &second);
    let diff = (&video - &union).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "layers differ from the union by {diff}");
    // The first block shows the first object alone.
    let shown = canvases.select(1, t1 - 1).squeeze_dim(2);
    let diff = (&shown - first.squeeze_dim(2))
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 1e-5, "the first layer differs by {diff}");
    // The video (computed from each layer's last canvas alone) is the last shown
    // canvas (computed from the running sums).
    let last = canvases.select(1, 2 * t1 - 1);
    let diff = (&video - &last).abs().max().double_value(&[]);
    assert!(diff < 1e-5, "video and last canvas differ by {diff}");

    // The training loop draws on the same layers: with the posterior fixed at
    // N(0, I) (its layer zeroed), z = eps whatever the encoder reads, and the
    // reconstruction term is the cross-entropy of x under the generated video.
    // The untrained patches are faint: made strong, so that layers that were
    // not kept apart would show.
    tch::no_grad(|| {
        for (name, mut v) in two.vs.variables() {
            if name.starts_with("encoder.posterior") {
                let _ = v.zero_();
            }
            if name.starts_with("decoder.write_patch") {
                let _ = v.g_mul_scalar_(30.0);
            }
        }
    });
    let (video, _) = two.generate(&z, Some(&both));
    let x = Tensor::rand(
        [3, config.frames, config.height, config.width],
        (Kind::Float, Device::Cpu),
    );
    let loss = two.loss(&x, Some(&both), &z);
    let p = video.squeeze_dim(2).clamp(1e-7, 1.0 - 1e-7);
    let log_p = p.log();
    let log_q = p.neg().g_add_scalar(1.0).log();
    let hits: Tensor = &x * &log_p;
    let misses: Tensor = x.neg().g_add_scalar(1.0) * &log_q;
    let bce: Tensor = (hits + misses).neg();
    let want = bce
        .reshape([3, -1])
        .sum_dim_intlist([1].as_slice(), false, Kind::Float);
    let rel = ((&loss.reconstruction - &want).abs() / &want)
        .max()
        .double_value(&[]);
    assert!(
        rel < 1e-3,
        "training and generation differ by {rel} (relative)"
    );
    loss.nll().mean(Kind::Float).backward();
}

/// `eval`'s breakdown of the bound adds up, on one canvas and on layers: the
/// frames' reconstruction terms sum to L_X and are each frame's cross-entropy
/// under the drawn video, the ink term is sum x (-log p) of it, and the steps'
/// KL terms sum to L_Z, each at its own step.
#[test]
fn the_parts_of_the_bound_add_up_on_one_canvas_and_on_layers() {
    // Draws from libtorch's global generator: one test at a time.
    let _serial = training_lock();
    use syncdraw_training::model::SyncDraw;
    tch::manual_seed(43);
    let mut layered = tiny_captioned_config(2);
    layered.draw_order = DrawOrder::Layers;
    layered.timesteps *= 2;
    for (config, ids) in [
        (tiny_captioned_config(1), vec![4i64, 1]),
        (layered, vec![4i64, 1, 8, 2]),
    ] {
        let model = SyncDraw::new(&config, Device::Cpu);
        let ids = Tensor::from_slice(&ids).reshape([1, -1]).repeat([3, 1]);
        let z = Tensor::randn(
            [3, config.timesteps, config.z_dim],
            (Kind::Float, Device::Cpu),
        );
        let x = Tensor::rand(
            [3, config.frames, config.height, config.width],
            (Kind::Float, Device::Cpu),
        )
        .round();
        let (loss, parts) = tch::no_grad(|| model.loss_parts(&x, Some(&ids), &z, None));
        let close = |a: &Tensor, b: &Tensor, what: &str| {
            // relative, and absolute for terms near 0
            let rel = ((a - b).abs() / (b.abs() + 1.0)).max().double_value(&[]);
            assert!(rel < 1e-4, "{what} differ by {rel} (relative)");
        };
        let sum1 = |t: &Tensor| t.sum_dim_intlist([1].as_slice(), false, Kind::Float);
        assert_eq!(parts.reconstruction.size(), [3, config.frames]);
        assert_eq!(parts.kl.size(), [3, config.timesteps]);
        close(
            &sum1(&parts.reconstruction),
            &loss.reconstruction,
            "frames and L_X",
        );
        assert!(loss.kl.min().double_value(&[]) > 0.0);
        close(&sum1(&parts.kl), &loss.kl, "steps and L_Z");
        // KL_t is step t's: other noise at step 1 leaves steps 0 and 1 as they
        // were and changes the later ones.
        let other = z.copy();
        let _ = other.select(1, 1).fill_(3.0);
        let (_, moved) = tch::no_grad(|| model.loss_parts(&x, Some(&ids), &other, None));
        let step_diff = |t: i64| {
            (parts.kl.select(1, t) - moved.kl.select(1, t))
                .abs()
                .max()
                .double_value(&[])
        };
        assert!(step_diff(0) < 1e-6 && step_diff(1) < 1e-6);
        assert!(step_diff(2) > 1e-6, "step 2's KL did not move");
        // The posterior at N(0, I): z = eps, so the drawn video is generate(eps).
        tch::no_grad(|| {
            for (name, mut v) in model.vs.variables() {
                if name.starts_with("encoder.posterior") {
                    let _ = v.zero_();
                }
            }
        });
        let (_, parts) = tch::no_grad(|| model.loss_parts(&x, Some(&ids), &z, None));
        let (video, _) = model.generate(&z, Some(&ids));
        let per_frame = |t: Tensor| {
            t.reshape([3, config.frames, -1])
                .sum_dim_intlist([2].as_slice(), false, Kind::Float)
        };
        let p = video.squeeze_dim(2).clamp(1e-7, 1.0 - 1e-7);
        let ink = per_frame(&x * p.log().neg());
        let background =
            per_frame(x.neg().g_add_scalar(1.0) * p.neg().g_add_scalar(1.0).log().neg());
        close(&parts.ink, &ink, "the ink terms");
        close(
            &parts.reconstruction,
            &(&ink + background),
            "the frames' reconstruction terms",
        );
        let ink_share =
            (parts.ink.sum(Kind::Float) / loss.reconstruction.sum(Kind::Float)).double_value(&[]);
        assert!(
            ink_share > 0.0 && ink_share < 1.0,
            "ink is {ink_share} of L_X"
        );
    }
}

/// A one-digit run of `one_steps` steps in `one`, and the options of a
/// two-digit run of `steps` steps in `two` warm-started from its checkpoint
/// (returned as the second value).
fn two_digit_warm_start(
    one: &Path,
    two: &Path,
    cache: &Path,
    one_steps: u64,
    steps: u64,
) -> (TrainOptions, std::path::PathBuf) {
    train(&tiny_options(one, cache, one_steps)).expect("one-digit run");
    let source = one.join("checkpoint.safetensors");
    let mut opts = tiny_options(two, cache, steps);
    if let DataSource::Generated(d) = &mut opts.data {
        d.digits = 2;
    }
    opts.warm_start = Some(source.clone());
    (opts, source)
}

/// `--draw-order layers --captions false`: an unconditional two-digit run draws
/// one block of steps per digit of the data (recorded in its checkpoint, kept on
/// resume), and warm-started from an unconditional one-digit run it draws,
/// before training, the union of the one-digit model's drawings from each
/// block's latents, as the captioned layers do.
#[test]
fn unconditional_objects_on_layers_compose_one_digit_drawings() {
    let _serial = training_lock();
    let (one, two, cache) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let mut source_opts = tiny_options(one.path(), cache.path(), 3);
    source_opts.captions = None;
    train(&source_opts).expect("one-digit run");
    let source = one.path().join("checkpoint.safetensors");
    let mut opts = tiny_options(two.path(), cache.path(), 1);
    opts.captions = None;
    if let DataSource::Generated(d) = &mut opts.data {
        d.digits = 2;
    }
    opts.model.draw_order = DrawOrder::Layers;
    opts.warm_start = Some(source.clone());
    opts.optimizer.lr = Some(1e-12);
    // Bad input first: fewer steps than objects, and a captioned run from an
    // unconditional model, are refused with what is accepted.
    opts.model.timesteps = 1;
    let err = train(&opts).expect_err("one step for two digits");
    assert!(
        err.to_string().contains("2 objects need at least 2 steps"),
        "{err}"
    );
    opts.model.timesteps = 2 * source_opts.model.timesteps;
    opts.captions = Some(syncdraw_training::train::CaptionEncoderKind::Slots);
    let err = train(&opts).expect_err("captioned from unconditional");
    assert!(
        err.to_string()
            .contains("both models must be unconditional"),
        "{err}"
    );
    opts.captions = None;
    train(&opts).expect("two-digit run on layers");
    let ck = checkpoint::load(&two.path().join("checkpoint.safetensors"), Device::Cpu)
        .expect("two-digit checkpoint");
    assert_eq!(ck.model.config.objects, Some(2));
    assert!(ck.model.config.layered());
    let t1 = source_opts.model.timesteps;
    assert_eq!(ck.model.config.step_blocks(), vec![(0, t1), (t1, t1)]);

    let one = checkpoint::load(&source, Device::Cpu).expect("one-digit checkpoint");
    let z = Tensor::randn([2, 2 * t1, 8], (Kind::Float, Device::Cpu));
    let (first, _) = one.model.generate(&z.narrow(1, 0, t1), None);
    let (second, _) = one.model.generate(&z.narrow(1, t1, t1), None);
    let (video, _) = ck.model.generate(&z, None);
    let union: Tensor = 1.0 - (1.0 - &first) * (1.0 - &second);
    let diff = (&video - &union).abs().max().double_value(&[]);
    assert!(diff < 1e-4, "layers differ from the union by {diff}");

    opts.resume = true;
    opts.warm_start = None;
    opts.steps = 2;
    let summary = train(&opts).expect("resumed");
    let ck = checkpoint::load(&summary.checkpoint, Device::Cpu).expect("resumed checkpoint");
    assert_eq!((summary.step, ck.model.config.objects), (2, Some(2)));
}

/// `train --freeze-decoder`: a two-digit run on layers warm-started from a
/// one-digit checkpoint trains its encoder and leaves every decoder weight (and
/// so what it draws) bit for bit as the one-digit model's, also after a resume.
#[test]
fn a_frozen_decoder_stays_the_warm_start_decoder() {
    let _serial = training_lock();
    let (one, two, cache) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (mut opts, source) = two_digit_warm_start(one.path(), two.path(), cache.path(), 4, 3);
    opts.model.draw_order = DrawOrder::Layers;
    opts.model.timesteps *= 2;
    opts.freeze_decoder = true;
    train(&opts).expect("frozen run");
    opts.resume = true;
    opts.steps = 5;
    opts.warm_start = None;
    opts.freeze_decoder = false;
    let summary = train(&opts).expect("resumed, still frozen");
    assert_eq!(summary.step, 5);
    let before = checkpoint::load(&source, Device::Cpu).expect("one-digit");
    let after = checkpoint::load(&summary.checkpoint, Device::Cpu).expect("two-digit");
    assert_eq!(after.meta.frozen, vec!["decoder.".to_string()]);
    let (old, new) = (before.model.vs.variables(), after.model.vs.variables());
    let (mut same, mut changed) = (0, 0);
    for (name, v) in &new {
        let o = &old[name];
        let equal = o.size() == v.size() && o.equal(v);
        if name.starts_with("decoder.") {
            assert!(equal, "{name} changed");
            same += 1;
        } else if equal {
            panic!("{name} did not train");
        } else {
            changed += 1;
        }
    }
    assert!(same > 0 && changed > 0, "{same} frozen, {changed} trained");
}

/// `--kl-weight`: a heavier KL term in the objective gives a posterior closer to
/// the prior (a lower KL than the same run at weight 1), is recorded in the
/// checkpoint and is kept when the run is resumed.
#[test]
fn kl_weight_pulls_the_posterior_to_the_prior_and_is_kept_on_resume() {
    let _serial = training_lock();
    let cache = tempfile::tempdir().expect("tmp");
    let last_kl = |run: &Path| -> f64 {
        let m = metrics(run);
        m.last().and_then(|l| l["kl"].as_f64()).expect("kl logged")
    };
    let (plain, heavy) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    train(&tiny_options(plain.path(), cache.path(), 30)).expect("weight 1");
    let mut opts = tiny_options(heavy.path(), cache.path(), 30);
    opts.kl_weight = 8.0;
    let summary = train(&opts).expect("weight 8");
    let (kl1, kl8) = (last_kl(plain.path()), last_kl(heavy.path()));
    eprintln!("KL after 30 steps: {kl1:.2} at weight 1, {kl8:.2} at weight 8");
    assert!(
        kl8 < 0.5 * kl1,
        "KL {kl8} at weight 8 against {kl1} at weight 1"
    );
    let ck = checkpoint::load(&summary.checkpoint, Device::Cpu).expect("checkpoint");
    assert_eq!(ck.meta.kl_weight, 8.0);
    // Resumed without the option: the checkpoint's weight is kept.
    opts.resume = true;
    opts.kl_weight = 1.0;
    opts.steps = 35;
    let summary = train(&opts).expect("resumed");
    let ck = checkpoint::load(&summary.checkpoint, Device::Cpu).expect("checkpoint");
    assert_eq!((ck.meta.kl_weight, ck.meta.step), (8.0, 35));
    // A run at weight 1 writes no weight into its config (older readers agree).
    let config = std::fs::read_to_string(plain.path().join("config.json")).expect("config");
    assert!(!config.contains("kl_weight"), "{config}");
}

/// `--slot-dropout`: hidden slots read as row 0 of their tables (the absent
/// object's embedding), so that row trains only where slots are hidden; the
/// probability is recorded and kept on resume; runs it cannot apply to, or a
/// probability outside [0, 1), are refused before anything is written.
#[test]
fn slot_dropout_trains_the_absent_rows_is_kept_on_resume_and_needs_slot_captions() {
    let _serial = training_lock();
    let cache = tempfile::tempdir().expect("tmp");
    let absent_rows = |ck: &Path| -> Vec<(String, Tensor)> {
        let ck = checkpoint::load(ck, Device::Cpu).expect("checkpoint");
        let mut rows: Vec<(String, Tensor)> = ck
            .model
            .vs
            .variables()
            .into_iter()
            .filter(|(name, _)| name.contains("slot_"))
            .map(|(name, v)| (name, v.narrow(0, 0, 1)))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(rows.len(), 2, "one table per slot kind (digit, motion)");
        rows
    };
    let (start, plain, hidden) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let initial = train(&tiny_options(start.path(), cache.path(), 1)).expect("one step");
    let plain = train(&tiny_options(plain.path(), cache.path(), 20)).expect("no dropout");
    let mut opts = tiny_options(hidden.path(), cache.path(), 20);
    opts.slot_dropout = 0.5;
    let summary = train(&opts).expect("slot dropout 0.5");
    let (initial, plain, dropped) = (
        absent_rows(&initial.checkpoint),
        absent_rows(&plain.checkpoint),
        absent_rows(&summary.checkpoint),
    );
    for ((name, first), ((_, p), (_, d))) in initial.iter().zip(plain.iter().zip(&dropped)) {
        assert!(first.equal(p), "{name}: row 0 trained without slot dropout");
        assert!(
            !first.equal(d),
            "{name}: row 0 did not train with slot dropout"
        );
    }
    let ck = checkpoint::load(&summary.checkpoint, Device::Cpu).expect("checkpoint");
    assert_eq!(ck.meta.slot_dropout, 0.5);
    // Resumed without the option: the checkpoint's probability is kept.
    opts.resume = true;
    opts.slot_dropout = 0.0;
    opts.steps = 25;
    let summary = train(&opts).expect("resumed");
    let ck = checkpoint::load(&summary.checkpoint, Device::Cpu).expect("checkpoint");
    assert_eq!((ck.meta.slot_dropout, ck.meta.step), (0.5, 25));
    // Refused: no captions, words, a probability of 1.
    let root = tempfile::tempdir().expect("tmp");
    let dir = root.path().join("run");
    for (captions, p, words) in [
        (None, 0.3, "needs captions read by the slots encoder"),
        (
            Some(CaptionEncoderKind::Words),
            0.3,
            "--caption-encoder slots",
        ),
        (
            Some(CaptionEncoderKind::Slots),
            1.0,
            "at least 0 and below 1",
        ),
    ] {
        let mut bad = tiny_options(&dir, cache.path(), 2);
        bad.captions = captions;
        bad.slot_dropout = p;
        let err = train(&bad).expect_err("refused");
        assert!(err.to_string().contains(words), "{err}");
        assert!(
            !dir.exists(),
            "the run directory was made for a refused run"
        );
    }
}

/// `train` with a warm start: a two-digit run from a one-digit checkpoint records
/// where it started and how many steps its weights had seen, and trains.
#[test]
fn a_two_digit_run_warm_starts_from_a_one_digit_checkpoint() {
    let _serial = training_lock();
    let (one, two, cache) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (opts, source) = two_digit_warm_start(one.path(), two.path(), cache.path(), 10, 10);
    let summary = train(&opts).expect("warm-started two-digit run");
    assert_eq!(summary.step, 10);
    let meta = checkpoint::read_meta(&summary.checkpoint).expect("meta");
    assert_eq!(meta.data.generated().map(|d| d.digits), Some(2));
    assert_eq!(meta.steps_before, 10);
    assert_eq!(
        meta.initialised_from.as_deref(),
        Some(source.display().to_string().as_str())
    );
    // An unconditional model cannot seed a captioned run.
    let (plain, three) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let mut u = tiny_options(plain.path(), cache.path(), 2);
    u.captions = None;
    train(&u).expect("unconditional run");
    let mut opts = tiny_options(three.path(), cache.path(), 2);
    opts.warm_start = Some(plain.path().join("checkpoint.safetensors"));
    let err = train(&opts).expect_err("refused");
    assert!(err.to_string().contains("slots"), "{err}");
}

/// `--canvas-init data-mean` and `--forget-bias`: the fresh model starts from
/// c^0 = logit(mean training pixel) (checked against a hand computation), every
/// LSTM's forget gate starts near the bias and the other gates near 0, the
/// first canvas a model draws is c^0 plus its first write, and a run with both
/// resumes exactly.
#[test]
fn initial_canvas_and_forget_bias() {
    let _serial = training_lock();
    // The hand computation: pixels 0, 51, 255, 102 have mean 0.4, logit ln(2/3).
    assert!((mean_logit(&[0, 51, 255, 102]) - (2.0f64 / 3.0).ln()).abs() < 1e-12);

    let cache = tempfile::tempdir().expect("tmp");
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let options = |dir: &Path, steps| {
        let mut o = tiny_options(dir, cache.path(), steps);
        o.canvas_init = CanvasInit::DataMean;
        o.model.forget_bias = 1.0;
        o
    };
    let fresh = syncdraw_training::model::SyncDraw::new(
        &ModelConfig {
            canvas_init: Some(-3.0),
            draw_order: DrawOrder::Together,
            objects: None,
            ..options(a.path(), 1).model
        },
        Device::Cpu,
    );
    let vars = fresh.vs.variables();
    assert_eq!(vars["decoder.canvas0"].double_value(&[0]), -3.0);
    let mut lstms = 0;
    for (name, b) in &vars {
        let is_lstm_bias = name.ends_with(".b")
            && ["encoder.enc.", "decoder.dec_where.", "decoder.dec_what."]
                .iter()
                .any(|p| name.starts_with(p));
        if !is_lstm_bias {
            continue;
        }
        lstms += 1;
        let n = b.size()[0] / 4;
        let gate = |k: i64| b.narrow(0, k * n, n).mean(Kind::Float).double_value(&[]);
        assert!(
            (gate(1) - 1.0).abs() < 0.05,
            "{name}: forget gate {}",
            gate(1)
        );
        for k in [0, 2, 3] {
            assert!(gate(k).abs() < 0.05, "{name}: gate {k} {}", gate(k));
        }
    }
    assert_eq!(lstms, 3, "encoder, where and what LSTMs");
    // With z = 0 and no caption change, the first canvas is c^0 + write: moving
    // c^0 by 1 moves every logit of the first step by 1.
    let z = Tensor::zeros([2, 4, 8], (Kind::Float, Device::Cpu));
    let ids = Tensor::zeros([2, 2], (Kind::Int64, Device::Cpu));
    let logit = |m: &syncdraw_training::model::SyncDraw| {
        let (_, canvases) = m.generate(&z, Some(&ids));
        let p: Tensor = canvases.select(1, 0);
        (&p / (p.ones_like() - &p)).log()
    };
    let before = logit(&fresh);
    tch::no_grad(|| {
        let _ = fresh.vs.variables()["decoder.canvas0"]
            .shallow_clone()
            .g_add_scalar_(1.0);
    });
    let moved = (logit(&fresh) - before - 1.0).abs().max().double_value(&[]);
    assert!(moved < 1e-3, "first canvas moved by {moved} + 1");

    let summary = train(&options(a.path(), 20)).expect("uninterrupted");
    assert!(summary.last_loss.is_finite());
    train(&options(b.path(), 10)).expect("first half");
    let mut opts = options(b.path(), 20);
    opts.resume = true;
    train(&opts).expect("second half");
    let load = |d: &tempfile::TempDir| {
        checkpoint::load(&d.path().join("checkpoint.safetensors"), Device::Cpu).expect("load")
    };
    let (ca, cb) = (load(&a), load(&b));
    let config = options(a.path(), 1)
        .data
        .generated()
        .cloned()
        .expect("generated");
    let train_data = Dataset::load_or_generate(&config, Split::Train, cache.path()).expect("data");
    assert_eq!(
        ca.meta.model.canvas_init,
        Some(mean_logit(&train_data.pixels))
    );
    assert_eq!(ca.meta.model.forget_bias, 1.0);
    let (va, vb) = (ca.model.vs.variables(), cb.model.vs.variables());
    assert!(va.contains_key("decoder.canvas0"));
    for (name, t) in &va {
        assert!(t.equal(&vb[name]), "{name} differs after resume");
    }
}

/// Extreme decoder states (raw window outputs in the hundreds, squashed by the
/// bounds into the most extreme windows they allow: stride e^1.5 times the
/// frame-spanning one, variance e^-3, centres 10 % outside the frame) with a
/// stable filterbank: every row of F_p and F_q still sums to 1, so reading a
/// frame of ones gives gamma at every grid point and no row reads zeros; with
/// the paper's normaliser the same states leave rows under the floor (they read
/// 0). (Unbounded, such raw values overflow exp() whatever the normaliser.)
#[test]
fn stable_filterbank_rows_never_die() {
    // Draws from libtorch's global generator: one test at a time.
    let _serial = training_lock();
    use syncdraw_training::model::filterbank::{spatial_filterbanks, window};
    let (frames, size, k) = (4i64, 64i64, 10i64);
    let (layer, h) = extreme_window_layer(12, frames, 64);
    let ones = Tensor::ones([64, frames, size, size], (Kind::Float, Device::Cpu));
    let run = |stable: bool| {
        let geo = Geometry {
            height: size,
            width: size,
            frames,
            k,
            temporal_k: k,
            groups: frames,
            channels: 1,
            bounded: true,
            stable,
        };
        let mut be = TchBackend::new(Device::Cpu);
        let lin = layer.bind(&mut be);
        let w = window(&mut be, &lin, &h, geo, false);
        let (f_row, f_col) = spatial_filterbanks(&mut be, &w, geo);
        let sums = Tensor::cat(
            &[
                f_row.sum_dim_intlist([3i64].as_slice(), false, Kind::Float),
                f_col.sum_dim_intlist([3i64].as_slice(), false, Kind::Float),
            ],
            2,
        );
        let patch = read(&mut be, &w, &[&ones], geo).remove(0); // [B, F, K, K]
        (sums, patch / w.gamma.unsqueeze(3))
    };
    let (sums, per_gamma) = run(true);
    let worst = (sums - 1.0).abs().max().double_value(&[]);
    assert!(worst < 1e-4, "a stable row sums to 1 +- {worst}");
    let lowest = per_gamma.min().double_value(&[]);
    assert!(
        lowest > 0.999,
        "a grid point read {lowest} x gamma of a frame of ones"
    );
    let (sums, _) = run(false);
    let dead = sums
        .lt(1e-3)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[]);
    assert!(
        dead > 0.0,
        "these states must kill rows of the paper's normaliser"
    );
}

/// `layers-interleaved` infers the steps of `layers` in another order and
/// draws the same layers: step t is still the decoder's step t (its object,
/// its noise, its KL), only the encoder takes the blocks' steps in turn. With
/// the posterior's weights at zero, z no longer depends on what the encoder
/// reads, so for the same noise the two orders give the same bound to float
/// tolerance (each layer's canvas and decoder state carried across the other
/// layer's steps, and every step drawn once); with the weights as they are,
/// the encoder reads other error videos and the bounds differ.
#[test]
fn interleaved_layers_draw_the_same_layers_in_another_order() {
    let _serial = training_lock();
    use syncdraw_training::model::SyncDraw;
    let mut c = tiny_captioned_config(2);
    c.draw_order = DrawOrder::Layers;
    c.timesteps = 6;
    c.canvas_init = Some(-2.0);
    let mut ci = c.clone();
    ci.draw_order = DrawOrder::LayersInterleaved;
    assert_eq!(c.inference_order(), (0..6).collect::<Vec<i64>>());
    assert_eq!(ci.inference_order(), vec![0, 3, 1, 4, 2, 5]);
    tch::manual_seed(21);
    let mut blocks = SyncDraw::new(&c, Device::Cpu);
    let mut interleaved = SyncDraw::new(&ci, Device::Cpu);
    interleaved.vs.copy(&blocks.vs).expect("the same variables");

    tch::manual_seed(22);
    let x = Tensor::rand([2, c.frames, c.height, c.width], (Kind::Float, Device::Cpu))
        .gt(0.7)
        .to_kind(Kind::Float);
    let ids = Tensor::from_slice(&[4i64, 1, 3, 2, 8, 2, 1, 1]).reshape([2, 4]);
    let eps = Tensor::randn([2, c.timesteps, c.z_dim], (Kind::Float, Device::Cpu));
    let bounds = |a: &SyncDraw, b: &SyncDraw| {
        let (la, lb) = (a.loss(&x, Some(&ids), &eps), b.loss(&x, Some(&ids), &eps));
        let diff = |p: &Tensor, q: &Tensor| (p - q).abs().max().double_value(&[]);
        (
            diff(&la.reconstruction, &lb.reconstruction),
            diff(&la.kl, &lb.kl),
            la.nll().mean(Kind::Float).double_value(&[]),
        )
    };
    let (rec, kl, _) = bounds(&blocks, &interleaved);
    assert!(
        rec > 1e-3 && kl > 1e-3,
        "the encoder read the same videos in both orders: {rec} {kl}"
    );
    tch::no_grad(|| {
        let _ = blocks.encoder.posterior.w.zero_();
        let _ = interleaved.encoder.posterior.w.zero_();
    });
    let (rec, kl, nll) = bounds(&blocks, &interleaved);
    assert!(rec <= 1e-5 * nll && kl <= 1e-5, "{rec} {kl} of {nll}");
}
