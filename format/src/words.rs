//! Words of a caption, and the word vocabulary of format-1 models.
use crate::{CaptionError, MAX_CAPTION_BYTES};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

pub const PAD: &str = "<pad>";

/// The one tokenizer rule: ASCII-lowercase, split at every run of characters that
/// are not ASCII letters or digits ("Digit 3, moving  up-and-down" gives
/// digit 3 moving up and down).
pub fn words(caption: &str) -> Vec<String> {
    caption
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Refuses captions over [`MAX_CAPTION_BYTES`] before any splitting.
pub(crate) fn check_size(
    caption: &str,
    accepted: impl FnOnce() -> String,
) -> Result<(), CaptionError> {
    if caption.len() > MAX_CAPTION_BYTES {
        return Err(CaptionError::TooLong {
            bytes: caption.len(),
            max: MAX_CAPTION_BYTES,
            accepted: accepted(),
        });
    }
    Ok(())
}

/// Format 1: token list (index = id, `pad_id` the padding) and tokenizer rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    pub tokens: Vec<String>,
    pub pad_id: i64,
    pub lowercase: bool,
    pub split: String,
}

impl Vocabulary {
    /// The vocabulary of a set of captions, words sorted, id 0 the pad.
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

    /// The words of the vocabulary, without the pad token.
    pub fn words_list(&self) -> Vec<String> {
        self.tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as i64 != self.pad_id)
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// Token ids of `caption`, right-padded with the pad id to `length`.
    pub fn encode(&self, caption: &str, length: usize) -> Result<Vec<i64>, CaptionError> {
        let accepted = || format!("known words: {}", self.words_list().join(" "));
        check_size(caption, accepted)?;
        let ws = words(caption);
        if ws.is_empty() {
            return Err(CaptionError::Empty {
                accepted: accepted(),
            });
        }
        let index: HashMap<&str, i64> = self
            .tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as i64 != self.pad_id)
            .map(|(i, t)| (t.as_str(), i as i64))
            .collect();
        let mut unknown: Vec<String> = Vec::new();
        for w in &ws {
            if !index.contains_key(w.as_str()) && !unknown.contains(w) {
                unknown.push(w.clone());
            }
        }
        if !unknown.is_empty() {
            return Err(CaptionError::UnknownWords {
                caption: caption.into(),
                unknown,
                known: self.words_list(),
            });
        }
        if ws.len() > length {
            return Err(CaptionError::TooManyWords {
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
