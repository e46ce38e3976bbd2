//! What a run reports while it trains: a line of metrics.jsonl per logging step,
//! and a progress bar on a terminal (plain lines when stderr is not one).
use super::run_dir::io_err;
use super::TrainError;
use crate::model::window_stats::WindowStats;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// One line of metrics.jsonl.
#[derive(Serialize)]
pub struct MetricsLine<'a> {
    pub step: u64,
    /// Mean training loss and KL over the steps since the last line.
    pub loss: f64,
    pub kl: f64,
    pub videos_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_nll: Option<f64>,
    /// The layer-target term of the same test videos (nll.rs), unweighted,
    /// for a model on layers named by caption slots, on binarised digits: how
    /// far each layer alone is from its own digit. Not part of `test_nll`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_layer_targets: Option<f64>,
    /// The test NLL of the moving average of the weights (average.rs), on the
    /// same videos with the same noise, where the run keeps one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_nll_average: Option<f64>,
    /// The mean layer-target term (`train --layer-targets`, model/canvas.rs)
    /// over the steps since the last line, unweighted, where the run has one;
    /// `loss` is the negative ELBO without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_targets: Option<f64>,
    /// Read and write windows of the logging step's batch (model/window_stats.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows: Option<&'a WindowStats>,
}

pub struct Reporter {
    file: File,
    path: PathBuf,
    bar: ProgressBar,
    /// Print a line per log instead of redrawing a bar.
    plain: bool,
    steps: u64,
}

impl Reporter {
    /// Appends to `dir`/metrics.jsonl; a bar for the steps from `start` to `steps`
    /// when `progress`.
    pub fn open(dir: &Path, start: u64, steps: u64, progress: bool) -> Result<Self, TrainError> {
        let path = dir.join("metrics.jsonl");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let bar = ProgressBar::with_draw_target(
            Some(steps.saturating_sub(start)),
            if progress {
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
        Ok(Self {
            file,
            path,
            bar,
            plain: progress && !std::io::stderr().is_terminal(),
            steps,
        })
    }

    /// One more step done.
    pub fn step_done(&self) {
        self.bar.inc(1);
    }

    /// Writes `line` to metrics.jsonl and shows it (`test_nll`: the latest
    /// measured, shown even on lines that did not measure it).
    pub fn log(&mut self, line: &MetricsLine, test_nll: Option<f64>) -> Result<(), TrainError> {
        writeln!(
            self.file,
            "{}",
            serde_json::to_string(line).expect("serialisable")
        )
        .map_err(io_err(&self.path))?;
        let dead = line
            .windows
            .map(|w| {
                format!(
                    "  dead rows read {:.2} write {:.2}",
                    w.read.worst_dead(),
                    w.write.worst_dead()
                )
            })
            .unwrap_or_default();
        let msg = format!(
            "loss {:.1}  kl {:.1}  {:.0} videos/s{dead}{}",
            line.loss,
            line.kl,
            line.videos_per_s,
            test_nll
                .map(|n| format!("  test nll {n:.1}"))
                .unwrap_or_default()
        ) + &line
            .test_nll_average
            .map(|n| format!(" (average {n:.1})"))
            .unwrap_or_default();
        if self.plain {
            eprintln!("step {}/{}  {msg}", line.step, self.steps);
        }
        self.bar.set_message(msg);
        Ok(())
    }

    /// Leaves the bar as it is (the run stopped with an error).
    pub fn abandon(&self) {
        self.bar.abandon();
    }

    pub fn finish(&self) {
        self.bar.finish();
    }
}
