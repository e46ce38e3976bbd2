//! `data`: generate (or load from the cache) a Bouncing MNIST data set and print a
//! summary; write the captioned moving-shapes videos as MP4 files
//! (`--make-shapes`); or import a folder of captioned videos (`--videos`).
use crate::args::DataOpts;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use syncdraw_data::folder::{import, ImportOptions};
use syncdraw_data::overlap::{overlap, Overlap};
use syncdraw_data::shapes;
use syncdraw_data::video_io::{encode_mp4, FrameRule, FrameSpec};
use syncdraw_data::{Dataset, Digits, Split};
use syncdraw_format::Grammar;

#[derive(Args)]
pub struct DataArgs {
    #[command(flatten)]
    data: DataOpts,
    /// Import the videos of this folder (with --captions, --grammar, --out):
    /// decoded by GStreamer, --frames frames by --frame-rule, scaled to --size.
    #[arg(long, requires_all = ["captions", "grammar", "out"])]
    videos: Option<PathBuf>,
    /// CSV with the header "video,caption": each video's path relative to
    /// --videos and its caption.
    #[arg(long)]
    captions: Option<PathBuf>,
    /// The caption grammar (JSON, as in docs/model-format.md), or "shapes" for
    /// the moving-shapes grammar.
    #[arg(long)]
    grammar: Option<String>,
    /// Directory for the imported data set (train.sdfv, test.sdfv,
    /// import-report.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Which frames: start (the first N), stride:K (every K-th) or even (N evenly
    /// spaced over the video).
    #[arg(long, default_value = "start", value_parser = FrameRule::parse)]
    frame_rule: FrameRule,
    /// 1 (grey) or 3 (RGB).
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Write the captioned moving-shapes videos as MP4 files into this folder,
    /// with captions.csv and grammar.json.
    #[arg(long, conflicts_with = "videos")]
    make_shapes: Option<PathBuf>,
    /// Videos per (colour, shape, motion) combination for --make-shapes.
    #[arg(long, default_value_t = 10)]
    shapes_per_combination: usize,
    /// Also print, for each split binarised as `eval` binarises the test split,
    /// what overlapping digits hide: pixels covered twice, and digit pixels
    /// covered in every frame (whose value no frame shows), per video.
    #[arg(long, conflicts_with_all = ["videos", "make_shapes"])]
    overlap: bool,
    /// With --overlap, also write each test video's figures to FILE, a JSON
    /// object per line in split order: its index and caption, the same counts,
    /// and the distance in pixels between its two digits (their 28 x 28 boxes'
    /// corners, so their centres) in each frame, with the least and the mean.
    #[arg(long, value_name = "FILE", requires = "overlap")]
    per_video: Option<PathBuf>,
}

pub fn run(a: DataArgs) -> Result<()> {
    if let Some(dir) = &a.make_shapes {
        return make_shapes(dir, &a);
    }
    if let Some(videos) = &a.videos {
        let grammar = match a.grammar.as_deref() {
            Some("shapes") => shapes::grammar(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the grammar {path}"))?;
                serde_json::from_str::<Grammar>(&text)
                    .with_context(|| format!("{path} is not a caption grammar (JSON)"))?
            }
            None => bail!("--grammar is needed with --videos"),
        };
        let size = a.data.video.size;
        let report = import(
            &ImportOptions {
                videos: videos.clone(),
                captions: a.captions.clone().context("--captions is needed")?,
                grammar,
                spec: FrameSpec {
                    frames: a.data.video.frames,
                    height: size,
                    width: size,
                    channels: a.channels,
                    rule: a.frame_rule,
                },
                out: a.out.clone().context("--out is needed")?,
            },
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        )?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let config = a.data.config()?;
    let digits = if a.overlap {
        Some(Digits::load(&config.source)?)
    } else {
        None
    };
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
        if let Some(digits) = &digits {
            println!("{}", serde_json::to_string(&overlap_summary(&d, digits))?);
            if let (Some(path), Split::Test) = (&a.per_video, split) {
                write_overlap_per_video(&d, digits, path)?;
            }
        }
    }
    Ok(())
}

/// Means per video of what the digits of `d`'s binarised videos hide of each
/// other (data/overlap.rs), and ln 2 nats per hidden pixel: the most their
/// values can carry.
fn overlap_summary(d: &Dataset, digits: &Digits) -> serde_json::Value {
    let n = d.len().max(1) as f64;
    let sum = d
        .videos
        .iter()
        .enumerate()
        .fold(Overlap::default(), |sum, (i, v)| {
            sum + overlap(&d.config.video, &v.tracks, &d.binarized_digits(digits, i))
        });
    let hidden = sum.hidden as f64 / n;
    serde_json::json!({
        "split": format!("{:?}", d.split),
        "videos": d.len(),
        "ink_pixels": sum.ink as f64 / n,
        "pixels_covered_twice": sum.covered_twice as f64 / n,
        "hidden_pixels": hidden,
        "hidden_ink_pixels": sum.hidden_ink as f64 / n,
        "hidden_nats_at_most": hidden * std::f64::consts::LN_2,
    })
}

/// One JSON line per video of `d`: what its digits hide of each other and how
/// close they come (`--per-video`).
fn write_overlap_per_video(d: &Dataset, digits: &Digits, path: &PathBuf) -> Result<()> {
    use std::io::Write;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for (i, v) in d.videos.iter().enumerate() {
        let o = overlap(&d.config.video, &v.tracks, &d.binarized_digits(digits, i));
        let distances = digit_distances(&v.tracks);
        let least = distances.iter().copied().reduce(f64::min);
        let mean =
            (!distances.is_empty()).then(|| distances.iter().sum::<f64>() / distances.len() as f64);
        let line = serde_json::json!({
            "video": i,
            "caption": v.caption,
            "ink_pixels": o.ink,
            "pixels_covered_twice": o.covered_twice,
            "hidden_pixels": o.hidden,
            "hidden_ink_pixels": o.hidden_ink,
            "least_distance": least,
            "mean_distance": mean,
            "distances": distances,
        });
        writeln!(out, "{line}").with_context(|| format!("writing {}", path.display()))?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The distance between the first two tracks' positions in each frame, pixels
/// (none for a video of one digit).
fn digit_distances(tracks: &[syncdraw_data::bouncing::Track]) -> Vec<f64> {
    match tracks {
        [a, b, ..] => a
            .positions
            .iter()
            .zip(&b.positions)
            .map(|(&(r0, c0), &(r1, c1))| {
                let (dr, dc) = (f64::from(r0) - f64::from(r1), f64::from(c0) - f64::from(c1));
                dr.hypot(dc)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The moving-shapes videos as MP4 files (10 frames per second) with their
/// captions file and grammar: a folder `--videos` imports.
fn make_shapes(dir: &std::path::Path, a: &DataArgs) -> Result<()> {
    let (frames, size) = (a.data.video.frames, a.data.video.size);
    if size < 16 {
        bail!("--size {size}: the shapes need frames of at least 16 pixels");
    }
    let videos_dir = dir.join("videos");
    std::fs::create_dir_all(&videos_dir)
        .with_context(|| format!("creating {}", videos_dir.display()))?;
    let mut csv = String::from("video,caption\n");
    let all = shapes::all_videos(a.shapes_per_combination);
    for (i, v) in all.iter().enumerate() {
        let name = format!("{i:05}.mp4");
        let rgb = shapes::render(
            *v,
            frames,
            size,
            size * 3 / 8,
            a.data.video.data_seed ^ i as u64,
        );
        encode_mp4(&videos_dir.join(&name), &rgb, size, size, 10)
            .with_context(|| format!("encoding {name}"))?;
        csv.push_str(&format!("videos/{name},{}\n", v.caption()));
    }
    std::fs::write(dir.join("captions.csv"), csv)?;
    std::fs::write(
        dir.join("grammar.json"),
        serde_json::to_string_pretty(&shapes::grammar())? + "\n",
    )?;
    println!(
        "{} videos of {frames} frames of {size}x{size} in {}, captions in {}",
        all.len(),
        videos_dir.display(),
        dir.join("captions.csv").display()
    );
    Ok(())
}
