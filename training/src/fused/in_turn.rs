//! The fused step for two objects on layers inferred in turn
//! (`DrawOrder::LayersInterleaved`): the order of `SyncDraw::run`, in the
//! kernels.
//!
//! Each object's layer keeps its canvas, its decoder state and its last h_dec
//! while the other's step is drawn; the encoder's state runs on through the
//! steps in inference order. A step of layer o reads with the window of its
//! own last h_dec (zero at its first step) the two layers composed, the other
//! as it stands: D = exp(-softplus(c_other)) of the light passes it
//! ([`layers::dark_of`], once the other layer has drawn), then writes to its
//! own canvas. As the layers alternate, a step's write and the next step's
//! read are of different canvases, so each is a call of the kernels of its
//! own (slot 2i for step i's read, 2i + 1 for its write).
//!
//! Backward, last step first: each layer's canvas has its own gradient, and
//! d h_dec waits per layer for the step before of the same layer (the reader
//! of h_dec is that layer's next step, not the next step in order). A read's
//! gradient in done goes to the other canvas times 1 - D
//! ([`layers::dark_grad_to`]).
use super::layers;
use super::recurrent::{self, WindowValues};
use super::step::{self, Recorded, Setup};
use super::FusedCanvas;
use crate::model::filterbank::Geometry;
use crate::model::syncdraw::Loss;
use crate::model::window_stats::WindowStats;
use tch::{Device, Kind, Tensor};

/// One step of inference, as its backward needs it.
struct Segment {
    /// Its layer (0 or 1).
    layer: usize,
    /// Whether the layer drew before this step (its h_dec then came from
    /// that step, so its gradient goes back there).
    follows: bool,
    /// The read window of h_dec before the step, and whether the other layer
    /// lit the read (its D in the step's dark buffer).
    read: WindowValues,
    lit: bool,
    enc_in: Tensor,
    enc: recurrent::EncoderSaved,
    dec: recurrent::DecoderSaved,
    write: WindowValues,
}

/// A layer's decoder state and last h_dec, kept between its steps.
type Waiting = (Vec<recurrent::State>, Tensor);

/// `step::loss_and_backward` for a model whose two layers are inferred in
/// turn; `targets` are each object's video ([frames, A, A] values) and the
/// layer-target weight.
#[allow(clippy::too_many_arguments)]
pub(super) fn loss_and_backward(
    setup: &Setup,
    mut d_features: Vec<Option<Tensor>>,
    kernels: &mut FusedCanvas,
    x: &Tensor,
    eps: &Tensor,
    kl_weight: f64,
    targets: Option<(Vec<Vec<f32>>, f32)>,
    mut stats: Option<&mut WindowStats>,
) -> Loss {
    let (model, batch, per_step) = (setup.model, setup.batch, setup.per_step);
    let (encoder, decoder, reader) = (&setup.encoder, &setup.decoder, &setup.reader);
    let c = &model.config;
    assert_eq!(c.objects_in_turn(), Some(2), "two objects' layers in turn");
    let n = c.frames as usize;
    let frames = batch as usize * n;
    let x_values = step::values_of(x);
    let (threads, per) = (kernels.threads, kernels.frames_per_chunk(frames));
    let (rgeo, wgeo) = (Geometry::of(c, c.read_k), Geometry::of(c, c.write_k));
    let order = c.inference_order();
    let layer_of = |t: i64| c.object_of_step(t).unwrap_or(0) as usize;

    // Both layers' canvases and gradients; the second layer's, every read's
    // D and done's gradient (first the BCE's room for done) in buffers kept
    // from batch to batch (the BCE below writes every canvas gradient value,
    // dark_of every D).
    let mut buffers = kernels.take_buffers(order.len() + 3, frames);
    let mut darks = buffers.split_off(3);
    let [canvas, dcanvas, mut d_done] = <[Vec<f32>; 3]>::try_from(buffers)
        .unwrap_or_else(|_| unreachable!("three buffers asked for"));
    let mut canvases = [
        kernels.take_canvases(frames, setup.c0_value),
        super::Canvases { canvas, dcanvas },
    ];
    kernels.fill(&mut canvases[1].canvas, setup.c0_value);
    let mut drawn = [false; 2];
    let mut waiting: [Option<Waiting>; 2] = [None, None];
    let mut enc_state: Option<recurrent::State> = None;
    let mut glimpse = [vec![0f32; per_step], vec![0f32; per_step]];
    let mut segments: Vec<Segment> = Vec::with_capacity(order.len());
    let zeros = || Tensor::zeros([batch], (Kind::Float, Device::Cpu));
    let (mut kl, mut log_q_over_p) = (zeros(), zeros());
    for (i, &t) in order.iter().enumerate() {
        let o = layer_of(t);
        let (dec_prev, h_dec_prev) = match waiting[o].take() {
            Some((d, h)) => (Some(d), h),
            None => (None, setup.h0.shallow_clone()),
        };
        let read = reader.read(&h_dec_prev);
        if let Some(stats) = stats.as_deref_mut() {
            stats.read.add(&reader.window(&read), rgeo);
        }
        let lit = drawn[1 - o];
        if lit {
            layers::dark_of(threads, per, &canvases[1 - o].canvas, &mut darks[i]);
        }
        let [gx, gs] = &mut glimpse;
        kernels.forward(
            2 * i,
            &mut canvases[o].canvas,
            x_values,
            None,
            Some(step::read_in(&read)),
            gx,
            gs,
            lit.then_some(darks[i].as_slice()),
        );
        let (enc_in, product) = setup.encoder_input(&glimpse, &h_dec_prev);
        let inferred = encoder.forward(&product, enc_state.take(), &eps.select(1, t));
        kl += &inferred.kl;
        log_q_over_p += &inferred.log_q_over_p;
        let slots = setup.slots(t as usize);
        let follows = dec_prev.is_some();
        let (next_dec, write) = decoder.forward(
            &inferred.z,
            setup.features.as_deref().zip(slots.as_deref()),
            dec_prev,
        );
        if let Some(stats) = stats.as_deref_mut() {
            stats.write.add(&decoder.write.window(&write), wgeo);
        }
        let [gx, gs] = &mut glimpse;
        let w = Some(step::write_in(&write));
        kernels.forward(
            2 * i + 1,
            &mut canvases[o].canvas,
            x_values,
            w,
            None,
            gx,
            gs,
            None,
        );
        drawn[o] = true;
        waiting[o] = Some((next_dec.carried(), next_dec.h.shallow_clone()));
        enc_state = Some(inferred.state);
        segments.push(Segment {
            layer: o,
            follows,
            read,
            lit,
            enc_in,
            enc: inferred.saved,
            dec: next_dec.saved,
            write,
        });
    }

    // L_X over the two layers composed, from the layer of the last step and
    // the other; with targets, each layer's last canvas against its object.
    let scale = 1.0 / batch as f32;
    let last = segments.last().map_or(0, |s| s.layer);
    let [a, b] = &mut canvases;
    let (mine, other) = if last == 0 { (a, b) } else { (b, a) };
    let per_frame = layers::two_layers_bce(
        threads,
        per,
        scale,
        [&mine.canvas, &other.canvas, x_values],
        [&mut mine.dcanvas, &mut other.dcanvas, &mut d_done],
    );
    let reconstruction = step::per_video(&per_frame, n);
    let layer_targets = targets.map(|(videos, weight)| {
        let mut sums = vec![0f32; frames];
        for (layer, video) in canvases.iter_mut().zip(&videos) {
            let bce = layers::target_bce(threads, per, &layer.canvas, video);
            sums.iter_mut().zip(bce).for_each(|(s, v)| *s += v);
            let w = weight * scale;
            layers::add_target_grad(threads, per, &layer.canvas, video, w, &mut layer.dcanvas);
        }
        step::per_video(&sums, n)
    });

    // Backward, last step first.
    let kl_scale = kl_weight / batch as f64;
    let mut enc_after: Option<recurrent::State> = None;
    let mut dec_after: [Option<Vec<recurrent::State>>; 2] = [None, None];
    // d h_dec of each layer's latest step not yet gone back through.
    let mut dh_after: [Option<Tensor>; 2] = [None, None];
    let mut rec = Recorded::default();
    for (i, seg) in segments.iter().enumerate().rev() {
        let o = seg.layer;
        let (wg, _) = kernels.backward(
            2 * i + 1,
            &mut canvases[o].dcanvas,
            x_values,
            Some(step::write_in(&seg.write)),
            None,
            &[],
            &[],
            None,
        );
        let wg = wg.expect("the write's gradients");
        let (d_write, d_patch) =
            decoder
                .write
                .write_backward(&seg.write, step::grid_grads(&wg.grid), &wg.patch);
        let mut dec_step = decoder.backward(
            &seg.dec,
            (&d_write, d_patch),
            dh_after[o].take().as_ref(),
            dec_after[o].take(),
            &mut d_features,
        );
        let mut enc_step = encoder.backward(&seg.enc, &dec_step.dz, kl_scale, enc_after.take());
        let (dh_in, [dgx, dgs]) = setup.input_grads(&enc_step.d_product, &mut d_features);
        enc_after = enc_step.carry.take();
        dec_after[o] = dec_step.carry.take();
        let dark = if seg.lit {
            kernels.fill(&mut d_done, 0.0);
            Some((darks[i].as_slice(), d_done.as_mut_slice()))
        } else {
            None
        };
        let (_, rg) = kernels.backward(
            2 * i,
            &mut canvases[o].dcanvas,
            x_values,
            None,
            Some(step::read_in(&seg.read)),
            &dgx,
            &dgs,
            dark,
        );
        if seg.lit {
            let d_other = &mut canvases[1 - o].dcanvas;
            layers::dark_grad_to(threads, per, &d_done, &darks[i], d_other);
        }
        let rg = rg.expect("the read's gradients");
        let d_read = reader.read_backward(&seg.read, step::grid_grads(&rg.grid), &rg.gamma);
        if seg.follows {
            dh_after[o] = Some(dh_in + setup.read_dh(&d_read));
        }
        rec.enc_grads.push(enc_step);
        rec.dec_grads.push(dec_step);
        rec.d_writes.push(d_write);
        rec.d_reads.push(d_read);
    }
    for s in &segments {
        rec.forward(&s.enc_in, &s.enc, &s.dec, &s.write);
        rec.reads.push(&s.read);
    }
    // Both layers start at c^0.
    let d_c0 = canvases.iter().map(|l| kernels.sum(&l.dcanvas)).sum();
    let [first, second] = canvases;
    kernels.return_canvases(first);
    darks.extend([second.canvas, second.dcanvas, d_done]);
    kernels.return_buffers(darks);
    setup.finish(rec, &d_features, d_c0);
    Loss {
        reconstruction,
        kl,
        log_q_over_p,
        layer_targets,
    }
}
