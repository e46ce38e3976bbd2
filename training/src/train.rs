//! The training loop: run directory, checkpoints, resume, metrics, NaN guard.
//!
//! A run directory holds `config.json` (what was asked, with the caption grammar
//! or vocabulary),
//! `checkpoint.safetensors` (latest, written atomically) and `metrics.jsonl`.
use crate::adam::{Adam, AdamConfig};
use crate::batch::Batcher;
use crate::checkpoint::{self, CheckpointError, Meta};
use crate::data::dataset::DataError;
use crate::data::{Dataset, DatasetConfig, Pixels, Split};
use crate::eval::{evaluate, EvalResult};
use crate::model::config::{DecoderKind, SlotKind, SlotsConfig, WordsConfig};
use crate::model::window_stats::WindowStats;
use crate::model::{CaptionConfig, ModelConfig, SyncDraw};
use crate::warm_start::{warm_start, WarmStartError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use syncdraw_format::words::words;
use syncdraw_format::{CaptionError, Grammar, Vocabulary};
use tch::{Device, Kind, Tensor};

pub const CHECKPOINT: &str = "checkpoint.safetensors";

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Caption(#[from] CaptionError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("run directory {0} already has a checkpoint: pass --resume to continue it, or choose another --run-dir")]
    RunExists(PathBuf),
    #[error("training stopped: the loss or the gradient norm became NaN or infinite in steps {steps}. The last good checkpoint ({checkpoint}) is kept; lower the learning rate or resume from it")]
    NonFinite { steps: String, checkpoint: String },
    #[error(transparent)]
    WarmStart(#[from] WarmStartError),
    #[error("training stopped at step {step}: {source}; {kept}")]
    SaveFailed {
        step: u64,
        source: CheckpointError,
        kept: String,
    },
    #[error("invalid setting: {0}")]
    Invalid(String),
}

/// Everything a training run needs.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub run_dir: PathBuf,
    pub model: ModelConfig,
    pub dataset: DatasetConfig,
    /// Grey pixels, or binarised ones (dynamic for training, fixed for the test split).
    pub pixels: Pixels,
    /// Condition on captions, with this encoder (words: the vocabulary is built
    /// from the training captions).
    pub captions: Option<CaptionEncoderKind>,
    /// How a fresh model's initial canvas is set (`model.canvas_init` is filled
    /// from it).
    pub canvas_init: CanvasInit,
    pub batch: usize,
    /// Train until this many optimizer steps in total.
    pub steps: u64,
    pub seed: u64,
    pub checkpoint_every: u64,
    /// Evaluate the test NLL every this many steps (and at the end); 0 = only at the end.
    pub eval_every: u64,
    /// Test videos used by the periodic evaluation (the final one uses all).
    pub eval_videos: usize,
    pub log_every: u64,
    pub resume: bool,
    pub device: Device,
    pub adam: AdamConfig,
    pub cache_dir: PathBuf,
    /// Stop (with a checkpoint) after this much wall time.
    pub time_limit: Option<Duration>,
    /// Start a new run from the weights of this checkpoint (fresh optimizer state);
    /// the model, vocabulary and data set come from it.
    pub init_from: Option<PathBuf>,
    /// Start a new run (model and data set from the other options) from the
    /// weights of a model with fewer objects per caption (warm_start.rs).
    pub warm_start: Option<PathBuf>,
    pub progress: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub step: u64,
    /// Mean training loss over the last logging window (not one batch's loss).
    pub last_loss: f64,
    pub videos_per_s: f64,
    pub test: Option<EvalResult>,
    pub checkpoint: PathBuf,
}

#[derive(Serialize)]
struct MetricsLine<'a> {
    step: u64,
    loss: f64,
    kl: f64,
    videos_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_nll: Option<f64>,
    /// Read and write windows of the logging step's batch (model/window_stats.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    windows: Option<&'a WindowStats>,
}

/// Which caption encoder a run trains (model/caption.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CaptionEncoderKind {
    /// Grammar slots, one embedding table per slot kind (format 2).
    Slots,
    /// An LSTM over words (format 1).
    Words,
}

/// The initial canvas c^0 of a fresh model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CanvasInit {
    /// c^0 = 0 (eq. 10): every pixel starts at probability 0.5.
    #[default]
    Zero,
    /// A learned logit, one for every pixel, starting at logit(mean pixel of the
    /// training videos): the background need not be painted by the writes.
    DataMean,
}

/// logit of the mean of 8-bit pixels (as values in [0, 1]), clamped away from 0 and 1.
pub fn mean_logit(pixels: &[u8]) -> f64 {
    let sum: u64 = pixels.iter().map(|&p| p as u64).sum();
    let mean = (sum as f64 / (255.0 * pixels.len().max(1) as f64)).clamp(1e-4, 1.0 - 1e-4);
    (mean / (1.0 - mean)).ln()
}

/// Slot encoder sizes for a grammar.
pub fn slots_config(g: &Grammar) -> CaptionConfig {
    CaptionConfig::Slots(SlotsConfig {
        objects: g.max_objects as i64,
        slots: g
            .slots
            .iter()
            .map(|s| SlotKind {
                name: s.name.clone(),
                values: s.values.len() as i64,
                role: s.role,
            })
            .collect(),
        embed_size: 32,
    })
}

/// Word encoder sizes used when a run conditions on captions with words.
pub fn words_config(vocab: &Vocabulary, length: usize) -> CaptionConfig {
    CaptionConfig::Words(WordsConfig {
        vocab_size: vocab.len() as i64,
        length: length as i64,
        embed_size: 64,
        hidden_size: 128,
    })
}

/// Indices of the batch used at `step` (1-based): epochs are seeded permutations.
pub fn batch_indices(n: usize, batch: usize, seed: u64, step: u64) -> Vec<usize> {
    let per_epoch = (n / batch).max(1) as u64;
    let epoch = (step - 1) / per_epoch;
    let j = ((step - 1) % per_epoch) as usize;
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(
        seed.wrapping_mul(1_000_003).wrapping_add(epoch),
    ));
    order
        .into_iter()
        .cycle()
        .skip(j * batch)
        .take(batch)
        .collect()
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(value).expect("serialisable");
    std::fs::write(path, text + "\n").map_err(io_err(path))
}

fn params_finite(model: &SyncDraw) -> bool {
    model
        .vs
        .variables()
        .values()
        .all(|t| t.isfinite().all().int64_value(&[]) != 0)
}

pub fn train(opts: &TrainOptions) -> Result<TrainSummary, TrainError> {
    if opts.batch == 0 || opts.checkpoint_every == 0 {
        return Err(TrainError::Invalid(
            "batch and checkpoint interval must be positive".into(),
        ));
    }
    let dir = &opts.run_dir;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let ckpt_path = dir.join(CHECKPOINT);

    let existing = ckpt_path.exists();
    if existing && !opts.resume {
        return Err(TrainError::RunExists(dir.clone()));
    }
    // On resume every setting that shapes the run comes from the checkpoint.
    let (model, adam_state, mut meta) = if existing {
        let ck = checkpoint::load(&ckpt_path, opts.device)?;
        (ck.model, ck.adam, ck.meta)
    } else if let Some(init) = &opts.init_from {
        let ck = checkpoint::load(init, opts.device)?;
        let mut meta = ck.meta;
        meta.steps_before = meta.total_steps();
        meta.step = 0;
        meta.seed = opts.seed;
        meta.test_nll = None;
        meta.initialised_from = Some(init.display().to_string());
        meta.device = format!("{:?}", opts.device);
        (ck.model, None, meta)
    } else {
        let train = Dataset::load_or_generate(&opts.dataset, Split::Train, &opts.cache_dir)?;
        let mut config = opts.model.clone();
        let (mut vocabulary, mut grammar) = (None, None);
        config.caption = match opts.captions {
            None => None,
            Some(CaptionEncoderKind::Slots) => {
                let g = crate::data::bouncing::grammar(opts.dataset.digits);
                let cc = slots_config(&g);
                grammar = Some(g);
                Some(cc)
            }
            Some(CaptionEncoderKind::Words) => {
                let v = Vocabulary::from_captions(train.videos.iter().map(|v| v.caption.as_str()));
                let length = train
                    .videos
                    .iter()
                    .map(|x| words(&x.caption).len())
                    .max()
                    .unwrap_or(1);
                let cc = words_config(&v, length);
                vocabulary = Some(v);
                Some(cc)
            }
        };
        if config.decoder == DecoderKind::WhatWhere
            && matches!(config.caption, Some(CaptionConfig::Words(_)))
        {
            return Err(TrainError::Invalid(
                "the what-where decoder needs the slots caption encoder".into(),
            ));
        }
        if config.frames != opts.dataset.video.frames as i64
            || config.height != opts.dataset.video.size as i64
            || config.width != opts.dataset.video.size as i64
        {
            return Err(TrainError::Invalid(
                "model frames/size must match the data set's".into(),
            ));
        }
        if opts.canvas_init == CanvasInit::DataMean {
            config.canvas_init = Some(mean_logit(&train.pixels));
        }
        tch::manual_seed(opts.seed as i64);
        let model = SyncDraw::new(&config, opts.device);
        let (mut steps_before, mut initialised_from) = (0, None);
        if let Some(path) = &opts.warm_start {
            let source = checkpoint::load(path, opts.device)?;
            let same_slots = match (&source.meta.grammar, &grammar) {
                (Some(a), Some(b)) => a.slots == b.slots,
                _ => false,
            };
            if !same_slots {
                return Err(TrainError::Invalid(format!(
                    "--warm-start {}: both models must read captions with the slots encoder and the same slot values (digits, motions)",
                    path.display()
                )));
            }
            warm_start(&model, &source.model)?;
            steps_before = source.meta.total_steps();
            initialised_from = Some(path.display().to_string());
        }
        let meta = Meta {
            format: checkpoint::FORMAT.into(),
            model: config,
            vocabulary,
            grammar,
            dataset: opts.dataset.clone(),
            pixels: opts.pixels,
            step: 0,
            seed: opts.seed,
            test_nll: None,
            train_seconds: 0.0,
            device: format!("{:?}", opts.device),
            steps_before,
            initialised_from,
        };
        (model, None, meta)
    };
    write_json(&dir.join("config.json"), &meta)?;

    let train_data = Dataset::load_or_generate(&meta.dataset, Split::Train, &opts.cache_dir)?;
    let test_data = Dataset::load_or_generate(&meta.dataset, Split::Test, &opts.cache_dir)?;
    let test_data = match meta.pixels {
        Pixels::Grey => test_data,
        Pixels::Binarized => test_data.binarized(),
    };
    let codec = meta.captions();
    let train_b = Batcher::new(&train_data, codec.as_ref(), opts.device)?;
    let test_b = Batcher::new(&test_data, codec.as_ref(), opts.device)?;

    let mut adam = Adam::new(&model.vs, opts.adam, adam_state);
    let metrics_path = dir.join("metrics.jsonl");
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(io_err(&metrics_path))?;

    let c = meta.model.clone();
    let start_step = meta.step;
    let bar = ProgressBar::with_draw_target(
        Some(opts.steps.saturating_sub(start_step)),
        if opts.progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let plain_log = opts.progress && !std::io::stderr().is_terminal();
    let started = Instant::now();
    let train_seconds0 = meta.train_seconds;
    // Loss, KL and a count of non-finite values are summed on the device and read
    // back only every `sync_every` steps: each read stalls a GPU, while on a CPU it
    // is free, so there every step is checked at once.
    let sync_every = if opts.device == Device::Cpu {
        1
    } else {
        opts.log_every.clamp(1, 50)
    };
    let zero = || Tensor::zeros([], (Kind::Double, opts.device));
    let (mut win_loss, mut win_kl, mut win_bad) = (zero(), zero(), zero());
    let (mut win_n, mut win_start, mut checked_step) = (0u64, Instant::now(), start_step);
    let (mut sum_loss, mut sum_kl, mut sum_n) = (0.0, 0.0, 0u64);
    let (mut last_loss, mut rate) = (f64::NAN, 0.0);
    let mut test = None;
    let mut step = start_step;
    while step < opts.steps {
        step += 1;
        let idx = batch_indices(train_data.len(), opts.batch, meta.seed, step);
        let (x, ids) = train_b.batch(&idx);
        tch::manual_seed((meta.seed.wrapping_mul(7919).wrapping_add(step)) as i64);
        // Dynamic binarisation: a fresh Bernoulli sample of the batch every step.
        let x = match meta.pixels {
            Pixels::Grey => x,
            Pixels::Binarized => x.bernoulli(),
        };
        let eps = Tensor::randn(
            [idx.len() as i64, c.timesteps, c.z_dim],
            (Kind::Float, opts.device),
        );
        // Window statistics are gathered on the steps that log (a few small reductions).
        let mut windows =
            (step % opts.log_every.max(1) == 0 || step == opts.steps).then(WindowStats::default);
        let loss = model.loss_observed(&x, ids.as_ref(), &eps, windows.as_mut());
        let windows = windows.map(WindowStats::finish);
        let total = loss.nll().mean(Kind::Float);
        adam.zero_grad();
        total.backward();
        let norm = adam.grad_norm();
        let not_finite = |t: &Tensor| t.isfinite().logical_not().to_kind(Kind::Double);
        win_bad += not_finite(&total) + not_finite(&norm);
        win_loss += total.detach().to_kind(Kind::Double);
        win_kl += loss.kl.mean(Kind::Float).detach().to_kind(Kind::Double);
        win_n += 1;
        adam.step(step, &norm);
        bar.inc(1);

        let at_end = step == opts.steps || opts.time_limit.is_some_and(|l| started.elapsed() >= l);
        let log_now = step % opts.log_every.max(1) == 0 || at_end;
        let eval_now = at_end || (opts.eval_every > 0 && step % opts.eval_every == 0);
        let checkpoint_now = step % opts.checkpoint_every == 0 || at_end;
        if step % sync_every == 0 || log_now || eval_now || checkpoint_now {
            if win_bad.double_value(&[]) > 0.0 {
                bar.abandon();
                return Err(TrainError::NonFinite {
                    steps: format!("{}..={step}", checked_step + 1),
                    checkpoint: if ckpt_path.exists() {
                        ckpt_path.display().to_string()
                    } else {
                        "none written yet".into()
                    },
                });
            }
            checked_step = step;
            sum_loss += win_loss.double_value(&[]);
            sum_kl += win_kl.double_value(&[]);
            sum_n += win_n;
            last_loss = sum_loss / sum_n.max(1) as f64;
            (win_loss, win_kl, win_bad, win_n) = (zero(), zero(), zero(), 0);
        }
        if log_now || eval_now {
            let secs = win_start.elapsed().as_secs_f64().max(1e-9);
            let done = sum_n;
            rate = (done as f64 * opts.batch as f64) / secs;
            let (l, k) = (sum_loss / done.max(1) as f64, sum_kl / done.max(1) as f64);
            if eval_now {
                let limit = (!at_end).then_some(opts.eval_videos);
                let r = evaluate(&model, &test_b, opts.batch.max(64), meta.seed, None, limit);
                meta.test_nll = Some(r.nll);
                test = Some(r);
            }
            let line = MetricsLine {
                step,
                loss: l,
                kl: k,
                videos_per_s: rate,
                test_nll: if eval_now { meta.test_nll } else { None },
                windows: windows.as_ref(),
            };
            writeln!(
                metrics,
                "{}",
                serde_json::to_string(&line).expect("serialisable")
            )
            .map_err(io_err(&metrics_path))?;
            let dead = windows
                .as_ref()
                .map(|w| {
                    format!(
                        "  dead rows read {:.2} write {:.2}",
                        w.read.worst_dead(),
                        w.write.worst_dead()
                    )
                })
                .unwrap_or_default();
            let msg = format!(
                "loss {l:.1}  kl {k:.1}  {rate:.0} videos/s{dead}{}",
                meta.test_nll
                    .map(|n| format!("  test nll {n:.1}"))
                    .unwrap_or_default()
            );
            if plain_log {
                eprintln!("step {step}/{}  {msg}", opts.steps);
            }
            bar.set_message(msg);
            (sum_loss, sum_kl, sum_n, win_start) = (0.0, 0.0, 0, Instant::now());
        }
        if step % opts.checkpoint_every == 0 || at_end {
            if !params_finite(&model) {
                bar.abandon();
                return Err(TrainError::NonFinite {
                    steps: format!("..={step}"),
                    checkpoint: ckpt_path.display().to_string(),
                });
            }
            meta.step = step;
            meta.train_seconds = train_seconds0 + started.elapsed().as_secs_f64();
            let kept = ckpt_path.exists();
            checkpoint::save(&ckpt_path, &model, Some(&adam.state), &meta).map_err(|source| {
                TrainError::SaveFailed {
                    step,
                    source,
                    kept: if kept {
                        format!(
                            "the previous checkpoint ({}) is intact: make room and continue with --resume",
                            ckpt_path.display()
                        )
                    } else {
                        "no checkpoint was written before".into()
                    },
                }
            })?;
        }
        if at_end {
            break;
        }
    }
    bar.finish();
    Ok(TrainSummary {
        step,
        last_loss,
        videos_per_s: rate,
        test,
        checkpoint: ckpt_path,
    })
}
