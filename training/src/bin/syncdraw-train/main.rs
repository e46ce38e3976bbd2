//! `syncdraw-train`: build data, train, evaluate, sample and export Sync-DRAW,
//! on generated Bouncing MNIST or an imported folder set (`train --data SET`).
//!
//! One module per subcommand in commands/, options shared by several in args.rs.
//! Commands that report print one JSON object (a typed report) on stdout.
mod args;
mod commands;
mod mkl_dispatch;

use anyhow::Result;
use args::positive;
use clap::{Parser, Subcommand};
use commands::{data, eval, evaluator, export, fidelity, sample, train, weights};

#[derive(Parser)]
#[command(
    name = "syncdraw-train",
    version,
    about = "Sync-DRAW on captioned Bouncing MNIST or a folder of captioned videos: data, training, evaluation, sampling, ONNX export"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// CPU threads for libtorch (default: all cores); for every command.
    #[arg(long, global = true, value_parser = positive::<i32>)]
    threads: Option<i32>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (or continue one with --resume).
    Train(train::TrainArgs),
    /// Print the test-split NLL bound of a checkpoint as JSON.
    Eval(eval::EvalArgs),
    /// Render videos from a checkpoint to a GIF and a PNG of the drawing steps.
    Sample(sample::SampleArgs),
    /// Export the generation path of a checkpoint to ONNX (docs/model-format.md).
    Export(export::ExportArgs),
    /// Generate (or load from the cache) a data set and print a summary.
    Data(data::DataArgs),
    /// Copy a checkpoint without its optimizer state: the weights to ship.
    Weights(weights::WeightsArgs),
    /// Train or measure the caption-fidelity evaluator (real videos only).
    #[command(subcommand)]
    Evaluator(evaluator::EvaluatorCommand),
    /// Caption fidelity of a checkpoint: do its videos show what the test captions say?
    Fidelity(fidelity::FidelityArgs),
}

/// libtorch frees and allocates the same large tensors at every training step.
/// glibc gives an allocation above its mmap threshold back to the kernel when it
/// is freed, so every step faulted those pages in again: 9.5 % of a one-thread
/// training step in a `perf` profile, most of it clearing pages. Freed memory is
/// kept in the process instead (docs/benchmarks.md, "Where a training step's time
/// goes"); peak memory grows by about 5 %.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

fn main() -> Result<()> {
    keep_freed_memory();
    let cli = Cli::parse();
    if let Some(t) = cli.threads {
        tch::set_num_threads(t);
    }
    match cli.command {
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Sample(a) => sample::run(a),
        Command::Export(a) => export::run(a),
        Command::Weights(a) => weights::run(a),
        Command::Evaluator(c) => evaluator::run(c),
        Command::Fidelity(a) => fidelity::run(a),
        Command::Data(a) => data::run(a),
    }
}
