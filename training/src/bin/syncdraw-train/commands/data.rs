//! `data`: generate (or load from the cache) a data set and print a summary.
use crate::args::DataOpts;
use anyhow::Result;
use clap::Args;
use syncdraw_training::data::{Dataset, Split};

#[derive(Args)]
pub struct DataArgs {
    #[command(flatten)]
    data: DataOpts,
}

pub fn run(a: DataArgs) -> Result<()> {
    let config = a.data.config()?;
    for split in [Split::Train, Split::Test] {
        let d = Dataset::load_or_generate(&config, split, &a.data.cache())?;
        let mut captions: Vec<&str> = d.videos.iter().map(|v| v.caption.as_str()).collect();
        captions.sort();
        captions.dedup();
        println!(
            "{split:?}: {} videos, {} distinct captions, e.g. {:?}",
            d.len(),
            captions.len(),
            captions.first()
        );
    }
    Ok(())
}
