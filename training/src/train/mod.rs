//! Training a model: the options, the loop (batches, Adam steps, NaN guard,
//! evaluation, checkpoints) and its summary. Where a run lives and how it starts
//! is in [`run_dir`], what it reports as it goes in [`metrics`].
pub mod metrics;
pub mod run_dir;

use crate::adam::{Adam, AdamConfig};
use crate::average::Average;
pub use crate::backend::tch_backend::Products;
use crate::batch::{batch_indices, Batcher};
use crate::checkpoint::{self, CheckpointError};
pub use crate::fused::CanvasStep;
use crate::fused::{self, FusedCanvas};
use crate::model::window_stats::WindowStats;
use crate::model::{CaptionConfig, ModelConfig, SyncDraw};
use crate::nll::{evaluate, EvalResult};
use crate::source::{DataSource, SourceError};
use crate::warm_start::WarmStartError;
use metrics::{MetricsLine, Reporter};
pub use run_dir::{check_layer_targets, mean_logit, slots_config, words_config, CHECKPOINT};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use syncdraw_data::binarize::mix;
use syncdraw_data::dataset::DataError;
use syncdraw_data::{Pixels, Split};
use syncdraw_format::CaptionError;
use tch::{Device, Kind, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Source(#[from] SourceError),
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

/// Adam's settings and the batch size. None: a new run (fresh or
/// `warm_start`) takes the paper's Adam (lr 1e-3, beta1 0.5, clip 10,
/// `AdamConfig`) and [`DEFAULT_BATCH`]; a resumed run, or one started with
/// `init_from`, keeps what its checkpoint records (so a resumed run draws the
/// batches it would have drawn uninterrupted). A value given replaces it and
/// is recorded.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptimizerOptions {
    /// Adam's learning rate.
    pub lr: Option<f64>,
    /// Adam's beta1, in [0, 1).
    pub beta1: Option<f64>,
    /// The global gradient-norm threshold; 0: no clipping.
    pub clip: Option<f64>,
    /// Videos per optimizer step, at least 1.
    pub batch: Option<usize>,
}

/// Videos per optimizer step of a new run that names none.
pub const DEFAULT_BATCH: usize = 64;

/// Everything a training run needs.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub run_dir: PathBuf,
    pub model: ModelConfig,
    /// What to train on: generated Bouncing MNIST or an imported folder set
    /// (source.rs). The model's frames, size and channels must be the data's.
    pub data: DataSource,
    /// Grey pixels, or binarised ones (dynamic for training, fixed for the test split).
    pub pixels: Pixels,
    /// Condition on captions, with this encoder (words: the vocabulary is built
    /// from the training captions).
    pub captions: Option<CaptionEncoderKind>,
    /// How a fresh model's initial canvas is set (`model.canvas_init` is filled
    /// from it).
    pub canvas_init: CanvasInit,
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
    /// Adam's learning rate, beta1 and gradient clipping.
    pub optimizer: OptimizerOptions,
    pub cache_dir: PathBuf,
    /// Stop (with a checkpoint) after this much wall time.
    pub time_limit: Option<Duration>,
    /// Start a new run from the weights of this checkpoint (fresh optimizer state);
    /// the model, vocabulary and data set come from it.
    pub init_from: Option<PathBuf>,
    /// Start a new run (model and data set from the other options) from the
    /// weights of a model with fewer objects per caption (warm_start.rs).
    pub warm_start: Option<PathBuf>,
    /// Hold the decoder (with the caption encoder it owns) fixed and train only
    /// the encoder: what the model draws stays what it drew (a warm start's
    /// composed one-object drawings), while the bound learns the new data.
    pub freeze_decoder: bool,
    /// Weight of the KL term in the objective of a new run (see `Meta::kl_weight`).
    pub kl_weight: f64,
    /// Probability, in [0, 1), of hiding each caption slot of a training video
    /// from a new run (see `Meta::slot_dropout`); slot captions only.
    pub slot_dropout: f64,
    /// Weight of the layer-target term (see `Meta::layer_targets`); None: a new
    /// run takes none, a resumed or continued run keeps its own.
    pub layer_targets: Option<f64>,
    /// Number format of the training step's matrix products (evaluation is f32).
    pub products: Products,
    /// How the step runs its canvas half (the fused kernels by default).
    pub canvas_step: CanvasStep,
    /// Keep a moving average of the weights with this decay (average.rs),
    /// evaluated beside them; 0: none. None: a new run keeps none, a resumed
    /// run what its checkpoint records.
    pub ema_decay: Option<f64>,
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

fn params_finite(model: &SyncDraw) -> bool {
    model
        .vs
        .variables()
        .values()
        .all(|t| t.isfinite().all().int64_value(&[]) != 0)
}

pub fn train(opts: &TrainOptions) -> Result<TrainSummary, TrainError> {
    if opts.optimizer.batch == Some(0) || opts.checkpoint_every == 0 {
        return Err(TrainError::Invalid(
            "batch and checkpoint interval must be positive".into(),
        ));
    }
    if !(0.0..1.0).contains(&opts.slot_dropout) {
        return Err(TrainError::Invalid(format!(
            "slot dropout must be at least 0 and below 1, got {}",
            opts.slot_dropout
        )));
    }
    let new_run = !opts.resume && opts.init_from.is_none();
    if opts.slot_dropout > 0.0 && new_run && opts.captions != Some(CaptionEncoderKind::Slots) {
        return Err(slot_dropout_needs_slots());
    }
    let run_dir::Start {
        model,
        adam,
        average,
        mut meta,
        train,
        checkpoint: ckpt_path,
    } = run_dir::start(opts)?;
    let train_data = match train {
        Some(d) => d,
        None => meta.data.load(Split::Train, &opts.cache_dir)?,
    };
    let test_data = meta.data.load(Split::Test, &opts.cache_dir)?;
    // Binarised runs draw a fresh sample of every batch's digits from the source
    // images (data/binarize.rs); the test split is one fixed sample. Only
    // generated digits can be binarised (refused for a folder set).
    let digits = match meta.pixels {
        Pixels::Grey => None,
        Pixels::Binarized => Some(meta.data.binarization_digits()?),
    };
    let no_digits = || SourceError::NoBinarization(meta.data.name());
    let test_data = match &digits {
        None => test_data,
        Some(d) => test_data.binarized(d).ok_or_else(no_digits)?,
    };
    if meta.slot_dropout > 0.0 && !matches!(meta.model.caption, Some(CaptionConfig::Slots(_))) {
        return Err(slot_dropout_needs_slots());
    }
    let codec = meta.captions();
    let train_b = Batcher::new(&train_data, codec.as_ref(), opts.device)?;
    let test_b = Batcher::new(&test_data, codec.as_ref(), opts.device)?;
    // The test evaluations also score each layer against its own digit where
    // `eval` would (whether or not training takes that term).
    let test_objects = digits
        .as_ref()
        .filter(|_| check_layer_targets(&meta).is_ok());
    // Frozen variables get no gradient and no update (Adam skips them).
    for (name, var) in model.vs.variables() {
        if meta.frozen.iter().any(|p| name.starts_with(p.as_str())) {
            let _ = var.set_requires_grad(false);
        }
    }
    let adam_config = AdamConfig {
        lr: meta.lr,
        beta1: meta.beta1,
        clip: meta.clip,
        ..AdamConfig::default()
    };
    let mut adam = Adam::new(&model.vs, adam_config, adam);
    let mut average = meta
        .ema_decay
        .map(|d| Average::new(&model.vs, d, average.unwrap_or_default()));

    let c = meta.model.clone();
    let start_step = meta.step;
    let mut report = Reporter::open(&opts.run_dir, start_step, opts.steps, opts.progress)?;
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
    let (mut win_layer, mut sum_layer) = (zero(), 0.0);
    let (mut win_n, mut win_start, mut checked_step) = (0u64, Instant::now(), start_step);
    let (mut sum_loss, mut sum_kl, mut sum_n) = (0.0, 0.0, 0u64);
    let (mut last_loss, mut rate) = (f64::NAN, 0.0);
    let mut test = None;
    // The canvas step the run's start chose (run_dir.rs) and recorded in it.
    let mut fused = (meta.canvas_step == CanvasStep::Fused)
        .then(|| FusedCanvas::new(tch::get_num_threads().max(1) as usize));
    if opts.progress {
        eprintln!(
            "canvas half of the step: {}",
            match &fused {
                Some(k) => format!(
                    "fused kernels ({:?}{})",
                    k.kernels(),
                    if fused::threads::on_openmp_team() {
                        ", on libtorch's OpenMP threads"
                    } else {
                        ""
                    }
                ),
                None => "libtorch operations".into(),
            }
        );
    }
    let mut step = start_step;
    while step < opts.steps {
        step += 1;
        let idx = batch_indices(train_data.len(), meta.batch, meta.seed, step);
        // Dynamic binarisation: a fresh sample of the batch's digits every step.
        let binarization_seed = mix(meta.seed ^ 0xb1a7_0000, step);
        let (x, ids) = match &digits {
            None => train_b.batch(&idx),
            Some(d) => train_b
                .binarized_batch(&idx, d, binarization_seed)
                .ok_or_else(no_digits)?,
        };
        // Each object alone, from the same sample (run_dir.rs refuses layer
        // targets without binarised digits).
        let targets = match &digits {
            Some(d) if meta.layer_targets > 0.0 => Some(
                train_b
                    .binarized_objects(&idx, d, binarization_seed)
                    .ok_or_else(no_digits)?,
            ),
            _ => None,
        };
        tch::manual_seed((meta.seed.wrapping_mul(7919).wrapping_add(step)) as i64);
        let eps = Tensor::randn(
            [idx.len() as i64, c.timesteps, c.z_dim],
            (Kind::Float, opts.device),
        );
        let ids = ids.map(|ids| hide_slots(ids, meta.slot_dropout));
        // Window statistics are gathered on the steps that log (a few small reductions).
        let mut windows =
            (step % opts.log_every.max(1) == 0 || step == opts.steps).then(WindowStats::default);
        adam.zero_grad();
        // The objective: the negative ELBO, with the KL weighted by kl_weight;
        // its gradient from the fused step's own backward, or from autograd.
        let loss = match &mut fused {
            Some(kernels) => fused::step::loss_and_backward(
                &model,
                kernels,
                &x,
                ids.as_ref(),
                &eps,
                meta.kl_weight,
                targets.as_ref().map(|t| (t, meta.layer_targets)),
                windows.as_mut(),
            ),
            None => {
                let loss = model.loss_observed(
                    &x,
                    ids.as_ref(),
                    &eps,
                    windows.as_mut(),
                    opts.products,
                    targets.as_ref(),
                );
                let mut objective = &loss.reconstruction + &loss.kl * meta.kl_weight;
                if let Some(layer) = &loss.layer_targets {
                    objective += layer * meta.layer_targets;
                }
                objective.mean(Kind::Float).backward();
                loss
            }
        };
        if let Some(layer) = &loss.layer_targets {
            win_layer += layer.mean(Kind::Float).detach().to_kind(Kind::Double);
        }
        let windows = windows.map(WindowStats::finish);
        let total = loss.nll().mean(Kind::Float);
        let norm = adam.grad_norm();
        let not_finite = |t: &Tensor| t.isfinite().logical_not().to_kind(Kind::Double);
        win_bad += not_finite(&total) + not_finite(&norm);
        win_loss += total.detach().to_kind(Kind::Double);
        win_kl += loss.kl.mean(Kind::Float).detach().to_kind(Kind::Double);
        win_n += 1;
        adam.step(step, &norm);
        if let Some(a) = average.as_mut() {
            a.update();
        }
        report.step_done();

        let at_end = step == opts.steps || opts.time_limit.is_some_and(|l| started.elapsed() >= l);
        let log_now = step % opts.log_every.max(1) == 0 || at_end;
        let eval_now = at_end || (opts.eval_every > 0 && step % opts.eval_every == 0);
        let checkpoint_now = step % opts.checkpoint_every == 0 || at_end;
        if step % sync_every == 0 || log_now || eval_now || checkpoint_now {
            if win_bad.double_value(&[]) > 0.0 {
                report.abandon();
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
            sum_layer += win_layer.double_value(&[]);
            sum_n += win_n;
            last_loss = sum_loss / sum_n.max(1) as f64;
            (win_loss, win_kl, win_layer, win_bad, win_n) = (zero(), zero(), zero(), zero(), 0);
        }
        if log_now || eval_now {
            let secs = win_start.elapsed().as_secs_f64().max(1e-9);
            let done = sum_n;
            rate = (done as f64 * meta.batch as f64) / secs;
            let (l, k) = (sum_loss / done.max(1) as f64, sum_kl / done.max(1) as f64);
            let mut test_nll_average = None;
            if eval_now {
                let limit = (!at_end).then_some(opts.eval_videos);
                let (batch, seed) = (meta.batch.max(64), meta.seed);
                let eval =
                    |m: &SyncDraw| evaluate(m, &test_b, batch, seed, None, limit, test_objects);
                let r = eval(&model);
                meta.test_nll = Some(r.nll);
                test = Some(r);
                // The averaged weights on the same videos with the same noise.
                if let Some(a) = average.as_mut() {
                    a.swap();
                    test_nll_average = Some(eval(&model).nll);
                    a.swap();
                }
            }
            let line = MetricsLine {
                step,
                loss: l,
                kl: k,
                videos_per_s: rate,
                test_nll: if eval_now { meta.test_nll } else { None },
                test_layer_targets: test
                    .as_ref()
                    .filter(|_| eval_now)
                    .and_then(|r| r.layer_targets),
                test_nll_average,
                layer_targets: (meta.layer_targets > 0.0).then(|| sum_layer / done.max(1) as f64),
                windows: windows.as_ref(),
            };
            report.log(&line, meta.test_nll)?;
            (sum_loss, sum_kl, sum_layer, sum_n, win_start) = (0.0, 0.0, 0.0, 0, Instant::now());
        }
        if step % opts.checkpoint_every == 0 || at_end {
            if !params_finite(&model) {
                report.abandon();
                return Err(TrainError::NonFinite {
                    steps: format!("..={step}"),
                    checkpoint: ckpt_path.display().to_string(),
                });
            }
            meta.step = step;
            meta.train_seconds = train_seconds0 + started.elapsed().as_secs_f64();
            let kept = ckpt_path.exists();
            let averaged = average.as_ref().map(Average::state).unwrap_or_default();
            checkpoint::save_run(&ckpt_path, &model, Some(&adam.state), &averaged, &meta).map_err(|source| {
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
    report.finish();
    Ok(TrainSummary {
        step,
        last_loss,
        videos_per_s: rate,
        test,
        checkpoint: ckpt_path,
    })
}

fn slot_dropout_needs_slots() -> TrainError {
    TrainError::Invalid(
        "slot dropout hides caption slots, so it needs captions read by the slots encoder (--caption-encoder slots); this run has words or no captions: drop --slot-dropout or use slot captions".into(),
    )
}

/// Slot dropout: each slot id of the batch becomes 0, the absent object's
/// row of its table (model/caption.rs), with probability `p`, drawn from the
/// step's seed after the latents' noise, so a run without it draws the same
/// noise as before.
fn hide_slots(ids: Tensor, p: f64) -> Tensor {
    if p <= 0.0 {
        return ids;
    }
    let keep = Tensor::rand(ids.size(), (Kind::Float, ids.device())).ge(p);
    let kind = ids.kind();
    ids * keep.to_kind(kind)
}

/// Whether a run with these options trains with the fused canvas step:
/// asked for, on a CPU with AVX2 and FMA (elsewhere the portable kernels would
/// not beat libtorch), with f32 products, and a model the kernels take.
pub fn uses_fused_step(opts: &TrainOptions, model: &ModelConfig) -> bool {
    opts.canvas_step == CanvasStep::Fused
        && opts.device == Device::Cpu
        && fused::frame::Kernels::detect() == fused::frame::Kernels::Avx2
        && opts.products == Products::F32
        && fused::step::supported(model)
}
