//! Training the evaluator's detector on freshly rendered real frames (never
//! generated ones): per-cell cross-entropy against the cells where digits are
//! centred, those cells weighted [`FOREGROUND_WEIGHT`] times a background cell.
use super::reading::Grid;
use super::render::render_frame;
use super::{Evaluator, EvaluatorConfig, EvaluatorMeta, TrainingInfo, FORMAT};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Instant;
use syncdraw_data::bouncing::image_pools;
use syncdraw_data::mnist::DigitSource;
use syncdraw_data::{DatasetConfig, Digits, Split};
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

/// What the evaluator learns from, and how: recorded in its file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// Optimizer steps (in a file: the steps actually taken).
    pub steps: u64,
    /// Frames per step.
    pub batch: usize,
    pub seed: u64,
    /// Peak learning rate (cosine decay to 1/50 of it).
    pub lr: f64,
    /// Strength of the random affine distortion of training digits (0: none).
    pub distort: f32,
    /// Fraction of training frames with one digit (the rest have two).
    pub one_digit_fraction: f64,
    /// More training digits added to the TRAIN image pool; any image that is also
    /// in the data set's own digits is left out, so the test pool stays unseen
    /// (see [`training_pools`]).
    #[serde(default)]
    pub extra_digits: Option<DigitSource>,
}

impl Default for Recipe {
    fn default() -> Self {
        Self {
            steps: 4500,
            batch: 128,
            seed: 1,
            lr: 2e-3,
            distort: 1.0,
            one_digit_fraction: 0.4,
            extra_digits: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub recipe: Recipe,
    pub device: Device,
    /// Called every `log_every` steps with (step, mean loss since the last call).
    pub log_every: u64,
    /// Stop after this much wall-clock time even if `steps` are not done; the
    /// learning-rate schedule then follows the elapsed fraction of this budget.
    pub time_limit: Option<std::time::Duration>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            recipe: Recipe::default(),
            device: Device::Cpu,
            log_every: 100,
            time_limit: None,
        }
    }
}

/// Weight of a cell where a digit is centred against a background cell in the
/// loss: a frame has one or two such cells out of 256 on the default 16x16 grid.
pub const FOREGROUND_WEIGHT: f64 = 10.0;

/// A batch of fresh training frames [B, 1, H, W] in [0, 1] and their cell targets
/// [B, cells, cells] (0: no digit centred here, 1 + d: digit d).
pub fn training_batch(
    data: &DatasetConfig,
    grid: Grid,
    digits: &Digits,
    pools: &[Vec<usize>; 10],
    recipe: &Recipe,
    rng: &mut impl Rng,
) -> (Tensor, Tensor) {
    let size = data.video.size;
    let mut pixels = Vec::with_capacity(recipe.batch * size * size);
    let mut targets = Vec::with_capacity(recipe.batch * grid.cells * grid.cells);
    for _ in 0..recipe.batch {
        let n = if rng.random_bool(recipe.one_digit_fraction) {
            1
        } else {
            2
        };
        let shown: Vec<u8> = (0..n).map(|_| rng.random_range(0..10)).collect();
        let (frame, target) = render_frame(size, grid, digits, pools, &shown, recipe.distort, rng);
        pixels.extend(frame);
        targets.extend(target);
    }
    let (b, s, g) = (recipe.batch as i64, size as i64, grid.cells as i64);
    let x = Tensor::from_slice(&pixels)
        .reshape([b, 1, s, s])
        .to_kind(Kind::Float)
        / 255.0;
    (x, Tensor::from_slice(&targets).reshape([b, g, g]))
}

/// The digits the detector learns from and the indices of each class it may use:
/// the TRAIN pool of `digits` for `seed` (what the models train on), plus every
/// image of `extra` that is not an image of `digits` at all. An extra image equal
/// to one of the test pool is thus never used, and the accuracy on the real test
/// split stays a measure on unseen images. Returns the merged digits, their
/// pools, and how many extra images were added.
pub fn training_pools(
    digits: &Digits,
    extra: Option<&Digits>,
    seed: u64,
) -> (Digits, [Vec<usize>; 10], usize) {
    let mut merged = digits.clone();
    let mut pools = image_pools(digits, Split::Train, seed);
    let Some(extra) = extra else {
        return (merged, pools, 0);
    };
    let known: HashSet<&[u8]> = digits.images.iter().map(|i| i.as_slice()).collect();
    let mut added = 0;
    for (img, &label) in extra.images.iter().zip(&extra.labels) {
        if known.contains(img.as_slice()) {
            continue;
        }
        pools[label as usize].push(merged.images.len());
        merged.images.push(*img);
        merged.labels.push(label);
        added += 1;
    }
    (merged, pools, added)
}

/// Weighted per-cell cross-entropy of logits [B, CLASSES, g, g] against targets
/// [B, g, g].
pub fn loss(logits: &Tensor, targets: &Tensor) -> Tensor {
    let nll = -logits
        .log_softmax(1, Kind::Float)
        .gather(1, &targets.unsqueeze(1), false)
        .squeeze_dim(1);
    let w = targets.ne(0).to_kind(Kind::Float) * (FOREGROUND_WEIGHT - 1.0) + 1.0;
    (nll * &w).sum(Kind::Float) / w.sum(Kind::Float)
}

/// Trains an evaluator for the videos of `data` (its source, seed and video spec)
/// on videos rendered from the TRAIN image pool of `data.seed` only.
pub fn train(
    config: &EvaluatorConfig,
    data: &DatasetConfig,
    digits: &Digits,
    opts: &TrainOptions,
    mut log: impl FnMut(u64, f64),
) -> Result<Evaluator, super::EvaluatorError> {
    if config.frames != data.video.frames as i64 || config.size != data.video.size as i64 {
        return Err(super::EvaluatorError::Shape {
            want: format!(
                "{} frames of {}x{}",
                config.frames, config.size, config.size
            ),
            got: format!(
                "data of {} frames of {}x{}",
                data.video.frames, data.video.size, data.video.size
            ),
        });
    }
    let start = Instant::now();
    let recipe = &opts.recipe;
    tch::manual_seed(recipe.seed as i64);
    let meta = EvaluatorMeta {
        format: FORMAT.into(),
        config: config.clone(),
        data: data.clone(),
        training: TrainingInfo {
            recipe: recipe.clone(),
            seconds: 0.0,
            device: format!("{:?}", opts.device).to_lowercase(),
            threads: tch::get_num_threads(),
            extra_images: 0,
        },
        accuracy: Default::default(),
    };
    let mut ev = Evaluator::new(meta, opts.device);
    let extra = match &recipe.extra_digits {
        Some(source) => Some(Digits::load(source)?),
        None => None,
    };
    let (digits, pools, added) = training_pools(digits, extra.as_ref(), data.seed);
    ev.meta.training.extra_images = added;
    let digits = &digits;
    let grid = config.grid();
    let mut rng = ChaCha8Rng::seed_from_u64(recipe.seed ^ 0xe7a1_0a70);
    let mut opt = nn::AdamW {
        wd: 1e-4,
        ..Default::default()
    }
    .build(&ev.vs, recipe.lr)
    .map_err(|e| super::EvaluatorError::Other(e.to_string()))?;
    let (mut sum, mut n) = (0.0, 0u64);
    let mut done = 0;
    for step in 1..=recipe.steps {
        // Cosine decay from lr to lr / 50 over the steps or the time budget.
        let mut progress = (step - 1) as f64 / recipe.steps.max(1) as f64;
        if let Some(limit) = opts.time_limit {
            progress = progress.max(start.elapsed().as_secs_f64() / limit.as_secs_f64());
            if progress >= 1.0 {
                break;
            }
        }
        let lr = recipe.lr * (0.02 + 0.98 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
        opt.set_lr(lr);
        let (x, y) = training_batch(data, grid, digits, &pools, recipe, &mut rng);
        let logits = ev.net.forward_t(&x.to_device(opts.device), true);
        let loss = loss(&logits, &y.to_device(opts.device));
        opt.backward_step(&loss);
        sum += loss.double_value(&[]);
        n += 1;
        done = step;
        if step % opts.log_every.max(1) == 0 || step == recipe.steps {
            log(step, sum / n as f64);
            (sum, n) = (0.0, 0);
        }
    }
    ev.meta.training.recipe.steps = done;
    ev.meta.training.seconds = start.elapsed().as_secs_f64();
    Ok(ev)
}
