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
/// draw order, layers inferred in turn for two objects only (the Baseline's
/// temporal windows, the unstable rows of older models, colour, other sizes
/// and three or more objects' layers in turn train on the plain step).
pub fn supported(c: &ModelConfig) -> bool {
    c.variant != Variant::Baseline
        && (c.draw_order != DrawOrder::LayersInterleaved
            || !c.layered()
            || c.objects_in_turn() == Some(2))
        && c.stable_filterbank
        && c.channels == 1
        && FusedCanvas::supports(c.height, c.width, c.read_k, c.write_k)
}

pub(super) fn grid(v: &WindowValues) -> Grid<'_> {
    let [g_row, g_col, delta, sigma2, _] = &v.values;
    Grid {
        g_row,
        g_col,
        delta,
        sigma2,
    }
}

pub(super) fn write_in(v: &WindowValues) -> Write<'_> {
    Write {
        grid: grid(v),
        patch: &v.values[4],
    }
}

pub(super) fn read_in(v: &WindowValues) -> Read<'_> {
    Read {
        grid: grid(v),
        gamma: &v.values[4],
    }
}

pub(super) fn grid_grads(g: &super::GridGrads) -> [&[f32]; 4] {
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

/// What both orders of the step set up before their first drawing step and
/// add up after their last: the recurrent half's layers, W_x packed for the T
/// steps, the caption features (detached: their graph runs back once, after
/// the last step), c^0, and the weights' gradients over all steps.
pub(super) struct Setup<'m> {
    pub model: &'m SyncDraw,
    pub encoder: Encoder<'m>,
    pub decoder: Decoder<'m>,
    pub reader: WindowLayer<'m>,
    pub batch: i64,
    /// Values of one step's glimpse over the batch, B N K K.
    pub per_step: usize,
    /// h_dec before a layer's first step.
    pub h0: Tensor,
    times_wx: PackedWeights,
    times_wx_t: PackedWeights,
    s_full: Option<CaptionFeatures<Tensor>>,
    pub s: Option<CaptionFeatures<Tensor>>,
    pub features: Option<Vec<Tensor>>,
    c0: Option<Tensor>,
    /// c^0 as a number (0 where the model has no learned initial logit).
    pub c0_value: f32,
}

/// What the steps of a batch kept and handed back, for the weights'
/// gradients: the forward's values in the order of the steps, the
/// gradients as the backward made them, last step first (a read's gradient
/// at its read's place from the end).
#[derive(Default)]
pub(super) struct Recorded<'a> {
    pub enc_in: Vec<&'a Tensor>,
    pub enc: Vec<&'a recurrent::EncoderSaved>,
    pub enc_grads: Vec<recurrent::EncoderGrads>,
    pub dec: Vec<&'a recurrent::DecoderSaved>,
    pub dec_grads: Vec<recurrent::DecoderGrads>,
    pub writes: Vec<&'a WindowValues>,
    pub d_writes: Vec<Tensor>,
    pub reads: Vec<&'a WindowValues>,
    pub d_reads: Vec<Tensor>,
}

/// A contiguous f32 CPU tensor's values.
pub(super) fn values_of(t: &Tensor) -> &[f32] {
    assert!(
        t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous(),
        "a contiguous f32 tensor on the CPU"
    );
    // SAFETY: checked above: `t` holds `numel` contiguous f32 values in CPU
    // memory, borrowed as long as the slice lives; nothing writes them then.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) }
}

/// Each object's video of `videos` [B, objects, N, A, B], as the kernels
/// take a canvas ([frames, A, A] values).
pub(super) fn object_videos(videos: &Tensor) -> Vec<Vec<f32>> {
    (0..videos.size()[1])
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
        .collect()
}

/// Sums of `n` consecutive frames' values: per video.
pub(super) fn per_video(per_frame: &[f32], n: usize) -> Tensor {
    let sums: Vec<f32> = per_frame
        .chunks(n)
        .map(|f| f.iter().map(|&v| v as f64).sum::<f64>() as f32)
        .collect();
    Tensor::from_slice(&sums)
}

impl<'a> Recorded<'a> {
    /// A step's encoder input, encoder and decoder values and write window,
    /// in the order of the steps.
    pub fn forward(
        &mut self,
        enc_in: &'a Tensor,
        enc: &'a recurrent::EncoderSaved,
        dec: &'a recurrent::DecoderSaved,
        write: &'a WindowValues,
    ) {
        self.enc_in.push(enc_in);
        self.enc.push(enc);
        self.dec.push(dec);
        self.writes.push(write);
    }
}

impl<'m> Setup<'m> {
    /// The setup of a batch of `batch` videos, with the caption ids
    /// `caption` (none without captions); returns the features' gradient
    /// slots too, one per feature tensor, none yet.
    pub fn new(
        model: &'m SyncDraw,
        batch: i64,
        caption: Option<&Tensor>,
    ) -> (Self, Vec<Option<Tensor>>) {
        let c = &model.config;
        let be = &mut TchBackend::new(Device::Cpu);
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
        let d_features = (0..features.as_ref().map_or(0, Vec::len))
            .map(|_| None)
            .collect();
        // c^0: zero as in the paper, or the learned initial logit.
        let c0 = model.decoder.canvas0.as_ref().map(Tensor::shallow_clone);
        let c0_value = c0.as_ref().map_or(0.0, |t| t.double_value(&[0]) as f32);
        let setup = Self {
            model,
            encoder: Encoder::new(model),
            decoder: Decoder::new(model),
            reader: WindowLayer::new(&model.encoder.read_window, Geometry::of(c, c.read_k)),
            batch,
            per_step: (batch * c.frames * c.read_k * c.read_k) as usize,
            h0: Tensor::zeros([batch, c.dec_size], (Kind::Float, Device::Cpu)),
            // x W_x and d(x W_x) W_x^T from W_x packed once for the T steps.
            times_wx: PackedWeights::new(&model.encoder.lstm.wx, batch, false),
            times_wx_t: PackedWeights::new(&model.encoder.lstm.wx, batch, true),
            s_full,
            s,
            features,
            c0,
            c0_value,
        };
        (setup, d_features)
    }

    /// The encoder's input [R^t, h_dec^{t-1}, S] (eq. 7, 12) from the
    /// kernels' glimpses [read(x), read(video shown)], and its product x W_x.
    pub fn encoder_input(&self, glimpse: &[Vec<f32>; 2], h_dec_prev: &Tensor) -> (Tensor, Tensor) {
        let c = &self.model.config;
        let enc_in = tch::no_grad(|| {
            let [r_x, r_shown] = glimpse
                .each_ref()
                .map(|g| Tensor::from_slice(g).view([self.batch, -1]));
            let r_hat = &r_x - r_shown;
            encoder_input(c, [&r_x, &r_hat], h_dec_prev, self.s.as_ref())
        });
        let product = self.times_wx.times(&enc_in);
        (enc_in, product)
    }

    /// The caption features each decoder LSTM reads at decoder step t (none
    /// without captions).
    pub fn slots(&self, t: usize) -> Option<Vec<usize>> {
        self.s
            .as_ref()
            .map(|s| feature_indices(&self.model.config, s, t))
    }

    /// Back through the encoder's input from the gradient of its product,
    /// d(x W_x): adds S's part to `d_features` (where the encoder reads the
    /// caption) and returns d h_dec^{t-1} and the gradients of the two
    /// glimpses, [read(x), read(video shown)] (R^t = [read(x), read(x) -
    /// read(shown)]).
    pub fn input_grads(
        &self,
        d_product: &Tensor,
        d_features: &mut [Option<Tensor>],
    ) -> (Tensor, [Vec<f32>; 2]) {
        let c = &self.model.config;
        let d_in = self.times_wx_t.times(d_product);
        let glimpse_size = self.per_step / self.batch as usize;
        let dh_dec = d_in.narrow(1, 2 * glimpse_size as i64, c.dec_size);
        if self.s.is_some() && c.encoder_caption {
            let at = 2 * glimpse_size as i64 + c.dec_size;
            let d = d_in.narrow(1, at, d_in.size()[1] - at);
            d_features[0] = Some(match d_features[0].take() {
                Some(sum) => sum + d,
                None => d.copy(),
            });
        }
        let d_in = Vec::<f32>::try_from(
            &d_in
                .narrow(1, 0, 2 * glimpse_size as i64)
                .contiguous()
                .view([-1]),
        )
        .expect("a float tensor on the CPU");
        let (mut dgx, mut dgs) = (vec![0f32; self.per_step], vec![0f32; self.per_step]);
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
        (dh_dec, [dgx, dgs])
    }

    /// d h_dec from a read window's raw gradient (the window is a linear
    /// layer of h_dec).
    pub fn read_dh(&self, d_read: &Tensor) -> Tensor {
        tch::no_grad(|| d_read.matmul(&self.model.encoder.read_window.w.tr()))
    }

    /// Adds every weight's gradient over all steps (`rec`), the caption
    /// features' (`d_features`, through their graph) and c^0's (`d_c0`, the
    /// summed gradient of every layer's first canvas) to the parameters'.
    pub fn finish(&self, mut rec: Recorded, d_features: &[Option<Tensor>], d_c0: f64) {
        let model = self.model;
        // The gradients in the order of the steps.
        rec.enc_grads.reverse();
        rec.dec_grads.reverse();
        rec.d_writes.reverse();
        rec.d_reads.reverse();
        let mut rest = Tensor::zeros([], (Kind::Float, Device::Cpu));
        // W_x: sum_t (x^t)^T d(x^t W_x).
        let d_product: Vec<&Tensor> = rec.enc_grads.iter().map(|g| &g.d_product).collect();
        let (enc_in, d_product) = (Tensor::cat(&rec.enc_in, 0), Tensor::cat(&d_product, 0));
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
        let grads = self
            .encoder
            .weight_grads(&rec.enc, &rec.enc_grads)
            .into_iter()
            .chain(
                self.decoder
                    .weight_grads(&rec.dec, &rec.dec_grads, &rec.writes, &rec.d_writes),
            )
            .chain(self.reader.weight_grads(&rec.reads, &rec.d_reads));
        for (w, g) in grads {
            add_grad(w, &g, &mut rest);
        }
        // The caption features' graph and c^0.
        if let Some(full) = &self.s_full {
            for (f, g) in feature_tensors(full).into_iter().zip(d_features) {
                if let Some(g) = g {
                    rest += (f * g).sum(Kind::Float);
                }
            }
        }
        if let Some(c0) = &self.c0 {
            rest += (c0 * d_c0).sum(Kind::Float);
        }
        if rest.requires_grad() {
            rest.backward();
        }
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
    stats: Option<&mut WindowStats>,
) -> Loss {
    let c = &model.config;
    assert!(supported(c), "the fused step does not run this model");
    assert_eq!(x.device(), Device::Cpu, "the fused step runs on the CPU");
    let x = x.to_kind(Kind::Float).contiguous();
    let (setup, d_features) = Setup::new(model, x.size()[0], caption);
    if c.layered() && c.draw_order == DrawOrder::LayersInterleaved {
        let targets = targets.map(|(videos, w)| (object_videos(videos), w as f32));
        return super::in_turn::loss_and_backward(
            &setup, d_features, kernels, &x, eps, kl_weight, targets, stats,
        );
    }
    in_blocks(
        &setup, d_features, kernels, &x, eps, kl_weight, targets, stats,
    )
}

/// [`loss_and_backward`] with the steps in decoder order: one canvas, or
/// layers drawn one after another (a write that ends a layer and the next
/// step's read of a new one are two calls of the kernels).
#[allow(clippy::too_many_arguments)]
fn in_blocks(
    setup: &Setup,
    mut d_features: Vec<Option<Tensor>>,
    kernels: &mut FusedCanvas,
    x: &Tensor,
    eps: &Tensor,
    kl_weight: f64,
    targets: Option<(&Tensor, f64)>,
    mut stats: Option<&mut WindowStats>,
) -> Loss {
    let Setup {
        model,
        encoder,
        decoder,
        reader,
        batch,
        per_step,
        ..
    } = setup;
    let (model, batch, per_step) = (*model, *batch, *per_step);
    let c = &model.config;
    let n = c.frames;
    let steps = c.timesteps as usize;
    let x_values = values_of(x);
    let c0_value = setup.c0_value;
    let frames = (batch * n) as usize;
    let mut canvases = kernels.take_canvases(frames, c0_value);
    let Canvases { canvas, dcanvas } = &mut canvases;
    // Objects on canvas layers of their own (layers.rs).
    let layered = c.layered();
    let (threads, per) = (kernels.threads, kernels.frames_per_chunk(frames));
    let mut layers = layers::Layers::new(layered, frames, threads, per);
    if let Some((videos, weight)) = targets {
        assert!(layered, "layer targets need a model on layers");
        layers = layers.with_targets(object_videos(videos), weight as f32);
    }
    // The kernels' slot of the read that starts layer o > 0 (a call of its
    // own, after the end of the layer before).
    let layer_read = |o: usize| steps + o;
    let (rgeo, wgeo) = (Geometry::of(c, c.read_k), Geometry::of(c, c.write_k));

    // Forward: the read of step 0 from h_dec = 0, then each step's recurrent
    // half and the kernels of its write and of the next step's read.
    let h0 = &setup.h0;
    let first_read = reader.read(h0);
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
        let (enc_in, product) = setup.encoder_input(&glimpse, &h_dec_prev);
        let inferred = encoder.forward(&product, enc_prev, &eps.select(1, t as i64));
        kl += &inferred.kl;
        log_q_over_p += &inferred.log_q_over_p;
        let slots = setup.slots(t);
        let (next_dec, write) = decoder.forward(
            &inferred.z,
            setup.features.as_deref().zip(slots.as_deref()),
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
    let reconstruction = per_video(&per_frame, n as usize);
    let layer_targets = layers.target_sums().map(|sums| per_video(sums, n as usize));

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
    let kl_scale = kl_weight / batch as f64;
    let mut enc_after: Option<recurrent::State> = None;
    let mut dec_after: Option<Vec<recurrent::State>> = None;
    // d h_dec^t from step t + 1's encoder input.
    let mut dh_dec_after: Option<Tensor> = None;
    let mut rec = Recorded::default();
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
            let dh = setup.read_dh(&d_read);
            dh_dec = Some(match dh_dec {
                Some(d) => d + dh,
                None => dh,
            });
            rec.d_reads.push(d_read);
        }
        let mut dec_step = decoder.backward(
            &seg.dec,
            (&d_write, d_patch),
            dh_dec.as_ref(),
            dec_after.take(),
            &mut d_features,
        );
        let mut enc_step = encoder.backward(&seg.enc, &dec_step.dz, kl_scale, enc_after.take());
        let (dh_in, [dgx, dgs]) = setup.input_grads(&enc_step.d_product, &mut d_features);
        if t > 0 {
            dh_dec_after = Some(dh_in);
        }
        enc_after = enc_step.carry.take();
        dec_after = dec_step.carry.take();
        rec.enc_grads.push(enc_step);
        rec.dec_grads.push(dec_step);
        rec.d_writes.push(d_write);
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
        rec.d_reads
            .push(reader.read_backward(&first_read, grid_grads(&g.grid), &g.gamma));
    }
    for s in &segments {
        rec.forward(&s.enc_in, &s.enc, &s.dec, &s.write);
    }
    rec.reads = std::iter::once(&first_read)
        .chain(segments.iter().filter_map(|s| s.next_read.as_ref()))
        .collect();
    d_c0 += kernels.sum(dcanvas);
    kernels.return_canvases(canvases);
    setup.finish(rec, &d_features, d_c0);
    Loss {
        reconstruction,
        kl,
        log_q_over_p,
        layer_targets,
    }
}
