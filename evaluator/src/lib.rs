//! Caption-fidelity evaluator, trained on real Bouncing MNIST only, which
//! reads a video (frames x size x size in [0, 1], real or generated) and returns
//! its content, the multiset of (digit, motion) pairs, and so its caption.
//!
//! Two steps: a digit detector ([`net`]) maps every frame to a coarse grid of
//! "which digit, if any, is centred in this cell" probabilities; [`reading`] finds
//! the digits in each frame, counts them, tracks them through the frames and reads
//! each one's digit and axis of motion. The decoded caption is
//! [`Content::caption`] of the pairs in canonical order (digit, then up-down before
//! left-right). Captions are compared as unordered multisets of pairs
//! ([`labels::compare`]).
//!
//! The detector is trained ([`train`]) on freshly rendered frames of one and two
//! digits at random places, from the TRAIN image pool of the data set only, so its
//! accuracy on the model's real TEST split (held-out images, held-out
//! combinations) is an honest measure. It never sees motion, so it cannot have
//! learnt the split's "digit 3 moves up and down" shortcuts. [`fidelity`] scores
//! generated videos.
//!
//! Moving-shapes videos are read by rules instead ([`shapes`]: brightest
//! plane, fill of the bounding box, centroid track; grey ones for shape and
//! motion only).
//!
//! File format: one safetensors file with the network's tensors and `meta.json`
//! (a u8 tensor of [`EvaluatorMeta`] as JSON), written atomically.
pub mod labels;
pub mod net;
pub mod reading;
pub mod render;
pub mod shapes;
pub mod train;

use labels::{Score, Tally};
pub use net::EvaluatorConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use syncdraw_data::dataset::DataError;
use syncdraw_data::{Content, Dataset, DatasetConfig, Digits, Pixels};
use tch::{nn, Device, Kind, Tensor};

/// Version 2: the per-frame digit detector (version 1, a whole-video count
/// classifier, read two-digit videos badly and is refused).
pub const FORMAT: &str = "syncdraw-evaluator-2";

#[derive(Debug, thiserror::Error)]
pub enum EvaluatorError {
    #[error("evaluator {path} does not exist; train one with `syncdraw-train evaluator train --out {path}`")]
    Missing { path: PathBuf },
    #[error("cannot read evaluator {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path} is not a syncdraw evaluator of this version: {reason}; train one with `syncdraw-train evaluator train --out {path}`")]
    Foreign { path: PathBuf, reason: String },
    #[error("cannot write evaluator {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("the evaluator reads videos of {want}; got {got}")]
    Shape { want: String, got: String },
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Digits(#[from] syncdraw_data::mnist::DigitsError),
    #[error(transparent)]
    Caption(#[from] syncdraw_format::CaptionError),
    #[error("{0}")]
    Other(String),
}

/// How an evaluator was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// The recipe, with the steps actually taken.
    #[serde(flatten)]
    pub recipe: train::Recipe,
    pub seconds: f64,
    pub device: String,
    pub threads: i32,
    /// Images of `extra_digits` added to the training pool (0 without them).
    #[serde(default)]
    pub extra_images: usize,
}

/// Everything about an evaluator except its tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvaluatorMeta {
    pub format: String,
    pub config: EvaluatorConfig,
    /// Real data it was trained for: digit source, data seed (which fixes the
    /// train/test image pools) and video spec. `digits` is irrelevant (it trains on
    /// both); the test splits it is measured on are this config with 1 and 2 digits.
    pub data: DatasetConfig,
    pub training: TrainingInfo,
    /// Accuracy on the real test splits measured after training, by "1"/"2" digits.
    pub accuracy: std::collections::BTreeMap<String, Score>,
}

/// How well an evaluator reads a real data set ([`Evaluator::assess`]).
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    /// Every video.
    pub all: Score,
    /// Two-digit data only: the videos whose digits are at least
    /// [`labels::APART_PIXELS`] apart in some frame.
    pub apart: Option<Score>,
    pub misread: Vec<Misread>,
    /// How each digit image of the data set is read where it stands clear of the
    /// other digit ([`labels::clear_frames`]), by image index.
    pub images: std::collections::BTreeMap<usize, ImageReading>,
    /// What the images read as another digit ([`ImageReading::misread`]) cost.
    pub image_summary: ImageSummary,
}

/// How many digit images are misread wherever they stand clear, and how many
/// videos they cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImageSummary {
    /// Distinct digit images shown.
    pub images: usize,
    /// Of those, the ones read as another digit in most of their clear frames.
    pub misread_images: usize,
    /// Videos that show at least one misread image.
    pub videos_showing_one: usize,
    /// Of those videos, the ones read wrongly.
    pub of_which_misread: usize,
}

/// How the detector reads one digit image of a real data set in the frames where
/// it stands clear: the digit at its true centre ([`reading::digit_at`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImageReading {
    pub digit: u8,
    /// Clear frames, over every video that shows the image.
    pub frames: usize,
    /// Of those, the frames read as `digit`.
    pub right: usize,
    /// How often each digit 0-9 was read there.
    pub read: [usize; 10],
    /// Videos that show the image.
    pub videos: usize,
}

impl ImageReading {
    /// An image read as another digit in most of its clear frames: the detector
    /// takes it for that digit wherever it appears.
    pub fn misread(&self) -> bool {
        self.frames > 0 && 2 * self.right < self.frames
    }
}

/// A real video the evaluator read wrongly.
#[derive(Debug, Clone, Serialize)]
pub struct Misread {
    /// Index in the data set.
    pub index: usize,
    /// What it shows.
    pub caption: String,
    /// What the evaluator read.
    pub read: String,
    /// [`labels::separation`] of its digits (two digits only).
    pub separation: Option<u32>,
    pub matched: labels::Match,
}

pub struct Evaluator {
    pub meta: EvaluatorMeta,
    pub vs: nn::VarStore,
    pub net: net::Net,
}

impl Evaluator {
    /// A freshly initialised (untrained) evaluator.
    pub fn new(meta: EvaluatorMeta, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let net = net::Net::new(&(vs.root() / "evaluator"), &meta.config);
        Self { meta, vs, net }
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    fn check_shape(&self, x: &Tensor) -> Result<(), EvaluatorError> {
        let c = &self.meta.config;
        let s = x.size();
        if s.len() != 4 || s[1] != c.frames || s[2] != c.size || s[3] != c.size {
            return Err(EvaluatorError::Shape {
                want: format!("[batch, {} frames, {}, {}]", c.frames, c.size, c.size),
                got: format!("{s:?}"),
            });
        }
        Ok(())
    }

    /// The detector's probability maps of videos [B, N, H, W] in [0, 1]: per video,
    /// frames x CLASSES x cells x cells values (class 0: no digit centred here).
    pub fn maps(&self, videos: &Tensor) -> Result<Vec<Vec<f32>>, EvaluatorError> {
        self.check_shape(videos)?;
        let s = videos.size();
        let per_video = self.meta.config.grid().frame_len() * s[1] as usize;
        let mut out = Vec::with_capacity(s[0] as usize);
        // 32 videos at a time bound the activations' memory.
        for chunk in videos.split(32, 0) {
            let n = chunk.size()[0];
            let frames = chunk
                .reshape([n * s[1], 1, s[2], s[3]])
                .to_device(self.device())
                .to_kind(Kind::Float);
            let p = tch::no_grad(|| self.net.forward_t(&frames, false).softmax(1, Kind::Float));
            let p: Vec<f32> = Vec::try_from(p.flatten(0, -1).to_device(Device::Cpu))
                .map_err(|e: tch::TchError| EvaluatorError::Other(e.to_string()))?;
            out.extend(p.chunks_exact(per_video).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// What each video shows, pairs in canonical order: always one or two digits
    /// ([`reading::read`]).
    pub fn predict(&self, videos: &Tensor) -> Result<Vec<Content>, EvaluatorError> {
        let grid = self.meta.config.grid();
        Ok(self
            .maps(videos)?
            .iter()
            .map(|m| reading::read(m, grid))
            .collect())
    }

    /// Captions of videos [B, N, H, W] (empty for a video where nothing is found).
    pub fn captions(&self, videos: &Tensor) -> Result<Vec<String>, EvaluatorError> {
        Ok(self.predict(videos)?.iter().map(Content::caption).collect())
    }

    /// Accuracy on the first `limit` videos of a real data set (all by default).
    pub fn score(&self, data: &Dataset, limit: Option<usize>) -> Result<Score, EvaluatorError> {
        Ok(self.assess(data, limit)?.all)
    }

    /// Accuracy on the first `limit` videos of a real data set (all by default),
    /// also on its two-digit videos whose digits are ever [`labels::APART_PIXELS`]
    /// apart, and every video it misread.
    pub fn assess(
        &self,
        data: &Dataset,
        limit: Option<usize>,
    ) -> Result<Assessment, EvaluatorError> {
        let v = &data.config.video;
        let n = limit.unwrap_or(data.len()).min(data.len());
        let (mut all, mut apart) = (Tally::default(), Tally::default());
        let mut misread = Vec::new();
        let mut images = std::collections::BTreeMap::<usize, ImageReading>::new();
        let grid = self.meta.config.grid();
        let centre = (syncdraw_data::mnist::DIGIT_SIZE as f32 - 1.0) / 2.0;
        for start in (0..n).step_by(200) {
            let end = (start + 200).min(n);
            let pixels = &data.pixels[start * data.video_len()..end * data.video_len()];
            let x = Tensor::from_slice(pixels)
                .reshape([
                    (end - start) as i64,
                    v.frames as i64,
                    v.size as i64,
                    v.size as i64,
                ])
                .to_kind(Kind::Float)
                / 255.0;
            for (i, maps) in self.maps(&x)?.iter().enumerate() {
                let index = start + i;
                let video = &data.videos[index];
                for (k, t) in video.tracks.iter().enumerate() {
                    let img = images.entry(t.image).or_default();
                    img.digit = t.digit;
                    img.videos += 1;
                    for f in labels::clear_frames(&video.tracks, k) {
                        let (y, x) = t.positions[f];
                        let frame = &maps[f * grid.frame_len()..(f + 1) * grid.frame_len()];
                        let d =
                            reading::digit_at(frame, grid, y as f32 + centre, x as f32 + centre);
                        img.frames += 1;
                        img.right += usize::from(d == t.digit);
                        img.read[d as usize] += 1;
                    }
                }
                let read = &reading::read(maps, grid);
                let matched = labels::compare(read, &video.content());
                let separation = labels::separation(&video.tracks);
                all.add(matched);
                if separation.is_some_and(|s| s >= labels::APART_PIXELS) {
                    apart.add(matched);
                }
                if !matched.exact {
                    misread.push(Misread {
                        index,
                        caption: video.caption.clone(),
                        read: read.caption(),
                        separation,
                        matched,
                    });
                }
            }
        }
        let is_misread = |image: &usize| images.get(image).is_some_and(ImageReading::misread);
        let showing: Vec<usize> = (0..n)
            .filter(|&i| data.videos[i].tracks.iter().any(|t| is_misread(&t.image)))
            .collect();
        let image_summary = ImageSummary {
            images: images.len(),
            misread_images: images.values().filter(|r| r.misread()).count(),
            videos_showing_one: showing.len(),
            of_which_misread: showing
                .iter()
                .filter(|&&i| misread.iter().any(|m| m.index == i))
                .count(),
        };
        let two_digit = data.config.digits == 2;
        Ok(Assessment {
            all: all.score(),
            apart: two_digit.then(|| apart.score()),
            misread,
            images,
            image_summary,
        })
    }

    /// Writes the evaluator: a temporary file in the same directory, fsync, rename.
    pub fn save(&self, path: &Path) -> Result<(), EvaluatorError> {
        let werr = |reason: String| EvaluatorError::Write {
            path: path.to_path_buf(),
            reason,
        };
        let named = syncdraw_data::tensors::named_with_meta(&self.meta, &self.vs);
        syncdraw_data::tensors::write_safetensors_atomic(&named, path).map_err(werr)
    }

    /// Loads an evaluator written by [`Evaluator::save`] onto `device`.
    pub fn load(path: &Path, device: Device) -> Result<Self, EvaluatorError> {
        use syncdraw_data::tensors::{copy_weights, read_with_meta, ReadFailure};
        let foreign = |reason: String| EvaluatorError::Foreign {
            path: path.to_path_buf(),
            reason,
        };
        let (value, mut map) = read_with_meta(path, FORMAT).map_err(|f| match f {
            ReadFailure::Missing => EvaluatorError::Missing {
                path: path.to_path_buf(),
            },
            ReadFailure::Unreadable(reason) => EvaluatorError::Unreadable {
                path: path.to_path_buf(),
                reason,
            },
            ReadFailure::Foreign(reason) => foreign(reason),
        })?;
        let meta: EvaluatorMeta =
            serde_json::from_value(value).map_err(|e| foreign(format!("meta.json: {e}")))?;
        let ev = Self::new(meta, device);
        copy_weights(&ev.vs, &mut map).map_err(foreign)?;
        Ok(ev)
    }
}

/// The real test split of `digits` digits for an evaluator's data config, with
/// grey pixels or binarised ones (the fixed sample a `--binarize` model's test
/// NLL is measured on).
pub fn real_test_split(
    data: &DatasetConfig,
    digits: usize,
    test_size: Option<usize>,
    pixels: Pixels,
    cache_dir: &Path,
) -> Result<Dataset, EvaluatorError> {
    let mut c = data.clone();
    c.digits = digits;
    if let Some(n) = test_size {
        c.test_size = n;
    }
    let test = Dataset::load_or_generate(&c, syncdraw_data::Split::Test, cache_dir)?;
    Ok(match pixels {
        Pixels::Grey => test,
        Pixels::Binarized => test.binarized(&Digits::load(&c.source).map_err(DataError::from)?),
    })
}
