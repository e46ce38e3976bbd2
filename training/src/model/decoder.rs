//! The generation path: caption encoder, decoder LSTM (eq. 8 / 13), write attention
//! (eq. 9) and canvas accumulation (eq. 10), video = sigmoid(c_T).
//!
//! This is the part of Sync-DRAW that survives at test time (§3.1.6). It is generic
//! over [`Backend`]: training calls [`Decoder::step`] and [`Decoder::write`] on
//! libtorch tensors between encoder steps, and export records [`Decoder::generate`]
//! into an ONNX graph. Both run this same code.
use super::caption::{CaptionEncoder, CaptionEncoderParams};
use super::config::{ModelConfig, Variant};
use super::filterbank::{params_per_group, window, Geometry};
use super::layers::{Linear, LinearParams, Lstm, LstmParams, LstmState};
use super::write::write;
use crate::backend::Backend;
use tch::nn;

pub struct DecoderParams {
    pub config: ModelConfig,
    pub caption: Option<CaptionEncoderParams>,
    pub lstm: LstmParams,
    /// h_dec^t -> write window parameters (§3.1.3).
    pub write_window: LinearParams,
    /// h_dec^t -> w^t, the patch written to every frame.
    pub write_patch: LinearParams,
}

pub struct Decoder<T> {
    config: ModelConfig,
    caption: Option<CaptionEncoder<T>>,
    lstm: Lstm<T>,
    write_window: Linear<T>,
    write_patch: Linear<T>,
}

/// What the decoder produces for a batch of z draws.
pub struct Generated<T> {
    /// sigmoid(c_T), [B, N, 1, A, B].
    pub video: T,
    /// sigmoid(c_t) for t = 1..T, [B, T, N, 1, A, B].
    pub canvases: T,
}

impl DecoderParams {
    pub fn new(p: &nn::Path, config: &ModelConfig) -> Self {
        let caption = config
            .caption
            .as_ref()
            .map(|c| CaptionEncoderParams::new(&(p / "caption"), c));
        let input = config.z_dim + config.caption_size();
        let groups = config.attention_groups();
        let temporal = config.variant == Variant::Baseline;
        Self {
            config: config.clone(),
            caption,
            lstm: LstmParams::new(&(p / "dec"), input, config.dec_size),
            write_window: LinearParams::new(
                &(p / "write_window"),
                config.dec_size,
                groups * params_per_group(temporal),
            ),
            write_patch: LinearParams::new(
                &(p / "write_patch"),
                config.dec_size,
                config.write_patch_size(),
            ),
        }
    }

    pub fn bind<B: Backend>(&self, be: &mut B) -> Decoder<B::Tensor> {
        Decoder {
            config: self.config.clone(),
            caption: self.caption.as_ref().map(|c| c.bind(be)),
            lstm: self.lstm.bind(be),
            write_window: self.write_window.bind(be),
            write_patch: self.write_patch.bind(be),
        }
    }
}

/// Geometry of the write window.
pub fn write_geometry(c: &ModelConfig) -> Geometry {
    Geometry {
        height: c.height,
        width: c.width,
        frames: c.frames,
        k: c.write_k,
        groups: c.attention_groups(),
    }
}

impl<T> Decoder<T> {
    /// S = caption embedding of int64 ids [B, L], or None for unconditional models.
    pub fn caption_embedding<B: Backend<Tensor = T>>(
        &self,
        be: &mut B,
        ids: Option<&T>,
    ) -> Option<T> {
        match (&self.caption, ids) {
            (Some(enc), Some(ids)) => Some(enc.encode(be, ids)),
            _ => None,
        }
    }

    /// h_dec^t = LSTM_dec(h_dec^{t-1}, [z^t, S])  (eq. 13; eq. 8 without S).
    pub fn step<B: Backend<Tensor = T>>(
        &self,
        be: &mut B,
        z: &T,
        s: Option<&T>,
        prev: Option<&LstmState<T>>,
    ) -> LstmState<T> {
        let input = match s {
            Some(s) => be.concat(&[z, s], 1),
            None => be.reshape(z, &[-1, self.config.z_dim]),
        };
        self.lstm.step(be, &input, prev)
    }

    /// write(h_dec^t) for every frame (eq. 9): [B, N, A, B].
    pub fn write<B: Backend<Tensor = T>>(&self, be: &mut B, h_dec: &T) -> T {
        let c = &self.config;
        let geo = write_geometry(c);
        let temporal = c.variant == Variant::Baseline;
        let win = window(be, &self.write_window, h_dec, geo, temporal);
        let g = if temporal { c.write_k } else { c.frames };
        let patch = self.write_patch.forward(be, h_dec);
        let patch = be.reshape(&patch, &[-1, g, c.write_k, c.write_k]);
        write(be, &win, &patch, geo)
    }

    /// The whole generation path for z [B, T, z_dim] (and caption ids [B, L]).
    pub fn generate<B: Backend<Tensor = T>>(
        &self,
        be: &mut B,
        z: &T,
        caption: Option<&T>,
    ) -> Generated<T> {
        let c = &self.config;
        let s = self.caption_embedding(be, caption);
        let mut state: Option<LstmState<T>> = None;
        let mut canvas: Option<T> = None;
        let mut steps = Vec::with_capacity(c.timesteps as usize);
        for t in 0..c.timesteps {
            let z_t = be.narrow(z, 1, t, 1);
            let z_t = be.reshape(&z_t, &[-1, c.z_dim]);
            let next = self.step(be, &z_t, s.as_ref(), state.as_ref());
            let w = self.write(be, &next.h);
            // c^t = c^{t-1} + write(h_dec^t)  (eq. 10), c^0 = 0
            let c_t = match canvas {
                None => w,
                Some(prev) => be.add(&prev, &w),
            };
            let shown = be.sigmoid(&c_t);
            steps.push(be.unsqueeze(&shown, 1));
            canvas = Some(c_t);
            state = Some(next);
        }
        let last = steps.last().expect("at least one timestep");
        let video = be.reshape(last, &[-1, c.frames, 1, c.height, c.width]);
        let refs: Vec<&T> = steps.iter().collect();
        let canvases = be.concat(&refs, 1);
        let canvases = be.unsqueeze(&canvases, 3);
        Generated { video, canvases }
    }
}
