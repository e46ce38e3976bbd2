//! `evaluator train` and `evaluator accuracy`: the caption-fidelity evaluator.
use super::print_report;
use crate::args::{fraction, positive, positive_f64, DeviceArg, VideoOpts};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use syncdraw_data::dataset::default_cache_dir;
use syncdraw_data::{DigitSource, Pixels};
use syncdraw_evaluator::train::Recipe;

#[derive(Subcommand)]
pub enum EvaluatorCommand {
    /// Train the evaluator on freshly rendered real videos (train images only) and
    /// print its accuracy on the real 1- and 2-digit test splits as JSON.
    Train(EvaluatorTrainArgs),
    /// Print an evaluator's accuracy on real test videos as JSON.
    Accuracy(EvaluatorAccuracyArgs),
}

#[derive(Args)]
pub struct EvaluatorTrainArgs {
    /// Where to write the evaluator (safetensors).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = Recipe::default().steps)]
    steps: u64,
    /// Frames per step.
    #[arg(long, value_parser = positive::<usize>, default_value_t = Recipe::default().batch)]
    batch: usize,
    #[arg(long, default_value_t = Recipe::default().seed)]
    seed: u64,
    /// Peak learning rate (cosine decay to 1/50 of it).
    #[arg(long, value_parser = positive_f64, default_value_t = Recipe::default().lr)]
    lr: f64,
    /// Strength of the random affine distortion of training digits (0: none).
    #[arg(long, default_value_t = Recipe::default().distort)]
    distort: f32,
    /// The data sets it is for: it learns from their train image pool and is
    /// measured on their 1- and 2-digit test splits (the models' --data-seed).
    #[command(flatten)]
    data: VideoOpts,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    #[arg(long, value_parser = positive::<u64>, default_value_t = 100)]
    log_every: u64,
    /// The detector's conv layers, e.g. "32k5s2,64k3p" (channels, odd kernel,
    /// stride, 2x2 pooling); their strides and poolings set the grid.
    #[arg(long, default_value = syncdraw_evaluator::net::DEFAULT_LAYERS)]
    layers: String,
    /// Split every cell of the layers' grid into N x N finer cells (1: no split;
    /// 2 turns the default 4-pixel cells into 2-pixel ones).
    #[arg(long, default_value_t = syncdraw_evaluator::net::DEFAULT_SUBCELLS,
          value_parser = clap::value_parser!(i64).range(1..=4))]
    subcells: i64,
    /// Fraction of training frames with one digit (the rest have two).
    #[arg(long, value_parser = fraction, default_value_t = Recipe::default().one_digit_fraction)]
    one_digit_fraction: f64,
    /// Stop training after this many minutes (the learning-rate schedule follows it).
    #[arg(long, value_parser = positive_f64)]
    max_minutes: Option<f64>,
    /// More training digits: MNIST IDX files (images, labels; .gz accepted), e.g.
    /// the 60,000 training digits that `bash scripts/extra-digits.sh` fetches.
    /// Images that are also among the data set's digits are skipped, so the test
    /// images stay unseen.
    #[arg(long, num_args = 2, value_names = ["IMAGES", "LABELS"])]
    extra_mnist_idx: Option<Vec<PathBuf>>,
}

#[derive(Args)]
pub struct EvaluatorAccuracyArgs {
    #[arg(long)]
    evaluator: PathBuf,
    /// Only the 1- or the 2-digit test split (default: both).
    #[arg(long)]
    digits: Option<usize>,
    /// Only the first N test videos of each split.
    #[arg(long, value_parser = positive::<usize>)]
    limit: Option<usize>,
    /// Also write every misread video (index, true and read captions, how far
    /// apart its digits get) and every digit image read as another digit where it
    /// stands clear (how it was read) to this JSON file.
    #[arg(long)]
    misread: Option<PathBuf>,
    /// Read the binarised test videos instead (the fixed sample that `eval` of a
    /// `train --binarize` model scores against): how well the evaluator reads
    /// speckled digits, so a binarised model's fidelity can be read against it.
    #[arg(long)]
    binarize: bool,
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
}

/// What `evaluator accuracy` reports on the real test splits, by split name
/// ("1_digit_test", "2_digit_test").
struct AccuracyReport {
    /// Scores of every video, and "<split>_apart": the two-digit videos whose
    /// digits are ever `APART_PIXELS` apart.
    scores: std::collections::BTreeMap<String, syncdraw_evaluator::labels::Score>,
    /// "<split>_images": what the digit images read as another digit cost.
    images: serde_json::Map<String, serde_json::Value>,
    /// "<split>": the misread videos; "<split>_images": the misread images.
    misread: serde_json::Map<String, serde_json::Value>,
}

impl AccuracyReport {
    /// The scores and image summaries, as printed.
    fn accuracy_json(&self) -> Result<serde_json::Value> {
        let mut all = self.images.clone();
        for (k, v) in &self.scores {
            all.insert(k.clone(), serde_json::to_value(v)?);
        }
        Ok(all.into())
    }
}

fn evaluator_accuracy(
    ev: &syncdraw_evaluator::Evaluator,
    splits: &[usize],
    limit: Option<usize>,
    pixels: Pixels,
    cache: &std::path::Path,
) -> Result<AccuracyReport> {
    let mut r = AccuracyReport {
        scores: Default::default(),
        images: Default::default(),
        misread: Default::default(),
    };
    for &d in splits {
        let test = syncdraw_evaluator::real_test_split(&ev.meta.data, d, None, pixels, cache)?;
        let a = ev.assess(&test, limit)?;
        let name = format!("{d}_digit_test");
        r.scores.insert(name.clone(), a.all);
        if let Some(apart) = a.apart {
            r.scores.insert(format!("{name}_apart"), apart);
        }
        r.images.insert(
            format!("{name}_images"),
            serde_json::to_value(&a.image_summary)?,
        );
        let hard = a
            .images
            .iter()
            .filter(|(_, reading)| reading.misread())
            .map(|(image, reading)| serde_json::to_value(MisreadImage { image, reading }))
            .collect::<Result<Vec<_>, _>>()?;
        r.misread
            .insert(name.clone(), serde_json::to_value(&a.misread)?);
        r.misread.insert(format!("{name}_images"), hard.into());
    }
    Ok(r)
}

fn run_train(a: EvaluatorTrainArgs) -> Result<()> {
    use syncdraw_evaluator::{train, EvaluatorConfig};
    let data = a.data.config(1)?;
    let digits = syncdraw_data::Digits::load(&data.source)?;
    let opts = train::TrainOptions {
        recipe: Recipe {
            steps: a.steps,
            batch: a.batch,
            seed: a.seed,
            lr: a.lr,
            distort: a.distort,
            one_digit_fraction: a.one_digit_fraction,
            extra_digits: a.extra_mnist_idx.map(|p| DigitSource::Idx {
                images: p[0].clone(),
                labels: p[1].clone(),
            }),
        },
        device: a.device.device()?,
        log_every: a.log_every,
        time_limit: a.max_minutes.map(|m| Duration::from_secs_f64(m * 60.0)),
    };
    eprintln!(
        "training the evaluator on {:?} with {} libtorch threads",
        opts.device,
        tch::get_num_threads()
    );
    let mut config = EvaluatorConfig::new(data.video.frames as i64, data.video.size as i64);
    config.layers = syncdraw_evaluator::net::parse_layers(&a.layers).map_err(anyhow::Error::msg)?;
    config.subcells = a.subcells;
    let start = std::time::Instant::now();
    let mut ev = train::train(&config, &data, &digits, &opts, |step, loss| {
        eprintln!(
            "step {step}: loss {loss:.4} ({:.0} s)",
            start.elapsed().as_secs_f64()
        );
    })?;
    let report = evaluator_accuracy(&ev, &[1, 2], None, Pixels::Grey, &a.data.cache())?;
    ev.meta.accuracy = report.scores.clone();
    ev.save(&a.out)?;
    print_report(&TrainReport {
        evaluator: a.out,
        steps: ev.meta.training.recipe.steps,
        train_seconds: ev.meta.training.seconds,
        extra_images: ev.meta.training.extra_images,
        accuracy: report.accuracy_json()?,
    })
}

fn run_accuracy(a: EvaluatorAccuracyArgs) -> Result<()> {
    let ev = syncdraw_evaluator::Evaluator::load(&a.evaluator, a.device.device()?)?;
    let splits = match a.digits {
        None => vec![1, 2],
        Some(d @ 1..=2) => vec![d],
        Some(d) => bail!("--digits must be 1 or 2, got {d}"),
    };
    let cache = a.cache_dir.unwrap_or_else(default_cache_dir);
    let pixels = if a.binarize {
        Pixels::Binarized
    } else {
        Pixels::Grey
    };
    let report = evaluator_accuracy(&ev, &splits, a.limit, pixels, &cache)?;
    if let Some(path) = &a.misread {
        std::fs::write(path, serde_json::to_string_pretty(&report.misread)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    print_report(&AccuracyPrint {
        evaluator: a.evaluator,
        pixels: pixels.name(),
        accuracy: report.accuracy_json()?,
    })
}

/// A digit image read as another digit where it stands clear, and how.
#[derive(Serialize)]
struct MisreadImage<I: Serialize, R: Serialize> {
    image: I,
    reading: R,
}

/// What `evaluator train` prints.
#[derive(Serialize)]
struct TrainReport {
    evaluator: PathBuf,
    steps: u64,
    train_seconds: f64,
    extra_images: usize,
    /// Scores and image summaries by split name ("1_digit_test", ...).
    accuracy: serde_json::Value,
}

/// What `evaluator accuracy` prints.
#[derive(Serialize)]
struct AccuracyPrint {
    evaluator: PathBuf,
    /// "grey" or "binarized": which test pixels were read.
    pixels: &'static str,
    /// Scores and image summaries by split name ("1_digit_test", ...).
    accuracy: serde_json::Value,
}

pub fn run(c: EvaluatorCommand) -> Result<()> {
    match c {
        EvaluatorCommand::Train(a) => run_train(a),
        EvaluatorCommand::Accuracy(a) => run_accuracy(a),
    }
}
