//! Adam with global gradient-norm clipping, with state that checkpoints can hold
//! (libtorch's optimizer state is not reachable from tch, so resuming exactly needs
//! our own). Defaults are the paper's: lr 1e-3, beta1 0.5, beta2 0.999, clip 10.
use crate::checkpoint::AdamState;
use tch::{nn::VarStore, Tensor};

#[derive(Debug, Clone, Copy)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global gradient-norm threshold; 0: no clipping.
    pub clip: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
            clip: 10.0,
        }
    }
}

pub struct Adam {
    pub config: AdamConfig,
    pub state: AdamState,
    /// Parameters in a fixed (name) order.
    params: Vec<(String, Tensor)>,
}

impl Adam {
    pub fn new(vs: &VarStore, config: AdamConfig, state: Option<AdamState>) -> Self {
        // Variables that do not require a gradient are held fixed.
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, p)| p.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let mut state = state.unwrap_or_default();
        for (name, p) in &params {
            state
                .entry(name.clone())
                .or_insert_with(|| (p.zeros_like(), p.zeros_like()));
        }
        Self {
            config,
            state,
            params,
        }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Global L2 norm of all gradients, as a scalar tensor on the parameters'
    /// device (reading it would stall a GPU, so the caller decides when to).
    pub fn grad_norm(&self) -> Tensor {
        let sq: Vec<Tensor> = self
            .params
            .iter()
            .map(|(_, p)| p.grad())
            .filter(|g| g.defined())
            .map(|g| g.square().sum(tch::Kind::Float))
            .collect();
        match self.params.first() {
            Some((_, p)) if !sq.is_empty() => Tensor::stack(&sq, 0)
                .sum(tch::Kind::Float)
                .sqrt()
                .to_device(p.device()),
            _ => Tensor::from(0f32),
        }
    }

    /// One update; `step` counts from 1. Gradients are scaled so that their global
    /// norm is at most `clip` (computed as `grad_norm`), unless `clip` is 0.
    pub fn step(&mut self, step: u64, grad_norm: &Tensor) {
        let c = self.config;
        // None: no clipping, and the gradients are used as they are.
        let scale = (c.clip > 0.0).then(|| {
            (grad_norm + 1e-6)
                .reciprocal()
                .g_mul_scalar(c.clip)
                .clamp_max(1.0)
        });
        let bc1 = 1.0 - c.beta1.powi(step as i32);
        let bc2 = 1.0 - c.beta2.powi(step as i32);
        tch::no_grad(|| {
            for (name, p) in &mut self.params {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let g = match &scale {
                    Some(scale) => g * scale,
                    None => g,
                };
                let (m, v) = self.state.get_mut(name).expect("state for every parameter");
                let _ = m.g_mul_scalar_(c.beta1).g_add_(&(&g * (1.0 - c.beta1)));
                let _ = v
                    .g_mul_scalar_(c.beta2)
                    .g_add_(&(g.square() * (1.0 - c.beta2)));
                let update = (&*m / bc1) / ((&*v / bc2).sqrt() + c.eps) * c.lr;
                let _ = p.g_sub_(&update);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    /// Two steps of Adam on one parameter with gradients (3, 4) and then
    /// (30, -40) (norms 5 and 50), computed by hand: with clip 10 the second
    /// gradient is scaled to norm 10 before it reaches the moments, with clip 0
    /// it is not, and the two second updates differ accordingly.
    #[test]
    fn clip_zero_turns_clipping_off_and_clip_scales_large_gradients() {
        let grads = [[3.0f64, 4.0], [30.0, -40.0]];
        let by_hand = |clip: f64| {
            let c = AdamConfig {
                clip,
                ..AdamConfig::default()
            };
            let (mut m, mut v, mut p) = ([0.0f64; 2], [0.0f64; 2], [1.0f64, -1.0]);
            for (t, g) in grads.iter().enumerate() {
                let norm = (g[0] * g[0] + g[1] * g[1]).sqrt();
                let scale = if clip > 0.0 {
                    (clip / (norm + 1e-6)).min(1.0)
                } else {
                    1.0
                };
                let step = (t + 1) as i32;
                for i in 0..2 {
                    let gi = g[i] * scale;
                    m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * gi;
                    v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * gi * gi;
                    let mh = m[i] / (1.0 - c.beta1.powi(step));
                    let vh = v[i] / (1.0 - c.beta2.powi(step));
                    p[i] -= c.lr * mh / (vh.sqrt() + c.eps);
                }
            }
            p
        };
        let trained = |clip: f64| {
            let vs = nn::VarStore::new(Device::Cpu);
            let w = vs
                .root()
                .var_copy("w", &Tensor::from_slice(&[1.0f32, -1.0]));
            let mut adam = Adam::new(
                &vs,
                AdamConfig {
                    clip,
                    ..AdamConfig::default()
                },
                None,
            );
            for (t, g) in grads.iter().enumerate() {
                adam.zero_grad();
                let target = Tensor::from_slice(&[g[0] as f32, g[1] as f32]);
                // d/dw (w . g) = g
                (&w * &target).sum(Kind::Float).backward();
                let norm = adam.grad_norm();
                adam.step(t as u64 + 1, &norm);
            }
            Vec::<f32>::try_from(&w.detach()).expect("two values")
        };
        for clip in [10.0, 0.0] {
            let (want, got) = (by_hand(clip), trained(clip));
            for i in 0..2 {
                assert!(
                    (want[i] - got[i] as f64).abs() < 1e-6,
                    "clip {clip}: {want:?} by hand, {got:?} trained"
                );
            }
        }
        let (clipped, unclipped) = (by_hand(10.0), by_hand(0.0));
        assert!(
            (clipped[0] - unclipped[0]).abs() > 1e-5,
            "the test's gradients do not tell clipping from none"
        );
    }
}
