//! A training step whose canvas half runs in the fused kernels, with a
//! backward through the T steps of its own.
//!
//! libtorch's autograd cannot call a backward written in Rust (tch has no custom
//! autograd functions), so the step is cut where the canvas half meets the
//! recurrent half. The recurrent part of each step t (the encoder LSTM,
//! Q(Z^t | h_enc^t), the decoder LSTMs, the write window and patch, the next
//! read window) is one libtorch graph, a *segment*, whose inputs are leaves: the
//! encoder's input product x W_x of step t (made outside the graph from the
//! glimpses, with W_x packed once, [`super::gemm`]; its gradient goes back to
//! the glimpses, h_dec^{t-1}, the caption features and W_x by hand) and the
//! LSTM states of step t - 1. The kernels take the
//! segment's window parameters and patches as values. The backward then runs
//! in reverse order of steps, each segment's autograd backward handing its
//! leaves' gradients to the kernels' backward of the step before, and the
//! kernels' gradients of the window parameters and patches to the segment
//! before that; every parameter's gradient accumulates in the variable store
//! as with one backward.
//! The numbers are those of [`SyncDraw::loss_observed`] and its backward
//! (training/tests/fused.rs checks the loss and every gradient).
use super::gemm::PackedWeights;
use super::{Canvases, FusedCanvas, Grid, GridGrads, Read, ReadGrads, Write, WriteGrads};
use crate::backend::tch_backend::TchBackend;
use crate::model::caption::CaptionFeatures;
use crate::model::decoder::DecoderState;
use crate::model::filterbank::{window, Geometry, Window};
use crate::model::layers::LstmState;
use crate::model::syncdraw::{encoder_input, infer, Loss, SyncDraw};
use crate::model::window_stats::WindowStats;
use crate::model::{ModelConfig, Variant};
use tch::{Device, Kind, Tensor};

/// Whether the fused step runs this model: Sync-DRAW or Global windows with
/// stable filterbank rows on grey 64 x 64 frames with grids of 10, drawn
/// together on one canvas (the Baseline's temporal windows, the unstable rows
/// of older models, colour, other sizes and objects drawn in turn train on the
/// plain step).
pub fn supported(c: &ModelConfig) -> bool {
    c.variant != Variant::Baseline
        && c.stable_filterbank
        && c.channels == 1
        && c.objects_in_turn().is_none()
        && FusedCanvas::supports(c.height, c.width, c.read_k, c.write_k)
}

/// The inputs of a write or read window to the kernels: libtorch tensors
/// ([B, N, 1] each: grid centres, stride, variance; then the read's gamma, or
/// the write's patch w / gamma, [B, N, K, K]) and their values.
struct WindowIn {
    tensors: [Tensor; 5],
    values: [Vec<f32>; 5],
}

impl WindowIn {
    /// A window's grid, one per frame, and its last input (`last`).
    fn of(win: Window<Tensor>, last: Tensor, geo: Geometry) -> Self {
        let n = geo.frames;
        let tensors = [
            per_frame(win.g_row, n),
            per_frame(win.g_col, n),
            per_frame(win.delta, n),
            per_frame(win.sigma2, n),
            last,
        ];
        let values = tensors.each_ref().map(values);
        Self { tensors, values }
    }

    fn grid(&self) -> Grid<'_> {
        let [g_row, g_col, delta, sigma2, _] = &self.values;
        Grid {
            g_row,
            g_col,
            delta,
            sigma2,
        }
    }

    fn write(&self) -> Write<'_> {
        Write {
            grid: self.grid(),
            patch: &self.values[4],
        }
    }

    fn read(&self) -> Read<'_> {
        Read {
            grid: self.grid(),
            gamma: &self.values[4],
        }
    }

    /// sum(tensor * gradient) over the inputs, for the grid's gradients and
    /// those of the last input: its backward hands the kernels' gradients to
    /// the graph that made the inputs.
    fn pushed(&self, grid: &GridGrads, last: &[f32]) -> Tensor {
        let grads = [&grid.g_row, &grid.g_col, &grid.delta, &grid.sigma2];
        let mut total = Tensor::zeros([], (Kind::Float, Device::Cpu));
        for (t, g) in self
            .tensors
            .iter()
            .zip(grads.into_iter().map(Vec::as_slice).chain([last]))
        {
            total += (t * Tensor::from_slice(g).view(t.size().as_slice())).sum(Kind::Float);
        }
        total
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    let flat = t.detach().contiguous().view([-1]).to_kind(Kind::Float);
    Vec::<f32>::try_from(&flat).expect("a float tensor on the CPU")
}

fn leaf(t: &Tensor) -> Tensor {
    t.detach().set_requires_grad(true)
}

/// The gradient a leaf received, zeros if none reached it.
fn grad_of(t: &Tensor) -> Tensor {
    let g = t.grad();
    if g.defined() {
        g
    } else {
        t.zeros_like()
    }
}

/// A window's parameters [B, F, 1] made one per frame, [B, N, 1] (Global's
/// single window is shared by the N frames).
fn per_frame(t: Tensor, frames: i64) -> Tensor {
    let mut size = t.size();
    size[1] = frames;
    t.expand(size.as_slice(), false)
}

/// The read window of h_dec^{t-1} as kernel inputs.
fn read_window(
    be: &mut TchBackend,
    layer: &crate::model::layers::Linear<Tensor>,
    h: &Tensor,
    geo: Geometry,
    stats: Option<&mut WindowStats>,
) -> WindowIn {
    let win = window(be, layer, h, geo, false);
    if let Some(stats) = stats {
        stats.read.add(&win, geo);
    }
    let gamma = per_frame(win.gamma.shallow_clone(), geo.frames);
    WindowIn::of(win, gamma, geo)
}

/// The write window and patch of h_dec^t as kernel inputs (eq. 9: the patch
/// divided by gamma).
fn write_window(win: Window<Tensor>, patch: &Tensor, geo: Geometry) -> WindowIn {
    let p = patch / win.gamma.unsqueeze(3);
    WindowIn::of(win, p, geo)
}

/// One step's recurrent graph: its leaves and the outputs the later steps and
/// the kernels take gradients of.
struct Segment {
    /// The encoder's input [R^t, h_dec^{t-1}, S] (eq. 7, 12), out of the graph.
    enc_in: Tensor,
    /// Its product with the encoder LSTM's W_x: a leaf, whose gradient gives
    /// those of the glimpses, h_dec^{t-1} and S, and of W_x (one product over
    /// all steps, after the last).
    input_product: Tensor,
    /// Encoder (h, c), then each decoder LSTM's (h, c): leaves of the step
    /// before's states (empty at t = 0).
    states_in: Vec<Tensor>,
    states_out: Vec<Tensor>,
    kl: Tensor,
    write: WindowIn,
    /// The read window of the next step (none after the last).
    next_read: Option<WindowIn>,
}

fn states(enc: &LstmState<Tensor>, dec: &DecoderState<Tensor>) -> Vec<Tensor> {
    let mut v = vec![enc.h.shallow_clone(), enc.c.shallow_clone()];
    for l in &dec.lstms {
        v.push(l.h.shallow_clone());
        v.push(l.c.shallow_clone());
    }
    v
}

fn leaf_features(s: &CaptionFeatures<Tensor>) -> CaptionFeatures<Tensor> {
    CaptionFeatures {
        all: leaf(&s.all),
        by_role: s.by_role.as_ref().map(|r| r.each_ref().map(leaf)),
        per_object: None,
    }
}

fn feature_tensors(s: &CaptionFeatures<Tensor>) -> Vec<&Tensor> {
    let mut v = vec![&s.all];
    if let Some(r) = &s.by_role {
        v.extend(r.iter());
    }
    v
}

/// The loss of a batch as [`SyncDraw::loss_observed`] gives it, with the
/// gradient of the objective mean(L_X + kl_weight L_Z) over the batch added to
/// every parameter's gradient (zero them first). `x` [B, N, A, B] in [0, 1],
/// `eps` [B, T, z_dim]; the model must be [`supported`] and on the CPU.
#[allow(clippy::too_many_arguments)]
pub fn loss_and_backward(
    model: &SyncDraw,
    kernels: &mut FusedCanvas,
    x: &Tensor,
    caption: Option<&Tensor>,
    eps: &Tensor,
    kl_weight: f64,
    mut stats: Option<&mut WindowStats>,
) -> Loss {
    let c = &model.config;
    assert!(supported(c), "the fused step does not run this model");
    let be = &mut TchBackend::new(Device::Cpu);
    let dec = model.decoder.bind(be);
    let read_layer = model.encoder.read_window.bind(be);
    let enc = model.encoder.lstm.bind(be);
    let posterior = model.encoder.posterior.bind(be);
    let (rgeo, wgeo) = (Geometry::of(c, c.read_k), Geometry::of(c, c.write_k));
    let batch = x.size()[0];
    let (n, k) = (c.frames, c.read_k);
    let steps = c.timesteps as usize;
    let per_step = (batch * n * k * k) as usize;
    assert_eq!(x.device(), Device::Cpu, "the fused step runs on the CPU");
    let x = x.to_kind(Kind::Float).contiguous();
    // SAFETY: `x` is a contiguous f32 tensor in CPU memory, of `numel` values,
    // and outlives `x_values` (both end with this function); nothing writes it.
    let x_values: &[f32] =
        unsafe { std::slice::from_raw_parts(x.data_ptr() as *const f32, x.numel()) };

    // x W_x and d(x W_x) W_x^T from W_x packed once for the T steps.
    let times_wx = PackedWeights::new(&model.encoder.lstm.wx, batch, false);
    let times_wx_t = PackedWeights::new(&model.encoder.lstm.wx, batch, true);
    // Caption features enter every segment as leaves; their graph runs back once.
    let s_full = dec.caption_embedding(be, caption);
    let s = s_full.as_ref().map(leaf_features);
    // c^0: zero as in the paper, or the learned initial logit.
    let c0 = dec_canvas0(model);
    let c0_value = c0.as_ref().map_or(0.0, |t| t.double_value(&[0]) as f32);
    let mut canvases = kernels.take_canvases((batch * n) as usize, c0_value);
    let Canvases { canvas, dcanvas } = &mut canvases;

    // Forward: the read of step 0 from h_dec = 0, then each step's segment and
    // the kernels of its write and of the next step's read.
    let h0 = Tensor::zeros([batch, c.dec_size], (Kind::Float, Device::Cpu));
    let first_read = read_window(be, &read_layer, &h0, rgeo, stats.as_deref_mut());
    let mut glimpse = [vec![0f32; per_step], vec![0f32; per_step]];
    let [gx, gs] = &mut glimpse;
    kernels.forward(0, canvas, x_values, None, Some(first_read.read()), gx, gs);
    let mut segments: Vec<Segment> = Vec::with_capacity(steps);
    let mut carried: Option<(LstmState<Tensor>, DecoderState<Tensor>)> = None;
    let zeros = || Tensor::zeros([batch], (Kind::Float, Device::Cpu));
    let (mut kl, mut log_q_over_p) = (zeros(), zeros());
    for t in 0..steps {
        let (enc_prev, dec_prev, states_in) = match &carried {
            None => (None, None, Vec::new()),
            Some((e, d)) => {
                let e = LstmState {
                    h: leaf(&e.h),
                    c: leaf(&e.c),
                };
                let lstms = d
                    .lstms
                    .iter()
                    .map(|l| LstmState {
                        h: leaf(&l.h),
                        c: leaf(&l.c),
                    })
                    .collect();
                let d = DecoderState::from_lstms(be, lstms);
                let ins = states(&e, &d);
                (Some(e), Some(d), ins)
            }
        };
        let h_dec_prev = dec_prev.as_ref().map_or(&h0, |d| d.h());
        // x W_x out of the graph (its gradients are taken by hand below).
        let (enc_in, input_product) = tch::no_grad(|| {
            let [r_x, r_shown] = glimpse
                .each_ref()
                .map(|g| Tensor::from_slice(g).view([batch, -1]));
            let r_hat = &r_x - r_shown;
            let enc_in = encoder_input([&r_x, &r_hat], h_dec_prev, s.as_ref());
            let product = leaf(&times_wx.times(&enc_in));
            (enc_in, product)
        });
        let inferred = infer(
            be,
            (&enc, &posterior),
            &input_product,
            enc_prev.as_ref(),
            &eps.select(1, t as i64),
        );
        kl += inferred.kl.detach();
        log_q_over_p += inferred.log_q_over_p.detach();
        let next_dec = dec.step(be, &inferred.z, s.as_ref(), dec_prev.as_ref(), t as i64);
        let win = dec.write_window(be, &next_dec);
        if let Some(stats) = stats.as_deref_mut() {
            stats.write.add(&win, wgeo);
        }
        let patch = dec.write_patch(be, &next_dec);
        let write = write_window(win, &patch, wgeo);
        let next_read = (t + 1 < steps)
            .then(|| read_window(be, &read_layer, next_dec.h(), rgeo, stats.as_deref_mut()));
        let [gx, gs] = &mut glimpse;
        kernels.forward(
            t + 1,
            canvas,
            x_values,
            Some(write.write()),
            next_read.as_ref().map(WindowIn::read),
            gx,
            gs,
        );
        segments.push(Segment {
            enc_in,
            input_product,
            states_in,
            states_out: states(&inferred.enc, &next_dec),
            kl: inferred.kl,
            write,
            next_read,
        });
        carried = Some((inferred.enc, next_dec));
    }

    // L_X = BCE(x, sigmoid(c^T)) summed over each video's pixels; the objective's
    // gradient in c^T is (sigmoid(c^T) - x) / B.
    let per_frame = kernels.bce(canvas, x_values, 1.0 / batch as f32, dcanvas);
    let per_video: Vec<f32> = per_frame
        .chunks(n as usize)
        .map(|f| f.iter().map(|&v| v as f64).sum::<f64>() as f32)
        .collect();
    let reconstruction = Tensor::from_slice(&per_video);

    // Backward, last step first.
    let mut after: Option<ReadGrads> = None;
    let (mut write_grads, _) = kernels.backward(
        steps,
        dcanvas,
        x_values,
        Some(segments[steps - 1].write.write()),
        None,
        &[],
        &[],
    );
    let mut states_grad: Option<Vec<Tensor>> = None;
    let glimpse_size = per_step / batch as usize;
    let dec_sizes = c.dec_sizes();
    let mut d_caption: Option<Tensor> = None;
    let mut d_products: Vec<Tensor> = Vec::with_capacity(steps);
    for t in (0..steps).rev() {
        let seg = &segments[t];
        let wg: WriteGrads = write_grads.take().expect("the write's gradients");
        let mut objective =
            seg.kl.mean(Kind::Float) * kl_weight + seg.write.pushed(&wg.grid, &wg.patch);
        if let (Some(r), Some(g)) = (&seg.next_read, after.take()) {
            objective += r.pushed(&g.grid, &g.gamma);
        }
        if let Some(g) = states_grad.take() {
            for (out, g) in seg.states_out.iter().zip(&g) {
                objective += (out * g).sum(Kind::Float);
            }
        }
        objective.backward();
        // The encoder's input, by hand: d[R^t, h_dec^{t-1}, S] = d(x W_x) W_x^T.
        let d_product = grad_of(&seg.input_product);
        let d_in = times_wx_t.times(&d_product);
        let mut d_states: Vec<Tensor> = seg.states_in.iter().map(grad_of).collect();
        if !d_states.is_empty() {
            // h_dec^{t-1} joins the decoder LSTMs' h: each its columns.
            let mut at = 2 * glimpse_size as i64;
            for (i, size) in dec_sizes.iter().enumerate() {
                d_states[2 + 2 * i] += d_in.narrow(1, at, *size);
                at += size;
            }
        }
        if s.is_some() {
            let at = 2 * glimpse_size as i64 + c.dec_size;
            let d = d_in.narrow(1, at, d_in.size()[1] - at);
            d_caption = Some(match d_caption.take() {
                Some(sum) => sum + d,
                None => d.copy(),
            });
        }
        states_grad = Some(d_states);
        d_products.push(d_product);
        // R^t = [read(x), read(x) - read(sigmoid(c))]: the kernels' glimpse gradients.
        let d_in = values(&d_in.narrow(1, 0, 2 * glimpse_size as i64));
        let (mut dgx, mut dgs) = (vec![0f32; per_step], vec![0f32; per_step]);
        for ((d, gx), gs) in d_in
            .chunks(2 * glimpse_size)
            .zip(dgx.chunks_mut(glimpse_size))
            .zip(dgs.chunks_mut(glimpse_size))
        {
            let (d_rx, d_rhat) = d.split_at(glimpse_size);
            for (((gx, gs), a), b) in gx.iter_mut().zip(gs.iter_mut()).zip(d_rx).zip(d_rhat) {
                *gx = a + b;
                *gs = -b;
            }
        }
        let write = (t > 0).then(|| segments[t - 1].write.write());
        let read = if t > 0 {
            segments[t - 1].next_read.as_ref().map(WindowIn::read)
        } else {
            Some(first_read.read())
        };
        let (wg, rg) = kernels.backward(t, dcanvas, x_values, write, read, &dgx, &dgs);
        write_grads = wg;
        after = rg;
    }
    // The first read's window, the caption features' graph and c^0.
    let mut rest = Tensor::zeros([], (Kind::Float, Device::Cpu));
    if let Some(g) = after.take() {
        rest += first_read.pushed(&g.grid, &g.gamma);
    }
    if let (Some(full), Some(leaves)) = (&s_full, &s) {
        for (i, (f, l)) in feature_tensors(full)
            .into_iter()
            .zip(feature_tensors(leaves))
            .enumerate()
        {
            let mut g = grad_of(l);
            if let (0, Some(d)) = (i, &d_caption) {
                // S in the encoder's input (`all` comes first).
                g += d;
            }
            rest += (f * g).sum(Kind::Float);
        }
    }
    // W_x's gradient over all steps in one product: sum_t (x^t)^T d(x^t W_x).
    d_products.reverse();
    let enc_in = Tensor::cat(&segments.iter().map(|s| &s.enc_in).collect::<Vec<_>>(), 0);
    let d_product = Tensor::cat(&d_products, 0);
    let mut wx_grad = model.encoder.lstm.wx.grad();
    if wx_grad.defined() {
        tch::no_grad(|| {
            let _ = wx_grad.addmm_(&enc_in.tr(), &d_product);
        });
    } else {
        // The first step: W_x has no gradient yet, so autograd makes it.
        rest += (&model.encoder.lstm.wx * enc_in.tr().matmul(&d_product)).sum(Kind::Float);
    }
    if let Some(c0) = &c0 {
        rest += (c0 * kernels.sum(dcanvas)).sum(Kind::Float);
    }
    kernels.return_canvases(canvases);
    if rest.requires_grad() {
        rest.backward();
    }
    Loss {
        reconstruction,
        kl,
        log_q_over_p,
    }
}

fn dec_canvas0(model: &SyncDraw) -> Option<Tensor> {
    model.decoder.canvas0.as_ref().map(Tensor::shallow_clone)
}
