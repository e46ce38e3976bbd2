// SPDX-License-Identifier: MIT OR Apache-2.0
//! A syncdraw model file (docs/model-format.md): its metadata, read without ONNX
//! Runtime, and its validation against the contract (captions are read by
//! `syncdraw_format`: a grammar for format 2, words for format 1).

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use syncdraw_format::onnx::{metadata_props, OnnxError};
use syncdraw_format::{keys, Grammar, Vocabulary};
pub use syncdraw_format::{CaptionCodec, CaptionError, FORMAT_VERSION, SUPPORTED_VERSIONS};

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
    /// How the model reads captions (grammar for format 2, words for format 1);
    /// None for an unconditional model.
    pub captions: Option<CaptionCodec>,
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

    /// Caption ids for `caption`, or `None` for an unconditional model.
    pub fn encode(&self, caption: &str) -> Result<Option<Vec<i64>>, CaptionError> {
        self.captions
            .as_ref()
            .map(|c| c.encode(caption))
            .transpose()
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

        let version = get(keys::FORMAT_VERSION)?;
        let version: u32 = match version.parse() {
            Ok(v) if SUPPORTED_VERSIONS.contains(&v) => v,
            _ => {
                return Err(breach(format!(
                    "{} is {version:?}; this element reads versions {SUPPORTED_VERSIONS:?}. \
                     Export the model again with this release's syncdraw-train \
                     (`syncdraw-train export --checkpoint CKPT --out MODEL.onnx`), or use \
                     the models shipped with it",
                    keys::FORMAT_VERSION
                )))
            }
        };
        let frames = int(keys::FRAMES, 1)?;
        let height = int(keys::HEIGHT, 1)?;
        let width = int(keys::WIDTH, 1)?;
        let channels = int(keys::CHANNELS, 1)?;
        if channels != 1 && channels != 3 {
            return Err(breach(format!(
                "syncdraw.channels is {channels}; only 1 (grey) and 3 (RGB) are supported"
            )));
        }
        let timesteps = int(keys::TIMESTEPS, 1)?;
        let z_dim = int(keys::Z_DIM, 1)?;
        let caption_length = int(keys::CAPTION_LENGTH, 0)?;
        let captions = if version == 1 {
            read_vocabulary(get(keys::VOCABULARY)?, caption_length).map_err(breach)?
        } else {
            read_grammar(get(keys::CAPTION_GRAMMAR)?, caption_length).map_err(breach)?
        };
        let example_captions = props
            .get(keys::EXAMPLE_CAPTIONS)
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
            captions,
            dataset: props.get(keys::DATASET).cloned(),
            variant: props.get(keys::VARIANT).cloned(),
            example_captions,
        })
    }
}

/// Format 2: `syncdraw.caption_grammar`, JSON null or a valid grammar whose ids
/// fill caption_length.
fn read_grammar(json: &str, caption_length: usize) -> Result<Option<CaptionCodec>, String> {
    let grammar: Option<Grammar> = serde_json::from_str(json)
        .map_err(|e| format!("{} is not valid: {e}", keys::CAPTION_GRAMMAR))?;
    match (grammar, caption_length) {
        (None, 0) => Ok(None),
        (Some(_), 0) => Err("caption_length is 0 (unconditional) but a grammar is given".into()),
        (None, _) => Err(format!(
            "caption_length is {caption_length} but {} is null",
            keys::CAPTION_GRAMMAR
        )),
        (Some(g), _) => {
            g.validate()
                .map_err(|e| format!("{} is not valid: {e}", keys::CAPTION_GRAMMAR))?;
            if g.ids_len() != caption_length {
                return Err(format!(
                    "the grammar gives {} ids per caption but caption_length is {caption_length}",
                    g.ids_len()
                ));
            }
            Ok(Some(CaptionCodec::Grammar(g)))
        }
    }
}

/// Format 1: `syncdraw.vocabulary`, JSON null or a word vocabulary.
fn read_vocabulary(json: &str, caption_length: usize) -> Result<Option<CaptionCodec>, String> {
    let vocabulary: Option<Vocabulary> = serde_json::from_str(json)
        .map_err(|e| format!("{} is not valid: {e}", keys::VOCABULARY))?;
    match (vocabulary, caption_length) {
        (None, 0) => Ok(None),
        (Some(_), 0) => Err("caption_length is 0 (unconditional) but a vocabulary is given".into()),
        (None, _) => Err(format!(
            "caption_length is {caption_length} but syncdraw.vocabulary is null"
        )),
        (Some(v), _) => {
            if v.tokens.is_empty() {
                return Err("the vocabulary has no tokens".into());
            }
            if v.pad_id < 0 || v.pad_id as usize >= v.tokens.len() {
                return Err(format!(
                    "pad_id {} is not an index into the {} tokens",
                    v.pad_id,
                    v.tokens.len()
                ));
            }
            if v.split != "non-alphanumeric" {
                return Err(format!(
                    "tokenizer split {:?} is unknown (expected \"non-alphanumeric\")",
                    v.split
                ));
            }
            Ok(Some(CaptionCodec::Words {
                vocabulary: v,
                length: caption_length,
            }))
        }
    }
}

/// Reads `metadata_props` of the ONNX file at `path` (syncdraw_format::onnx).
pub fn read_metadata_props(path: &Path) -> Result<HashMap<String, String>, ModelError> {
    let io = |source| ModelError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    metadata_props(BufReader::new(file), len).map_err(|e| match e {
        OnnxError::Io(source) => io(source),
        OnnxError::Corrupt(reason) => ModelError::Corrupt {
            path: path.to_owned(),
            reason,
        },
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Metadata of a one-digit Bouncing MNIST grammar model (no file behind it),
    /// for the unit tests of the modules that use a model.
    pub(crate) fn grammar_model() -> ModelInfo {
        let g1 = grammar_json(1);
        read(&[(keys::CAPTION_LENGTH, "2"), (keys::CAPTION_GRAMMAR, &g1)]).expect("a valid model")
    }

    fn grammar_json(objects: usize) -> String {
        format!(
            r#"{{"object":"digit {{digit}} is moving {{motion}}","joiner":"and",
                "min_objects":{objects},"max_objects":{objects},"slots":[
                {{"name":"digit","role":"what","values":["0","1","2","3","4","5","6","7","8","9"]}},
                {{"name":"motion","role":"where","values":["up and down","left and right"]}}]}}"#
        )
    }

    fn props(entries: &[(&str, &str)]) -> HashMap<String, String> {
        let mut p: HashMap<String, String> = [
            (keys::FORMAT_VERSION, "2"),
            (keys::FRAMES, "10"),
            (keys::HEIGHT, "32"),
            (keys::WIDTH, "32"),
            (keys::CHANNELS, "1"),
            (keys::TIMESTEPS, "4"),
            (keys::Z_DIM, "8"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in entries {
            p.insert(k.to_string(), v.to_string());
        }
        p
    }

    fn read(entries: &[(&str, &str)]) -> Result<ModelInfo, String> {
        ModelInfo::from_props(Path::new("/m.onnx"), &props(entries)).map_err(|e| e.to_string())
    }

    const VOCAB: &str = r#"{"tokens":["<pad>","digit","3","is","moving","up","and","down"],
        "pad_id":0,"lowercase":true,"split":"non-alphanumeric"}"#;

    #[test]
    fn format_2_reads_the_grammar() {
        let g1 = grammar_json(1);
        let m = read(&[(keys::CAPTION_LENGTH, "2"), (keys::CAPTION_GRAMMAR, &g1)]).unwrap();
        assert!(matches!(&m.captions, Some(CaptionCodec::Grammar(g)) if g.max_objects == 1));
        assert_eq!(
            m.encode("Digit 3, is moving up-and-down").unwrap(),
            Some(vec![4, 1])
        );
        let e = m.encode("digit 3 is flying").unwrap_err().to_string();
        assert!(e.contains("\"flying\""), "{e}");
        assert!(e.contains("<up and down|left and right>"), "{e}");

        let g2 = grammar_json(2);
        let m = read(&[(keys::CAPTION_LENGTH, "4"), (keys::CAPTION_GRAMMAR, &g2)]).unwrap();
        assert_eq!(
            m.encode("digit 0 is moving up and down and digit 9 is moving left and right")
                .unwrap(),
            Some(vec![1, 1, 10, 2])
        );

        let u = read(&[(keys::CAPTION_LENGTH, "0"), (keys::CAPTION_GRAMMAR, "null")]).unwrap();
        assert!(!u.is_conditional() && u.captions.is_none());
        assert_eq!(u.encode("anything").unwrap(), None);
    }

    #[test]
    fn format_2_grammar_must_fit_the_caption_input() {
        let g1 = grammar_json(1);
        let bad = [
            (
                vec![(keys::CAPTION_LENGTH, "2"), (keys::CAPTION_GRAMMAR, "null")],
                "caption_length is 2 but syncdraw.caption_grammar is null",
            ),
            (
                vec![
                    (keys::CAPTION_LENGTH, "0"),
                    (keys::CAPTION_GRAMMAR, g1.as_str()),
                ],
                "caption_length is 0 (unconditional) but a grammar is given",
            ),
            (
                vec![
                    (keys::CAPTION_LENGTH, "4"),
                    (keys::CAPTION_GRAMMAR, g1.as_str()),
                ],
                "the grammar gives 2 ids per caption but caption_length is 4",
            ),
            (
                vec![
                    (keys::CAPTION_LENGTH, "2"),
                    (keys::CAPTION_GRAMMAR, "{digit"),
                ],
                "syncdraw.caption_grammar is not valid",
            ),
            (
                // A format-1 vocabulary does not make a format-2 model.
                vec![(keys::CAPTION_LENGTH, "7"), (keys::VOCABULARY, VOCAB)],
                "syncdraw.caption_grammar is missing",
            ),
        ];
        for (entries, reason) in bad {
            let e = read(&entries).expect_err(reason);
            assert!(e.contains(reason), "{e}");
            assert!(e.contains("breaks the syncdraw model contract"), "{e}");
        }
        let invalid = g1.replace(" {motion}", "");
        let e = read(&[
            (keys::CAPTION_LENGTH, "2"),
            (keys::CAPTION_GRAMMAR, &invalid),
        ])
        .unwrap_err();
        assert!(
            e.contains("syncdraw.caption_grammar is not valid: slot \"motion\" appears 0 times"),
            "{e}"
        );
    }

    #[test]
    fn format_1_reads_the_vocabulary() {
        let m = read(&[
            (keys::FORMAT_VERSION, "1"),
            (keys::CAPTION_LENGTH, "9"),
            (keys::VOCABULARY, VOCAB),
        ])
        .unwrap();
        assert!(matches!(
            m.captions,
            Some(CaptionCodec::Words { length: 9, .. })
        ));
        assert_eq!(
            m.encode("Digit 3 IS moving up-and-down").unwrap(),
            Some(vec![1, 2, 3, 4, 5, 6, 7, 0, 0])
        );
        assert!(matches!(m.encode("  ,, "), Err(CaptionError::Empty { .. })));
        let e = m.encode("digit 9 is flying").unwrap_err().to_string();
        assert!(e.contains("9, flying"), "{e}");
        assert!(e.contains("digit 3 is moving up and down"), "{e}");
        assert!(!e.contains("<pad>"), "{e}");
        let short = read(&[
            (keys::FORMAT_VERSION, "1"),
            (keys::CAPTION_LENGTH, "6"),
            (keys::VOCABULARY, VOCAB),
        ])
        .unwrap();
        assert!(matches!(
            short.encode("digit 3 is moving up and down"),
            Err(CaptionError::TooManyWords {
                words: 7,
                max: 6,
                ..
            })
        ));
        let e = read(&[
            (keys::FORMAT_VERSION, "1"),
            (keys::CAPTION_LENGTH, "7"),
            (keys::VOCABULARY, "null"),
        ])
        .unwrap_err();
        assert!(
            e.contains("caption_length is 7 but syncdraw.vocabulary is null"),
            "{e}"
        );
    }

    #[test]
    fn unknown_versions_are_refused_with_the_way_out() {
        for version in ["0", "3", "two", ""] {
            let e = read(&[
                (keys::FORMAT_VERSION, version),
                (keys::CAPTION_LENGTH, "0"),
                (keys::CAPTION_GRAMMAR, "null"),
            ])
            .unwrap_err();
            assert!(
                e.contains(&format!("syncdraw.format_version is {version:?}")),
                "{e}"
            );
            assert!(e.contains("reads versions [1, 2]"), "{e}");
            assert!(e.contains("Export the model again"), "{e}");
        }
    }
}
