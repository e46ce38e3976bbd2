// SPDX-License-Identifier: MIT OR Apache-2.0
//! A syncdraw model file (docs/model-format.md): its metadata, read without ONNX
//! Runtime, its validation against the contract, and the caption tokenizer.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The model format version this element reads.
pub const FORMAT_VERSION: u32 = 1;

/// Why a model file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid ONNX file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path} breaks the syncdraw model contract (docs/model-format.md): {reason}")]
    Contract { path: PathBuf, reason: String },
    #[error("ONNX Runtime cannot load model {path}: {reason}")]
    Runtime { path: PathBuf, reason: String },
}

/// Why a caption cannot be fed to a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptionError {
    #[error("caption {caption:?} has no words")]
    Empty { caption: String },
    #[error("caption {caption:?} has {words} words; this model takes at most {max}")]
    TooLong {
        caption: String,
        words: usize,
        max: usize,
    },
    #[error("caption {caption:?} has words the model does not know: {}; the vocabulary is: {}", unknown.join(", "), vocabulary.join(" "))]
    UnknownWords {
        caption: String,
        unknown: Vec<String>,
        vocabulary: Vec<String>,
    },
}

/// The tokenizer and vocabulary of a caption-conditioned model (`syncdraw.vocabulary`).
#[derive(Debug, Clone, Deserialize)]
pub struct Vocabulary {
    pub tokens: Vec<String>,
    pub pad_id: i64,
    pub lowercase: bool,
    pub split: String,
}

impl Vocabulary {
    /// The words of `caption` as the tokenizer splits them (steps 1 and 2 of the contract).
    pub fn words(&self, caption: &str) -> Vec<String> {
        split_words(caption, self.lowercase)
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

    /// Turns a caption into `length` token ids, right-padded with the pad id.
    pub fn encode(&self, caption: &str, length: usize) -> Result<Vec<i64>, CaptionError> {
        let words = self.words(caption);
        if words.is_empty() {
            return Err(CaptionError::Empty {
                caption: caption.to_owned(),
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
        let mut ids = Vec::with_capacity(length);
        for w in &words {
            match index.get(w.as_str()) {
                Some(id) => ids.push(*id),
                None if !unknown.contains(w) => unknown.push(w.clone()),
                None => {}
            }
        }
        if !unknown.is_empty() {
            return Err(CaptionError::UnknownWords {
                caption: caption.to_owned(),
                unknown,
                vocabulary: self.words_list(),
            });
        }
        if words.len() > length {
            return Err(CaptionError::TooLong {
                caption: caption.to_owned(),
                words: words.len(),
                max: length,
            });
        }
        ids.resize(length, self.pad_id);
        Ok(ids)
    }
}

/// Lowercases (optionally) and splits at every run of characters that are not ASCII
/// letters or digits.
pub fn split_words(caption: &str, lowercase: bool) -> Vec<String> {
    caption
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            if lowercase {
                w.to_ascii_lowercase()
            } else {
                w.to_owned()
            }
        })
        .collect()
}

/// What the metadata of a model says, validated.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub timesteps: usize,
    pub z_dim: usize,
    pub caption_length: usize,
    pub vocabulary: Option<Vocabulary>,
    pub dataset: Option<String>,
    pub variant: Option<String>,
    pub example_captions: Vec<String>,
}

impl ModelInfo {
    /// Reads and validates the metadata of the ONNX file at `path`.
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let props = read_metadata_props(path)?;
        Self::from_props(path, &props)
    }

    pub fn is_conditional(&self) -> bool {
        self.caption_length > 0
    }

    /// Token ids for `caption`, or `None` for an unconditional model.
    pub fn encode(&self, caption: &str) -> Result<Option<Vec<i64>>, CaptionError> {
        match &self.vocabulary {
            Some(v) => v.encode(caption, self.caption_length).map(Some),
            None => Ok(None),
        }
    }

    /// Number of floats in one frame.
    pub fn frame_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    fn from_props(path: &Path, props: &HashMap<String, String>) -> Result<Self, ModelError> {
        let breach = |reason: String| ModelError::Contract {
            path: path.to_owned(),
            reason,
        };
        let get = |key: &str| {
            props
                .get(key)
                .map(|s| s.trim())
                .ok_or_else(|| breach(format!("metadata key {key} is missing")))
        };
        let int = |key: &str, min: usize| -> Result<usize, ModelError> {
            let v = get(key)?;
            let n: usize = v
                .parse()
                .map_err(|_| breach(format!("metadata {key} = {v:?} is not an integer")))?;
            if n < min {
                return Err(breach(format!(
                    "metadata {key} = {n} must be at least {min}"
                )));
            }
            Ok(n)
        };

        let version = get("syncdraw.format_version")?;
        if version != FORMAT_VERSION.to_string() {
            return Err(breach(format!(
                "syncdraw.format_version is {version:?}; this element reads version {FORMAT_VERSION}"
            )));
        }
        let frames = int("syncdraw.frames", 1)?;
        let height = int("syncdraw.height", 1)?;
        let width = int("syncdraw.width", 1)?;
        let channels = int("syncdraw.channels", 1)?;
        if channels != 1 && channels != 3 {
            return Err(breach(format!(
                "syncdraw.channels is {channels}; only 1 (grey) and 3 (RGB) are supported"
            )));
        }
        let timesteps = int("syncdraw.timesteps", 1)?;
        let z_dim = int("syncdraw.z_dim", 1)?;
        let caption_length = int("syncdraw.caption_length", 0)?;
        let vocab_json = get("syncdraw.vocabulary")?;
        let vocabulary: Option<Vocabulary> = serde_json::from_str(vocab_json)
            .map_err(|e| breach(format!("syncdraw.vocabulary is not valid: {e}")))?;
        match (&vocabulary, caption_length) {
            (None, 0) => {}
            (Some(_), 0) => {
                return Err(breach(
                    "caption_length is 0 (unconditional) but a vocabulary is given".into(),
                ))
            }
            (None, _) => {
                return Err(breach(format!(
                    "caption_length is {caption_length} but syncdraw.vocabulary is null"
                )))
            }
            (Some(v), _) => {
                if v.tokens.is_empty() {
                    return Err(breach("the vocabulary has no tokens".into()));
                }
                if v.pad_id < 0 || v.pad_id as usize >= v.tokens.len() {
                    return Err(breach(format!(
                        "pad_id {} is not an index into the {} tokens",
                        v.pad_id,
                        v.tokens.len()
                    )));
                }
                if v.split != "non-alphanumeric" {
                    return Err(breach(format!(
                        "tokenizer split {:?} is unknown (expected \"non-alphanumeric\")",
                        v.split
                    )));
                }
            }
        }
        let example_captions = props
            .get("syncdraw.example_captions")
            .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
            .unwrap_or_default();
        Ok(ModelInfo {
            path: path.to_owned(),
            frames,
            height,
            width,
            channels,
            timesteps,
            z_dim,
            caption_length,
            vocabulary,
            dataset: props.get("syncdraw.dataset").cloned(),
            variant: props.get("syncdraw.variant").cloned(),
            example_captions,
        })
    }
}

// ---- A minimal protobuf reader for ModelProto.metadata_props -------------------------
//
// ModelProto field 14 is `repeated StringStringEntryProto metadata_props`, whose fields
// are 1 = key and 2 = value. Everything else (the graph with its weights) is skipped
// with a seek, so reading the metadata of a large model costs a few small reads.

const WIRE_VARINT: u64 = 0;
const WIRE_I64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_I32: u64 = 5;

fn read_varint<R: Read>(r: &mut R) -> std::io::Result<Option<u64>> {
    let mut value = 0u64;
    for i in 0..10 {
        let mut byte = [0u8];
        if r.read(&mut byte)? == 0 {
            if i == 0 {
                return Ok(None);
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "truncated varint",
            ));
        }
        value |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "varint longer than 10 bytes",
    ))
}

fn parse_entry(bytes: &[u8]) -> std::io::Result<(String, String)> {
    let mut cur = std::io::Cursor::new(bytes);
    let (mut key, mut value) = (String::new(), String::new());
    while let Some(tag) = read_varint(&mut cur)? {
        let (field, wire) = (tag >> 3, tag & 7);
        if wire != WIRE_LEN {
            skip_field(&mut cur, wire, bytes.len() as u64)?;
            continue;
        }
        let len = read_varint(&mut cur)?.unwrap_or(0) as usize;
        let start = cur.position() as usize;
        let data = bytes.get(start..start + len).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "truncated metadata entry")
        })?;
        cur.set_position((start + len) as u64);
        let s = String::from_utf8(data.to_vec()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "metadata is not UTF-8")
        })?;
        match field {
            1 => key = s,
            2 => value = s,
            _ => {}
        }
    }
    Ok((key, value))
}

fn skip_field<R: Read + Seek>(r: &mut R, wire: u64, file_len: u64) -> std::io::Result<()> {
    let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    match wire {
        WIRE_VARINT => {
            read_varint(r)?.ok_or_else(|| invalid("truncated varint"))?;
        }
        WIRE_I64 => {
            r.seek(SeekFrom::Current(8))?;
        }
        WIRE_I32 => {
            r.seek(SeekFrom::Current(4))?;
        }
        WIRE_LEN => {
            let len = read_varint(r)?.ok_or_else(|| invalid("truncated length"))?;
            let pos = r.stream_position()?;
            if pos.checked_add(len).is_none_or(|end| end > file_len) {
                return Err(invalid("a field runs past the end of the file"));
            }
            r.seek(SeekFrom::Current(len as i64))?;
        }
        other => return Err(invalid(&format!("unknown protobuf wire type {other}"))),
    }
    Ok(())
}

/// Reads `metadata_props` of an ONNX file. Fails on files that are not protobuf
/// ModelProto (no graph, garbage, truncation).
pub fn read_metadata_props(path: &Path) -> Result<HashMap<String, String>, ModelError> {
    let io = |source| ModelError::Io {
        path: path.to_owned(),
        source,
    };
    let corrupt = |reason: String| ModelError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    if file_len == 0 {
        return Err(corrupt("the file is empty".into()));
    }
    let mut r = BufReader::new(file);
    let mut props = HashMap::new();
    let mut have_graph = false;
    let mut ir_version = None;
    loop {
        let tag = match read_varint(&mut r) {
            Ok(Some(tag)) => tag,
            Ok(None) => break,
            Err(e) => return Err(corrupt(e.to_string())),
        };
        let (field, wire) = (tag >> 3, tag & 7);
        if field == 0 {
            return Err(corrupt("protobuf field number 0".into()));
        }
        match (field, wire) {
            (1, WIRE_VARINT) => {
                ir_version = read_varint(&mut r).map_err(|e| corrupt(e.to_string()))?;
            }
            (14, WIRE_LEN) => {
                let len = read_varint(&mut r)
                    .map_err(|e| corrupt(e.to_string()))?
                    .unwrap_or(0);
                if len > 64 << 20 {
                    return Err(corrupt("metadata entry larger than 64 MiB".into()));
                }
                let mut buf = vec![0u8; len as usize];
                r.read_exact(&mut buf)
                    .map_err(|e| corrupt(format!("truncated metadata: {e}")))?;
                let (k, v) = parse_entry(&buf).map_err(|e| corrupt(e.to_string()))?;
                props.insert(k, v);
            }
            (7, WIRE_LEN) => {
                have_graph = true;
                skip_field(&mut r, wire, file_len).map_err(|e| corrupt(e.to_string()))?;
            }
            _ => skip_field(&mut r, wire, file_len).map_err(|e| corrupt(e.to_string()))?,
        }
    }
    if ir_version.is_none() || !have_graph {
        return Err(corrupt(
            "no ONNX ModelProto (ir_version or graph missing)".into(),
        ));
    }
    Ok(props)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        Vocabulary {
            tokens: ["<pad>", "digit", "3", "is", "moving", "up", "and", "down"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            pad_id: 0,
            lowercase: true,
            split: "non-alphanumeric".into(),
        }
    }

    #[test]
    fn tokenizer_follows_contract() {
        let v = vocab();
        assert_eq!(
            v.words("Digit 3, moving up-and-down"),
            ["digit", "3", "moving", "up", "and", "down"]
        );
        assert_eq!(
            v.encode("digit 3 is moving up and down", 9).unwrap(),
            [1, 2, 3, 4, 5, 6, 7, 0, 0]
        );
        assert!(matches!(
            v.encode("  ,, ", 7),
            Err(CaptionError::Empty { .. })
        ));
        assert!(matches!(
            v.encode("digit 3 is moving up and down", 6),
            Err(CaptionError::TooLong { words: 7, .. })
        ));
        let err = v.encode("digit 9 is flying", 7).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("9, flying"), "{msg}");
        assert!(msg.contains("digit 3 is moving up and down"), "{msg}");
        assert!(!msg.contains("<pad>"), "{msg}");
    }
}
