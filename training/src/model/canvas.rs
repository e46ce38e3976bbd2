//! The canvas (eq. 10) and, for objects drawn on layers of their own
//! (`DrawOrder::Layers`), how the layers make one video.
//!
//! Each layer o is a canvas of logits c_o, accumulated by eq. 10 over its object's
//! block of steps. The video lights a pixel if any layer lights it:
//!   p = 1 - prod_o (1 - sigmoid(c_o)) = 1 - exp(-s),  s = sum_o softplus(c_o),
//! since 1 - sigmoid(c) = exp(-softplus(c)). With one layer this is sigmoid(c_1).
//! Bouncing MNIST's digits are added and clipped at 1; on binary pixels that is
//! this union, and on grey ones it is close to it.
use crate::backend::Backend;
use tch::Tensor;

/// softplus(c) of a finished layer: what it adds to s.
pub fn layer_mass<B: Backend>(be: &mut B, c: &B::Tensor) -> B::Tensor {
    be.softplus(c)
}

/// The shown probability of finished layers (their summed [`layer_mass`],
/// `done`) over the layer being drawn, c: 1 - exp(-(done + softplus(c))).
pub fn composed<B: Backend>(be: &mut B, done: &B::Tensor, c: &B::Tensor) -> B::Tensor {
    let mass = be.softplus(c);
    let s = be.add(done, &mass);
    let neg = be.scale(&s, -1.0);
    let keep = be.exp(&neg);
    let lost = be.scale(&keep, -1.0);
    be.add_scalar(&lost, 1.0)
}

/// The video of finished layers c_o (their last canvases): the union
/// 1 - prod_o (1 - sigmoid(c_o)), computed as 1 - prod_o sigmoid(-c_o) (the same
/// numbers; sigmoid is one cheap vector operation where softplus is not); one
/// layer gives sigmoid(c_1).
pub fn union<B: Backend>(be: &mut B, layers: &[B::Tensor]) -> B::Tensor {
    match layers {
        [one] => be.sigmoid(one),
        _ => {
            let mut off: Option<B::Tensor> = None;
            for c in layers {
                let neg = be.scale(c, -1.0);
                let dark = be.sigmoid(&neg); // 1 - sigmoid(c)
                off = Some(match off {
                    None => dark,
                    Some(o) => be.mul(&o, &dark),
                });
            }
            let off = off.expect("at least one layer");
            let lost = be.scale(&off, -1.0);
            be.add_scalar(&lost, 1.0)
        }
    }
}

/// Binary cross-entropy of `x` under p = 1 - exp(-s) per pixel, for s the summed
/// mass of every layer (reduction: none): -x log p - (1 - x) log(1 - p), with
/// log(1 - p) = -s and log p = log(-expm1(-s)), both stable. s is kept above
/// 1e-12, where p ~ s would be 0.
pub fn layered_bce(s: &Tensor, x: &Tensor) -> Tensor {
    x * layered_neg_log_p(s) + (1.0 - x) * s.clamp_min(1e-12)
}

/// -log p per pixel under p = 1 - exp(-s) ([`layered_bce`]'s ink term).
pub fn layered_neg_log_p(s: &Tensor) -> Tensor {
    s.clamp_min(1e-12).neg().expm1().neg().log().neg()
}

/// The layer-target term (`train --layer-targets`): the cross-entropy of every
/// layer's last canvas c_o, alone, against its object's video x_o, summed over
/// pixels and layers, [B]. `layers` are the c_o in drawing order, [B, N, A, B]
/// each; `targets` the objects' videos in caption order, [B, O, N, A, B]. The
/// union of the x_o is the video, so layers that reach their targets also
/// reach the video; the term only says which object each layer is to draw.
pub fn layer_target_loss(layers: &[Tensor], targets: &Tensor) -> Tensor {
    layers
        .iter()
        .enumerate()
        .map(|(o, c)| layer_cost(c, &targets.select(1, o as i64)))
        .reduce(|a, b| a + b)
        .expect("at least one layer")
}

/// Every layer against every object, [B, L, O]: entry (l, o) is the
/// cross-entropy of layer l's last canvas alone against object o's video (the
/// terms of [`layer_target_loss`] on the diagonal). `eval` reads from it which
/// object each layer draws.
pub fn layer_costs(layers: &[Tensor], targets: &Tensor) -> Tensor {
    let rows: Vec<Tensor> = layers
        .iter()
        .map(|c| {
            let per_object: Vec<Tensor> = (0..targets.size()[1])
                .map(|o| layer_cost(c, &targets.select(1, o)))
                .collect();
            Tensor::stack(&per_object, 1)
        })
        .collect();
    Tensor::stack(&rows, 1)
}

/// The cross-entropy of one layer's canvas (logits) alone against one
/// object's video, summed over the pixels, [B].
fn layer_cost(c: &Tensor, x_o: &Tensor) -> Tensor {
    c.binary_cross_entropy_with_logits::<Tensor>(x_o, None, None, tch::Reduction::None)
        .reshape([x_o.size()[0], -1])
        .sum_dim_intlist([1].as_slice(), false, tch::Kind::Float)
}
