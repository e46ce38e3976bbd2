//! `weights`: a checkpoint without its optimizer state (what models/ ships).
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use syncdraw_training::checkpoint;
use tch::Device;

#[derive(Args)]
pub struct WeightsArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: WeightsArgs) -> Result<()> {
    let ck = checkpoint::load(&a.checkpoint, Device::Cpu)?;
    checkpoint::save(&a.out, &ck.model, None, &ck.meta)?;
    eprintln!(
        "wrote {} (step {}, no optimizer state)",
        a.out.display(),
        ck.meta.step
    );
    Ok(())
}
