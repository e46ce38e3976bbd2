//! Where a model's videos come from: captioned Bouncing MNIST generated from
//! digits (data/src/bouncing.rs), or a set imported from a folder of captioned
//! videos (`syncdraw-train data --videos`, data/src/folder.rs).
//!
//! A [`DataSource`] is the description a checkpoint records; [`Videos`] is one
//! split of it in memory. Training, the batcher, the NLL bound, sampling,
//! fidelity and export ask these two for videos, captions, the caption grammar
//! and the frame shape, and so work from either source.
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use syncdraw_data::bouncing::{contents, Split};
use syncdraw_data::dataset::DataError;
use syncdraw_data::folder::{grammar_captions, FolderDataset, FolderError};
use syncdraw_data::video_io::FrameRule;
use syncdraw_data::{Dataset, DatasetConfig, Digits};
use syncdraw_format::Grammar;

/// How many captions of a folder set's grammar are listed at most (examples,
/// default captions to sample).
const CAPTION_LIST: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error("data set {dir}: {reason}")]
    Mismatch { dir: PathBuf, reason: String },
    #[error("binarised pixels are defined per MNIST digit image (one Bernoulli sample of each digit, drawn into every frame; data/src/binarize.rs); the data set {0} has no digit images: train on its pixels as they are (without --binarize)")]
    NoBinarization(String),
}

/// What a model is trained on, as its checkpoint records it (`Meta::data`,
/// flattened): `"dataset": {..}` for generated Bouncing MNIST, the key every
/// older checkpoint has, or `"folder": {..}` for an imported set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DataSource {
    /// Captioned Bouncing MNIST, generated (and cached) from this configuration.
    #[serde(rename = "dataset")]
    Generated(DatasetConfig),
    /// A set imported by `syncdraw-train data --videos`.
    #[serde(rename = "folder")]
    Folder(FolderSource),
}

/// An imported set: where it is, and what it held when the run started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FolderSource {
    /// The set's directory, with train.sdfv and test.sdfv (absolute).
    pub dir: PathBuf,
    /// The caption grammar of every video (the set's header).
    pub grammar: Grammar,
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    /// 1 (grey) or 3 (R, G, B).
    pub channels: usize,
    /// Which frames of each file were taken.
    pub rule: FrameRule,
    pub train_videos: usize,
    pub test_videos: usize,
    /// [`FolderDataset::digest`] of each split: a resumed or evaluated model
    /// refuses a set that changed since.
    pub train_digest: String,
    pub test_digest: String,
}

/// Frames, channels and size of every video of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoShape {
    pub frames: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl VideoShape {
    /// Bytes of one video: frames x channels x height x width.
    pub fn len(&self) -> usize {
        self.frames * self.channels * self.height * self.width
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn split_file(split: Split) -> &'static str {
    match split {
        Split::Train => "train.sdfv",
        Split::Test => "test.sdfv",
    }
}

impl FolderSource {
    /// Describes the set in `dir` (both splits are read and checked to agree),
    /// with the two splits.
    pub fn open(dir: &Path) -> Result<(FolderSource, Videos, Videos), SourceError> {
        let dir = dir.canonicalize().map_err(|source| FolderError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let train = FolderDataset::read(&dir.join(split_file(Split::Train)))?;
        let test = FolderDataset::read(&dir.join(split_file(Split::Test)))?;
        let mismatch = |reason: String| SourceError::Mismatch {
            dir: dir.clone(),
            reason,
        };
        let (h, t) = (&train.header, &test.header);
        if h.grammar != t.grammar || h.spec != t.spec {
            return Err(mismatch(
                "train.sdfv and test.sdfv differ in grammar, frames, size or channels: import the folder again".into(),
            ));
        }
        if h.split != Split::Train || t.split != Split::Test {
            return Err(mismatch(
                "train.sdfv or test.sdfv holds the other split".into(),
            ));
        }
        if train.is_empty() {
            return Err(mismatch("the training split has no videos".into()));
        }
        let source = FolderSource {
            dir: dir.clone(),
            grammar: h.grammar.clone(),
            frames: h.spec.frames,
            height: h.spec.height,
            width: h.spec.width,
            channels: h.spec.channels,
            rule: h.spec.rule,
            train_videos: train.len(),
            test_videos: test.len(),
            train_digest: train.digest(),
            test_digest: test.digest(),
        };
        Ok((source, Videos::Folder(train), Videos::Folder(test)))
    }

    /// One split, checked against what this description recorded.
    fn load(&self, split: Split) -> Result<FolderDataset, SourceError> {
        let data = FolderDataset::read(&self.dir.join(split_file(split)))?;
        let (count, digest) = match split {
            Split::Train => (self.train_videos, &self.train_digest),
            Split::Test => (self.test_videos, &self.test_digest),
        };
        let h = &data.header;
        let same_shape = (h.spec.frames, h.spec.height, h.spec.width, h.spec.channels)
            == (self.frames, self.height, self.width, self.channels);
        if h.grammar != self.grammar || !same_shape || h.split != split || data.len() != count {
            return Err(SourceError::Mismatch {
                dir: self.dir.clone(),
                reason: format!(
                    "{} is not the split this model was trained with ({count} videos of {} frames of {}x{}x{}): it was imported again or replaced",
                    split_file(split),
                    self.frames,
                    self.channels,
                    self.height,
                    self.width
                ),
            });
        }
        if &data.digest() != digest {
            return Err(SourceError::Mismatch {
                dir: self.dir.clone(),
                reason: format!(
                    "{} changed since this model's run started (digest {} instead of {digest}): it was imported again",
                    split_file(split),
                    data.digest()
                ),
            });
        }
        Ok(data)
    }
}

impl DataSource {
    /// The name an exported model carries (`syncdraw.dataset`):
    /// `bouncing-mnist-1`, or `folder:` and the set's directory name.
    pub fn name(&self) -> String {
        match self {
            DataSource::Generated(c) => c.name(),
            DataSource::Folder(f) => format!(
                "folder:{}",
                f.dir.file_name().map_or_else(
                    || f.dir.display().to_string(),
                    |n| n.to_string_lossy().into_owned()
                )
            ),
        }
    }

    /// The caption grammar of every video.
    pub fn grammar(&self) -> Grammar {
        match self {
            DataSource::Generated(c) => syncdraw_data::bouncing::grammar(c.digits),
            DataSource::Folder(f) => f.grammar.clone(),
        }
    }

    pub fn shape(&self) -> VideoShape {
        match self {
            DataSource::Generated(c) => VideoShape {
                frames: c.video.frames,
                channels: 1,
                height: c.video.size,
                width: c.video.size,
            },
            DataSource::Folder(f) => VideoShape {
                frames: f.frames,
                channels: f.channels,
                height: f.height,
                width: f.width,
            },
        }
    }

    /// The generated data set's configuration; None for a folder set.
    pub fn generated(&self) -> Option<&DatasetConfig> {
        match self {
            DataSource::Generated(c) => Some(c),
            DataSource::Folder(_) => None,
        }
    }

    /// One split: generated Bouncing MNIST comes from (or goes into) the cache
    /// under `cache_dir`; a folder set is read from its directory and must be
    /// the one recorded.
    pub fn load(&self, split: Split, cache_dir: &Path) -> Result<Videos, SourceError> {
        Ok(match self {
            DataSource::Generated(c) => {
                Videos::Generated(Dataset::load_or_generate(c, split, cache_dir)?)
            }
            DataSource::Folder(f) => Videos::Folder(f.load(split)?),
        })
    }

    /// The distinct captions of a split, in a fixed order: for Bouncing MNIST
    /// every digit–motion combination of the split (bouncing.rs), for a folder
    /// set those of its grammar (folder.rs, [`grammar_captions`]).
    pub fn captions(&self, split: Split) -> Vec<String> {
        match self {
            DataSource::Generated(c) => contents(c.digits, split)
                .iter()
                .map(|c| c.caption())
                .collect(),
            DataSource::Folder(f) => grammar_captions(&f.grammar, split, CAPTION_LIST),
        }
    }

    /// The digit images binarised pixels are sampled from (data/binarize.rs);
    /// refused for a folder set.
    pub fn binarization_digits(&self) -> Result<Digits, SourceError> {
        match self {
            DataSource::Generated(c) => Ok(Digits::load(&c.source).map_err(DataError::from)?),
            DataSource::Folder(_) => Err(SourceError::NoBinarization(self.name())),
        }
    }
}

/// One split of a source in memory.
#[derive(Debug, Clone)]
pub enum Videos {
    Generated(Dataset),
    Folder(FolderDataset),
}

impl Videos {
    pub fn len(&self) -> usize {
        match self {
            Videos::Generated(d) => d.len(),
            Videos::Folder(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn shape(&self) -> VideoShape {
        match self {
            Videos::Generated(d) => VideoShape {
                frames: d.config.video.frames,
                channels: 1,
                height: d.config.video.size,
                width: d.config.video.size,
            },
            Videos::Folder(d) => VideoShape {
                frames: d.header.spec.frames,
                channels: d.header.spec.channels,
                height: d.header.spec.height,
                width: d.header.spec.width,
            },
        }
    }

    /// Bytes of one video.
    pub fn video_len(&self) -> usize {
        self.shape().len()
    }

    /// Video `i`: frames x channels x height x width, 0..255.
    pub fn video(&self, i: usize) -> &[u8] {
        match self {
            Videos::Generated(d) => d.video(i),
            Videos::Folder(d) => d.video(i),
        }
    }

    /// Every video's pixels, one after the other.
    pub fn pixels(&self) -> &[u8] {
        match self {
            Videos::Generated(d) => &d.pixels,
            Videos::Folder(d) => &d.pixels,
        }
    }

    pub fn caption(&self, i: usize) -> &str {
        match self {
            Videos::Generated(d) => &d.videos[i].caption,
            Videos::Folder(d) => &d.header.videos[i].caption,
        }
    }

    /// The generated split, for what only digits have (binarisation); None for
    /// a folder set.
    pub fn generated(&self) -> Option<&Dataset> {
        match self {
            Videos::Generated(d) => Some(d),
            Videos::Folder(_) => None,
        }
    }

    /// The same videos with every digit binarised (one fixed sample: the
    /// binarised test split); None for a folder set, which has no digits.
    pub fn binarized(&self, digits: &Digits) -> Option<Videos> {
        self.generated()
            .map(|d| Videos::Generated(d.binarized(digits)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The description older checkpoints hold, `"dataset": {..}` beside the
    /// other fields, reads as generated Bouncing MNIST and is written back in
    /// the same form.
    #[test]
    fn older_descriptions_read_as_generated_data() {
        #[derive(Serialize, Deserialize)]
        struct Holder {
            step: u64,
            #[serde(flatten)]
            data: DataSource,
        }
        let config = DatasetConfig::new(2);
        let old = serde_json::json!({"step": 3, "dataset": config});
        let h: Holder = serde_json::from_value(old.clone()).expect("reads");
        assert_eq!(h.data, DataSource::Generated(config));
        assert_eq!(serde_json::to_value(&h).expect("writes"), old);
    }
}
