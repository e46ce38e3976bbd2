//! Linear layers and LSTM cells, written once over [`Backend`].
//!
//! Parameters live in a tch `VarStore` (so training can optimise and save them);
//! `bind` hands them to a backend, which for export records them as initializers.
use crate::backend::Backend;
use tch::{nn, Tensor};

/// y = x W + b, with W stored as [in, out].
pub struct LinearParams {
    name: String,
    pub w: Tensor,
    pub b: Tensor,
}

pub struct Linear<T> {
    w: T,
    b: T,
}

fn uniform(fan_in: i64) -> nn::Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    nn::Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

fn path_name(p: &nn::Path, leaf: &str) -> String {
    let prefix = p.components().collect::<Vec<_>>().join(".");
    if prefix.is_empty() {
        leaf.to_string()
    } else {
        format!("{prefix}.{leaf}")
    }
}

impl LinearParams {
    pub fn new(p: &nn::Path, input: i64, output: i64) -> Self {
        Self {
            name: path_name(p, ""),
            w: p.var("w", &[input, output], uniform(input)),
            b: p.var("b", &[output], uniform(input)),
        }
    }

    pub fn bind<B: Backend>(&self, be: &mut B) -> Linear<B::Tensor> {
        Linear {
            w: be.param(&format!("{}w", self.name), &self.w),
            b: be.param(&format!("{}b", self.name), &self.b),
        }
    }
}

impl<T> Linear<T> {
    pub fn forward<B: Backend<Tensor = T>>(&self, be: &mut B, x: &T) -> T {
        let xw = be.matmul(x, &self.w);
        be.add(&xw, &self.b)
    }
}

/// LSTM cell parameters; gates in the order input, forget, cell, output.
pub struct LstmParams {
    name: String,
    pub hidden: i64,
    pub wx: Tensor,
    pub wh: Tensor,
    pub b: Tensor,
}

pub struct Lstm<T> {
    input: i64,
    pub hidden: i64,
    wx: T,
    wh: T,
    b: T,
}

/// Hidden and cell state of an LSTM.
pub struct LstmState<T> {
    pub h: T,
    pub c: T,
}

impl LstmParams {
    /// Uniform weights; `forget_bias` is added to the forget gate's bias.
    pub fn new(p: &nn::Path, input: i64, hidden: i64, forget_bias: f64) -> Self {
        // Created in this order so that a seed gives the same weights as before.
        let wx = p.var("wx", &[input, 4 * hidden], uniform(hidden));
        let wh = p.var("wh", &[hidden, 4 * hidden], uniform(hidden));
        let b = p.var("b", &[4 * hidden], uniform(hidden));
        if forget_bias != 0.0 {
            tch::no_grad(|| {
                let _ = b.narrow(0, hidden, hidden).g_add_scalar_(forget_bias);
            });
        }
        Self {
            name: path_name(p, ""),
            hidden,
            wx,
            wh,
            b,
        }
    }

    pub fn bind<B: Backend>(&self, be: &mut B) -> Lstm<B::Tensor> {
        Lstm {
            input: self.wx.size()[0],
            hidden: self.hidden,
            wx: be.param(&format!("{}wx", self.name), &self.wx),
            wh: be.param(&format!("{}wh", self.name), &self.wh),
            b: be.param(&format!("{}b", self.name), &self.b),
        }
    }
}

impl<T> Lstm<T> {
    /// One LSTM step. `prev = None` is the zero state (the first step), which lets
    /// the graph start without building zero tensors of a dynamic batch size.
    pub fn step<B: Backend<Tensor = T>>(
        &self,
        be: &mut B,
        x: &T,
        prev: Option<&LstmState<T>>,
    ) -> LstmState<T> {
        let xw = self.input_product(be, x);
        self.step_from_product(be, &xw, prev)
    }

    /// The input's share of the gates, x W_x.
    pub fn input_product<B: Backend<Tensor = T>>(&self, be: &mut B, x: &T) -> T {
        be.matmul(x, &self.wx)
    }

    /// [`Lstm::step`] from x W_x ([`Lstm::input_product`]), made elsewhere
    /// (`syncdraw::infer` takes the product, as the fused training step's copy
    /// of the encoder, `fused::recurrent`, does).
    pub fn step_from_product<B: Backend<Tensor = T>>(
        &self,
        be: &mut B,
        xw: &T,
        prev: Option<&LstmState<T>>,
    ) -> LstmState<T> {
        let mut gates = be.add(xw, &self.b);
        if let Some(prev) = prev {
            let hw = be.matmul(&prev.h, &self.wh);
            gates = be.add(&gates, &hw);
        }
        let n = self.hidden;
        let i = be.narrow(&gates, 1, 0, n);
        let i = be.sigmoid(&i);
        let f = be.narrow(&gates, 1, n, n);
        let f = be.sigmoid(&f);
        let g = be.narrow(&gates, 1, 2 * n, n);
        let g = be.tanh(&g);
        let o = be.narrow(&gates, 1, 3 * n, n);
        let o = be.sigmoid(&o);
        let ig = be.mul(&i, &g);
        let c = match prev {
            Some(prev) => {
                let fc = be.mul(&f, &prev.c);
                be.add(&fc, &ig)
            }
            None => ig,
        };
        let tc = be.tanh(&c);
        let h = be.mul(&o, &tc);
        LstmState { h, c }
    }

    /// The cell run over `steps` inputs x [steps, B, I] from the zero state: h of
    /// every step, [steps, B, H]. One operation where the backend has one
    /// (`Backend::lstm_sequence`), else [`Lstm::step`] in turn.
    pub fn sequence<B: Backend<Tensor = T>>(&self, be: &mut B, x: &T, steps: i64) -> T {
        if let Some(h) = be.lstm_sequence(x, &self.wx, &self.wh, &self.b, self.hidden) {
            return h;
        }
        let mut prev: Option<LstmState<T>> = None;
        let mut hs = Vec::with_capacity(steps as usize);
        for t in 0..steps {
            let x_t = be.narrow(x, 0, t, 1);
            let x_t = be.reshape(&x_t, &[-1, self.input]);
            let next = self.step(be, &x_t, prev.as_ref());
            hs.push(be.unsqueeze(&next.h, 0));
            prev = Some(next);
        }
        let hs: Vec<&T> = hs.iter().collect();
        be.concat(&hs, 0)
    }
}
