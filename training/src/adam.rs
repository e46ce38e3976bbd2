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
    in_place: bool,
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
            in_place: true,
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
        // The clipping scale is read only for parameters in CPU memory (reading
        // it would stall a GPU).
        let on_cpu = self.params.iter().any(|(_, p)| in_place(p));
        let update = Update {
            scale: match &scale {
                Some(s) if self.in_place && on_cpu => s.double_value(&[]) as f32,
                _ => 1.0,
            },
            beta1: c.beta1 as f32,
            beta2: c.beta2 as f32,
            bc1: bc1 as f32,
            bc2: bc2 as f32,
            lr: c.lr as f32,
            eps: c.eps as f32,
        };
        let mut chunks = Vec::new();
        tch::no_grad(|| {
            for (name, p) in &mut self.params {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let (m, v) = self.state.get_mut(name).expect("state for every parameter");
                if self.in_place && [&*p, &g, &*m, &*v].iter().all(|t| in_place(t)) {
                    // SAFETY: four distinct contiguous f32 CPU tensors of the
                    // parameter's size (the gradient and the moments have the
                    // parameter's shape), alive until the update below is done
                    // (`self` holds p, m and v; `g` is the parameter's gradient,
                    // which nothing else touches meanwhile). No autograd graph
                    // holds p now: its values change as `g_sub_` would change them.
                    let [p, m, v] = [&*p, &*m, &*v].map(|t| unsafe {
                        std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, t.numel())
                    });
                    let g = unsafe {
                        std::slice::from_raw_parts(g.data_ptr() as *const f32, g.numel())
                    };
                    chunks.extend(
                        p.chunks_mut(CHUNK)
                            .zip(g.chunks(CHUNK))
                            .zip(m.chunks_mut(CHUNK))
                            .zip(v.chunks_mut(CHUNK))
                            .map(|(((p, g), m), v)| (p, g, m, v)),
                    );
                    continue;
                }
                let g = match &scale {
                    Some(scale) => g * scale,
                    None => g,
                };
                let _ = m.g_mul_scalar_(c.beta1).g_add_(&(&g * (1.0 - c.beta1)));
                let _ = v
                    .g_mul_scalar_(c.beta2)
                    .g_add_(&(g.square() * (1.0 - c.beta2)));
                let update = (&*m / bc1) / ((&*v / bc2).sqrt() + c.eps) * c.lr;
                let _ = p.g_sub_(&update);
            }
        });
        let threads = tch::get_num_threads().max(1) as usize;
        crate::fused::threads::for_each_chunk(threads, chunks, |(p, g, m, v)| {
            update.apply(p, g, m, v)
        });
    }

    /// Whether parameters in CPU memory are updated in one pass of our own
    /// (the default) rather than by libtorch's operations (tests compare).
    pub fn update_in_place(&mut self, yes: bool) {
        self.in_place = yes;
    }
}

/// Values per piece of work of the in-place update.
const CHUNK: usize = 1 << 15;

fn in_place(t: &Tensor) -> bool {
    t.device() == tch::Device::Cpu && t.kind() == tch::Kind::Float && t.is_contiguous()
}

/// One step's update of a parameter's values in CPU memory, in one pass: the
/// update that libtorch's operations in [`Adam::step`] make elsewhere (on the
/// GPU), without their seven passes through memory and their temporaries.
#[derive(Clone, Copy)]
struct Update {
    scale: f32,
    beta1: f32,
    beta2: f32,
    bc1: f32,
    bc2: f32,
    lr: f32,
    eps: f32,
}

impl Update {
    /// g' = g scale;  m <- beta1 m + (1 - beta1) g';  v <- beta2 v + (1 - beta2) g'^2;
    /// p <- p - lr (m / bc1) / (sqrt(v / bc2) + eps).
    fn apply(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let u = *self;
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = g * u.scale;
            *m = *m * u.beta1 + g * (1.0 - u.beta1);
            *v = *v * u.beta2 + g * g * (1.0 - u.beta2);
            *p -= *m / u.bc1 / ((*v / u.bc2).sqrt() + u.eps) * u.lr;
        }
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
        let trained = |clip: f64, in_place: bool| {
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
            adam.update_in_place(in_place);
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
        for (clip, in_place) in [(10.0, true), (0.0, true), (10.0, false), (0.0, false)] {
            let (want, got) = (by_hand(clip), trained(clip, in_place));
            for i in 0..2 {
                assert!(
                    (want[i] - got[i] as f64).abs() < 1e-6,
                    "clip {clip}, in place {in_place}: {want:?} by hand, {got:?} trained"
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
