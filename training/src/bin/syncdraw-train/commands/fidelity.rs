//! `fidelity`: do a checkpoint's videos show what the captions say?
use super::print_report;
use crate::args::{non_negative_f64, positive, DeviceArg, SplitArg};
use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use syncdraw_evaluator::labels::Score;
use syncdraw_training::checkpoint::{self, Checkpoint};
use syncdraw_training::fidelity::{CaptionFidelity, Reader, ShapeCaptionFidelity, ShapeScore};

#[derive(Args)]
pub struct FidelityArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    /// The digit evaluator (`evaluator train`): needed for a model trained on
    /// Bouncing MNIST, and only for it. A model trained on an imported
    /// moving-shapes set (`data --grammar shapes`) is read by rules, without an
    /// evaluator; the option is then ignored.
    #[arg(long)]
    evaluator: Option<PathBuf>,
    #[arg(long, value_parser = positive::<usize>, default_value_t = 10)]
    videos_per_caption: usize,
    /// Whose captions: the test split's (combinations never seen in training:
    /// digit–motion, or colour–shape–motion; the fidelity the issue asks for) or,
    /// to compare, the training split's.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    captions: SplitArg,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Scale of the prior noise, z ~ N(0, temperature² I), as the element's
    /// `temperature` property: 1 samples the model as trained.
    #[arg(long, value_parser = non_negative_f64, default_value_t = 1.0)]
    temperature: f64,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
}

pub fn run(a: FidelityArgs) -> Result<()> {
    let device = a.device.device()?;
    let ck = checkpoint::load(&a.checkpoint, device)?;
    match Reader::of(&ck.meta.data)? {
        Reader::Digits => {
            let Some(evaluator) = a.evaluator.clone() else {
                bail!(
                    "the model is trained on {}, Bouncing MNIST digits: pass the digit evaluator with --evaluator FILE (made by `syncdraw-train evaluator train`)",
                    ck.meta.data.name()
                );
            };
            digits(a, ck, evaluator, device)
        }
        Reader::Shapes => shapes(a, ck),
    }
}

fn digits(a: FidelityArgs, ck: Checkpoint, evaluator: PathBuf, device: tch::Device) -> Result<()> {
    let ev = syncdraw_evaluator::Evaluator::load(&evaluator, device)?;
    let r = syncdraw_training::fidelity::fidelity(
        &ck.model,
        &ck.meta,
        &ev,
        a.captions.split(),
        a.videos_per_caption,
        a.seed,
        a.temperature,
    )?;
    if r.captions {
        print_report(&CaptionedReport {
            checkpoint: a.checkpoint,
            evaluator,
            dataset: ck.meta.data.name(),
            step: ck.meta.step,
            temperature: a.temperature,
            videos_per_caption: r.videos_per_caption,
            split: a.captions.name(),
            captions: r.per_caption.len(),
            overall: r.overall,
            mean_caption_exact: r.mean_caption_exact,
            per_caption: r.per_caption,
        })
    } else {
        eprintln!(
            "unconditional model: no caption to check; reporting how often the evaluator finds {} digit(s)",
            ck.meta.data.generated().map_or(0, |d| d.digits)
        );
        print_report(&UnconditionalReport {
            checkpoint: a.checkpoint,
            evaluator,
            dataset: ck.meta.data.name(),
            step: ck.meta.step,
            unconditional: true,
            temperature: a.temperature,
            videos: r.overall.videos,
            digit_count_fraction: r.overall.count,
        })
    }
}

/// What `reader` says in a moving-shapes report.
const SHAPES_READER: &str = "moving-shapes rules (evaluator/src/shapes.rs)";

fn shapes(a: FidelityArgs, ck: Checkpoint) -> Result<()> {
    if let Some(e) = &a.evaluator {
        eprintln!(
            "--evaluator {} is not used: a moving-shapes model is read by rules",
            e.display()
        );
    }
    let r = syncdraw_training::fidelity::shapes_fidelity(
        &ck.model,
        &ck.meta,
        a.captions.split(),
        a.videos_per_caption,
        a.seed,
        a.temperature,
    )?;
    if r.captions {
        if r.attributes.len() < 3 {
            eprintln!("grey model: no colour to read; exact means shape and motion right");
        }
        print_report(&ShapesReport {
            checkpoint: a.checkpoint,
            reader: SHAPES_READER,
            dataset: ck.meta.data.name(),
            step: ck.meta.step,
            temperature: a.temperature,
            videos_per_caption: r.videos_per_caption,
            split: a.captions.name(),
            captions: r.per_caption.len(),
            attributes: r.attributes,
            overall: r.overall,
            mean_caption_exact: r.mean_caption_exact,
            per_caption: r.per_caption,
        })
    } else {
        eprintln!("unconditional model: no caption to check; reporting how often a shape is found");
        print_report(&UnconditionalShapesReport {
            checkpoint: a.checkpoint,
            reader: SHAPES_READER,
            dataset: ck.meta.data.name(),
            step: ck.meta.step,
            unconditional: true,
            temperature: a.temperature,
            videos: r.overall.videos,
            shape_seen_fraction: r.overall.seen,
        })
    }
}

/// What `fidelity` prints for a caption-conditioned model.
#[derive(Serialize)]
struct CaptionedReport {
    checkpoint: PathBuf,
    evaluator: PathBuf,
    dataset: String,
    step: u64,
    /// z ~ N(0, temperature² I).
    temperature: f64,
    videos_per_caption: usize,
    /// "test" or "train": whose captions.
    split: &'static str,
    captions: usize,
    overall: Score,
    mean_caption_exact: f64,
    per_caption: Vec<CaptionFidelity>,
}

/// What `fidelity` prints for an unconditional model: how often the evaluator
/// finds the data set's number of digits.
#[derive(Serialize)]
struct UnconditionalReport {
    checkpoint: PathBuf,
    evaluator: PathBuf,
    dataset: String,
    step: u64,
    unconditional: bool,
    /// z ~ N(0, temperature² I).
    temperature: f64,
    videos: usize,
    digit_count_fraction: f64,
}

/// What `fidelity` prints for a caption-conditioned moving-shapes model: the
/// digit report's layout, with the reader instead of the evaluator and the
/// colour, shape and motion fractions instead of digits and count.
#[derive(Serialize)]
struct ShapesReport {
    checkpoint: PathBuf,
    reader: &'static str,
    dataset: String,
    step: u64,
    /// z ~ N(0, temperature² I).
    temperature: f64,
    videos_per_caption: usize,
    /// "test" or "train": whose captions.
    split: &'static str,
    captions: usize,
    /// What is scored: colour, shape and motion; shape and motion for grey.
    attributes: Vec<&'static str>,
    overall: ShapeScore,
    mean_caption_exact: f64,
    per_caption: Vec<ShapeCaptionFidelity>,
}

/// What `fidelity` prints for an unconditional moving-shapes model: how often
/// the reader finds a shape.
#[derive(Serialize)]
struct UnconditionalShapesReport {
    checkpoint: PathBuf,
    reader: &'static str,
    dataset: String,
    step: u64,
    unconditional: bool,
    /// z ~ N(0, temperature² I).
    temperature: f64,
    videos: usize,
    shape_seen_fraction: f64,
}
