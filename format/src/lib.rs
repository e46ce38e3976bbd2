//! The contract between a trained syncdraw model and whoever runs it, with no
//! dependency on libtorch or GStreamer: both the training crate and the element
//! build on it, so a caption turns into the same ids in both by construction.
//!
//! - [`grammar`]: the caption grammar of format-2 models ("digit 3 is moving up
//!   and down"), parsed into one id per slot (digit, motion) per object;
//! - [`words`]: the word tokenizer and vocabulary of format-1 models;
//! - [`CaptionCodec`]: either of the two, as a model declares it;
//! - [`keys`]: the ONNX metadata keys (docs/model-format.md);
//! - [`onnx`]: the metadata of an ONNX file, read without ONNX Runtime;
//! - [`prune`]: a model's graph cut down to the one output a player shows.
pub mod grammar;
pub mod keys;
pub mod onnx;
pub mod prune;
pub mod words;

pub use grammar::{Grammar, Role, Slot};
pub use words::Vocabulary;

/// The model format version written by the exporter. Version 1 models (word
/// tokens, `syncdraw.vocabulary`) are still read; see [`SUPPORTED_VERSIONS`].
pub const FORMAT_VERSION: u32 = 2;

/// Every format version a reader of this crate accepts.
pub const SUPPORTED_VERSIONS: [u32; 2] = [1, 2];

/// The temperature a player samples the prior with unless told otherwise: z ~
/// N(0, t² I). Below 1 the drawings are more typical: the shipped one-digit
/// model draws the captioned digit in 95 % of its videos at 0.8 against 91-92 %
/// at 1 (docs/results.md, "Temperature"). 1 samples the model as trained, as
/// `eval` and `fidelity` do by default.
pub const DEFAULT_TEMPERATURE: f64 = 0.8;

/// Longest caption accepted, in bytes: far above any grammar's longest caption,
/// low enough that a pasted document is refused before it is split into words.
pub const MAX_CAPTION_BYTES: usize = 1024;

/// Why a caption cannot be turned into a model's caption ids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptionError {
    #[error("caption is empty; {accepted}")]
    Empty { accepted: String },
    #[error("caption is {bytes} bytes long; at most {max} are accepted; {accepted}")]
    TooLong {
        bytes: usize,
        max: usize,
        accepted: String,
    },
    #[error("caption {caption:?}: word {position} {word:?} is not what the grammar expects here ({expected}); {accepted}")]
    UnexpectedWord {
        caption: String,
        /// 1-based position of the offending word.
        position: usize,
        word: String,
        expected: String,
        accepted: String,
    },
    #[error("caption {caption:?} stops too early: {expected} must follow; {accepted}")]
    Incomplete {
        caption: String,
        expected: String,
        accepted: String,
    },
    #[error(
        "caption {caption:?} describes {found} objects; this model draws {wanted}; {accepted}"
    )]
    ObjectCount {
        caption: String,
        found: usize,
        wanted: String,
        accepted: String,
    },
    #[error("caption {caption:?} uses words this model does not know: {}; known words: {}", unknown.join(", "), known.join(" "))]
    UnknownWords {
        caption: String,
        unknown: Vec<String>,
        known: Vec<String>,
    },
    #[error("caption {caption:?} has {words} words; this model reads at most {max}")]
    TooManyWords {
        caption: String,
        words: usize,
        max: usize,
    },
}

/// How a caption-conditioned model reads captions.
#[derive(Debug, Clone, PartialEq)]
pub enum CaptionCodec {
    /// Format 2: the caption is parsed by a grammar into slot ids.
    Grammar(Grammar),
    /// Format 1: word ids, right-padded to `length`.
    Words {
        vocabulary: Vocabulary,
        length: usize,
    },
}

impl CaptionCodec {
    /// Number of int64 ids per caption (the `caption` input's second axis).
    pub fn length(&self) -> usize {
        match self {
            CaptionCodec::Grammar(g) => g.ids_len(),
            CaptionCodec::Words { length, .. } => *length,
        }
    }

    /// The ids of `caption`.
    pub fn encode(&self, caption: &str) -> Result<Vec<i64>, CaptionError> {
        match self {
            CaptionCodec::Grammar(g) => g.encode(caption),
            CaptionCodec::Words { vocabulary, length } => vocabulary.encode(caption, *length),
        }
    }

    /// A short description of the accepted captions, for messages.
    pub fn accepted(&self) -> String {
        match self {
            CaptionCodec::Grammar(g) => g.accepted(),
            CaptionCodec::Words { vocabulary, .. } => {
                format!("known words: {}", vocabulary.words_list().join(" "))
            }
        }
    }
}
