//! A generated split held in memory, and its on-disk cache.
//!
//! Cache file format (one file per split, `<cache>/data/<key>/<split>.sdbm`):
//!   bytes 0..8    magic `SDBM0001`
//!   bytes 8..16   u64 little-endian length J of the JSON header
//!   next J bytes  JSON header: {"config": DatasetConfig, "split": "Train"|"Test",
//!                 "videos": [{"caption", "tracks": [...]}, ...]}
//!   the rest      u8 pixels, videos x frames x size x size, row-major, 0..255
//! `<key>` is a SHA-256 of the config and the digit file's bytes, so a change of
//! either makes a new cache entry. Files are replaced atomically (atomic.rs).
use super::bouncing::{
    contents, image_pools, make_tracks, render, Content, Split, Track, VideoSpec,
};
use super::mnist::{DigitSource, Digits, DigitsError, PIXELS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SDBM0001";

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Digits(#[from] DigitsError),
    #[error("data cache {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data cache {path} is damaged ({reason}); delete it to regenerate")]
    Corrupt { path: PathBuf, reason: String },
    #[error("--digits must be 1 or 2, got {0}")]
    Digits12(usize),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetConfig {
    /// Digits per video: 1 or 2.
    pub digits: usize,
    pub train_size: usize,
    pub test_size: usize,
    pub seed: u64,
    pub video: VideoSpec,
    pub source: DigitSource,
}

impl DatasetConfig {
    pub fn new(digits: usize) -> Self {
        Self {
            digits,
            train_size: 12_000,
            test_size: 2_000,
            seed: 1,
            video: VideoSpec::default(),
            source: DigitSource::Bundled,
        }
    }

    pub fn name(&self) -> String {
        format!("bouncing-mnist-{}", self.digits)
    }
}

/// Labels of one video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoInfo {
    pub caption: String,
    pub tracks: Vec<Track>,
}

impl VideoInfo {
    pub fn content(&self) -> Content {
        Content(self.tracks.iter().map(|t| (t.digit, t.motion)).collect())
    }
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub config: DatasetConfig,
    pub split: Split,
    pub videos: Vec<VideoInfo>,
    /// videos x frames x size x size, 0..255.
    pub pixels: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    config: DatasetConfig,
    split: Split,
    videos: Vec<VideoInfo>,
}

impl Dataset {
    pub fn video_len(&self) -> usize {
        let v = &self.config.video;
        v.frames * v.size * v.size
    }

    pub fn len(&self) -> usize {
        self.videos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.videos.is_empty()
    }

    pub fn video(&self, i: usize) -> &[u8] {
        let n = self.video_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The same videos with every digit binarised (data/binarize.rs): one
    /// Bernoulli sample of each digit image per video, in every frame, fixed by
    /// the data set's seed: the binarised test split.
    pub fn binarized(&self, digits: &Digits) -> Self {
        Self {
            config: self.config.clone(),
            split: self.split,
            videos: self.videos.clone(),
            pixels: self.binarized_videos(digits, 0..self.len(), self.binarization_seed()),
        }
    }

    /// The binarised digit images of video `i` as [`Dataset::binarized`] draws
    /// them, one per track, before they are placed in the frames.
    pub fn binarized_digits(&self, digits: &Digits, i: usize) -> Vec<[u8; PIXELS]> {
        let seed = super::binarize::mix(self.binarization_seed(), i as u64);
        super::binarize::digit_samples(digits, &self.videos[i].tracks, seed)
    }

    /// The seed of [`Dataset::binarized`]'s fixed sample.
    fn binarization_seed(&self) -> u64 {
        self.config.seed ^ 0xb1a7
    }

    /// Binarised pixels of the videos `indices`, video `j` of them sampled with
    /// seed `mix(seed, j)` (data/binarize.rs).
    pub fn binarized_videos(
        &self,
        digits: &Digits,
        indices: impl IntoIterator<Item = usize>,
        seed: u64,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        for (j, i) in indices.into_iter().enumerate() {
            let tracks = &self.videos[i].tracks;
            out.extend(super::binarize::video(
                &self.config.video,
                digits,
                tracks,
                super::binarize::mix(seed, j as u64),
            ));
        }
        out
    }

    /// Every object of the videos `indices` alone, binarised with the samples
    /// [`Dataset::binarized_videos`] draws for them with the same `seed`: per
    /// video, one video per track in caption order ([B, objects, N, size, size]).
    pub fn binarized_object_videos(
        &self,
        digits: &Digits,
        indices: impl IntoIterator<Item = usize>,
        seed: u64,
    ) -> Vec<u8> {
        let seeded = indices
            .into_iter()
            .enumerate()
            .map(|(j, i)| (i, super::binarize::mix(seed, j as u64)));
        self.object_videos(digits, seeded)
    }

    /// Every object alone of the videos `indices` of [`Dataset::binarized`]'s
    /// fixed sample (the binarised test split), as
    /// [`Dataset::binarized_object_videos`] lays them out.
    pub fn fixed_object_videos(&self, digits: &Digits, indices: &[usize]) -> Vec<u8> {
        let seed = self.binarization_seed();
        let seeded = indices
            .iter()
            .map(|&i| (i, super::binarize::mix(seed, i as u64)));
        self.object_videos(digits, seeded)
    }

    /// The objects of video i sampled with its seed, for each (i, seed).
    fn object_videos(
        &self,
        digits: &Digits,
        seeded: impl Iterator<Item = (usize, u64)>,
    ) -> Vec<u8> {
        seeded
            .flat_map(|(i, seed)| {
                super::binarize::object_videos(
                    &self.config.video,
                    digits,
                    &self.videos[i].tracks,
                    seed,
                )
            })
            .collect()
    }

    /// The entropy of binarising these videos (data/binarize.rs): the floor of
    /// any model's NLL on their binarised pixels, nats per video.
    pub fn binarization_entropy(&self, digits: &Digits) -> f64 {
        super::binarize::sample_entropy(digits, self.videos.iter().map(|v| v.tracks.as_slice()))
    }

    /// Entropy floor of the grey pixels, nats per video (data/binarize.rs).
    pub fn entropy_floor(&self) -> f64 {
        super::binarize::entropy_floor(&self.pixels, self.video_len())
    }

    /// Generates a split from the digits (deterministic in the config's seed).
    pub fn generate(
        config: &DatasetConfig,
        digits: &Digits,
        split: Split,
    ) -> Result<Self, DataError> {
        if !(1..=2).contains(&config.digits) {
            return Err(DataError::Digits12(config.digits));
        }
        let (count, salt) = match split {
            Split::Train => (config.train_size, 0x7a1),
            Split::Test => (config.test_size, 0x7e57),
        };
        let pools = image_pools(digits, split, config.seed);
        let captions = contents(config.digits, split);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed.wrapping_mul(0x9e37_79b9) ^ salt);
        let spec = &config.video;
        let mut videos = Vec::with_capacity(count);
        let mut pixels = Vec::with_capacity(count * spec.frames * spec.size * spec.size);
        for _ in 0..count {
            let content = &captions[rng.random_range(0..captions.len())];
            let tracks = make_tracks(spec, content, &pools, &mut rng);
            pixels.extend(render(spec, digits, &tracks));
            videos.push(VideoInfo {
                caption: content.caption(),
                tracks,
            });
        }
        Ok(Self {
            config: config.clone(),
            split,
            videos,
            pixels,
        })
    }

    /// Loads a split from the cache under `cache_dir`, generating it first if absent.
    pub fn load_or_generate(
        config: &DatasetConfig,
        split: Split,
        cache_dir: &Path,
    ) -> Result<Self, DataError> {
        let dir = cache_dir.join("data").join(cache_key(config)?);
        let path = dir.join(format!(
            "{}.sdbm",
            if split == Split::Train {
                "train"
            } else {
                "test"
            }
        ));
        if path.exists() {
            return Self::read(&path);
        }
        let digits = Digits::load(&config.source)?;
        let data = Self::generate(config, &digits, split)?;
        data.write(&path)?;
        Ok(data)
    }

    pub fn write(&self, path: &Path) -> Result<(), DataError> {
        let io = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        let header = serde_json::to_vec(&Header {
            config: self.config.clone(),
            split: self.split,
            videos: self.videos.clone(),
        })
        .expect("header serialises");
        crate::atomic::replace(path, |tmp| {
            let mut f = std::io::BufWriter::new(std::fs::File::create(tmp)?);
            f.write_all(MAGIC)?;
            f.write_all(&(header.len() as u64).to_le_bytes())?;
            f.write_all(&header)?;
            f.write_all(&self.pixels)?;
            f.flush()
        })
        .map_err(io)
    }

    pub fn read(path: &Path) -> Result<Self, DataError> {
        let raw = std::fs::read(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let corrupt = |reason: &str| DataError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        };
        if raw.len() < 16 || &raw[..8] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let j = u64::from_le_bytes(raw[8..16].try_into().expect("8 bytes")) as usize;
        let header: Header = raw
            .get(16..16 + j)
            .and_then(|h| serde_json::from_slice(h).ok())
            .ok_or_else(|| corrupt("bad header"))?;
        let pixels = raw[16 + j..].to_vec();
        let v = &header.config.video;
        if pixels.len() != header.videos.len() * v.frames * v.size * v.size {
            return Err(corrupt("pixel data has the wrong length"));
        }
        Ok(Self {
            config: header.config,
            split: header.split,
            videos: header.videos,
            pixels,
        })
    }
}

fn cache_key(config: &DatasetConfig) -> Result<String, DataError> {
    let mut h = Sha256::new();
    h.update(b"bouncing-mnist-v1");
    h.update(serde_json::to_vec(config).expect("config serialises"));
    let files: Vec<PathBuf> = match &config.source {
        DigitSource::Bundled => vec![super::mnist::bundled_csv()?],
        DigitSource::Csv(p) => vec![p.clone()],
        DigitSource::Idx { images, labels } => vec![images.clone(), labels.clone()],
    };
    for p in &files {
        let bytes = std::fs::read(p).map_err(|source| DigitsError::Io {
            path: p.clone(),
            source,
        })?;
        h.update(bytes);
    }
    Ok(h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The per-user cache directory ($XDG_CACHE_HOME/syncdraw or ~/.cache/syncdraw).
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("syncdraw")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bouncing::render_images;

    /// Twenty two-digit test videos of ten images per class, grey values that
    /// differ from image to image.
    fn two_digit_videos() -> (Digits, DatasetConfig, Dataset) {
        let images = (0..100)
            .map(|n| std::array::from_fn(|i| ((i * 31 + n * 17) % 256) as u8))
            .collect();
        let digits = Digits {
            images,
            labels: (0..100).map(|n| (n % 10) as u8).collect(),
        };
        let mut config = DatasetConfig::new(2);
        config.test_size = 20;
        let d = Dataset::generate(&config, &digits, Split::Test).expect("generated");
        (digits, config, d)
    }

    #[test]
    fn the_binarised_digits_of_a_video_are_those_its_binarised_pixels_show() {
        let (digits, config, d) = two_digit_videos();
        let b = d.binarized(&digits);
        for i in 0..d.len() {
            let samples = d.binarized_digits(&digits, i);
            assert_eq!(samples.len(), 2);
            let drawn = render_images(&config.video, &d.videos[i].tracks, |k, _| &samples[k]);
            assert_eq!(drawn, b.video(i), "video {i}");
        }
    }

    #[test]
    fn the_objects_of_a_binarised_video_are_its_digits_alone_in_caption_order() {
        let (digits, config, d) = two_digit_videos();
        let indices = [3, 0, 17, 3];
        let videos = d.binarized_videos(&digits, indices, 99);
        let objects = d.binarized_object_videos(&digits, indices, 99);
        let n = d.video_len();
        // The fixed sample's objects are those of its videos.
        let fixed = d.binarized(&digits);
        let fixed_objects = d.fixed_object_videos(&digits, &indices);
        for (j, &i) in indices.iter().enumerate() {
            let union: Vec<u8> = (0..n)
                .map(|p| fixed_objects[2 * j * n + p].max(fixed_objects[(2 * j + 1) * n + p]))
                .collect();
            assert_eq!(union, fixed.video(i), "fixed video {i}");
        }
        assert_eq!(objects.len(), 2 * videos.len());
        for (j, &i) in indices.iter().enumerate() {
            let video = &videos[j * n..(j + 1) * n];
            let [first, second] = [0, 1].map(|k| &objects[(2 * j + k) * n..(2 * j + k + 1) * n]);
            // On binary pixels adding and clipping is the union.
            let union: Vec<u8> = first.iter().zip(second).map(|(&a, &b)| a.max(b)).collect();
            assert_eq!(union, video, "video {i}");
            // Each is its track alone: no ink outside that digit's squares.
            for (k, object) in [first, second].into_iter().enumerate() {
                let track = &d.videos[i].tracks[k];
                let ones = [255u8; PIXELS];
                let footprint =
                    render_images(&config.video, std::slice::from_ref(track), |_, _| &ones);
                assert!(object
                    .iter()
                    .zip(&footprint)
                    .all(|(&p, &f)| p == 0 || f == 255));
                assert!(object.contains(&255), "object {k} of video {i} is empty");
                // Caption order: the k-th digit named is the k-th object's class.
                let caption = &d.videos[i].caption;
                let named: Vec<&str> = caption.split_whitespace().collect();
                let label = digits.labels[track.image].to_string();
                assert_eq!(
                    named
                        .iter()
                        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
                        .nth(k),
                    Some(&label.as_str()),
                    "{caption}"
                );
            }
        }
    }
}
