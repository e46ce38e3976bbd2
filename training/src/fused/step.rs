//! A training step whose canvas half runs in the fused kernels and whose
//! recurrent half runs outside autograd, each with a backward of its own
//! through the T steps.
//!
//! Per step t, forward: the encoder's input product x W_x (made from the
//! glimpses with W_x packed once, [`super::gemm`]), the encoder LSTM,
//! Q(Z^t | h_enc^t) and z^t, the decoder LSTMs, the write window and patch, the
//! next read window ([`super::recurrent`]), then the kernels' write and read.
//! The backward runs in reverse order of steps: the kernels hand the
//! gradients of a step's windows and patch to the recurrent half's backward,
//! which hands those of the glimpses (through W_x^T) back to the kernels of
//! the step before. Every weight's gradient is one product over the T steps
//! after the last, added to the gradients in the variable store; only the
//! caption encoder's graph (once per batch) and c^0 go through autograd.
//! The numbers are those of [`SyncDraw::loss_observed`] and its backward
//! (training/tests/fused.rs checks the loss and every gradient).
use super::gemm::PackedWeights;
use super::recurrent::{self, Decoder, Encoder, WindowLayer, WindowValues};
use super::{layers, Canvases, FusedCanvas, Grid, Read, ReadGrads, Write, WriteGrads};
use crate::backend::tch_backend::TchBackend;
use crate::model::caption::CaptionFeatures;
use crate::model::config::DrawOrder;
use crate::model::filterbank::Geometry;
use crate::model::syncdraw::{encoder_input, Loss, SyncDraw};
use crate::model::window_stats::WindowStats;
use crate::model::{ModelConfig, Variant};
use tch::{Device, Kind, Tensor};

/// Whether the fused step runs this model: Sync-DRAW or Global windows with
/// stable filterbank rows on grey 64 x 64 frames with grids of 10, in any
/// draw order (the Baseline's temporal windows, the unstable rows of older
/// models, colour and other sizes train on the plain step).
pub fn supported(c: &ModelConfig) -> bool {
    c.variant != Variant::Baseline
        && c.draw_order != DrawOrder::LayersInterleaved
        && c.stable_filterbank
        && c.channels == 1
        && FusedCanvas::supports(c.height, c.width, c.read_k, c.write_k)
}

fn grid(v: &WindowValues) -> Grid<'_> {
    let [g_row, g_col, delta, sigma2, _] = &v.values;
    Grid {
        g_row,
        g_col,
        delta,
        sigma2,
    }
}

fn write_in(v: &WindowValues) -> Write<'_> {
    Write {
        grid: grid(v),
        patch: &v.values[4],
    }
}

fn read_in(v: &WindowValues) -> Read<'_> {
    Read {
        grid: grid(v),
        gamma: &v.values[4],
    }
}

fn grid_grads(g: &super::GridGrads) -> [&[f32]; 4] {
    [&g.g_row, &g.g_col, &g.delta, &g.sigma2]
}

/// One drawing step's forward, as its backward needs it.
struct Segment {
    /// The encoder's input [R^t, h_dec^{t-1}, S] (eq. 7, 12).
    enc_in: Tensor,
    enc: recurrent::EncoderSaved,
    dec: recurrent::DecoderSaved,
    write: WindowValues,
    /// The read window of the next step (none after the last).
    next_read: Option<WindowValues>,
}

/// The caption features in the order [all, where, what] (or [all] where
/// the caption encoder gives none by role), then, where objects are drawn in
/// turn, each object's [all, where, what].
fn feature_tensors(s: &CaptionFeatures<Tensor>) -> Vec<&Tensor> {
    let mut v = vec![&s.all];
    if let Some(r) = &s.by_role {
        v.extend(r.iter());
    }
    for parts in s.per_object.iter().flatten() {
        v.extend(parts.iter());
    }
    v
}

/// The index in [`feature_tensors`] of the features each decoder LSTM reads
/// at step t: those the model's decoder reads (`CaptionFeatures::read_by`).
fn feature_indices(c: &ModelConfig, s: &CaptionFeatures<Tensor>, t: usize) -> Vec<usize> {
    let all = feature_tensors(s);
    c.decoder
        .roles()
        .iter()
        .map(|&role| {
            let read = s.read_by(role, c.object_of_step(t as i64));
            all.iter()
                .position(|&f| std::ptr::eq(f, read))
                .expect("the features the decoder reads are among the caption's")
        })
        .collect()
}

/// Adds `g` to the gradient of the parameter `w`; where `w` has none yet (the
/// first step), through `rest`, whose backward makes it.
fn add_grad(w: &Tensor, g: &Tensor, rest: &mut Tensor) {
    let mut grad = w.grad();
    if grad.defined() {
        tch::no_grad(|| {
            let _ = grad.g_add_(g);
        });
    } else {
        *rest += (w * g).sum(Kind::Float);
    }
}

/// The loss of a batch as [`SyncDraw::loss_observed`] gives it, with the
/// gradient of the objective mean(L_X + kl_weight L_Z) over the batch added to
/// every parameter's gradient (zero them first). `x` [B, N, A, B] in [0, 1],
/// `eps` [B, T, z_dim]; the model must be [`supported`] and on the CPU.
/// With `targets` (each object's video [B, objects, N, A, B] and a weight w,
/// for a model on layers) the objective adds w times the layer-target term,
/// as [`SyncDraw::loss_observed`] gives it (in `Loss::layer_targets`).
#[allow(clippy::too_many_arguments)]
pub fn loss_and_backward(
    model: &SyncDraw,
    kernels: &mut FusedCanvas,
    x: &Tensor,
    caption: Option<&Tensor>,
    eps: &Tensor,
    kl_weight: f64,
    targets: Option<(&Tensor, f64)>,
    mut stats: Option<&mut WindowStats>,
) -> Loss {
    let c = &model.config;
    assert!(supported(c), "the fused step does not run this model");
    let be = &mut TchBackend::new(Device::Cpu);
    let encoder = Encoder::new(model);
    let decoder = Decoder::new(model);
    let reader = WindowLayer::new(&model.encoder.read_window, Geometry::of(c, c.read_k));
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
    // The caption features: their graph runs back once, after the last step.
    let s_full = model.decoder.bind(be).caption_embedding(be, caption);
    let s = s_full.as_ref().map(|f| CaptionFeatures {
        all: f.all.detach(),
        by_role: f.by_role.as_ref().map(|r| r.each_ref().map(Tensor::detach)),
        per_object: f
            .per_object
            .as_ref()
            .map(|p| p.iter().map(|o| o.each_ref().map(Tensor::detach)).collect()),
    });
    let features: Option<Vec<Tensor>> = s.as_ref().map(|s| {
        feature_tensors(s)
            .into_iter()
            .map(Tensor::shallow_clone)
            .collect()
    });
    let mut d_features: Vec<Option<Tensor>> = (0..features.as_ref().map_or(0, Vec::len))
        .map(|_| None)
        .collect();
    // c^0: zero as in the paper, or the learned initial logit.
    let c0 = model.decoder.canvas0.as_ref().map(Tensor::shallow_clone);
    let c0_value = c0.as_ref().map_or(0.0, |t| t.double_value(&[0]) as f32);
    let frames = (batch * n) as usize;
    let mut canvases = kernels.take_canvases(frames, c0_value);
    let Canvases { canvas, dcanvas } = &mut canvases;
    // Objects on canvas layers of their own (layers.rs).
    let layered = c.layered();
    let (threads, per) = (kernels.threads, kernels.frames_per_chunk(frames));
    let mut layers = layers::Layers::new(layered, frames, threads, per);
    if let Some((videos, weight)) = targets {
        assert!(layered, "layer targets need a model on layers");
        let objects = videos.size()[1];
        let each = (0..objects)
            .map(|o| {
                Vec::<f32>::try_from(
                    videos
                        .select(1, o)
                        .to_kind(Kind::Float)
                        .contiguous()
                        .view([-1]),
                )
                .expect("a float tensor on the CPU")
            })
            .collect();
        layers = layers.with_targets(each, weight as f32);
    }
    // The kernels' slot of the read that starts layer o > 0 (a call of its
    // own, after the end of the layer before).
    let layer_read = |o: usize| steps + o;
    let (rgeo, wgeo) = (Geometry::of(c, c.read_k), Geometry::of(c, c.write_k));

    // Forward: the read of step 0 from h_dec = 0, then each step's recurrent
    // half and the kernels of its write and of the next step's read.
    let h0 = Tensor::zeros([batch, c.dec_size], (Kind::Float, Device::Cpu));
    let first_read = reader.read(&h0);
    if let Some(stats) = stats.as_deref_mut() {
        stats.read.add(&reader.window(&first_read), rgeo);
    }
    let mut glimpse = [vec![0f32; per_step], vec![0f32; per_step]];
    let [gx, gs] = &mut glimpse;
    kernels.forward(
        0,
        canvas,
        x_values,
        None,
        Some(read_in(&first_read)),
        gx,
        gs,
        None,
    );
    let mut segments: Vec<Segment> = Vec::with_capacity(steps);
    let mut carried: Option<(recurrent::State, Vec<recurrent::State>, Tensor)> = None;
    let zeros = || Tensor::zeros([batch], (Kind::Float, Device::Cpu));
    let (mut kl, mut log_q_over_p) = (zeros(), zeros());
    for t in 0..steps {
        let (enc_prev, mut dec_prev, h_dec_prev) = match carried.take() {
            None => (None, None, h0.shallow_clone()),
            Some((e, d, h)) => (Some(e), Some(d), h),
        };
        // A new object's block starts the decoder from the zero state.
        if c.starts_block(t as i64) {
            dec_prev = None;
        }
        let enc_in = tch::no_grad(|| {
            let [r_x, r_shown] = glimpse
                .each_ref()
                .map(|g| Tensor::from_slice(g).view([batch, -1]));
            let r_hat = &r_x - r_shown;
            encoder_input(c, [&r_x, &r_hat], &h_dec_prev, s.as_ref())
        });
        let product = times_wx.times(&enc_in);
        let inferred = encoder.forward(&product, enc_prev, &eps.select(1, t as i64));
        kl += &inferred.kl;
        log_q_over_p += &inferred.log_q_over_p;
        let slots = s.as_ref().map(|s| feature_indices(c, s, t));
        let (next_dec, write) = decoder.forward(
            &inferred.z,
            features.as_deref().zip(slots.as_deref()),
            dec_prev,
        );
        let next_read = (t + 1 < steps).then(|| reader.read(&next_dec.h));
        if let Some(stats) = stats.as_deref_mut() {
            stats.write.add(&decoder.write.window(&write), wgeo);
            if let Some(r) = &next_read {
                stats.read.add(&reader.window(r), rgeo);
            }
        }
        let [gx, gs] = &mut glimpse;
        if layered && t + 1 < steps && c.starts_block(t as i64 + 1) {
            // The write ends a layer: the next read is of a new one over it.
            let write = Some(write_in(&write));
            kernels.forward(t + 1, canvas, x_values, write, None, gx, gs, None);
            layers.finish(c0_value, canvas);
            let o = layers.finished();
            let read = next_read.as_ref().map(read_in);
            let dark = layers.dark(o);
            kernels.forward(layer_read(o), canvas, x_values, None, read, gx, gs, dark);
        } else {
            kernels.forward(
                t + 1,
                canvas,
                x_values,
                Some(write_in(&write)),
                next_read.as_ref().map(read_in),
                gx,
                gs,
                layers.dark(layers.finished()),
            );
        }
        carried = Some((
            inferred.state,
            next_dec.carried(),
            next_dec.h.shallow_clone(),
        ));
        segments.push(Segment {
            enc_in,
            enc: inferred.saved,
            dec: next_dec.saved,
            write,
            next_read,
        });
    }

    // L_X = BCE(x, sigmoid(c^T)) summed over each video's pixels; the objective's
    // gradient in c^T is (sigmoid(c^T) - x) / B (over the finished layers:
    // layers.rs).
    let scale = 1.0 / batch as f32;
    let per_frame = if layered {
        layers.bce(scale, canvas, x_values, dcanvas)
    } else {
        kernels.bce(canvas, x_values, scale, dcanvas)
    };
    let per_video: Vec<f32> = per_frame
        .chunks(n as usize)
        .map(|f| f.iter().map(|&v| v as f64).sum::<f64>() as f32)
        .collect();
    let reconstruction = Tensor::from_slice(&per_video);
    let layer_targets = layers.target_sums().map(|sums| {
        let per_video: Vec<f32> = sums
            .chunks(n as usize)
            .map(|f| f.iter().map(|&v| v as f64).sum::<f64>() as f32)
            .collect();
        Tensor::from_slice(&per_video)
    });

    // Backward, last step first.
    let mut after: Option<ReadGrads> = None;
    let (mut write_grads, _) = kernels.backward(
        steps,
        dcanvas,
        x_values,
        Some(write_in(&segments[steps - 1].write)),
        None,
        &[],
        &[],
        None,
    );
    // The gradient of c^0 from the first canvas of every layer but the last.
    let mut d_c0 = 0f64;
    let glimpse_size = per_step / batch as usize;
    let kl_scale = kl_weight / batch as f64;
    let mut enc_after: Option<recurrent::State> = None;
    let mut dec_after: Option<Vec<recurrent::State>> = None;
    // d h_dec^t from step t + 1's encoder input.
    let mut dh_dec_after: Option<Tensor> = None;
    let mut enc_grads = Vec::with_capacity(steps);
    let mut dec_grads = Vec::with_capacity(steps);
    let mut d_writes = Vec::with_capacity(steps);
    // d raw of the read windows made from h_dec^t, t = T - 2 down to 0.
    let mut d_reads = Vec::with_capacity(steps);
    for t in (0..steps).rev() {
        let seg = &segments[t];
        let wg: WriteGrads = write_grads.take().expect("the write's gradients");
        let (d_write, d_patch) =
            decoder
                .write
                .write_backward(&seg.write, grid_grads(&wg.grid), &wg.patch);
        let mut dh_dec = dh_dec_after.take();
        if let (Some(r), Some(g)) = (&seg.next_read, after.take()) {
            let d_read = reader.read_backward(r, grid_grads(&g.grid), &g.gamma);
            let dh = tch::no_grad(|| d_read.matmul(&model.encoder.read_window.w.tr()));
            dh_dec = Some(match dh_dec {
                Some(d) => d + dh,
                None => dh,
            });
            d_reads.push(d_read);
        }
        let mut dec_step = decoder.backward(
            &seg.dec,
            (&d_write, d_patch),
            dh_dec.as_ref(),
            dec_after.take(),
            &mut d_features,
        );
        let mut enc_step = encoder.backward(&seg.enc, &dec_step.dz, kl_scale, enc_after.take());
        // The encoder's input: d[R^t, h_dec^{t-1}, S] = d(x W_x) W_x^T.
        let d_in = times_wx_t.times(&enc_step.d_product);
        if t > 0 {
            dh_dec_after = Some(d_in.narrow(1, 2 * glimpse_size as i64, c.dec_size));
        }
        // S's part of the input, where the encoder reads it (encoder_input).
        if s.is_some() && c.encoder_caption {
            let at = 2 * glimpse_size as i64 + c.dec_size;
            let d = d_in.narrow(1, at, d_in.size()[1] - at);
            d_features[0] = Some(match d_features[0].take() {
                Some(sum) => sum + d,
                None => d.copy(),
            });
        }
        enc_after = enc_step.carry.take();
        dec_after = dec_step.carry.take();
        enc_grads.push(enc_step);
        dec_grads.push(dec_step);
        d_writes.push(d_write);
        // R^t = [read(x), read(x) - read(sigmoid(c))]: the kernels' glimpse gradients.
        let d_in = Vec::<f32>::try_from(
            &d_in
                .narrow(1, 0, 2 * glimpse_size as i64)
                .contiguous()
                .view([-1]),
        )
        .expect("a float tensor on the CPU");
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
        let write = (t > 0).then(|| write_in(&segments[t - 1].write));
        let read = if t > 0 {
            segments[t - 1].next_read.as_ref().map(read_in)
        } else {
            Some(read_in(&first_read))
        };
        // Step t's layer: its object's. Only models on layers finish layers, so
        // for the others dark_grad is None whatever the object.
        let o = c.object_of_step(t as i64).unwrap_or(0) as usize;
        let (wg, rg) = if layered && c.starts_block(t as i64) {
            // This step's read is of a new layer, the write before it ended one.
            let dark = layers.dark_grad(o);
            let slot = layer_read(o);
            let (_, rg) = kernels.backward(slot, dcanvas, x_values, None, read, &dgx, &dgs, dark);
            d_c0 += kernels.sum(dcanvas);
            layers.finish_grad(o, scale, dcanvas);
            let (wg, _) = kernels.backward(t, dcanvas, x_values, write, None, &[], &[], None);
            (wg, rg)
        } else {
            let dark = layers.dark_grad(o);
            kernels.backward(t, dcanvas, x_values, write, read, &dgx, &dgs, dark)
        };
        write_grads = wg;
        after = rg;
    }
    // The first read's window.
    if let Some(g) = after.take() {
        d_reads.push(reader.read_backward(&first_read, grid_grads(&g.grid), &g.gamma));
    }
    // Every weight's gradient over all steps, in step order.
    enc_grads.reverse();
    dec_grads.reverse();
    d_writes.reverse();
    d_reads.reverse();
    let mut rest = Tensor::zeros([], (Kind::Float, Device::Cpu));
    // W_x: sum_t (x^t)^T d(x^t W_x).
    let enc_in: Vec<&Tensor> = segments.iter().map(|s| &s.enc_in).collect();
    let d_product: Vec<&Tensor> = enc_grads.iter().map(|g| &g.d_product).collect();
    let (enc_in, d_product) = (Tensor::cat(&enc_in, 0), Tensor::cat(&d_product, 0));
    let mut wx_grad = model.encoder.lstm.wx.grad();
    if wx_grad.defined() {
        // Added in place: W_x is the largest weight (2,320 x 1,024).
        tch::no_grad(|| {
            let _ = wx_grad.addmm_(&enc_in.tr(), &d_product);
        });
    } else {
        // The first step: W_x has no gradient yet, so autograd makes it.
        rest += (&model.encoder.lstm.wx * enc_in.tr().matmul(&d_product)).sum(Kind::Float);
    }
    let enc_saved: Vec<&recurrent::EncoderSaved> = segments.iter().map(|s| &s.enc).collect();
    let dec_saved: Vec<&recurrent::DecoderSaved> = segments.iter().map(|s| &s.dec).collect();
    let writes: Vec<&WindowValues> = segments.iter().map(|s| &s.write).collect();
    let reads: Vec<&WindowValues> = std::iter::once(&first_read)
        .chain(segments.iter().filter_map(|s| s.next_read.as_ref()))
        .collect();
    let grads = encoder
        .weight_grads(&enc_saved, &enc_grads)
        .into_iter()
        .chain(decoder.weight_grads(&dec_saved, &dec_grads, &writes, &d_writes))
        .chain(reader.weight_grads(&reads, &d_reads));
    for (w, g) in grads {
        add_grad(w, &g, &mut rest);
    }
    // The caption features' graph and c^0.
    if let Some(full) = &s_full {
        for (f, g) in feature_tensors(full).into_iter().zip(&d_features) {
            if let Some(g) = g {
                rest += (f * g).sum(Kind::Float);
            }
        }
    }
    if let Some(c0) = &c0 {
        rest += (c0 * (kernels.sum(dcanvas) + d_c0)).sum(Kind::Float);
    }
    kernels.return_canvases(canvases);
    if rest.requires_grad() {
        rest.backward();
    }
    Loss {
        reconstruction,
        kl,
        log_q_over_p,
        layer_targets,
    }
}
