//! The generation path: caption encoder, decoder LSTM (eq. 8 / 13), write attention
//! (eq. 9) and canvas accumulation (eq. 10), video = sigmoid(c_T).
//!
//! This is the part of Sync-DRAW that survives at test time (§3.1.6). It is generic
//! over [`Backend`]: training calls [`Decoder::step`] and [`Decoder::write`] on
//! libtorch tensors between encoder steps, and export records [`Decoder::generate`]
//! into an ONNX graph. Both run this same code.
use super::canvas::{composed, layer_mass, union};
use super::caption::{CaptionEncoder, CaptionEncoderParams, CaptionFeatures};
use super::config::{DecoderKind, ModelConfig, Role, Variant};
use super::filterbank::{params_per_group, window, Geometry, Window};
use super::layers::{Linear, LinearParams, Lstm, LstmParams, LstmState};
use super::write::{summed_writes, write};
use crate::backend::Backend;
use tch::{nn, Tensor};

pub struct DecoderParams {
    pub config: ModelConfig,
    pub caption: Option<CaptionEncoderParams>,
    /// The decoder LSTMs: [dec] (joint), or [where, what] (what-where).
    pub lstms: Vec<LstmParams>,
    /// h_dec^t (joint) or h_where^t -> write window parameters (§3.1.3).
    pub write_window: LinearParams,
    /// h_dec^t (joint) or h_what^t -> w^t, the patches written to the frames.
    pub write_patch: LinearParams,
    /// The learned initial canvas logit c^0, one value for every pixel
    /// (`ModelConfig::canvas_init`); absent: c^0 = 0.
    pub canvas0: Option<Tensor>,
}

pub struct Decoder<T> {
    config: ModelConfig,
    caption: Option<CaptionEncoder<T>>,
    lstms: Vec<Lstm<T>>,
    write_window: Linear<T>,
    write_patch: Linear<T>,
    canvas0: Option<T>,
}

/// The decoder's recurrent state after a step.
pub struct DecoderState<T> {
    /// One state per decoder LSTM, as in [`DecoderParams::lstms`].
    pub lstms: Vec<LstmState<T>>,
    /// [h_where, h_what] concatenated, for a what-where decoder.
    joined: Option<T>,
}

impl<T> DecoderState<T> {
    /// h_dec^t: what the encoder and the read window see (eq. 7, §3.1.1).
    pub fn h(&self) -> &T {
        self.joined.as_ref().unwrap_or(&self.lstms[0].h)
    }

    /// The state of the decoder LSTMs `lstms`, as in [`DecoderParams::lstms`].
    pub fn from_lstms<B: Backend<Tensor = T>>(be: &mut B, lstms: Vec<LstmState<T>>) -> Self {
        let joined = (lstms.len() > 1).then(|| {
            let hs: Vec<&T> = lstms.iter().map(|l| &l.h).collect();
            be.concat(&hs, 1)
        });
        DecoderState { lstms, joined }
    }
}

/// What the decoder produces for a batch of z draws.
pub struct Generated<T> {
    /// sigmoid(c_T), [B, N, C, A, B].
    pub video: T,
    /// sigmoid(c_t) for t = 1..T, [B, T, N, C, A, B].
    pub canvases: T,
}

impl DecoderParams {
    pub fn new(p: &nn::Path, config: &ModelConfig) -> Self {
        let caption = config
            .caption
            .as_ref()
            .map(|c| CaptionEncoderParams::new(&(p / "caption"), c));
        let sizes = config.dec_sizes();
        let lstms = match config.decoder {
            DecoderKind::Joint => vec![LstmParams::new(
                &(p / "dec"),
                config.z_dim + config.decoder_caption_size(None),
                sizes[0],
                config.forget_bias,
            )],
            DecoderKind::WhatWhere => vec![
                LstmParams::new(
                    &(p / "dec_where"),
                    config.z_dim + config.decoder_caption_size(Some(Role::Where)),
                    sizes[0],
                    config.forget_bias,
                ),
                LstmParams::new(
                    &(p / "dec_what"),
                    config.z_dim + config.decoder_caption_size(Some(Role::What)),
                    sizes[1],
                    config.forget_bias,
                ),
            ],
        };
        let groups = config.attention_groups();
        let temporal = config.variant == Variant::Baseline;
        Self {
            config: config.clone(),
            caption,
            lstms,
            write_window: LinearParams::new(
                &(p / "write_window"),
                sizes[0],
                groups * params_per_group(temporal),
            ),
            write_patch: LinearParams::new(
                &(p / "write_patch"),
                *sizes.last().expect("at least one decoder LSTM"),
                config.write_patch_size(),
            ),
            canvas0: config
                .canvas_init
                .map(|v| p.var("canvas0", &[1], nn::Init::Const(v))),
        }
    }

    pub fn bind<B: Backend>(&self, be: &mut B) -> Decoder<B::Tensor> {
        Decoder {
            config: self.config.clone(),
            caption: self.caption.as_ref().map(|c| c.bind(be)),
            lstms: self.lstms.iter().map(|l| l.bind(be)).collect(),
            write_window: self.write_window.bind(be),
            write_patch: self.write_patch.bind(be),
            canvas0: self
                .canvas0
                .as_ref()
                .map(|c| be.param("decoder.canvas0", c)),
        }
    }
}

impl<T> Decoder<T> {
    /// c^0 + w for the first step's write `w` (eq. 10): `w` itself when c^0 = 0.
    pub fn first_canvas<B: Backend<Tensor = T>>(&self, be: &mut B, w: T) -> T {
        match &self.canvas0 {
            Some(c0) => be.add(&w, c0),
            None => w,
        }
    }

    /// S (and its parts per role) for int64 ids [B, L], or None for
    /// unconditional models.
    pub fn caption_embedding<B: Backend<Tensor = T>>(
        &self,
        be: &mut B,
        ids: Option<&T>,
    ) -> Option<CaptionFeatures<T>> {
        let by_role = self.config.decoder == DecoderKind::WhatWhere;
        let per_object = self.config.objects_in_turn().is_some();
        match (&self.caption, ids) {
            (Some(enc), Some(ids)) => Some(enc.encode(be, ids, by_role, per_object)),
            _ => None,
        }
    }

    /// The caption features a decoder LSTM of `role` (None: joint) reads at step
    /// t: of every object, or of the step's object when objects are drawn in turn
    /// ([`ModelConfig::object_of_step`]).
    fn features_at<'a>(&self, s: &'a CaptionFeatures<T>, role: Option<Role>, t: i64) -> &'a T {
        s.read_by(role, self.config.object_of_step(t))
    }

    /// One decoder step (eq. 13; eq. 8 without S), t counting from 0:
    ///   joint:      h_dec^t   = LSTM_dec(h_dec^{t-1}, [z^t, S])
    ///   what-where: h_where^t = LSTM_where(h_where^{t-1}, [z^t, S_where]),
    ///               h_what^t  = LSTM_what(h_what^{t-1}, [z^t, S_what]),
    ///               h_dec^t   = [h_where^t, h_what^t];
    /// with objects drawn in turn, S is the slots of step t's object only, and
    /// the first step of each object's block starts from the zero state.
    pub fn step<B: Backend<Tensor = T>>(
        &self,
        be: &mut B,
        z: &T,
        s: Option<&CaptionFeatures<T>>,
        prev: Option<&DecoderState<T>>,
        t: i64,
    ) -> DecoderState<T> {
        let lstms: Vec<LstmState<T>> = self
            .config
            .decoder
            .roles()
            .iter()
            .zip(&self.lstms)
            .enumerate()
            .map(|(i, (role, lstm))| {
                let input = match s {
                    Some(s) => be.concat(&[z, self.features_at(s, *role, t)], 1),
                    None => be.reshape(z, &[-1, self.config.z_dim]),
                };
                // A new object's block starts from the zero state.
                let prev = prev
                    .filter(|_| !self.config.starts_block(t))
                    .map(|p| &p.lstms[i]);
                lstm.step(be, &input, prev)
            })
            .collect();
        DecoderState::from_lstms(be, lstms)
    }

    /// write(h_dec^t) for every frame (eq. 9): [B, N, A, B] ([B, N, C, A, B] in
    /// colour). The window comes from
    /// the first decoder LSTM (where), the patch from the last (what); for a joint
    /// decoder both are h_dec^t.
    pub fn write<B: Backend<Tensor = T>>(&self, be: &mut B, state: &DecoderState<T>) -> T {
        let win = self.write_window(be, state);
        self.write_through(be, &win, state)
    }

    /// The write window of eq. 9, from the first decoder LSTM (where).
    pub fn write_window<B: Backend<Tensor = T>>(
        &self,
        be: &mut B,
        state: &DecoderState<T>,
    ) -> Window<T> {
        let c = &self.config;
        let geo = Geometry::of(c, c.write_k);
        let temporal = c.variant == Variant::Baseline;
        window(be, &self.write_window, &state.lstms[0].h, geo, temporal)
    }

    /// write(h_dec^t) through a given write window: the patch comes from the last
    /// decoder LSTM (what).
    pub fn write_through<B: Backend<Tensor = T>>(
        &self,
        be: &mut B,
        win: &Window<T>,
        state: &DecoderState<T>,
    ) -> T {
        let c = &self.config;
        let patch = self.write_patch(be, state);
        write(be, win, &patch, Geometry::of(c, c.write_k))
    }

    /// w^t, the patch written at this step, from the last decoder LSTM (what):
    /// [B, G, K, K] (G = N frames, or K_t temporal rows for the Baseline); in
    /// colour [B, G, C, K, K], a patch per channel.
    pub fn write_patch<B: Backend<Tensor = T>>(&self, be: &mut B, state: &DecoderState<T>) -> T {
        self.patch_of(be, &state.lstms[state.lstms.len() - 1].h)
    }

    /// w^t from h_what^t (h_dec^t for a joint decoder), for a batch of any size.
    fn patch_of<B: Backend<Tensor = T>>(&self, be: &mut B, h_what: &T) -> T {
        let c = &self.config;
        let g = c.patch_groups(c.write_k);
        let patch = self.write_patch.forward(be, h_what);
        let shape: &[i64] = if Geometry::of(c, c.write_k).colour() {
            &[-1, g, c.channels, c.write_k, c.write_k]
        } else {
            &[-1, g, c.write_k, c.write_k]
        };
        be.reshape(&patch, shape)
    }

    /// The caption features of all T steps for a decoder LSTM of `role`, [T, B, S]:
    /// the same at every step, or one block of steps per object when objects are
    /// drawn in turn (as [`Self::step`] reads them).
    fn feature_sequence<B: Backend<Tensor = T>>(
        &self,
        be: &mut B,
        s: &CaptionFeatures<T>,
        role: Option<Role>,
    ) -> T {
        let blocks: Vec<T> = self
            .config
            .step_blocks()
            .iter()
            .map(|&(first, len)| {
                // [1, B, S] broadcast to [len, B, S].
                let f = be.unsqueeze(self.features_at(s, role, first), 0);
                let zeros = be.constant(&vec![0.0; len as usize], &[len, 1, 1]);
                be.add(&f, &zeros)
            })
            .collect();
        match blocks.len() {
            1 => blocks.into_iter().next().expect("one block"),
            _ => {
                let parts: Vec<&T> = blocks.iter().collect();
                be.concat(&parts, 0)
            }
        }
    }

    /// Objects drawn on layers (canvas.rs): every block of steps accumulates its
    /// own canvas from c^0 (eq. 10), shown over the finished layers. For the
    /// writes of all steps [B, T, ...]: the shown canvas of every step [B, T, ...].
    fn layers<B: Backend<Tensor = T>>(&self, be: &mut B, writes: &T) -> T {
        let c = &self.config;
        let mut done: Option<T> = None;
        let mut shown = Vec::new();
        for (first, len) in c.step_blocks() {
            let w = be.narrow(writes, 1, first, len);
            let sums = be.cumsum(&w, 1);
            let canvas = self.first_canvas(be, sums);
            shown.push(match &done {
                None => be.sigmoid(&canvas),
                Some(d) => composed(be, d, &canvas),
            });
            let last = be.narrow(&canvas, 1, len - 1, 1);
            let mass = layer_mass(be, &last);
            done = Some(match done {
                None => mass,
                Some(d) => be.add(&d, &mass),
            });
        }
        let parts: Vec<&T> = shown.iter().collect();
        be.concat(&parts, 1)
    }

    /// The video from the write factors alone (write.rs, `summed_writes`): for
    /// each block of steps, c^0 plus the block's writes summed as one product,
    /// and the blocks' canvases united (canvas.rs, `union`; one block gives
    /// sigmoid(c^T)). `blocks` is one block of all T steps for one canvas, a
    /// block per object for objects on layers. The same numbers as the last of
    /// the shown canvases, but a player that shows only the video runs neither
    /// the writes of every step nor their running sums. `win` and `patch` hold
    /// the windows and patches of B x T steps, video-major. None for the
    /// Baseline, whose writes do not factor.
    fn video_from_factors<B: Backend<Tensor = T>>(
        &self,
        be: &mut B,
        win: &Window<T>,
        patch: &T,
        geo: Geometry,
        blocks: &[(i64, i64)],
    ) -> Option<T> {
        if win.temporal.is_some() {
            return None;
        }
        let steps = self.config.timesteps;
        // [B T, rest..] -> the steps first..first + len of every video, [B len, rest..].
        let steps_of = |be: &mut B, t: &T, rest: &[i64], first: i64, len: i64| {
            let t = be.reshape(t, &[&[-1, steps][..], rest].concat());
            let t = be.narrow(&t, 1, first, len);
            be.reshape(&t, &[&[-1][..], rest].concat())
        };
        let (k, g) = (geo.k, self.config.patch_groups(geo.k));
        let param_rest = [geo.groups, 1]; // window parameters: [B T, F, 1]
        let patch_rest: Vec<i64> = if geo.colour() {
            vec![g, geo.channels, k, k] // patches: [B T, G, (C,) K, K], as patch_of
        } else {
            vec![g, k, k]
        };
        let mut layers = Vec::new();
        for &(first, len) in blocks {
            let sum = if (first, len) == (0, steps) {
                summed_writes(be, win, patch, geo, steps)?
            } else {
                let block = Window {
                    g_row: steps_of(be, &win.g_row, &param_rest, first, len),
                    g_col: steps_of(be, &win.g_col, &param_rest, first, len),
                    sigma2: steps_of(be, &win.sigma2, &param_rest, first, len),
                    delta: steps_of(be, &win.delta, &param_rest, first, len),
                    gamma: steps_of(be, &win.gamma, &param_rest, first, len),
                    temporal: None,
                };
                let p = steps_of(be, patch, &patch_rest, first, len);
                summed_writes(be, &block, &p, geo, len)?
            };
            layers.push(self.first_canvas(be, sum));
        }
        Some(union(be, &layers))
    }

    /// The whole generation path for z [B, T, z_dim] (and caption ids [B, L]).
    ///
    /// At generation the decoder LSTMs read only [z^t, S] (eq. 13), never the
    /// canvas, so each runs over all T steps at once ([`Lstm::sequence`]: one ONNX
    /// `LSTM` node), and the windows, patches and writes of all T steps are one
    /// batch of T x B. The canvases are the running sum of the writes (eq. 10).
    /// The video, sigmoid(c^T), is computed apart from them where the writes
    /// factor (write.rs): c^T = c^0 + sum_t rows_t x f_col_t is one matrix product
    /// of the factors of all T steps concatenated. The two are the same numbers up
    /// to float rounding; a player that shows only the video runs only its part of
    /// the graph. Training runs the same functions one step at a time, between
    /// encoder steps (syncdraw.rs).
    pub fn generate<B: Backend<Tensor = T>>(
        &self,
        be: &mut B,
        z: &T,
        caption: Option<&T>,
    ) -> Generated<T> {
        let c = &self.config;
        let geo = Geometry::of(c, c.write_k);
        let steps = c.timesteps;
        let s = self.caption_embedding(be, caption);
        let z_seq = be.transpose(z, &[1, 0, 2]); // [T, B, z_dim]

        // h of every step, [B T, H] (video-major, so that every later tensor
        // has its steps inside its video), per decoder LSTM (as in `step`).
        let hs: Vec<T> = c
            .decoder
            .roles()
            .iter()
            .zip(&self.lstms)
            .map(|(role, lstm)| {
                let x = match &s {
                    Some(s) => {
                        let f = self.feature_sequence(be, s, *role);
                        be.concat(&[&z_seq, &f], 2)
                    }
                    None => be.reshape(&z_seq, &[steps, -1, c.z_dim]),
                };
                // [T, B, H]: one sequence from the zero state per block of steps.
                let blocks = c.step_blocks();
                let h = match blocks.as_slice() {
                    [_] => lstm.sequence(be, &x, steps),
                    _ => {
                        let hs: Vec<T> = blocks
                            .iter()
                            .map(|&(first, len)| {
                                let x = be.narrow(&x, 0, first, len);
                                lstm.sequence(be, &x, len)
                            })
                            .collect();
                        let hs: Vec<&T> = hs.iter().collect();
                        be.concat(&hs, 0)
                    }
                };
                let h = be.transpose(&h, &[1, 0, 2]);
                be.reshape(&h, &[-1, lstm.hidden])
            })
            .collect();
        let temporal = c.variant == Variant::Baseline;
        let win = window(be, &self.write_window, &hs[0], geo, temporal);
        let patch = self.patch_of(be, &hs[hs.len() - 1]);
        let (n, a, w) = (c.frames, c.height, c.width);
        // c^t = c^0 + write_1 + .. + write_t  (eq. 9, 10), [B, T, N, (C,) A, B]
        let writes = write(be, &win, &patch, geo);
        let mut by_step = vec![-1, steps];
        by_step.extend_from_slice(&geo.frames_shape(n)[1..]);
        let writes = be.reshape(&writes, &by_step);
        let (shown, blocks) = if c.layered() {
            (self.layers(be, &writes), c.step_blocks())
        } else {
            let sums = be.cumsum(&writes, 1);
            let canvas = self.first_canvas(be, sums);
            (be.sigmoid(&canvas), vec![(0, steps)])
        };
        let video = match self.video_from_factors(be, &win, &patch, geo, &blocks) {
            Some(video) => video,
            None => {
                let last = be.narrow(&shown, 1, steps - 1, 1);
                be.reshape(&last, &geo.frames_shape(n))
            }
        };
        let video = be.reshape(&video, &[-1, n, c.channels, a, w]);
        // [B, T, N, C, A, B]: grey canvases get their channel axis here.
        let canvases = if geo.colour() {
            shown
        } else {
            be.unsqueeze(&shown, 3)
        };
        Generated { video, canvases }
    }
}
