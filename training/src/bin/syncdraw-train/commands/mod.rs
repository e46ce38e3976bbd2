//! The subcommands of `syncdraw-train`, one module each: its arguments and `run`.
pub mod data;
pub mod eval;
pub mod evaluator;
pub mod export;
pub mod fidelity;
pub mod sample;
pub mod train;
pub mod weights;

use anyhow::Result;
use serde::Serialize;

/// Prints a command's report as pretty JSON on stdout.
pub fn print_report(report: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(report)?);
    Ok(())
}
