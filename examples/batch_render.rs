// SPDX-License-Identifier: MIT OR Apache-2.0
//! Renders many captions to MP4 files in one process. The captions of one model
//! share one ONNX Runtime session and are drawn many per call (`--batch` clips);
//! a pool of GStreamer pipelines `appsrc ! x264enc ! mp4mux ! filesink` encodes
//! them in parallel while the next batch is drawn (gstsyncdraw::render). Every file
//! equals what `syncdrawsrc caption=... seed=... ! x264enc ! mp4mux` gives.
//!
//! ```text
//! cargo run --release --example batch_render -- [OPTIONS] [CAPTION...]
//!
//!   --captions FILE            read captions from FILE, one per line ("-": stdin);
//!                              blank lines and lines starting with '#' are skipped
//!   --out-dir DIR              where to write the files (default: .)
//!   --model PATH               model-location (default: the bundled model that fits
//!                              each caption)
//!   --seed N                   seed of every video (default: a fresh one per caption)
//!   --temperature T            scale of the prior noise, as the element's property
//!                              (default: the element's, 0.8)
//!   --clips N                  clips per video (default: 1)
//!   --batch N                  clips drawn per ONNX Runtime call (default: 64)
//!   --encoders N               files encoded at once (default: the number of cores)
//!   --execution-provider EP    auto | cpu | cuda (default: auto)
//!   --shard I/N                render only captions I, I+N, I+2N, ... (I from 1):
//!                              N processes with shards 1/N .. N/N render every
//!                              caption exactly once (docs/element.md)
//! ```
//!
//! Caption number i (from 1) goes to `<out-dir>/<iii>-<words-of-the-caption>.mp4`. A
//! file is written as `<name>.mp4.part` and renamed when its pipeline reached EOS, so a
//! failing caption leaves no broken file and never touches the files already made.
//! A caption whose file already exists is skipped, so a run that was stopped (or a
//! shard that failed) can simply be started again. A caption that fails is reported
//! with the reason (for example the word where it leaves the model's caption
//! grammar, and the form the model accepts) and the others are rendered; the exit
//! status is 1 if any caption failed, 2 for bad arguments. On a terminal a progress
//! line shows captions done and captions per minute.
//!
//! The plugin is linked into this program (`gstsyncdraw::plugin_register_static`), so
//! it needs no GST_PLUGIN_PATH; ONNX Runtime is loaded once for all captions.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;

use gstsyncdraw::render::{Encode, Encoders, Job, RenderError, Renderer};
use gstsyncdraw::syncdrawsrc::model::ModelInfo;
use gstsyncdraw::syncdrawsrc::{select, ExecutionProvider};

/// What every caption is rendered with.
#[derive(Debug, Clone)]
pub struct Options {
    pub out_dir: PathBuf,
    pub model: Option<PathBuf>,
    pub seed: Option<i64>,
    /// Scale of the prior noise (the element's `temperature`).
    pub temperature: f64,
    pub clips: u64,
    /// Clips drawn per ONNX Runtime call.
    pub batch: usize,
    /// Files encoded at once.
    pub encoders: usize,
    pub execution_provider: ExecutionProvider,
    /// Only this shard of the captions.
    pub shard: Option<Shard>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            out_dir: PathBuf::from("."),
            model: None,
            seed: None,
            temperature: syncdraw_format::DEFAULT_TEMPERATURE,
            clips: 1,
            batch: 64,
            encoders: std::thread::available_parallelism().map_or(1, |n| n.get()),
            execution_provider: ExecutionProvider::Auto,
            shard: None,
        }
    }
}

/// Shard `index` of `count` (index from 1): the captions whose number (from 1) is
/// index, index + count, index + 2 count, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Parses "I/N" with 1 <= I <= N.
    pub fn parse(s: &str) -> Option<Shard> {
        let (i, n) = s.split_once('/')?;
        let (index, count) = (i.trim().parse().ok()?, n.trim().parse().ok()?);
        (1..=count)
            .contains(&index)
            .then_some(Shard { index, count })
    }

    /// Whether caption number `number` (from 1) is in this shard.
    pub fn has(&self, number: usize) -> bool {
        (number - 1) % self.count == self.index - 1
    }
}

/// Bad command-line arguments or an unreadable captions file.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot read captions from {path}: {source}")]
    Captions {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What happened to a caption that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Rendered,
    /// Its file was already there (an earlier run made it).
    Skipped,
}

/// The result for one caption.
#[derive(Debug)]
pub struct Outcome {
    /// The caption's number in the list, from 1 (its file name starts with it).
    pub number: usize,
    pub caption: String,
    pub file: PathBuf,
    pub result: Result<Done, RenderError>,
}

/// The file name for caption number `index` (from 1): its words joined by '-'.
pub fn file_name(index: usize, caption: &str) -> String {
    let words: Vec<String> = caption
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let mut slug = words.join("-");
    if slug.is_empty() {
        slug = "unconditional".into();
    }
    // Slugs are ASCII: cutting at a byte is cutting at a character.
    slug.truncate(80);
    format!("{index:03}-{slug}.mp4")
}

/// Reads captions, one per line, skipping blank lines and '#' comments.
pub fn read_captions(reader: impl BufRead) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for line in reader.lines() {
        let line = line?;
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') {
            out.push(line.to_owned());
        }
    }
    Ok(out)
}

/// Parses the command line (without the program name).
pub fn parse_args(
    args: impl IntoIterator<Item = String>,
) -> Result<(Options, Vec<String>), ArgsError> {
    let mut opts = Options::default();
    let mut captions = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| ArgsError::Usage(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--captions" => {
                let path = PathBuf::from(value("--captions")?);
                let read = if path.as_os_str() == "-" {
                    read_captions(std::io::stdin().lock())
                } else {
                    std::fs::File::open(&path)
                        .and_then(|f| read_captions(std::io::BufReader::new(f)))
                };
                captions.extend(read.map_err(|source| ArgsError::Captions { path, source })?);
            }
            "--out-dir" => opts.out_dir = PathBuf::from(value("--out-dir")?),
            "--model" => opts.model = Some(PathBuf::from(value("--model")?)),
            "--seed" => {
                let v = value("--seed")?;
                let seed =
                    v.parse::<i64>().ok().filter(|s| *s >= 0).ok_or_else(|| {
                        ArgsError::Usage(format!("--seed {v:?}: not a number >= 0"))
                    })?;
                opts.seed = Some(seed);
            }
            "--temperature" => {
                let v = value("--temperature")?;
                opts.temperature = v
                    .parse::<f64>()
                    .ok()
                    .filter(|t| (0.0..=10.0).contains(t))
                    .ok_or_else(|| {
                        ArgsError::Usage(format!(
                            "--temperature {v:?}: not a number from 0 to 10 (the element's range)"
                        ))
                    })?;
            }
            "--clips" => {
                let v = value("--clips")?;
                opts.clips =
                    v.parse::<u64>().ok().filter(|c| *c >= 1).ok_or_else(|| {
                        ArgsError::Usage(format!("--clips {v:?}: not a number >= 1"))
                    })?;
            }
            "--batch" | "--encoders" => {
                let name = arg.clone();
                let v = value(&name)?;
                let n =
                    v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        ArgsError::Usage(format!("{name} {v:?}: not a number >= 1"))
                    })?;
                if name == "--batch" {
                    opts.batch = n;
                } else {
                    opts.encoders = n;
                }
            }
            "--execution-provider" => {
                let v = value("--execution-provider")?;
                opts.execution_provider = match v.as_str() {
                    "auto" => ExecutionProvider::Auto,
                    "cpu" => ExecutionProvider::Cpu,
                    "cuda" => ExecutionProvider::Cuda,
                    _ => {
                        return Err(ArgsError::Usage(format!(
                            "--execution-provider {v:?}: expected auto, cpu or cuda"
                        )))
                    }
                };
            }
            "--shard" => {
                let v = value("--shard")?;
                opts.shard = Some(Shard::parse(&v).ok_or_else(|| {
                    ArgsError::Usage(format!(
                        "--shard {v:?}: expected I/N with 1 <= I <= N, e.g. 2/8"
                    ))
                })?);
            }
            "--" => captions.extend(args.by_ref()),
            s if s.starts_with("--") => {
                return Err(ArgsError::Usage(format!("unknown option {s}")));
            }
            _ => captions.push(arg),
        }
    }
    if captions.is_empty() {
        return Err(ArgsError::Usage(
            "no captions: give them as arguments or with --captions FILE".into(),
        ));
    }
    Ok((opts, captions))
}

/// Initializes GStreamer and registers the syncdraw plugin linked into this program.
pub fn init() -> Result<(), gst::glib::Error> {
    gst::init()?;
    // Once per process: a second static registration would break the element factory.
    let registered = gst::Registry::get()
        .find_plugin("syncdraw")
        .is_some_and(|p| p.filename().is_none());
    if registered {
        return Ok(());
    }
    gstsyncdraw::plugin_register_static().map_err(|e| {
        gst::glib::Error::new(gst::CoreError::Failed, &format!("syncdraw plugin: {e}"))
    })
}

/// The numbers (from 1) of the captions this run renders: all, or its shard's.
pub fn numbers(opts: &Options, count: usize) -> Vec<usize> {
    (1..=count)
        .filter(|&n| opts.shard.is_none_or(|s| s.has(n)))
        .collect()
}

/// A caption to draw, once its model and ids are known.
struct Pending {
    /// Position in the run (from 0).
    pos: usize,
    tokens: Option<Vec<i64>>,
    seed: u64,
}

/// Renders every caption of the run (its shard, if any), skipping those whose file
/// exists and going on past failures; `report` sees each outcome as it comes, with
/// its position in the run (from 0). Outcomes are returned in caption order.
pub fn render_all(
    opts: &Options,
    captions: &[String],
    mut report: impl FnMut(usize, &Outcome),
) -> Vec<Outcome> {
    let numbers = numbers(opts, captions.len());
    let mut outcomes: Vec<Option<Outcome>> = (0..numbers.len()).map(|_| None).collect();
    let mut finish = |pos: usize, result: Result<Done, RenderError>| {
        let number = numbers[pos];
        let caption = &captions[number - 1];
        let outcome = Outcome {
            number,
            caption: caption.clone(),
            file: opts.out_dir.join(file_name(number, caption)),
            result,
        };
        report(pos, &outcome);
        outcomes[pos] = Some(outcome);
    };

    // 1. Each caption's model and ids, grouped by model; files already made are skipped.
    let dirs = select::model_dirs(None);
    let mut models: BTreeMap<PathBuf, (ModelInfo, Vec<Pending>)> = BTreeMap::new();
    for (pos, &number) in numbers.iter().enumerate() {
        let caption = &captions[number - 1];
        if opts.out_dir.join(file_name(number, caption)).exists() {
            finish(pos, Ok(Done::Skipped));
            continue;
        }
        let info = match &opts.model {
            Some(path) => ModelInfo::read(path).map_err(RenderError::from),
            None => select::select(caption, &dirs).map_err(|e| RenderError::Select(e.to_string())),
        };
        let pending = info.and_then(|info| {
            let tokens = info.encode(caption)?;
            // A fresh seed per caption, as the element picks one when seed = -1.
            let seed = opts
                .seed
                .map_or_else(|| rand::random::<u64>() >> 1, |s| s as u64);
            Ok((info, Pending { pos, tokens, seed }))
        });
        match pending {
            Ok((info, p)) => models
                .entry(info.path.clone())
                .or_insert_with(|| (info, Vec::new()))
                .1
                .push(p),
            Err(e) => finish(pos, Err(e)),
        }
    }

    // 2. Per model: one session; batches of whole captions drawn while the clips of
    // the previous ones are encoded.
    let encoders = match Encoders::new(opts.encoders) {
        Ok(e) => e,
        Err(e) => {
            for (_, (_, pending)) in models {
                for p in pending {
                    finish(
                        p.pos,
                        Err(RenderError::Runtime(format!(
                            "cannot start the encoders: {e}"
                        ))),
                    );
                }
            }
            return outcomes.into_iter().flatten().collect();
        }
    };
    let per_batch = (opts.batch as u64 / opts.clips).max(1) as usize;
    for (_, (info, pending)) in models {
        let mut renderer =
            match Renderer::open(info, opts.execution_provider, 0, opts.temperature as f32) {
                Ok(r) => r,
                Err(e) => {
                    let reason = e.to_string();
                    for p in pending {
                        finish(p.pos, Err(RenderError::Runtime(reason.clone())));
                    }
                    continue;
                }
            };
        let info = renderer.info().clone();
        for group in pending.chunks(per_batch) {
            let jobs: Vec<Job> = group
                .iter()
                .flat_map(|p| {
                    (0..opts.clips).map(|clip| Job {
                        tokens: p.tokens.clone(),
                        seed: p.seed,
                        clip,
                    })
                })
                .collect();
            match renderer.draw(&jobs) {
                Ok(clips) => {
                    for (p, clips) in group.iter().zip(clips.chunks(opts.clips as usize)) {
                        let number = numbers[p.pos];
                        let frames = clips.iter().try_fold(Vec::new(), |mut all, clip| {
                            all.extend_from_slice(clip.values()?);
                            Ok::<_, String>(all)
                        });
                        match frames {
                            Ok(frames) => encoders.send(Encode {
                                file: opts.out_dir.join(file_name(number, &captions[number - 1])),
                                caption: captions[number - 1].clone(),
                                info: Arc::clone(&info),
                                frames,
                                tag: p.pos,
                            }),
                            Err(e) => finish(p.pos, Err(RenderError::Inference(e))),
                        }
                    }
                }
                Err(e) => {
                    for p in group {
                        finish(p.pos, Err(RenderError::Inference(e.to_string())));
                    }
                }
            }
            for (pos, result) in encoders.ready() {
                finish(pos, result.map(|()| Done::Rendered));
            }
        }
    }
    for (pos, result) in encoders.finish() {
        finish(pos, result.map(|()| Done::Rendered));
    }
    outcomes.into_iter().flatten().collect()
}

fn main() -> ExitCode {
    let (opts, captions) = match parse_args(std::env::args().skip(1)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("batch_render: {e}");
            eprintln!(
                "usage: batch_render [--captions FILE] [--out-dir DIR] [--model PATH] \
                 [--seed N] [--temperature T] [--clips N] [--batch N] [--encoders N] \
                 [--execution-provider auto|cpu|cuda] [--shard I/N] [CAPTION...]"
            );
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init() {
        eprintln!("batch_render: cannot initialize GStreamer: {e}");
        return ExitCode::from(1);
    }
    if let Err(e) = std::fs::create_dir_all(&opts.out_dir) {
        eprintln!(
            "batch_render: cannot create {}: {e}",
            opts.out_dir.display()
        );
        return ExitCode::from(1);
    }
    let total = numbers(&opts, captions.len()).len();
    let run_started = Instant::now();
    // On a terminal one progress line; otherwise (a log) one line per caption.
    let terminal = std::io::stderr().is_terminal();
    let mut done = 0usize;
    let outcomes = render_all(&opts, &captions, |i, o| {
        done += 1;
        match &o.result {
            Err(e) => eprintln!(
                "{}[{}] {:?} FAILED: {e}",
                if terminal { "\n" } else { "" },
                i + 1,
                o.caption
            ),
            Ok(d) if !terminal => println!(
                "[{done}/{total}] {:?} -> {}{}",
                o.caption,
                o.file.display(),
                if *d == Done::Skipped {
                    " (exists, skipped)"
                } else {
                    ""
                }
            ),
            Ok(_) => {}
        }
        if terminal {
            let minutes = run_started.elapsed().as_secs_f64() / 60.0;
            let width = 30 * done / total.max(1);
            eprint!(
                "\r[{}{}] {done}/{total} captions, {:.0} per minute ",
                "=".repeat(width),
                " ".repeat(30 - width),
                done as f64 / minutes.max(1e-9)
            );
        }
    });
    if terminal {
        eprintln!();
    }
    let count = |d: Done| {
        outcomes
            .iter()
            .filter(|o| o.result.as_ref().ok() == Some(&d))
            .count()
    };
    let (rendered, skipped) = (count(Done::Rendered), count(Done::Skipped));
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    let minutes = run_started.elapsed().as_secs_f64() / 60.0;
    println!(
        "{rendered} rendered, {skipped} skipped (already there), {failed} failed, of {total}; \
         {:.1} captions per minute",
        rendered as f64 / minutes.max(1e-9)
    );
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
