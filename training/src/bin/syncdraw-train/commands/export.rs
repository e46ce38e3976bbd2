//! `export`: the generation path of a checkpoint to ONNX (docs/model-format.md).
use super::print_report;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ExportArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: ExportArgs) -> Result<()> {
    let summary = syncdraw_training::export::export(&a.checkpoint, &a.out)
        .with_context(|| format!("exporting {}", a.checkpoint.display()))?;
    print_report(&summary)
}
