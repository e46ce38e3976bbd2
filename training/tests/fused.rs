//! The fused canvas step (training/src/fused) against the model's own read and
//! write math run by libtorch with autograd: the same canvas and glimpses, and
//! the same gradients of every window parameter, patch and canvas value, for
//! both forms of the kernels. CPU only, real tch.
use syncdraw_training::backend::tch_backend::TchBackend;
use syncdraw_training::fused::frame::Kernels;
use syncdraw_training::fused::{FusedCanvas, Read, Write};
use syncdraw_training::model::filterbank::{spatial_filterbanks, Geometry, Window};
use syncdraw_training::model::read::read;
use syncdraw_training::model::write::write;
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

    // Fused: the filterbanks and w / gamma from libtorch, the products here.
    let (w_row, w_col) = spatial_filterbanks(be, &ww, geo);
    let p = &patch / ww.gamma.unsqueeze(3);
    let (r_row, r_col) = spatial_filterbanks(be, &rw, geo);
    let frames = (B * N) as usize;
    let mut fused = FusedCanvas::with_kernels(frames, 2, kernels);
    assert_eq!(fused.kernels(), kernels);
    let (w_row_v, w_col_v, p_v) = (values(&w_row), values(&w_col), values(&p));
    let (r_row_v, r_col_v, r_gamma_v) = (values(&r_row), values(&r_col), values(&rw.gamma));
    let wr = Write {
        f_row: &w_row_v,
        f_col: &w_col_v,
        patch: &p_v,
    };
    let rd = Read {
        f_row: &r_row_v,
        f_col: &r_col_v,
        gamma: &r_gamma_v,
    };
    let mut canvas = values(&c0);
    let x_v = values(&x);
    let mut gx = vec![0f32; frames * (K * K) as usize];
    let mut gs = gx.clone();
    fused.forward(0, &mut canvas, &x_v, Some(wr), Some(rd), &mut gx, &mut gs);
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
    );
    let (wg, rg) = (wg.expect("write gradients"), rg.expect("read gradients"));
    let shaped = |v: &[f32], like: &Tensor| Tensor::from_slice(v).view(like.size().as_slice());
    let pushed = (&w_row * shaped(&wg.f_row, &w_row)).sum(Kind::Float)
        + (&w_col * shaped(&wg.f_col, &w_col)).sum(Kind::Float)
        + (&p * shaped(&wg.patch, &p)).sum(Kind::Float)
        + (&r_row * shaped(&rg.f_row, &r_row)).sum(Kind::Float)
        + (&r_col * shaped(&rg.f_col, &r_col)).sum(Kind::Float)
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
    let fast = Kernels::detect();
    if fast == Kernels::Portable {
        eprintln!("this CPU has no AVX2 + FMA: only the portable kernels run here");
    }
    compare(fast);
}

#[test]
fn the_fused_step_matches_libtorch_with_the_portable_kernels() {
    compare(Kernels::Portable);
}
