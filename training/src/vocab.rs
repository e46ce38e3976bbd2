//! Caption vocabulary and tokenizer (docs/model-format.md, "Vocabulary and tokenizer").
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

pub const PAD: &str = "<pad>";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CaptionError {
    #[error("caption {caption:?} has no words; a caption is words such as \"digit 3 is moving up and down\"")]
    Empty { caption: String },
    #[error(
        "caption {caption:?} uses words the model does not know: {unknown:?}; known words: {known}"
    )]
    UnknownWords {
        caption: String,
        unknown: Vec<String>,
        known: String,
    },
    #[error("caption {caption:?} has {words} words; this model reads at most {max}")]
    TooLong {
        caption: String,
        words: usize,
        max: usize,
    },
}

/// Token list (index = id; id 0 is the pad) plus the tokenizer rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    pub tokens: Vec<String>,
    pub pad_id: i64,
    pub lowercase: bool,
    pub split: String,
}

/// Splits a caption into words: lowercase, split at runs of non-alphanumeric ASCII.
pub fn words(caption: &str) -> Vec<String> {
    caption
        .to_lowercase()
        .split(|ch: char| !ch.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

impl Vocabulary {
    /// Builds the vocabulary from training captions, words sorted for stability.
    pub fn from_captions<'a>(captions: impl IntoIterator<Item = &'a str>) -> Self {
        let set: BTreeSet<String> = captions.into_iter().flat_map(words).collect();
        let mut tokens = vec![PAD.to_string()];
        tokens.extend(set);
        Self {
            tokens,
            pad_id: 0,
            lowercase: true,
            split: "non-alphanumeric".into(),
        }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.len() <= 1
    }

    /// Token ids of `caption`, right-padded with the pad id to `length`.
    pub fn encode(&self, caption: &str, length: usize) -> Result<Vec<i64>, CaptionError> {
        let index: HashMap<&str, i64> = self
            .tokens
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, t)| (t.as_str(), i as i64))
            .collect();
        let ws = words(caption);
        if ws.is_empty() {
            return Err(CaptionError::Empty {
                caption: caption.into(),
            });
        }
        let unknown: Vec<String> = ws
            .iter()
            .filter(|w| !index.contains_key(w.as_str()))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(CaptionError::UnknownWords {
                caption: caption.into(),
                unknown,
                known: self.tokens[1..].join(" "),
            });
        }
        if ws.len() > length {
            return Err(CaptionError::TooLong {
                caption: caption.into(),
                words: ws.len(),
                max: length,
            });
        }
        let mut ids: Vec<i64> = ws.iter().map(|w| index[w.as_str()]).collect();
        ids.resize(length, self.pad_id);
        Ok(ids)
    }
}
