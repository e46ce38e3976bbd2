//! The test-split NLL bound (the paper's Table 1 quantity) and the importance-
//! weighted bound.
use crate::batch::Batcher;
use crate::model::SyncDraw;
use serde::Serialize;
use syncdraw_data::Digits;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, Serialize)]
pub struct EvalResult {
    /// Negative ELBO in nats per video (reconstruction + KL), one z draw per video.
    pub nll: f64,
    pub reconstruction: f64,
    pub kl: f64,
    /// Importance-weighted bound with `iwae_k` samples, nats per video.
    pub iwae: Option<f64>,
    /// The layer-target term (model/canvas.rs `layer_target_loss`, unweighted),
    /// nats per video, where each object's video was given: how far each layer
    /// alone is from drawing its own object. Not part of the bound.
    pub layer_targets: Option<f64>,
    /// The same term with each layer scored against the object it draws best:
    /// the smallest over the ways of giving every layer one object, nats per
    /// video.
    pub layer_targets_best: Option<f64>,
    /// The share of videos whose best way is not caption order: the layer a
    /// caption slot names draws another slot's object.
    pub layers_reassigned: Option<f64>,
    pub iwae_k: Option<usize>,
    pub videos: usize,
    /// Where the NLL goes: L_X per frame and on the ink, KL per step.
    pub parts: Parts,
    /// Every evaluated video's own figures, in split order (`eval
    /// --per-video`).
    #[serde(skip)]
    pub per_video: Vec<VideoScore>,
}

/// One video's bound and layer terms, nats.
#[derive(Debug, Clone, Serialize)]
pub struct VideoScore {
    pub nll: f64,
    pub reconstruction: f64,
    pub kl: f64,
    /// The reconstruction term of each frame.
    pub reconstruction_per_frame: Vec<f64>,
    /// Each layer against the object its caption slot names ([`EvalResult`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_targets: Option<f64>,
    /// Each layer against the object it draws best.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_targets_best: Option<f64>,
}

/// [`crate::model::syncdraw::LossParts`] averaged over the evaluated videos, nats per video.
#[derive(Debug, Clone, Serialize)]
pub struct Parts {
    /// The reconstruction term on the pixels that are on, sum x (-log p); the
    /// rest of it is on the background.
    pub reconstruction_ink: f64,
    /// The part on the background far from the ink (model/syncdraw.rs
    /// `LossParts::far`): the canvas's floor, where nothing is drawn.
    pub reconstruction_far_background: f64,
    /// The reconstruction term of each frame.
    pub reconstruction_per_frame: Vec<f64>,
    /// The KL term of each drawing step.
    pub kl_per_step: Vec<f64>,
}

/// Evaluates the first `limit` videos of `batcher` (all if None). The noise is
/// seeded, so the same checkpoint gives the same numbers. A batch of 0 counts as
/// 1 and `iwae_k` of 0 as None (the CLI refuses both). With `objects`, the
/// digits a binarised split's fixed sample was drawn from, it also takes the
/// layer-target term of a model on layers against each object's video.
pub fn evaluate(
    model: &SyncDraw,
    batcher: &Batcher,
    batch: usize,
    seed: u64,
    iwae_k: Option<usize>,
    limit: Option<usize>,
    objects: Option<&Digits>,
) -> EvalResult {
    let c = &model.config;
    let batch = batch.max(1);
    let iwae_k = iwae_k.filter(|&k| k > 0);
    let n = limit.unwrap_or(batcher.data.len()).min(batcher.data.len());
    let mut iw = 0.0;
    let mut per_video = Vec::with_capacity(n);
    let (mut ink, mut far) = (0.0, 0.0);
    let mut per_frame = Tensor::zeros([c.frames], (Kind::Double, Device::Cpu));
    let mut per_step = Tensor::zeros([c.timesteps], (Kind::Double, Device::Cpu));
    let _guard = tch::no_grad_guard();
    tch::manual_seed(seed as i64);
    let mut start = 0;
    while start < n {
        let idx: Vec<usize> = (start..(start + batch).min(n)).collect();
        let (x, ids) = batcher.batch(&idx);
        let b = idx.len() as i64;
        let eps = Tensor::randn([b, c.timesteps, c.z_dim], (Kind::Float, model.device()));
        let targets = objects.and_then(|d| batcher.fixed_objects(&idx, d));
        let (loss, parts) = model.loss_parts(&x, ids.as_ref(), &eps, targets.as_ref());
        let values = |t: &Tensor| -> Vec<f64> {
            Vec::try_from(t.to_kind(Kind::Double).to(Device::Cpu)).expect("a float tensor")
        };
        let (v_rec, v_kl) = (values(&loss.reconstruction), values(&loss.kl));
        let v_frames = values(&parts.reconstruction.reshape([-1]));
        let layers = parts.layer_costs.as_ref().map(own_and_best);
        let frames = c.frames as usize;
        for (j, (r, k)) in v_rec.into_iter().zip(v_kl).enumerate() {
            let (own, best) = layers
                .as_ref()
                .map_or((None, None), |v| (Some(v[j].0), Some(v[j].1)));
            per_video.push(VideoScore {
                nll: r + k,
                reconstruction: r,
                kl: k,
                reconstruction_per_frame: v_frames[j * frames..(j + 1) * frames].to_vec(),
                layer_targets: own,
                layer_targets_best: best,
            });
        }
        ink += parts.ink.sum(Kind::Double).double_value(&[]);
        far += parts.far.sum(Kind::Double).double_value(&[]);
        let over_videos = |t: &Tensor| {
            t.sum_dim_intlist([0].as_slice(), false, Kind::Double)
                .to(Device::Cpu)
        };
        per_frame += over_videos(&parts.reconstruction);
        per_step += over_videos(&parts.kl);
        if let Some(k) = iwae_k {
            // Each video repeated k times; log w = log p(x|z) + log p(z) - log q(z|x).
            let mut log_w = Vec::with_capacity(k);
            let chunk = (batch / idx.len()).max(1);
            let mut done = 0;
            while done < k {
                let r = chunk.min(k - done) as i64;
                let xr = x.repeat([r, 1, 1, 1]);
                let ir = ids.as_ref().map(|t| t.repeat([r, 1]));
                let eps =
                    Tensor::randn([b * r, c.timesteps, c.z_dim], (Kind::Float, model.device()));
                let l = model.loss(&xr, ir.as_ref(), &eps);
                log_w.push((-(&l.reconstruction) - &l.log_q_over_p).reshape([r, b]));
                done += r as usize;
            }
            let log_w = Tensor::cat(&log_w, 0).to_kind(Kind::Double);
            let bound = log_w.logsumexp([0].as_slice(), false) - (k as f64).ln();
            iw += -bound.sum(Kind::Double).double_value(&[]);
        }
        start += idx.len();
    }
    let nf = n.max(1) as f64;
    let mean = |f: &dyn Fn(&VideoScore) -> f64| per_video.iter().map(f).sum::<f64>() / nf;
    // The layer terms where the videos' objects were given (all or none).
    let layered = per_video.first().is_some_and(|v| v.layer_targets.is_some());
    let of_layers = |f: &dyn Fn(f64, f64) -> f64| {
        layered.then(|| {
            mean(&|v| {
                let (own, best) = (
                    v.layer_targets.unwrap_or(0.0),
                    v.layer_targets_best.unwrap_or(0.0),
                );
                f(own, best)
            })
        })
    };
    EvalResult {
        nll: mean(&|v| v.nll),
        reconstruction: mean(&|v| v.reconstruction),
        kl: mean(&|v| v.kl),
        iwae: iwae_k.map(|_| iw / nf),
        layer_targets: of_layers(&|own, _| own),
        layer_targets_best: of_layers(&|_, best| best),
        layers_reassigned: of_layers(&|own, best| f64::from(u8::from(best < own))),
        iwae_k,
        videos: n,
        parts: Parts {
            reconstruction_ink: ink / nf,
            reconstruction_far_background: far / nf,
            reconstruction_per_frame: per_nats(&per_frame, nf),
            kl_per_step: per_nats(&per_step, nf),
        },
        per_video,
    }
}

/// The entries of a summed [K] tensor divided by the number of videos.
fn per_nats(sum: &Tensor, videos: f64) -> Vec<f64> {
    (0..sum.size()[0])
        .map(|i| sum.double_value(&[i]) / videos)
        .collect()
}

/// For each video of `costs` [B, layers, objects] (layer l against object
/// o): the total with layer l drawing object l (the layer-target term), and
/// the smallest total over the one-to-one ways of giving the layers objects.
/// Both from the same sums, so "smaller" means another way.
fn own_and_best(costs: &Tensor) -> Vec<(f64, f64)> {
    let n = costs.size()[1] as usize;
    let c: Vec<f64> = Vec::try_from(costs.to_kind(Kind::Double).to(Device::Cpu).reshape([-1]))
        .expect("a float tensor");
    let ways = permutations(n);
    c.chunks(n * n)
        .map(|v| {
            let total = |p: &Vec<usize>| {
                p.iter()
                    .enumerate()
                    .map(|(l, &o)| v[l * n + o])
                    .sum::<f64>()
            };
            let own = total(&ways[0]);
            (own, ways.iter().map(total).fold(own, f64::min))
        })
        .collect()
}

/// Every ordering of 0..n, the identity first.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for at in (0..n).rev() {
            let mut q = p.clone();
            q.insert(at, n - 1);
            out.push(q);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_every_ordering_identity_first() {
        let p = permutations(3);
        assert_eq!(p.len(), 6);
        assert_eq!(p[0], vec![0, 1, 2]);
        let mut sorted = p.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 6);
    }

    #[test]
    fn the_best_way_is_the_cheaper_one_per_video() {
        // Video 0: caption order is cheaper (1 + 4 against 3 + 5); video 1:
        // swapped is (2 + 1 against 10 + 10).
        let costs =
            Tensor::from_slice(&[1.0f32, 3.0, 5.0, 4.0, 10.0, 2.0, 1.0, 10.0]).reshape([2, 2, 2]);
        assert_eq!(own_and_best(&costs), vec![(5.0, 5.0), (20.0, 3.0)]);
    }
}
