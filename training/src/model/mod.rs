//! Sync-DRAW (Mittal et al. 2017, §3.1), one module per concept.
pub mod canvas;
pub mod caption;
pub mod config;
pub mod decoder;
pub mod encoder;
pub mod filterbank;
pub mod layers;
pub mod read;
pub mod syncdraw;
pub mod window_stats;
pub mod write;

pub use config::{CaptionConfig, DecoderKind, DrawOrder, ModelConfig, Role, Variant};
pub use syncdraw::SyncDraw;
