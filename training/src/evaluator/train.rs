//! Training the evaluator on freshly rendered real videos (never generated ones).
use super::labels::{counts, COUNT_CLASSES, HEADS};
use super::render::{random_content, render_video};
use super::{Evaluator, EvaluatorConfig, EvaluatorMeta, TrainingInfo, FORMAT};
use crate::data::bouncing::image_pools;
use crate::data::{DatasetConfig, Digits, Split};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub steps: u64,
    pub batch: usize,
    pub seed: u64,
    pub lr: f64,
    pub distort: f32,
    pub one_digit_fraction: f64,
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
            steps: 3000,
            batch: 64,
            seed: 1,
            lr: 2e-3,
            distort: 1.0,
            one_digit_fraction: 0.4,
            device: Device::Cpu,
            log_every: 100,
            time_limit: None,
        }
    }
}

/// A batch of fresh training videos [B, N, H, W] in [0, 1] and counts [B, 20].
pub fn training_batch(
    data: &DatasetConfig,
    digits: &Digits,
    pools: &[Vec<usize>; 10],
    opts: &TrainOptions,
    rng: &mut impl Rng,
) -> (Tensor, Tensor) {
    let v = &data.video;
    let mut pixels = Vec::with_capacity(opts.batch * v.frames * v.size * v.size);
    let mut targets = Vec::with_capacity(opts.batch * HEADS);
    for _ in 0..opts.batch {
        let n = if rng.random_bool(opts.one_digit_fraction) {
            1
        } else {
            2
        };
        let content = random_content(n, rng);
        pixels.extend(render_video(v, digits, pools, &content, opts.distort, rng));
        targets.extend(counts(&content).iter().map(|&c| c as i64));
    }
    let x = Tensor::from_slice(&pixels)
        .reshape([
            opts.batch as i64,
            v.frames as i64,
            v.size as i64,
            v.size as i64,
        ])
        .to_kind(Kind::Float)
        / 255.0;
    (
        x,
        Tensor::from_slice(&targets).reshape([opts.batch as i64, HEADS as i64]),
    )
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
    tch::manual_seed(opts.seed as i64);
    let meta = EvaluatorMeta {
        format: FORMAT.into(),
        config: config.clone(),
        data: data.clone(),
        training: TrainingInfo {
            steps: opts.steps,
            batch: opts.batch,
            seed: opts.seed,
            lr: opts.lr,
            distort: opts.distort,
            one_digit_fraction: opts.one_digit_fraction,
            seconds: 0.0,
            device: format!("{:?}", opts.device).to_lowercase(),
            threads: tch::get_num_threads(),
        },
        accuracy: Default::default(),
    };
    let mut ev = Evaluator::new(meta, opts.device);
    let pools = image_pools(digits, Split::Train, data.seed);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0xe7a1_0a70);
    let mut opt = nn::AdamW {
        wd: 1e-4,
        ..Default::default()
    }
    .build(&ev.vs, opts.lr)
    .map_err(|e| super::EvaluatorError::Other(e.to_string()))?;
    let (mut sum, mut n) = (0.0, 0u64);
    let mut done = 0;
    for step in 1..=opts.steps {
        // Cosine decay from lr to lr / 50 over the steps or the time budget.
        let mut progress = (step - 1) as f64 / opts.steps.max(1) as f64;
        if let Some(limit) = opts.time_limit {
            progress = progress.max(start.elapsed().as_secs_f64() / limit.as_secs_f64());
            if progress >= 1.0 {
                break;
            }
        }
        let lr = opts.lr * (0.02 + 0.98 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
        opt.set_lr(lr);
        let (x, y) = training_batch(data, digits, &pools, opts, &mut rng);
        let logits = ev.net.forward_t(&x.to_device(opts.device), true);
        let loss = logits
            .reshape([-1, COUNT_CLASSES])
            .cross_entropy_for_logits(&y.to_device(opts.device).reshape([-1]))
            * HEADS as f64;
        opt.backward_step(&loss);
        sum += loss.double_value(&[]);
        n += 1;
        done = step;
        if step % opts.log_every.max(1) == 0 || step == opts.steps {
            log(step, sum / n as f64);
            (sum, n) = (0.0, 0);
        }
    }
    ev.meta.training.steps = done;
    ev.meta.training.seconds = start.elapsed().as_secs_f64();
    Ok(ev)
}
