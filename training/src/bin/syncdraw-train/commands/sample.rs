//! `sample`: render videos from a checkpoint to a GIF, and the drawing steps.
use crate::args::{non_negative_f64, positive};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use syncdraw_data::Split;
use syncdraw_training::checkpoint;
use syncdraw_training::sample::{save_canvas_grid, save_gif, Layout};
use tch::{Device, Kind, Tensor};

#[derive(Args)]
pub struct SampleArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    /// Caption to render (repeatable); default: the model's test captions.
    #[arg(long)]
    caption: Vec<String>,
    /// Videos per caption.
    #[arg(long, value_parser = positive::<usize>, default_value_t = 4)]
    count: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Scale of the prior noise, z ~ N(0, temperature² I); the default is the
    /// element's, so the samples are what `syncdrawsrc` draws.
    #[arg(long, value_parser = non_negative_f64, default_value_t = syncdraw_format::DEFAULT_TEMPERATURE)]
    temperature: f64,
    /// Output directory: samples.gif, drawing.png and drawing.gif.
    #[arg(long)]
    out_dir: PathBuf,
}

pub fn run(a: SampleArgs) -> Result<()> {
    let ck = checkpoint::load(&a.checkpoint, Device::Cpu)?;
    let c = &ck.meta.model;
    let codec = ck.meta.captions();
    let captions: Vec<String> = match (&codec, a.caption.is_empty()) {
        (None, _) => vec![String::new()],
        (Some(_), false) => a.caption.clone(),
        (Some(_), true) => {
            let mut caps = ck.meta.data.captions(Split::Test);
            caps.truncate(4);
            caps
        }
    };
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("creating {}", a.out_dir.display()))?;
    let n = a.count.max(1);
    let mut ids = Vec::new();
    if let Some(codec) = &codec {
        for cap in &captions {
            let one = codec.encode(cap)?;
            for _ in 0..n {
                ids.extend_from_slice(&one);
            }
        }
    }
    let total = (captions.len() * n) as i64;
    tch::manual_seed(a.seed as i64);
    let z =
        Tensor::randn([total, c.timesteps, c.z_dim], (Kind::Float, Device::Cpu)) * a.temperature;
    let ids = (!ids.is_empty()).then(|| Tensor::from_slice(&ids).reshape([total, -1]));
    let (video, canvases) = tch::no_grad(|| ck.model.generate(&z, ids.as_ref()));
    let l = Layout {
        frames: c.frames as usize,
        channels: c.channels as usize,
        height: c.height as usize,
        width: c.width as usize,
    };
    let video: Vec<f32> = Vec::try_from(video.flatten(0, -1))?;
    let gif = a.out_dir.join("samples.gif");
    save_gif(&gif, &video, total as usize, l, n, 20)?;
    let first: Vec<f32> = Vec::try_from(canvases.get(0).flatten(0, -1))?;
    let png = a.out_dir.join("drawing.png");
    save_canvas_grid(&png, &first, c.timesteps as usize, l)?;
    // The drawing as an animation: the N frames side by side, one GIF frame per step.
    let steps: Vec<f32> =
        Vec::try_from(canvases.get(0).transpose(0, 1).contiguous().flatten(0, -1))?;
    let drawing = a.out_dir.join("drawing.gif");
    let lt = Layout {
        frames: c.timesteps as usize,
        ..l
    };
    save_gif(
        &drawing,
        &steps,
        c.frames as usize,
        lt,
        c.frames as usize,
        40,
    )?;
    for (i, cap) in captions.iter().enumerate() {
        println!(
            "row {}: {}",
            i + 1,
            if cap.is_empty() {
                "(unconditional)"
            } else {
                cap
            }
        );
    }
    println!(
        "wrote {}, {} and {}",
        gif.display(),
        png.display(),
        drawing.display()
    );
    Ok(())
}
