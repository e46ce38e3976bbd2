//! Hyper-parameters of a Sync-DRAW model, saved with every checkpoint.
use serde::{Deserialize, Serialize};
pub use syncdraw_format::Role;

/// Which attention the model uses: the three rows of the paper's Table 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// Sync-DRAW: one read and one write window per frame (§3.1).
    Syncdraw,
    /// One set of attention parameters shared by all frames.
    Global,
    /// DRAW with a spatio-temporal cuboid: a shared spatial window plus a K x N
    /// temporal filterbank over the frames (§4.1).
    Baseline,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Syncdraw => "syncdraw",
            Variant::Global => "global",
            Variant::Baseline => "baseline",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub variant: Variant,
    /// Frames per video (N).
    pub frames: i64,
    /// Frame height (A) and width (B) in pixels.
    pub height: i64,
    pub width: i64,
    /// Colour channels C of every frame: 1 (grey) or 3 (R, G, B); absent in
    /// older checkpoints: 1. Read and write apply the same filterbanks to each
    /// channel (read.rs, write.rs).
    #[serde(default = "one")]
    pub channels: i64,
    /// Drawing steps (T).
    pub timesteps: i64,
    /// Read grid size (K x K per frame).
    pub read_k: i64,
    /// Write grid size (K x K per frame).
    pub write_k: i64,
    pub enc_size: i64,
    pub dec_size: i64,
    /// Latent size per step.
    pub z_dim: i64,
    /// Caption conditioning: `None` for an unconditional model.
    pub caption: Option<CaptionConfig>,
    /// How the decoder is conditioned (absent in older checkpoints: `joint`).
    #[serde(default)]
    pub decoder: DecoderKind,
    /// Attention parameters squashed into ranges that keep windows in the frame
    /// (filterbank.rs); absent in older checkpoints: unbounded.
    #[serde(default)]
    pub bounded_windows: bool,
    /// Forget-gate bias of every LSTM at initialisation: 0 in the paper's setup,
    /// 1 as Gers et al. (2000) and Jozefowicz et al. (2015) advise, so the cells
    /// start by remembering. Only the starting weights depend on it.
    #[serde(default)]
    pub forget_bias: f64,
    /// Filterbank rows normalised stably (filterbank.rs): a row whose Gaussian
    /// lies off the frame puts its weight on the nearest pixels instead of
    /// reading zeros; absent in older checkpoints: the paper's normaliser with a
    /// floor.
    #[serde(default)]
    pub stable_filterbank: bool,
    /// Baseline only: points of the cuboid's temporal grid, read and write; `None`
    /// (older checkpoints): as many as the spatial grid (read_k, write_k).
    #[serde(default)]
    pub temporal_k: Option<i64>,
    /// Starting value of a learned initial canvas logit c^0 (eq. 10 starts from
    /// c^0 = 0, every pixel at probability 0.5); `None`: the paper's c^0 = 0.
    #[serde(default)]
    pub canvas_init: Option<f64>,
    /// Which objects of the caption the decoder LSTMs read at each step (absent
    /// in older checkpoints: all of them at every step, as eq. 13).
    #[serde(default)]
    pub draw_order: DrawOrder,
    /// Objects per video of an unconditional model drawn in turn or on layers
    /// (a captioned model takes them from its caption encoder); absent in older
    /// checkpoints and in models drawn `together`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<i64>,
    /// Whether the encoder LSTM reads the caption features S beside the
    /// glimpses and h_dec^{t-1} (eq. 12 writes [R^t, h_dec^{t-1}, S]; true, and
    /// absent in older checkpoints). false: Q(Z^t) is inferred from the video
    /// alone, so no part of the model sees a caption's slots together (the
    /// what-where decoder reads them by role), and the latents of a caption
    /// never seen in training come from the same function as any other's. The
    /// caption is what the video shows, so the encoder loses no information.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub encoder_caption: bool,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

fn one() -> i64 {
    1
}

/// The decoder's structure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DecoderKind {
    /// The paper's: one decoder LSTM reads [z, S] (eq. 13) and gives both the
    /// write window and the write patch.
    #[default]
    Joint,
    /// §3.1.3's "where to write" and "what to write" from two LSTMs: one reads
    /// [z, S_where] (the motion slots) and gives the write windows, the other reads
    /// [z, S_what] (the digit slots) and gives the write patches. Needs a slot
    /// caption encoder; an unconditional model splits the same way on z alone.
    WhatWhere,
}

impl DecoderKind {
    /// The caption role each decoder LSTM reads, in the LSTMs' order: the
    /// joint LSTM reads S whole (None); what-where reads where, then what.
    pub fn roles(self) -> &'static [Option<Role>] {
        match self {
            DecoderKind::Joint => &[None],
            DecoderKind::WhatWhere => &[Some(Role::Where), Some(Role::What)],
        }
    }
}

/// Which caption objects condition the decoder at each drawing step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DrawOrder {
    /// Every step reads S whole, every object of the caption (eq. 13).
    #[default]
    Together,
    /// The T steps are split into one block per object, in caption order; the
    /// decoder LSTMs start every block from the zero state and read only the
    /// slots of the block's object, so each object is drawn from its own digit,
    /// motion and latents, like the one object of a one-digit model, onto the
    /// shared canvas. Needs the slots caption encoder, or no captions: an
    /// unconditional model has one block per object of the data (its digits),
    /// each drawn from its own latents alone.
    InTurn,
    /// As `in-turn`, but every object's block draws on a canvas layer of its
    /// own (eq. 10 within the block), and the layers are composed as the data's
    /// digits are: a pixel is lit if any layer lights it, p = 1 - prod_o (1 -
    /// sigmoid(c_o)) (canvas.rs). An object's early steps, which paint its
    /// background, cannot erase another object.
    Layers,
    /// The decoder of `layers`, inferred in another order: the encoder takes
    /// the objects' steps in turn, one step of each object's block after
    /// another (for two objects of 32 steps: the first object's step 0, the
    /// second's step 0, the first's step 1, ...), every layer going on from
    /// its own last state, and every read sees all layers composed. So the
    /// first object's steps read an error video from which the other layer
    /// already takes what it has drawn, where `layers` reads both objects
    /// until the first layer is finished. Generation is that of `layers`
    /// (the decoder never reads the canvas), so the two export the same
    /// graph; only the encoder and the bound differ.
    LayersInterleaved,
}

impl DrawOrder {
    pub fn name(self) -> &'static str {
        match self {
            DrawOrder::Together => "together",
            DrawOrder::InTurn => "in-turn",
            DrawOrder::Layers => "layers",
            DrawOrder::LayersInterleaved => "layers-interleaved",
        }
    }
}

/// The jointly trained caption encoder that stands in for skip-thought vectors.
/// Older checkpoints hold the `Words` form (no `slots` field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CaptionConfig {
    Slots(SlotsConfig),
    Words(WordsConfig),
}

/// Format 2: one id per slot per object (syncdraw_format::Grammar), each slot kind
/// with its own embedding table; S is the concatenation in caption order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotsConfig {
    /// Objects per caption (the grammar's max_objects).
    pub objects: i64,
    /// Per slot kind, in template order: its number of values and its role.
    pub slots: Vec<SlotKind>,
    /// Embedding size of every slot.
    pub embed_size: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotKind {
    pub name: String,
    pub values: i64,
    pub role: Role,
}

/// Format 1: an LSTM over word embeddings, S = its last hidden state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordsConfig {
    pub vocab_size: i64,
    /// L: the fixed token length of the `caption` input.
    pub length: i64,
    pub embed_size: i64,
    /// Size of S, the caption embedding (the caption LSTM's hidden size).
    pub hidden_size: i64,
}

impl CaptionConfig {
    /// Ids per caption: the `caption` input's second axis.
    pub fn length(&self) -> i64 {
        match self {
            CaptionConfig::Slots(s) => s.objects * s.slots.len() as i64,
            CaptionConfig::Words(w) => w.length,
        }
    }

    /// Size of S, or of its part for one role (slots only; words give S whole
    /// for either role).
    pub fn size(&self, role: Option<Role>) -> i64 {
        match self {
            CaptionConfig::Slots(s) => {
                let n = s
                    .slots
                    .iter()
                    .filter(|k| role.is_none_or(|r| k.role == r))
                    .count() as i64;
                s.objects * n * s.embed_size
            }
            CaptionConfig::Words(w) => w.hidden_size,
        }
    }
}

impl ModelConfig {
    /// Number of frame groups an attention window set is computed for: every frame
    /// (Sync-DRAW) or one shared set (Global, Baseline).
    pub fn attention_groups(&self) -> i64 {
        match self.variant {
            Variant::Syncdraw => self.frames,
            Variant::Global | Variant::Baseline => 1,
        }
    }

    /// The Baseline's temporal grid size next to a spatial grid of `k` points.
    pub fn temporal_k(&self, k: i64) -> i64 {
        self.temporal_k.unwrap_or(k)
    }

    /// Values written per step: a K x K patch per frame and channel, or the
    /// Baseline's K x K x K_t cuboid per channel (K_t temporal points over the N
    /// frames).
    pub fn write_patch_size(&self) -> i64 {
        self.channels * self.patch_groups(self.write_k) * self.write_k * self.write_k
    }

    /// Values read per step from one video (x or x_hat): K x K per frame (or
    /// temporal point) and channel.
    pub fn read_patch_size(&self) -> i64 {
        self.channels * self.patch_groups(self.read_k) * self.read_k * self.read_k
    }

    /// Patches per channel next to a spatial grid of `k` points: one per frame,
    /// or the Baseline's K_t temporal points.
    pub fn patch_groups(&self, k: i64) -> i64 {
        match self.variant {
            Variant::Syncdraw | Variant::Global => self.frames,
            Variant::Baseline => self.temporal_k(k),
        }
    }

    /// Size of S (eq. 11).
    pub fn caption_size(&self) -> i64 {
        self.caption.as_ref().map_or(0, |c| c.size(None))
    }

    /// Size of the caption features the encoder LSTM reads: S whole, or none
    /// where `encoder_caption` is off.
    pub fn encoder_caption_size(&self) -> i64 {
        if self.encoder_caption {
            self.caption_size()
        } else {
            0
        }
    }

    /// Size of the caption features a decoder LSTM reads at a step: S whole
    /// (`role` None, a joint decoder) or its part for one role (what-where), of
    /// every object, or of one object when objects are drawn in turn.
    pub fn decoder_caption_size(&self, role: Option<Role>) -> i64 {
        let size = self.caption.as_ref().map_or(0, |c| c.size(role));
        match (&self.caption, self.objects_in_turn()) {
            (Some(CaptionConfig::Slots(s)), Some(_)) => size / s.objects,
            _ => size,
        }
    }

    /// With [`DrawOrder::InTurn`] or [`DrawOrder::Layers`]: the number of
    /// objects whose blocks of steps split the T steps, from the slot caption
    /// encoder, or [`Self::objects`] for an unconditional model; otherwise None.
    pub fn objects_in_turn(&self) -> Option<i64> {
        match (&self.caption, self.draw_order) {
            (_, DrawOrder::Together) => None,
            (Some(CaptionConfig::Slots(s)), _) => Some(s.objects),
            (Some(CaptionConfig::Words(_)), _) => None,
            (None, _) => self.objects,
        }
    }

    /// The object drawn at step t (0-based) when objects are drawn in turn:
    /// object o has steps [o T / n, (o + 1) T / n), so with T = 10 and two
    /// objects steps 0-4 draw the first and 5-9 the second.
    pub fn object_of_step(&self, t: i64) -> Option<i64> {
        self.objects_in_turn().map(|n| t * n / self.timesteps)
    }

    /// The blocks of steps the decoder draws, as (first step, steps): one per
    /// object when objects are drawn in turn, else all T steps as one.
    pub fn step_blocks(&self) -> Vec<(i64, i64)> {
        let mut blocks: Vec<(i64, i64)> = Vec::new();
        for t in 0..self.timesteps {
            match blocks.last_mut() {
                Some((first, len)) if self.object_of_step(*first) == self.object_of_step(t) => {
                    *len += 1
                }
                _ => blocks.push((t, 1)),
            }
        }
        blocks
    }

    /// Whether objects are drawn on canvas layers of their own (more than one
    /// block of steps with [`DrawOrder::Layers`] or
    /// [`DrawOrder::LayersInterleaved`]).
    pub fn layered(&self) -> bool {
        matches!(
            self.draw_order,
            DrawOrder::Layers | DrawOrder::LayersInterleaved
        ) && self.step_blocks().len() > 1
    }

    /// The decoder step (as [`Self::object_of_step`] counts them) that each
    /// step of inference draws: t itself, or with
    /// [`DrawOrder::LayersInterleaved`] the blocks' steps taken in turn, one
    /// of each block at a time (a shorter block's turn is skipped once it is
    /// done).
    pub fn inference_order(&self) -> Vec<i64> {
        if !(self.draw_order == DrawOrder::LayersInterleaved && self.layered()) {
            return (0..self.timesteps).collect();
        }
        let blocks = self.step_blocks();
        let longest = blocks.iter().map(|&(_, len)| len).max().unwrap_or(0);
        (0..longest)
            .flat_map(|i| {
                blocks
                    .iter()
                    .filter(move |&&(_, len)| i < len)
                    .map(move |&(first, _)| first + i)
            })
            .collect()
    }

    /// Whether step t starts a new object's block after another's: the decoder
    /// LSTMs then start again from the zero state.
    pub fn starts_block(&self, t: i64) -> bool {
        t > 0 && self.object_of_step(t) != self.object_of_step(t - 1)
    }

    /// Hidden sizes of the decoder LSTMs: [dec] for `joint`, [where, what] for
    /// `what-where` (dec_size split in two, so h_dec keeps its size).
    pub fn dec_sizes(&self) -> Vec<i64> {
        match self.decoder {
            DecoderKind::Joint => vec![self.dec_size],
            DecoderKind::WhatWhere => vec![self.dec_size / 2, self.dec_size - self.dec_size / 2],
        }
    }

    /// Values of one video: N x C x A x B.
    pub fn pixels(&self) -> i64 {
        self.frames * self.channels * self.height * self.width
    }
}
