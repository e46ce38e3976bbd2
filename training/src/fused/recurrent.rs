//! The recurrent half of a drawing step, forward and backward written out in
//! tensor operations outside autograd: the encoder LSTM (eq. 7 / 12) from its
//! input product x W_x, Q(Z^t | h_enc^t), the draw z^t and KL_t (eq. 14); the
//! decoder LSTMs (eq. 8 / 13); the write window and patch of h_dec^t (eq. 9)
//! and the read window of the next step (§3.1.1), each scaled as under eq. 2.
//!
//! As a libtorch graph this half cost more than its arithmetic: by a count of
//! the code, about 170 small operations per drawing step forward (the
//! windows' conversions to the kernels' values included) and an autograd node
//! for most of them backward, on tensors of [B, 1024] values at most. Here each step is a few
//! dozen operations each way, and every weight's gradient is one product over
//! all T steps after the last. The numbers are those of
//! [`crate::model::syncdraw::infer`], `Decoder::step`, `Decoder::write_window`
//! and `filterbank::window` (training/tests/fused.rs compares the loss and
//! every gradient with the plain step, for both decoders, with and without
//! captions, per-frame and shared windows).
use crate::model::config::ModelConfig;
use crate::model::filterbank::{Geometry, Window, BOUNDS};
use crate::model::layers::{LinearParams, LstmParams};
use crate::model::syncdraw::{draw, Draw, SyncDraw};
use tch::{Kind, Tensor};

/// Sum over rows (the batch) of a [R, C] tensor: [C].
fn rows(t: &Tensor) -> Tensor {
    t.sum_dim_intlist([0].as_slice(), false, Kind::Float)
}

/// sum_i a_i^T b_i, over the pairs in order, as one product.
fn products(a: &[&Tensor], b: &[&Tensor]) -> Tensor {
    Tensor::cat(a, 0).tr().matmul(&Tensor::cat(b, 0))
}

/// An LSTM's b and W_h gradients over the steps, in order: each step's
/// (h^{t-1}, none at t = 0; d pre-activations). W_h meets h^{t-1} from t = 1 on.
fn lstm_grads<'a, 's>(
    lstm: &'a LstmParams,
    steps: impl Iterator<Item = (Option<&'s Tensor>, &'s Tensor)>,
) -> Vec<(&'a Tensor, Tensor)> {
    let (prev, d_pre): (Vec<Option<&Tensor>>, Vec<&Tensor>) = steps.unzip();
    let (h_prev, d_later): (Vec<&Tensor>, Vec<&Tensor>) = prev
        .iter()
        .zip(&d_pre)
        .filter_map(|(h, d)| h.map(|h| (h, *d)))
        .unzip();
    let mut out = vec![(&lstm.b, rows(&Tensor::cat(&d_pre, 0)))];
    if !h_prev.is_empty() {
        out.push((&lstm.wh, products(&h_prev, &d_later)));
    }
    out
}

/// h and c of an LSTM.
pub struct State {
    pub h: Tensor,
    pub c: Tensor,
}

impl State {
    fn shallow_clone(&self) -> Self {
        Self {
            h: self.h.shallow_clone(),
            c: self.c.shallow_clone(),
        }
    }
}

/// One LSTM step's values the backward needs.
struct Cell {
    /// The activated gates sigmoid(i), sigmoid(f), tanh(g), sigmoid(o), [B, 4H].
    gates: Tensor,
    tanh_c: Tensor,
    c_prev: Option<Tensor>,
}

/// An LSTM cell (gates in the order input, forget, cell, output) from its
/// pre-activations: the cell's values and (h, c).
fn cell_forward(pre: &Tensor, c_prev: Option<&Tensor>, n: i64) -> (Cell, State) {
    let gates = pre.sigmoid();
    gates
        .narrow(1, 2 * n, n)
        .copy_(&pre.narrow(1, 2 * n, n).tanh());
    let [i, f, g, o] = [0, 1, 2, 3].map(|k| gates.narrow(1, k * n, n));
    let mut c = &i * &g;
    if let Some(p) = c_prev {
        c = &f * p + c;
    }
    let tanh_c = c.tanh();
    let h = &o * &tanh_c;
    let cell = Cell {
        gates,
        tanh_c,
        c_prev: c_prev.map(Tensor::shallow_clone),
    };
    (cell, State { h, c })
}

/// The cell's backward from dh and the dc handed back by the next step: the
/// gradient of the pre-activations, and dc^{t-1} (none at t = 0).
fn cell_backward(
    s: &Cell,
    dh: &Tensor,
    dc_after: Option<&Tensor>,
    n: i64,
) -> (Tensor, Option<Tensor>) {
    let [i, f, g, o] = [0, 1, 2, 3].map(|k| s.gates.narrow(1, k * n, n));
    // h = o tanh(c), c = f c^{t-1} + i g.
    let d_o = dh * &s.tanh_c;
    let mut dc = dh * &o * (1.0 - s.tanh_c.square());
    if let Some(a) = dc_after {
        dc += a;
    }
    let d_f = match &s.c_prev {
        Some(p) => &dc * p,
        None => f.zeros_like(),
    };
    let d_pre = Tensor::cat(
        &[
            &dc * &g * &i * (1.0 - &i),
            d_f * &f * (1.0 - &f),
            &dc * &i * (1.0 - g.square()),
            d_o * &o * (1.0 - &o),
        ],
        1,
    );
    let dc_prev = s.c_prev.as_ref().map(|_| &dc * &f);
    (d_pre, dc_prev)
}

/// The encoder: LSTM weights W_h and b (W_x's products are the caller's), the
/// posterior's linear layer.
pub struct Encoder<'a> {
    lstm: &'a LstmParams,
    posterior: &'a LinearParams,
}

/// What one encoder step's backward needs of its forward.
pub struct EncoderSaved {
    prev: Option<State>,
    cell: Cell,
    h: Tensor,
    mu: Tensor,
    sigma: Tensor,
    eps: Tensor,
}

/// One encoder step's forward.
pub struct EncoderStep {
    pub state: State,
    pub z: Tensor,
    /// KL_t, [B].
    pub kl: Tensor,
    /// log q(z^t) - log p(z^t), [B].
    pub log_q_over_p: Tensor,
    pub saved: EncoderSaved,
}

/// One encoder step's backward: the gradient of its input product x W_x (the
/// gates' pre-activations), of its posterior's output, and of the state
/// before it (none at t = 0).
pub struct EncoderGrads {
    pub d_product: Tensor,
    d_q: Tensor,
    pub carry: Option<State>,
}

impl<'a> Encoder<'a> {
    pub fn new(model: &'a SyncDraw) -> Self {
        Self {
            lstm: &model.encoder.lstm,
            posterior: &model.encoder.posterior,
        }
    }

    /// Step t from its input product x W_x [B, 4H], (h_enc, c)^{t-1} (none at
    /// t = 0: the zero state) and eps^t [B, Z].
    pub fn forward(&self, product: &Tensor, prev: Option<State>, eps: &Tensor) -> EncoderStep {
        tch::no_grad(|| {
            // gates = x W_x + b + h_enc^{t-1} W_h, in Lstm::step_from_product's order.
            let mut pre = product + &self.lstm.b;
            if let Some(p) = &prev {
                pre += p.h.matmul(&self.lstm.wh);
            }
            let (cell, state) = cell_forward(&pre, prev.as_ref().map(|p| &p.c), self.lstm.hidden);
            // Q(Z^t | h_enc^t), z^t = mu + sigma eps^t, KL_t: the model's own.
            let q = state.h.matmul(&self.posterior.w) + &self.posterior.b;
            let Draw {
                mu,
                sigma,
                z,
                kl,
                log_q_over_p,
            } = draw(&q, eps);
            EncoderStep {
                saved: EncoderSaved {
                    prev,
                    cell,
                    h: state.h.shallow_clone(),
                    mu,
                    sigma,
                    eps: eps.shallow_clone(),
                },
                state,
                z,
                kl,
                log_q_over_p,
            }
        })
    }

    /// Step t's backward from d z^t, the weight of KL_t in the objective
    /// (`kl_scale`: the KL weight over the batch size) and the gradients of
    /// h_enc^t and c^t that step t + 1 handed back (none after the last step).
    pub fn backward(
        &self,
        s: &EncoderSaved,
        dz: &Tensor,
        kl_scale: f64,
        after: Option<State>,
    ) -> EncoderGrads {
        tch::no_grad(|| {
            // z = mu + sigma eps and KL_t as above: d mu, d log sigma.
            let d_mu = dz + &s.mu * kl_scale;
            let d_log_sigma = dz * &s.sigma * &s.eps + (s.sigma.square() - 1.0) * kl_scale;
            let d_q = Tensor::cat(&[d_mu, d_log_sigma], 1);
            let mut dh = d_q.matmul(&self.posterior.w.tr());
            if let Some(a) = &after {
                dh += &a.h;
            }
            let dc_after = after.as_ref().map(|a| &a.c);
            let (d_pre, dc_prev) = cell_backward(&s.cell, &dh, dc_after, self.lstm.hidden);
            let carry = dc_prev.map(|c| State {
                h: d_pre.matmul(&self.lstm.wh.tr()),
                c,
            });
            EncoderGrads {
                d_product: d_pre,
                d_q,
                carry,
            }
        })
    }

    /// The weights' gradients over all T steps (in step order), one product
    /// each, with the weights: W_h, b, W_q, b_q.
    pub fn weight_grads(
        &self,
        saved: &[&EncoderSaved],
        grads: &[EncoderGrads],
    ) -> Vec<(&'a Tensor, Tensor)> {
        tch::no_grad(|| {
            let d_q: Vec<&Tensor> = grads.iter().map(|g| &g.d_q).collect();
            let h: Vec<&Tensor> = saved.iter().map(|s| &s.h).collect();
            let steps = saved
                .iter()
                .zip(grads)
                .map(|(s, g)| (s.prev.as_ref().map(|p| &p.h), &g.d_product));
            let mut out = lstm_grads(self.lstm, steps);
            out.push((&self.posterior.w, products(&h, &d_q)));
            out.push((&self.posterior.b, rows(&Tensor::cat(&d_q, 0))));
            out
        })
    }
}

/// An attention window's linear layer and its scaling (filterbank::window).
pub struct WindowLayer<'a> {
    layer: &'a LinearParams,
    geo: Geometry,
}

/// A window for every frame as the kernels take it, and what its backward
/// needs.
pub struct WindowValues {
    /// The layer's input.
    h: Tensor,
    /// (g_row, g_col, sigma^2, delta, gamma) per frame group, [B, F, 5].
    params: Tensor,
    /// d params / d raw, [B, F, 5]: the scaling's derivative times the
    /// bounding squash's, if any.
    slope: Tensor,
    /// Per frame, in the kernels' order: g_row, g_col, delta, sigma^2, then
    /// the read's gamma ([B N]) or the write's patch over gamma ([B N K K]).
    pub values: [Vec<f32>; 5],
    /// gamma per frame, [B N].
    gamma: Vec<f32>,
}

/// Parameter columns of `params` in the kernels' order of the grid: g_row,
/// g_col, delta, sigma^2; then gamma.
const GRID_COLUMNS: [usize; 4] = [0, 1, 3, 2];
const GAMMA: usize = 4;
const COLUMNS: [usize; 5] = {
    let [a, b, c, d] = GRID_COLUMNS;
    [a, b, c, d, GAMMA]
};

impl<'a> WindowLayer<'a> {
    pub fn new(layer: &'a LinearParams, geo: Geometry) -> Self {
        Self { layer, geo }
    }

    /// The window of h: its parameters, with gamma (a read window) as the
    /// kernels' last input.
    pub fn read(&self, h: &Tensor) -> WindowValues {
        tch::no_grad(|| {
            let (params, slope) = self.params(h);
            let values = self.per_frame(&params);
            WindowValues {
                h: h.shallow_clone(),
                params,
                slope,
                gamma: values[4].clone(),
                values,
            }
        })
    }

    /// The write window of h and the patch w [B, N, K, K] divided by its gamma
    /// (eq. 9) as the kernels' last input.
    pub fn write(&self, h: &Tensor, patch: &Tensor) -> WindowValues {
        tch::no_grad(|| {
            let (params, slope) = self.params(h);
            let mut values = self.per_frame(&params);
            let g = self.geo;
            let p = patch.view([-1, g.frames, g.k * g.k]) / params.narrow(2, GAMMA as i64, 1);
            let gamma = std::mem::replace(&mut values[4], to_vec(&p));
            WindowValues {
                h: h.shallow_clone(),
                params,
                slope,
                values,
                gamma,
            }
        })
    }

    /// (g_row, g_col, sigma^2, delta, gamma) [B, F, 5] of h, and their slopes.
    fn params(&self, h: &Tensor) -> (Tensor, Tensor) {
        let g = self.geo;
        let raw = (h.matmul(&self.layer.w) + &self.layer.b).view([-1, g.groups, 5]);
        let device = raw.device();
        let (raw, squash) = if g.bounded {
            let b: Vec<f32> = [0usize, 0, 1, 2, 3].iter().map(|&i| BOUNDS[i]).collect();
            let inv: Vec<f32> = b.iter().map(|b| 1.0 / b).collect();
            let b = Tensor::from_slice(&b).view([1, 1, 5]).to_device(device);
            let inv = Tensor::from_slice(&inv).view([1, 1, 5]).to_device(device);
            let tanh = (raw * inv).tanh();
            let squash = 1.0 - tanh.square();
            (tanh * b, Some(squash))
        } else {
            (raw, None)
        };
        let k_den = (g.k - 1).max(1) as f64;
        let (row_scale, col_scale) = ((g.height + 1) as f64 / 2.0, (g.width + 1) as f64 / 2.0);
        let delta_scale = (g.height.max(g.width) - 1) as f64 / k_den;
        let col = |i: i64| raw.narrow(2, i, 1);
        let (g_row, g_col) = ((col(0) + 1.0) * row_scale, (col(1) + 1.0) * col_scale);
        let (sigma2, delta, gamma) = (col(2).exp(), col(3).exp() * delta_scale, col(4).exp());
        let ones = g_row.ones_like();
        let slope = Tensor::cat(
            &[
                &ones * row_scale,
                &ones * col_scale,
                sigma2.shallow_clone(),
                delta.shallow_clone(),
                gamma.shallow_clone(),
            ],
            2,
        );
        let slope = match squash {
            Some(s) => slope * s,
            None => slope,
        };
        let params = Tensor::cat(&[g_row, g_col, sigma2, delta, gamma], 2);
        (params, slope)
    }

    /// The parameters for every frame, [B N] each, in the kernels' order
    /// (a shared window's values repeated over the frames).
    fn per_frame(&self, params: &Tensor) -> [Vec<f32>; 5] {
        let g = self.geo;
        let all = to_vec(params);
        let (frames, groups) = (g.frames as usize, g.groups as usize);
        let batch = all.len() / (groups * 5);
        COLUMNS.map(|i| {
            let mut out = Vec::with_capacity(batch * frames);
            for b in 0..batch {
                for f in 0..frames {
                    let group = if groups == 1 { 0 } else { f };
                    out.push(all[(b * groups + group) * 5 + i]);
                }
            }
            out
        })
    }

    /// The window as `filterbank::window` gives it, for the window statistics.
    pub fn window(&self, w: &WindowValues) -> Window<Tensor> {
        let col = |i: i64| w.params.narrow(2, i, 1);
        Window {
            g_row: col(0),
            g_col: col(1),
            sigma2: col(2),
            delta: col(3),
            gamma: col(4),
            temporal: None,
        }
    }

    /// The gradient of the raw outputs [B, F 5] from the kernels' gradients of
    /// the grid and of gamma ([B N] each, summed over the frames of a shared
    /// window).
    fn d_raw(&self, w: &WindowValues, grid: [&[f32]; 4], d_gamma: &[f32]) -> Tensor {
        let g = self.geo;
        let (frames, groups) = (g.frames as usize, g.groups as usize);
        let batch = d_gamma.len() / frames;
        let mut d = vec![0f32; batch * groups * 5];
        for b in 0..batch {
            for f in 0..frames {
                let group = if groups == 1 { 0 } else { f };
                let at = (b * groups + group) * 5;
                for (col, values) in GRID_COLUMNS.iter().zip(grid) {
                    d[at + col] += values[b * frames + f];
                }
                d[at + GAMMA] += d_gamma[b * frames + f];
            }
        }
        let d = Tensor::from_slice(&d).view([batch as i64, g.groups, 5]);
        (d * &w.slope).view([batch as i64, g.groups * 5])
    }

    /// A read window's backward: the gradient of the raw outputs, [B, F 5].
    pub fn read_backward(&self, w: &WindowValues, grid: [&[f32]; 4], d_gamma: &[f32]) -> Tensor {
        tch::no_grad(|| self.d_raw(w, grid, d_gamma))
    }

    /// A write window's backward from the gradient of the patch over gamma:
    /// the gradient of the raw outputs [B, F 5] and of the patch w [B, N K K].
    pub fn write_backward(
        &self,
        w: &WindowValues,
        grid: [&[f32]; 4],
        d_patch: &[f32],
    ) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let g = self.geo;
            let kk = (g.k * g.k) as usize;
            // P' = w / gamma: dL/dgamma = -sum(dP' P') / gamma per frame.
            let d_gamma: Vec<f32> = d_patch
                .chunks(kk)
                .zip(w.values[4].chunks(kk))
                .zip(&w.gamma)
                .map(|((d, p), gm)| -d.iter().zip(p).map(|(d, p)| d * p).sum::<f32>() / gm)
                .collect();
            let d_raw = self.d_raw(w, grid, &d_gamma);
            let batch = d_raw.size()[0];
            let d_w = Tensor::from_slice(d_patch).view([batch, g.frames, g.k * g.k])
                / w.params.narrow(2, GAMMA as i64, 1);
            (d_raw, d_w.view([batch, -1]))
        })
    }

    /// The layer's gradients over all its windows, in order: (W, b).
    pub fn weight_grads(
        &self,
        saved: &[&WindowValues],
        d_raw: &[Tensor],
    ) -> Vec<(&'a Tensor, Tensor)> {
        tch::no_grad(|| {
            let h: Vec<&Tensor> = saved.iter().map(|w| &w.h).collect();
            let d: Vec<&Tensor> = d_raw.iter().collect();
            vec![
                (&self.layer.w, products(&h, &d)),
                (&self.layer.b, rows(&Tensor::cat(&d, 0))),
            ]
        })
    }
}

/// A contiguous f32 copy of a tensor's values.
fn to_vec(t: &Tensor) -> Vec<f32> {
    let flat = t.contiguous().view([-1]);
    Vec::<f32>::try_from(&flat).expect("a float tensor on the CPU")
}

/// The decoder: its LSTMs (one joint, or where and what), the write window
/// and patch layers, and the caption features each LSTM reads.
pub struct Decoder<'a> {
    lstms: Vec<&'a LstmParams>,
    patch: &'a LinearParams,
    pub write: WindowLayer<'a>,
    z_dim: i64,
}

/// What one decoder step's backward needs of its forward.
pub struct DecoderSaved {
    inputs: Vec<Tensor>,
    /// Index of each LSTM's caption features in the forward's list.
    features: Vec<usize>,
    prev: Option<Vec<State>>,
    cells: Vec<Cell>,
    h_what: Tensor,
}

/// One decoder step's forward.
pub struct DecoderStep {
    /// Each LSTM's (h, c).
    pub states: Vec<State>,
    /// h_dec^t: the LSTMs' h joined.
    pub h: Tensor,
    pub saved: DecoderSaved,
}

/// One decoder step's backward.
pub struct DecoderGrads {
    /// d z^t.
    pub dz: Tensor,
    /// Each LSTM's (dh, dc) of the step before (none at t = 0).
    pub carry: Option<Vec<State>>,
    d_pre: Vec<Tensor>,
    d_patch: Tensor,
}

impl<'a> Decoder<'a> {
    pub fn new(model: &'a SyncDraw) -> Self {
        let c: &ModelConfig = &model.config;
        Self {
            lstms: model.decoder.lstms.iter().collect(),
            patch: &model.decoder.write_patch,
            write: WindowLayer::new(&model.decoder.write_window, Geometry::of(c, c.write_k)),
            z_dim: c.z_dim,
        }
    }

    /// Step t from z^t, the caption features (none without captions) with the
    /// index of those each LSTM reads, and each LSTM's state of step t - 1
    /// (none at t = 0 and where a new object's block starts), with the write
    /// window of h_where^t and patch of h_what^t.
    pub fn forward(
        &self,
        z: &Tensor,
        features: Option<(&[Tensor], &[usize])>,
        prev: Option<Vec<State>>,
    ) -> (DecoderStep, WindowValues) {
        tch::no_grad(|| {
            let mut inputs = Vec::new();
            let mut indices = Vec::new();
            let mut cells = Vec::new();
            let mut states = Vec::new();
            for (i, lstm) in self.lstms.iter().enumerate() {
                let (input, index) = match features {
                    Some((f, at)) => (Tensor::cat(&[z, &f[at[i]]], 1), at[i]),
                    None => (z.shallow_clone(), 0),
                };
                indices.push(index);
                // (x W_x + b) + h^{t-1} W_h, as Lstm::step.
                let mut pre = input.matmul(&lstm.wx) + &lstm.b;
                let p = prev.as_ref().map(|p| &p[i]);
                if let Some(p) = p {
                    pre += p.h.matmul(&lstm.wh);
                }
                let (cell, state) = cell_forward(&pre, p.map(|p| &p.c), lstm.hidden);
                inputs.push(input);
                cells.push(cell);
                states.push(state);
            }
            let h = match states.len() {
                1 => states[0].h.shallow_clone(),
                _ => Tensor::cat(&states.iter().map(|s| &s.h).collect::<Vec<_>>(), 1),
            };
            let h_what = states[states.len() - 1].h.shallow_clone();
            let w = h_what.matmul(&self.patch.w) + &self.patch.b;
            let write = self.write.write(&states[0].h, &w);
            let step = DecoderStep {
                states,
                h,
                saved: DecoderSaved {
                    inputs,
                    features: indices,
                    prev,
                    cells,
                    h_what,
                },
            };
            (step, write)
        })
    }

    /// Step t's backward from the gradient of the raw write window, of the
    /// patch w, of h_dec^t from elsewhere (the next read window and the next
    /// encoder step: `dh_dec`, [B, dec_size]) and each LSTM's (dh, dc) handed
    /// back by step t + 1. Adds each LSTM's share of its caption features'
    /// gradient to `d_features` (indexed as the forward's features).
    pub fn backward(
        &self,
        s: &DecoderSaved,
        (d_window, d_patch): (&Tensor, Tensor),
        dh_dec: Option<&Tensor>,
        after: Option<Vec<State>>,
        d_features: &mut [Option<Tensor>],
    ) -> DecoderGrads {
        tch::no_grad(|| {
            let last = self.lstms.len() - 1;
            let mut dz: Option<Tensor> = None;
            let mut d_pre_all = Vec::new();
            let mut carry = Vec::new();
            let mut at = 0;
            for (i, lstm) in self.lstms.iter().enumerate() {
                let n = lstm.hidden;
                let mut dh = match dh_dec {
                    Some(d) => d.narrow(1, at, n).copy(),
                    None => {
                        Tensor::zeros([d_window.size()[0], n], (Kind::Float, d_window.device()))
                    }
                };
                at += n;
                if i == 0 {
                    dh += d_window.matmul(&self.write.layer.w.tr());
                }
                if i == last {
                    dh += d_patch.matmul(&self.patch.w.tr());
                }
                if let Some(a) = &after {
                    dh += &a[i].h;
                }
                let dc_after = after.as_ref().map(|a| &a[i].c);
                let (d_pre, dc_prev) = cell_backward(&s.cells[i], &dh, dc_after, n);
                let d_in = d_pre.matmul(&lstm.wx.tr());
                let d_z = d_in.narrow(1, 0, self.z_dim);
                dz = Some(match dz {
                    Some(sum) => sum + d_z,
                    None => d_z.copy(),
                });
                let width = d_in.size()[1] - self.z_dim;
                if width > 0 {
                    let d_f = d_in.narrow(1, self.z_dim, width);
                    let slot = &mut d_features[s.features[i]];
                    *slot = Some(match slot.take() {
                        Some(sum) => sum + d_f,
                        None => d_f.copy(),
                    });
                }
                if let Some(c) = dc_prev {
                    carry.push(State {
                        h: d_pre.matmul(&lstm.wh.tr()),
                        c,
                    });
                }
                d_pre_all.push(d_pre);
            }
            DecoderGrads {
                dz: dz.expect("at least one decoder LSTM"),
                carry: (!carry.is_empty()).then_some(carry),
                d_pre: d_pre_all,
                d_patch,
            }
        })
    }

    /// The weights' gradients over all T steps (in step order), one product
    /// each: every LSTM's W_x, W_h, b; the write window's and patch's layers.
    pub fn weight_grads(
        &self,
        saved: &[&DecoderSaved],
        grads: &[DecoderGrads],
        windows: &[&WindowValues],
        d_windows: &[Tensor],
    ) -> Vec<(&'a Tensor, Tensor)> {
        tch::no_grad(|| {
            let mut out = Vec::new();
            for (i, lstm) in self.lstms.iter().enumerate() {
                let inputs: Vec<&Tensor> = saved.iter().map(|s| &s.inputs[i]).collect();
                let d_pre: Vec<&Tensor> = grads.iter().map(|g| &g.d_pre[i]).collect();
                out.push((&lstm.wx, products(&inputs, &d_pre)));
                let steps = saved
                    .iter()
                    .zip(&d_pre)
                    .map(|(s, d)| (s.prev.as_ref().map(|p| &p[i].h), *d));
                out.extend(lstm_grads(lstm, steps));
            }
            let h_what: Vec<&Tensor> = saved.iter().map(|s| &s.h_what).collect();
            let d_patch: Vec<&Tensor> = grads.iter().map(|g| &g.d_patch).collect();
            out.push((&self.patch.w, products(&h_what, &d_patch)));
            out.push((&self.patch.b, rows(&Tensor::cat(&d_patch, 0))));
            out.extend(self.write.weight_grads(windows, d_windows));
            out
        })
    }
}

impl DecoderStep {
    /// Each LSTM's state, to carry into the next step.
    pub fn carried(&self) -> Vec<State> {
        self.states.iter().map(State::shallow_clone).collect()
    }
}
