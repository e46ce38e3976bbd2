//! Options and value parsers shared by the subcommands.
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use syncdraw_data::dataset::default_cache_dir;
use syncdraw_data::{DatasetConfig, DigitSource, Split};
use tch::Device;

#[derive(Clone, Copy, ValueEnum)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
}

impl DeviceArg {
    pub fn device(self) -> Result<Device> {
        Ok(match self {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Auto => Device::cuda_if_available(),
            DeviceArg::Cuda => {
                if !tch::Cuda::is_available() {
                    bail!("--device cuda: libtorch sees no CUDA device");
                }
                Device::Cuda(0)
            }
        })
    }
}

#[derive(Args, Clone)]
pub struct DataOpts {
    /// Digits per video: 1 or 2.
    #[arg(long, default_value_t = 1)]
    pub digits: usize,
    #[arg(long, value_parser = positive::<usize>, default_value_t = 12_000)]
    pub train_size: usize,
    #[arg(long, value_parser = positive::<usize>, default_value_t = 2_000)]
    pub test_size: usize,
    #[command(flatten)]
    pub video: VideoOpts,
}

/// What every data set of a family shares: digit source, seed, frames and size.
#[derive(Args, Clone)]
pub struct VideoOpts {
    /// Seed of the data set (videos and the train/test digit images).
    #[arg(long, default_value_t = 1)]
    pub data_seed: u64,
    /// Frames per video.
    #[arg(long, default_value_t = 10)]
    pub frames: usize,
    /// Frame size in pixels (square; at least 29 for 28x28 digits).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Standard MNIST IDX files (images, labels; .gz accepted) instead of the
    /// bundled 5,000-digit CSV.
    #[arg(long, num_args = 2, value_names = ["IMAGES", "LABELS"])]
    pub mnist_idx: Option<Vec<PathBuf>>,
    /// Cache directory for generated data.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

impl VideoOpts {
    /// A data set config of `digits` digits with the default sizes.
    pub fn config(&self, digits: usize) -> Result<DatasetConfig> {
        if !(1..=2).contains(&digits) {
            bail!("--digits must be 1 or 2, got {digits}");
        }
        if self.size < 29 || self.frames == 0 {
            bail!("--size must be at least 29 (digits are 28x28) and --frames at least 1");
        }
        let mut c = DatasetConfig::new(digits);
        c.seed = self.data_seed;
        c.video.frames = self.frames;
        c.video.size = self.size;
        if let Some(p) = &self.mnist_idx {
            c.source = DigitSource::Idx {
                images: p[0].clone(),
                labels: p[1].clone(),
            };
        }
        Ok(c)
    }

    pub fn cache(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(default_cache_dir)
    }
}

impl DataOpts {
    pub fn config(&self) -> Result<DatasetConfig> {
        let mut c = self.video.config(self.digits)?;
        c.train_size = self.train_size;
        c.test_size = self.test_size;
        Ok(c)
    }

    pub fn cache(&self) -> PathBuf {
        self.video.cache()
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SplitArg {
    Train,
    Test,
}

impl SplitArg {
    pub fn split(self) -> Split {
        match self {
            SplitArg::Train => Split::Train,
            SplitArg::Test => Split::Test,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SplitArg::Train => "train",
            SplitArg::Test => "test",
        }
    }
}

/// Parses an integer flag that must be at least 1.
pub fn positive<T>(s: &str) -> std::result::Result<T, String>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
{
    match s.trim().parse::<T>() {
        Ok(v) if v >= T::from(1) => Ok(v),
        _ => Err(format!("expected a whole number of at least 1, got {s:?}")),
    }
}

/// Parses a real flag that must be finite and above 0.
pub fn positive_f64(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a finite number above 0, got {s:?}")),
    }
}

/// Parses a real flag that must be finite and at least 0.
pub fn non_negative_f64(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("expected a finite number of at least 0, got {s:?}")),
    }
}

/// Parses a number at least 0 and below 1 (Adam's beta1, a moving
/// average's decay).
pub fn below_one(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a number from 0 to below 1, got {s:?}")),
    }
}

/// Parses a real flag that must lie in [0, 1].
pub fn fraction(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a number from 0 to 1, got {s:?}")),
    }
}
