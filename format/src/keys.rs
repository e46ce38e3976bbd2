//! ONNX metadata keys of a syncdraw model (docs/model-format.md, "Metadata").

pub const FORMAT_VERSION: &str = "syncdraw.format_version";
pub const FRAMES: &str = "syncdraw.frames";
pub const HEIGHT: &str = "syncdraw.height";
pub const WIDTH: &str = "syncdraw.width";
pub const CHANNELS: &str = "syncdraw.channels";
pub const TIMESTEPS: &str = "syncdraw.timesteps";
pub const Z_DIM: &str = "syncdraw.z_dim";
/// Ids per caption (0: unconditional).
pub const CAPTION_LENGTH: &str = "syncdraw.caption_length";
/// Format 2: the caption grammar as JSON ([`crate::Grammar`]), or `null`.
pub const CAPTION_GRAMMAR: &str = "syncdraw.caption_grammar";
/// Format 1: the word vocabulary as JSON ([`crate::Vocabulary`]), or `null`.
pub const VOCABULARY: &str = "syncdraw.vocabulary";
pub const DATASET: &str = "syncdraw.dataset";
pub const VARIANT: &str = "syncdraw.variant";
pub const EXAMPLE_CAPTIONS: &str = "syncdraw.example_captions";
/// Optimizer steps behind the weights.
pub const TRAINING_STEPS: &str = "syncdraw.training_steps";
/// Test-split NLL bound in nats per video, or `null`.
pub const TEST_NLL: &str = "syncdraw.test_nll";
