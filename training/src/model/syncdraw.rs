//! The full Sync-DRAW model and its loss (§3.1.5).
use super::canvas::{
    composed, layer_costs, layer_mass, layer_target_loss, layered_bce, layered_neg_log_p,
};
use super::caption::CaptionFeatures;
use super::config::{DrawOrder, ModelConfig, Variant};
use super::decoder::DecoderParams;
use super::decoder::DecoderState;
use super::encoder::EncoderParams;
use super::filterbank::{window, Geometry};
use super::layers::{Linear, Lstm, LstmState};
use super::read::read;
use super::window_stats::WindowStats;
use crate::backend::tch_backend::{Products, TchBackend};
use tch::{nn, Device, Kind, Tensor};

pub struct SyncDraw {
    pub config: ModelConfig,
    pub vs: nn::VarStore,
    pub encoder: EncoderParams,
    pub decoder: DecoderParams,
}

/// Per-video terms of the negative ELBO, each [B].
pub struct Loss {
    /// L_X: binary cross-entropy summed over every pixel of the video.
    pub reconstruction: Tensor,
    /// L_Z: KL(Q || N(0, I)) summed over the T steps (eq. 14 with the constant
    /// -z_dim/2 per step, the correct one).
    pub kl: Tensor,
    /// log q(z|x) - log p(z) of the drawn z, summed over steps: with the
    /// reconstruction it gives the importance weight of this z (IWAE bound).
    pub log_q_over_p: Tensor,
    /// The layer-target term (canvas.rs, `layer_target_loss`), unweighted, [B],
    /// where the pass was given each object's video; not part of the bound.
    pub layer_targets: Option<Tensor>,
}

impl Loss {
    /// Negative ELBO per video, [B].
    pub fn nll(&self) -> Tensor {
        &self.reconstruction + &self.kl
    }
}

/// Where the nats of a [`Loss`] go, for `eval`: per frame and per step.
pub struct LossParts {
    /// L_X per frame, [B, N].
    pub reconstruction: Tensor,
    /// The part of it on the video's ink, sum x (-log p), [B, N]: what is lost
    /// drawing the object's pixels (the rest, sum (1 - x)(-log(1 - p)), is lost
    /// on the background).
    pub ink: Tensor,
    /// The part of the rest, sum (1 - x)(-log(1 - p)), on the background far
    /// from the ink: pixels more than [`FAR`] pixels (in either direction)
    /// from every pixel that is on (above 0.5) in their frame, [B, N]. What is
    /// lost there is the canvas's floor, not the edges of strokes.
    pub far: Tensor,
    /// KL_t of every step, [B, T].
    pub kl: Tensor,
    /// Where each object's video was given: every layer alone against every
    /// object, [B, layers, objects] (canvas.rs, `layer_costs`).
    pub layer_costs: Option<Tensor>,
}

/// The model's last canvas, from which L_X is taken (eq. 10).
enum LastCanvas {
    /// c^T, the logits of one canvas: p = sigmoid(c^T).
    Logits(Tensor),
    /// The summed mass of every layer (canvas.rs): p = 1 - exp(-s).
    Mass(Tensor),
}

impl LastCanvas {
    /// Binary cross-entropy of x per pixel.
    fn bce(&self, x: &Tensor) -> Tensor {
        match self {
            Self::Logits(c) => {
                c.binary_cross_entropy_with_logits::<Tensor>(x, None, None, tch::Reduction::None)
            }
            Self::Mass(s) => layered_bce(s, x),
        }
    }

    /// -log p per pixel.
    fn neg_log_p(&self) -> Tensor {
        match self {
            // -log sigmoid(c) = softplus(-c)
            Self::Logits(c) => (-c).softplus(),
            Self::Mass(s) => layered_neg_log_p(s),
        }
    }
}

/// What one pass of [`SyncDraw`] over its T steps leaves: the loss and what
/// [`LossParts`] is made of.
struct Pass {
    loss: Loss,
    /// L_X per frame, [B, N].
    reconstruction_per_frame: Tensor,
    last: LastCanvas,
    /// BCE(x, p) of every pixel, [B, N, ...]: L_X before its sums.
    bce: Tensor,
    /// KL_t of every step, each [B].
    kl_steps: Vec<Tensor>,
    /// The last canvas of every layer, in drawing order, where the pass was
    /// given each object's video (none otherwise).
    layers: Vec<Tensor>,
}

/// How far from the ink [`LossParts::far`] begins, pixels.
pub const FAR: i64 = 3;

/// 1 where a pixel of `x` [..., A, B] is more than [`FAR`] pixels from every
/// pixel that is on (above 0.5) in its image, 0 elsewhere.
fn far_from_ink(x: &Tensor) -> Tensor {
    let size = x.size();
    let (h, w) = (size[size.len() - 2], size[size.len() - 1]);
    let k = 2 * FAR + 1;
    let near = x
        .gt(0.5)
        .to_kind(Kind::Float)
        .reshape([-1, 1, h, w])
        .max_pool2d([k, k], [1, 1], [FAR, FAR], [1, 1], false);
    (near.neg() + 1.0).reshape(size.as_slice())
}

/// A per-pixel term [B, N, ...] summed over each frame's pixels, [B, N].
fn per_frame(t: Tensor, frames: i64) -> Tensor {
    let batch = t.size()[0];
    t.reshape([batch, frames, -1])
        .sum_dim_intlist([2].as_slice(), false, Kind::Float)
}

/// One step of inference, t counting from 0: the encoder LSTM on the glimpses
/// (eq. 7, 12), Q(Z^t | h_enc^t), the reparameterised draw z^t = mu + sigma eps^t,
/// and the step's terms of the loss.
pub struct Inferred {
    /// h_enc^t and its cell.
    pub enc: LstmState<Tensor>,
    pub z: Tensor,
    /// KL_t = 1/2 sum(mu^2 + sigma^2 - log sigma^2 - 1), [B].
    pub kl: Tensor,
    /// log N(z; mu, sigma) - log N(z; 0, 1) of the drawn z, [B].
    pub log_q_over_p: Tensor,
}

/// The encoder LSTM's input [R^t, h_dec^{t-1}, S] (eq. 7, 12), [B, I]: the
/// glimpses [r_x, r_hat] (read(x) and read(x_hat), [B, G, K, K] each), h_dec^{t-1}
/// and the caption features, which it leaves out where the model's encoder does
/// not read the caption (`ModelConfig::encoder_caption`).
pub fn encoder_input(
    c: &ModelConfig,
    [r_x, r_hat]: [&Tensor; 2],
    h_dec_prev: &Tensor,
    s: Option<&CaptionFeatures<Tensor>>,
) -> Tensor {
    let batch = r_x.size()[0];
    let (r_x, r_hat) = (r_x.reshape([batch, -1]), r_hat.reshape([batch, -1]));
    let mut parts = vec![&r_x, &r_hat, h_dec_prev];
    if let Some(s) = s.filter(|_| c.encoder_caption) {
        parts.push(&s.all);
    }
    Tensor::cat(&parts, 1)
}

/// [`Inferred`] from the encoder's input product x W_x ([`encoder_input`] times
/// the encoder LSTM's input weights, [`Lstm::input_product`]) and the previous
/// encoder state.
pub fn infer(
    be: &mut TchBackend,
    (enc, posterior): (&Lstm<Tensor>, &Linear<Tensor>),
    input_product: &Tensor,
    enc_state: Option<&LstmState<Tensor>>,
    eps_t: &Tensor,
) -> Inferred {
    // h_enc^t = LSTM_enc(h_enc^{t-1}, [R^t, h_dec^{t-1}, S])  (eq. 7, 12)
    let next_enc = enc.step_from_product(be, input_product, enc_state);
    let q = posterior.forward(be, &next_enc.h);
    let d = draw(&q, eps_t);
    Inferred {
        enc: next_enc,
        z: d.z,
        kl: d.kl,
        log_q_over_p: d.log_q_over_p,
    }
}

/// Q(Z^t | h_enc^t) from the posterior layer's output q = [mu, log sigma]
/// [B, 2 z_dim]: the reparameterised draw z^t = mu + sigma eps^t and its terms
/// of the loss (the fused training step keeps mu and sigma for its backward).
pub struct Draw {
    pub mu: Tensor,
    pub sigma: Tensor,
    pub z: Tensor,
    /// KL_t, [B].
    pub kl: Tensor,
    /// log q(z^t) - log p(z^t), [B].
    pub log_q_over_p: Tensor,
}

/// [`Draw`] of q with the noise eps^t [B, z_dim].
pub fn draw(q: &Tensor, eps_t: &Tensor) -> Draw {
    let z_dim = eps_t.size()[1];
    let mu = q.narrow(1, 0, z_dim);
    let log_sigma = q.narrow(1, z_dim, z_dim);
    let sigma = log_sigma.exp();
    let z = &mu + &sigma * eps_t;
    let sum = |t: Tensor| t.sum_dim_intlist([1].as_slice(), false, Kind::Float);
    // KL_t = 1/2 sum(mu^2 + sigma^2 - log sigma^2 - 1)   (eq. 14)
    let kl = sum(mu.square() + sigma.square() - &log_sigma * 2.0 - 1.0) * 0.5;
    // log N(z; mu, sigma) - log N(z; 0, 1) = sum(-eps^2/2 - log sigma + z^2/2)
    let log_q_over_p = sum(z.square() * 0.5 - eps_t.square() * 0.5 - &log_sigma);
    Draw {
        mu,
        sigma,
        z,
        kl,
        log_q_over_p,
    }
}

impl SyncDraw {
    pub fn new(config: &ModelConfig, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let encoder = EncoderParams::new(&(&root / "encoder"), config);
        let decoder = DecoderParams::new(&(&root / "decoder"), config);
        Self {
            config: config.clone(),
            vs,
            encoder,
            decoder,
        }
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Runs the R-VAE over T steps on a batch of videos `x` [B, N, A, B] in [0, 1]
    /// ([B, N, C, A, B] for a colour model, as [`crate::batch::Batcher`] gives
    /// them) and caption ids [B, L], with `eps` [B, T, z_dim] the
    /// reparameterisation noise.
    pub fn loss(&self, x: &Tensor, caption: Option<&Tensor>, eps: &Tensor) -> Loss {
        self.loss_observed(x, caption, eps, None, Products::F32, None)
    }

    /// [`Self::loss`] with the matrix products in `products`, adding every step's
    /// read and write windows to `stats`. With `targets`, each object's own
    /// video [B, objects, N, A, B], it also takes the layer-target term (`train
    /// --layer-targets`; canvas.rs, `layer_target_loss`) in `Loss::layer_targets`.
    pub fn loss_observed(
        &self,
        x: &Tensor,
        caption: Option<&Tensor>,
        eps: &Tensor,
        stats: Option<&mut WindowStats>,
        products: Products,
        targets: Option<&Tensor>,
    ) -> Loss {
        let pass = self.run(x, caption, eps, stats, products, targets.is_some());
        let mut loss = pass.loss;
        loss.layer_targets = targets.map(|t| layer_target_loss(&pass.layers, t));
        loss
    }

    /// [`Self::loss`] with where its nats go ([`LossParts`]), and the
    /// layer-target term where `targets` gives each object's video
    /// ([`Self::loss_observed`]).
    pub fn loss_parts(
        &self,
        x: &Tensor,
        caption: Option<&Tensor>,
        eps: &Tensor,
        targets: Option<&Tensor>,
    ) -> (Loss, LossParts) {
        let pass = self.run(x, caption, eps, None, Products::F32, targets.is_some());
        let frames = self.config.frames;
        let ink = x * pass.last.neg_log_p();
        let background = &pass.bce - &ink;
        // Every layer against every object; the layer-target term is its diagonal.
        let costs = targets.map(|t| layer_costs(&pass.layers, t));
        let mut loss = pass.loss;
        loss.layer_targets = costs.as_ref().map(|c| {
            c.diagonal(0, 1, 2)
                .sum_dim_intlist([1].as_slice(), false, Kind::Float)
        });
        let parts = LossParts {
            ink: per_frame(ink, frames),
            far: per_frame(far_from_ink(x) * background, frames),
            reconstruction: pass.reconstruction_per_frame,
            kl: Tensor::stack(&pass.kl_steps, 1),
            layer_costs: costs,
        };
        (loss, parts)
    }

    /// The R-VAE's pass over T steps, keeping every layer's last canvas
    /// where `keep_layers` (for the layer-target term).
    fn run(
        &self,
        x: &Tensor,
        caption: Option<&Tensor>,
        eps: &Tensor,
        mut stats: Option<&mut WindowStats>,
        products: Products,
        keep_layers: bool,
    ) -> Pass {
        let c = &self.config;
        let be = &mut TchBackend::with_products(self.device(), products);
        let dec = self.decoder.bind(be);
        let read_window = self.encoder.read_window.bind(be);
        let enc = self.encoder.lstm.bind(be);
        let posterior = self.encoder.posterior.bind(be);
        let geo = Geometry::of(c, c.read_k);
        let temporal = c.variant == Variant::Baseline;
        let batch = x.size()[0];

        let s = dec.caption_embedding(be, caption);
        let h_dec_zero = || Tensor::zeros([batch, c.dec_size], (Kind::Float, self.device()));
        let mut h_dec_prev = h_dec_zero();
        let mut dec_state: Option<DecoderState<Tensor>> = None;
        let mut enc_state: Option<LstmState<Tensor>> = None;
        // c^0: zero as in the paper, or the learned initial logit (config.canvas_init).
        let canvas_start = || match &self.decoder.canvas0 {
            Some(c0) => Tensor::zeros_like(x) + c0,
            None => Tensor::zeros_like(x),
        };
        let mut canvas = canvas_start();
        // Objects drawn on layers (canvas.rs): the summed mass of finished layers.
        let layered = c.layered();
        let mut done: Option<Tensor> = None;
        let mut kl = Tensor::zeros([batch], (Kind::Float, self.device()));
        let mut log_q_over_p = Tensor::zeros([batch], (Kind::Float, self.device()));
        // KL_t of every decoder step t, whatever order inference takes them in.
        let mut kl_steps: Vec<Option<Tensor>> = (0..c.timesteps).map(|_| None).collect();
        // The last canvas of every layer, in drawing order, for the targets.
        let mut layers = Vec::new();
        // Layers inferred in turn (config.rs, `LayersInterleaved`): each
        // object's layer, its canvas, decoder state and last h_dec, waits here
        // while another object's step is drawn.
        let interleaved = layered && c.draw_order == DrawOrder::LayersInterleaved;
        let objects = if interleaved {
            c.objects_in_turn().unwrap_or(1) as usize
        } else {
            0
        };
        type Layer = (Tensor, Option<DecoderState<Tensor>>, Tensor);
        let mut parked: Vec<Option<Layer>> = (0..objects).map(|_| None).collect();
        let mut current: Option<usize> = None;
        for t in c.inference_order() {
            if interleaved {
                let o = c.object_of_step(t).unwrap_or(0) as usize;
                if current != Some(o) {
                    if let Some(p) = current {
                        parked[p] = Some((canvas, dec_state.take(), h_dec_prev));
                    }
                    (canvas, dec_state, h_dec_prev) = parked[o]
                        .take()
                        .unwrap_or_else(|| (canvas_start(), None, h_dec_zero()));
                    current = Some(o);
                    // The other layers as they stand: their summed mass.
                    done = parked
                        .iter()
                        .flatten()
                        .map(|(other, _, _)| layer_mass(be, other))
                        .reduce(|a, b| a + b);
                }
            } else if layered && c.starts_block(t) {
                if keep_layers {
                    layers.push(canvas.shallow_clone());
                }
                let mass = layer_mass(be, &canvas);
                done = Some(match done {
                    None => mass,
                    Some(d) => d + mass,
                });
                canvas = canvas_start();
            }
            // sigmoid(c^{t-1}), the video drawn so far (the layers composed)
            let shown = match &done {
                None => canvas.sigmoid(),
                Some(d) => composed(be, d, &canvas),
            };
            let win = window(be, &read_window, &h_dec_prev, geo, temporal);
            if let Some(stats) = stats.as_deref_mut() {
                stats.read.add(&win, geo);
            }
            // read(x_hat^t) with x_hat^t = x - sigmoid(c^{t-1})  (eq. 5, 6): read is
            // linear in the video, so it is read(x) - read(sigmoid(c^{t-1})), and the
            // error video x_hat, as large as the canvas, is never made (one pass over
            // the canvas less forward and one less backward at every step).
            let [r_x, r_shown]: [Tensor; 2] = read(be, &win, &[x, &shown], geo)
                .try_into()
                .expect("one glimpse per video read");
            let r_hat = &r_x - r_shown;
            let enc_in = encoder_input(c, [&r_x, &r_hat], &h_dec_prev, s.as_ref());
            let input_product = enc.input_product(be, &enc_in);
            let step = infer(
                be,
                (&enc, &posterior),
                &input_product,
                enc_state.as_ref(),
                &eps.select(1, t),
            );
            kl += &step.kl;
            kl_steps[t as usize] = Some(step.kl.shallow_clone());
            log_q_over_p += &step.log_q_over_p;
            let (z, next_enc) = (step.z, step.enc);
            let next_dec = dec.step(be, &z, s.as_ref(), dec_state.as_ref(), t);
            let write_win = dec.write_window(be, &next_dec);
            if let Some(stats) = stats.as_deref_mut() {
                stats.write.add(&write_win, Geometry::of(c, c.write_k));
            }
            let w = dec.write_through(be, &write_win, &next_dec);
            if done.is_some() {
                // softplus(c) of the composed canvas keeps c for its gradient.
                canvas = &canvas + w;
            } else {
                canvas += w;
            }
            h_dec_prev = next_dec.h().shallow_clone();
            dec_state = Some(next_dec);
            enc_state = Some(next_enc);
        }
        if keep_layers {
            if interleaved {
                // Every object's layer, in object order.
                layers = (0..objects)
                    .map(|o| match &parked[o] {
                        Some((layer, _, _)) => layer.shallow_clone(),
                        None => canvas.shallow_clone(),
                    })
                    .collect();
            } else {
                layers.push(canvas.shallow_clone());
            }
        }
        let kl_steps = kl_steps
            .into_iter()
            .map(|k| k.expect("inference draws every decoder step once"))
            .collect();
        // L_X = BCE(x, sigmoid(c^T)) summed over pixels, computed from the logits
        // (from every layer's mass when objects are drawn on layers).
        let last = match done {
            None => LastCanvas::Logits(canvas),
            Some(d) => LastCanvas::Mass(d + layer_mass(be, &canvas)),
        };
        let bce = last.bce(x);
        let reconstruction_per_frame = per_frame(bce.shallow_clone(), c.frames);
        let reconstruction =
            reconstruction_per_frame.sum_dim_intlist([1].as_slice(), false, Kind::Float);
        Pass {
            loss: Loss {
                reconstruction,
                kl,
                log_q_over_p,
                layer_targets: None,
            },
            reconstruction_per_frame,
            last,
            bce,
            kl_steps,
            layers,
        }
    }

    /// Decodes z [B, T, z_dim] (and caption ids) into video and canvases.
    pub fn generate(&self, z: &Tensor, caption: Option<&Tensor>) -> (Tensor, Tensor) {
        let be = &mut TchBackend::new(self.device());
        let dec = self.decoder.bind(be);
        let g = dec.generate(be, z, caption);
        (g.video, g.canvases)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One pixel on at (10, 20) of a 32 x 32 frame: the mask is 0 within FAR
    /// pixels of it in both directions and 1 beyond, in every frame alone.
    #[test]
    fn far_from_ink_is_beyond_far_pixels_of_every_ink_pixel() {
        let x = Tensor::zeros([1, 2, 32, 32], (Kind::Float, Device::Cpu));
        let _ = x.get(0).get(0).get(10).get(20).fill_(1.0);
        let far = far_from_ink(&x);
        assert_eq!(far.size(), vec![1, 2, 32, 32]);
        let at = |f: i64, r: i64, c: i64| far.double_value(&[0, f, r, c]);
        assert_eq!(at(0, 10, 20), 0.0);
        assert_eq!(at(0, 10 + FAR, 20 - FAR), 0.0);
        assert_eq!(at(0, 10 + FAR + 1, 20), 1.0);
        assert_eq!(at(0, 10, 20 - FAR - 1), 1.0);
        // The empty second frame is far from ink everywhere.
        assert_eq!(
            far.get(0).get(1).sum(Kind::Double).double_value(&[]),
            1024.0
        );
        let near = 32.0 * 32.0 - far.get(0).get(0).sum(Kind::Double).double_value(&[]);
        assert_eq!(near, ((2 * FAR + 1) * (2 * FAR + 1)) as f64);
    }
}
