//! Hyper-parameters of a Sync-DRAW model, saved with every checkpoint.
use serde::{Deserialize, Serialize};

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
}

/// The jointly trained caption encoder that stands in for skip-thought vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptionConfig {
    pub vocab_size: i64,
    /// L: the fixed token length of the `caption` input.
    pub length: i64,
    pub embed_size: i64,
    /// Size of S, the caption embedding (the caption LSTM's hidden size).
    pub hidden_size: i64,
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

    /// Temporal grid size of the Baseline's cuboid (K x N filterbank over frames).
    pub fn temporal_k(&self, k: i64) -> i64 {
        k
    }

    /// Values written per step: a K x K patch per frame, or a K x K x K cuboid.
    pub fn write_patch_size(&self) -> i64 {
        match self.variant {
            Variant::Syncdraw | Variant::Global => self.frames * self.write_k * self.write_k,
            Variant::Baseline => self.temporal_k(self.write_k) * self.write_k * self.write_k,
        }
    }

    /// Values read per step from one video (x or x_hat).
    pub fn read_patch_size(&self) -> i64 {
        match self.variant {
            Variant::Syncdraw | Variant::Global => self.frames * self.read_k * self.read_k,
            Variant::Baseline => self.temporal_k(self.read_k) * self.read_k * self.read_k,
        }
    }

    pub fn caption_size(&self) -> i64 {
        self.caption.as_ref().map_or(0, |c| c.hidden_size)
    }

    pub fn pixels(&self) -> i64 {
        self.frames * self.height * self.width
    }
}
