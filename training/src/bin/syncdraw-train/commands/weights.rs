//! `weights`: a checkpoint without its optimizer state (what models/ ships).
use anyhow::{bail, Result};
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
    /// Write the moving average of the weights the run kept (`train
    /// --ema-decay`) instead of the weights of its last step.
    #[arg(long)]
    average: bool,
}

pub fn run(a: WeightsArgs) -> Result<()> {
    let mut ck = checkpoint::load(&a.checkpoint, Device::Cpu)?;
    if a.average {
        let Some(average) = ck.average.take() else {
            bail!(
                "{} holds no moving average of the weights: only a run trained with \
                 --ema-decay keeps one (leave out --average for its weights)",
                a.checkpoint.display()
            );
        };
        let mut vars = ck.model.vs.variables();
        tch::no_grad(|| {
            for (name, value) in &average {
                if let Some(w) = vars.get_mut(name) {
                    w.copy_(value);
                }
            }
        });
        ck.meta.averaged = true;
    }
    checkpoint::save(&a.out, &ck.model, None, &ck.meta)?;
    eprintln!(
        "wrote {} (step {}, {}no optimizer state)",
        a.out.display(),
        ck.meta.step,
        if a.average {
            "the moving average of the weights, "
        } else {
            ""
        }
    );
    Ok(())
}
