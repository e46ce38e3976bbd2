//! `eval`: the test-split NLL bound of a checkpoint (the paper's Table 1
//! quantity), or that of its training split (`--split train`).
use super::print_report;
use crate::args::{positive, DeviceArg, SplitArg};
use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};
use syncdraw_data::dataset::default_cache_dir;
use syncdraw_data::Pixels;
use syncdraw_training::batch::Batcher;
use syncdraw_training::checkpoint;
use syncdraw_training::nll::{evaluate, Parts, VideoScore};
use syncdraw_training::source::Videos;
use syncdraw_training::train::check_layer_targets;

#[derive(Args)]
pub struct EvalArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    /// Also compute the importance-weighted bound with K samples per video.
    #[arg(long, value_parser = positive::<usize>)]
    iwae_k: Option<usize>,
    /// Which split to evaluate: `test` (the paper's quantity: digit images and,
    /// with captions, digit-motion combinations never seen in training) or
    /// `train` (the videos the model was trained on; with `--limit`, the first
    /// N of them), to measure how much of the test NLL is the gap between the
    /// two.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    split: SplitArg,
    /// Evaluate only the first N videos of the split.
    #[arg(long, value_parser = positive::<usize>)]
    limit: Option<usize>,
    #[arg(long, value_parser = positive::<usize>, default_value_t = 100)]
    batch: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Also write every evaluated video's figures to FILE, a JSON object per
    /// line: its index in the split, its caption, nll, reconstruction, kl and
    /// reconstruction_per_frame, and for a model on layers named by caption
    /// slots its layer_targets and layer_targets_best (nats). The report on
    /// standard output is unchanged.
    #[arg(long, value_name = "FILE")]
    per_video: Option<PathBuf>,
}

pub fn run(a: EvalArgs) -> Result<()> {
    let device = a.device.device()?;
    let ck = checkpoint::load(&a.checkpoint, device)?;
    let cache = a.cache_dir.unwrap_or_else(default_cache_dir);
    let split = ck.meta.data.load(a.split.split(), &cache)?;
    let n = a.limit.unwrap_or(split.len()).min(split.len());
    // The floor of the NLL: grey (or colour) data, the entropy of the evaluated
    // pixels; binarised data, the entropy of the binarisation (one sample per
    // digit; generated digits only).
    let (floor, videos, digits) = match ck.meta.pixels {
        Pixels::Grey => (
            syncdraw_data::binarize::entropy_floor(
                &split.pixels()[..n * split.video_len()],
                split.video_len(),
            ),
            split,
            None,
        ),
        Pixels::Binarized => {
            let digits = ck.meta.data.binarization_digits()?;
            let generated = split.generated().context("binarised pixels need digits")?;
            let floor = syncdraw_data::binarize::sample_entropy(
                &digits,
                generated.videos[..n].iter().map(|v| v.tracks.as_slice()),
            );
            let binarized = split
                .binarized(&digits)
                .context("binarised pixels need digits")?;
            (floor, binarized, Some(digits))
        }
    };
    // A model on layers named by caption slots is also scored layer by layer
    // against each digit's own video, where training could take that term
    // (`train --layer-targets`; model/canvas.rs).
    let objects = digits.filter(|_| check_layer_targets(&ck.meta).is_ok());
    let batcher = Batcher::new(&videos, ck.meta.captions().as_ref(), device)?;
    let r = evaluate(
        &ck.model,
        &batcher,
        a.batch,
        a.seed,
        a.iwae_k,
        a.limit,
        objects.as_ref(),
    );
    // The report first, so a bad --per-video path loses nothing computed.
    print_report(&EvalReport {
        pixels: ck.meta.pixels.name(),
        entropy_floor: floor,
        excess_over_floor: r.nll - floor,
        checkpoint: a.checkpoint.clone(),
        split: a.split.name(),
        dataset: ck.meta.data.name(),
        variant: ck.meta.model.variant.name(),
        captions: ck.meta.model.caption.is_some(),
        step: ck.meta.step,
        test_nll: r.nll,
        reconstruction: r.reconstruction,
        kl: r.kl,
        iwae: r.iwae,
        iwae_k: r.iwae_k,
        layer_targets: r.layer_targets,
        layer_targets_best: r.layer_targets_best,
        layers_reassigned: r.layers_reassigned,
        videos: r.videos,
        unit: "nats per video",
        parts: r.parts,
    })?;
    match &a.per_video {
        Some(path) => write_per_video(path, &videos, &r.per_video),
        None => Ok(()),
    }
}

/// What `eval` prints.
#[derive(Serialize)]
struct EvalReport {
    /// "grey" or "binarized": the pixels the NLL is on.
    pixels: &'static str,
    /// The lowest NLL any model can reach on the evaluated videos, and how far
    /// above it this one is. Grey data: the entropy of the pixels (the
    /// reconstruction term cannot go below it). Binarised data: the entropy of
    /// the binarisation, one Bernoulli sample per digit image (data/binarize.rs).
    entropy_floor: f64,
    excess_over_floor: f64,
    checkpoint: PathBuf,
    /// The evaluated split ("test" unless `--split train`); `test_nll` is the
    /// NLL of this split.
    split: &'static str,
    dataset: String,
    variant: &'static str,
    captions: bool,
    step: u64,
    /// The NLL of the evaluated split (named for the default, `--split test`).
    test_nll: f64,
    reconstruction: f64,
    kl: f64,
    iwae: Option<f64>,
    iwae_k: Option<usize>,
    /// For a model on layers named by caption slots, on binarised digits: the
    /// cross-entropy of each layer alone against its own digit's video,
    /// summed over the layers (`train --layer-targets`); not part of the NLL.
    #[serde(skip_serializing_if = "Option::is_none")]
    layer_targets: Option<f64>,
    /// The same with each layer against the digit it draws best (the smallest
    /// over the ways of giving each layer one digit), and the share of videos
    /// where that is not the digit its caption slot names.
    #[serde(skip_serializing_if = "Option::is_none")]
    layer_targets_best: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layers_reassigned: Option<f64>,
    videos: usize,
    unit: &'static str,
    /// Where the NLL goes: the reconstruction term on the ink and per frame,
    /// the KL term per drawing step.
    #[serde(flatten)]
    parts: Parts,
}

/// One line of `--per-video`.
#[derive(Serialize)]
struct VideoLine<'a> {
    video: usize,
    caption: &'a str,
    #[serde(flatten)]
    score: &'a VideoScore,
}

fn write_per_video(path: &Path, videos: &Videos, scores: &[VideoScore]) -> Result<()> {
    let mut out = String::new();
    for (i, score) in scores.iter().enumerate() {
        let line = VideoLine {
            video: i,
            caption: videos.caption(i),
            score,
        };
        out += &serde_json::to_string(&line)?;
        out.push('\n');
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}
