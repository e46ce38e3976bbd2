// SPDX-License-Identifier: MIT OR Apache-2.0
//! Renders many captions to MP4 files in one process, each through its own pipeline
//! `syncdrawsrc caption=... ! x264enc ! mp4mux ! filesink`.
//!
//! ```text
//! cargo run --release --example batch_render -- [OPTIONS] [CAPTION...]
//!
//!   --captions FILE            read captions from FILE, one per line ("-": stdin);
//!                              blank lines and lines starting with '#' are skipped
//!   --out-dir DIR              where to write the files (default: .)
//!   --model PATH               model-location (default: the bundled model that fits
//!                              each caption)
//!   --seed N                   seed of every video (default: fresh samples)
//!   --clips N                  clips per video (default: 1)
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
//! shard that failed) can simply be started again. A
//! caption that fails is reported with the reason (for example the word where it
//! leaves the model's caption grammar, and the form the model accepts) and the next
//! caption is rendered; the exit status is 1 if any caption failed, 2 for bad
//! arguments.
//!
//! The plugin is linked into this program (`gstsyncdraw::plugin_register_static`), so
//! it needs no GST_PLUGIN_PATH; ONNX Runtime is loaded once for all captions.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use gst::prelude::*;
use gstsyncdraw::syncdrawsrc::ExecutionProvider;

/// What every caption is rendered with.
#[derive(Debug, Clone)]
pub struct Options {
    pub out_dir: PathBuf,
    pub model: Option<PathBuf>,
    pub seed: Option<i64>,
    pub clips: u64,
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
            clips: 1,
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

/// Why one caption could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot create element {element}: {source} (is the GStreamer plugin that has it installed?)")]
    Element {
        element: &'static str,
        #[source]
        source: gst::glib::BoolError,
    },
    #[error("cannot build the pipeline: {0}")]
    Build(#[from] gst::glib::BoolError),
    #[error("{message}{}", debug.as_ref().map(|d| format!("\n  ({d})")).unwrap_or_default())]
    Pipeline {
        message: String,
        debug: Option<String>,
    },
    #[error("the pipeline did not start and posted no error")]
    StateChange,
    #[error("cannot write {path}: {source}")]
    Io {
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
            "--clips" => {
                let v = value("--clips")?;
                opts.clips =
                    v.parse::<u64>().ok().filter(|c| *c >= 1).ok_or_else(|| {
                        ArgsError::Usage(format!("--clips {v:?}: not a number >= 1"))
                    })?;
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

fn make(element: &'static str) -> Result<gst::Element, RenderError> {
    gst::ElementFactory::make(element)
        .build()
        .map_err(|source| RenderError::Element { element, source })
}

/// The first error message on the bus, as a RenderError.
fn bus_error(bus: &gst::Bus) -> Option<RenderError> {
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            return Some(RenderError::Pipeline {
                message: e.error().to_string(),
                debug: e.debug().map(|d| d.to_string()),
            });
        }
    }
    None
}

/// Runs the pipeline to EOS; the first error on the bus fails it.
fn run_pipeline(pipeline: &gst::Pipeline) -> Result<(), RenderError> {
    let bus = pipeline.bus().ok_or(RenderError::StateChange)?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        return Err(bus_error(&bus).unwrap_or(RenderError::StateChange));
    }
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => {
                return Err(RenderError::Pipeline {
                    message: e.error().to_string(),
                    debug: e.debug().map(|d| d.to_string()),
                })
            }
            gst::MessageView::Warning(w) => {
                eprintln!("  warning: {}", w.error());
            }
            _ => {}
        }
    }
    Err(RenderError::StateChange)
}

/// Renders one caption into `file` (through `<file>.part`).
pub fn render(opts: &Options, caption: &str, file: &Path) -> Result<(), RenderError> {
    let mut part = file.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);

    let src = make("syncdrawsrc")?;
    src.set_property("caption", caption);
    src.set_property("clips", opts.clips);
    src.set_property("execution-provider", opts.execution_provider);
    if let Some(seed) = opts.seed {
        src.set_property("seed", seed);
    }
    if let Some(model) = &opts.model {
        src.set_property("model-location", model.to_string_lossy().as_ref());
    }
    let enc = make("x264enc")?;
    let mux = make("mp4mux")?;
    let sink = make("filesink")?;
    sink.set_property("location", part.to_string_lossy().as_ref());

    let pipeline = gst::Pipeline::new();
    pipeline.add_many([&src, &enc, &mux, &sink])?;
    gst::Element::link_many([&src, &enc, &mux, &sink])?;
    let result = run_pipeline(&pipeline);
    // Back to NULL in any case: filesink closes the file.
    let _ = pipeline.set_state(gst::State::Null);
    match result {
        Ok(()) => std::fs::rename(&part, file).map_err(|source| RenderError::Io {
            path: file.to_owned(),
            source,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

/// The numbers (from 1) of the captions this run renders: all, or its shard's.
pub fn numbers(opts: &Options, count: usize) -> Vec<usize> {
    (1..=count)
        .filter(|&n| opts.shard.is_none_or(|s| s.has(n)))
        .collect()
}

/// Renders every caption of the run (its shard, if any), skipping those whose file
/// exists and going on past failures; `report` sees each outcome as it comes, with
/// its position in the run (from 0).
pub fn render_all(
    opts: &Options,
    captions: &[String],
    mut report: impl FnMut(usize, &Outcome),
) -> Vec<Outcome> {
    let numbers = numbers(opts, captions.len());
    let mut outcomes = Vec::with_capacity(numbers.len());
    for (i, &number) in numbers.iter().enumerate() {
        let caption = &captions[number - 1];
        let file = opts.out_dir.join(file_name(number, caption));
        let result = if file.exists() {
            Ok(Done::Skipped)
        } else {
            render(opts, caption, &file).map(|()| Done::Rendered)
        };
        let outcome = Outcome {
            number,
            caption: caption.clone(),
            file,
            result,
        };
        report(i, &outcome);
        outcomes.push(outcome);
    }
    outcomes
}

fn main() -> ExitCode {
    let (opts, captions) = match parse_args(std::env::args().skip(1)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("batch_render: {e}");
            eprintln!(
                "usage: batch_render [--captions FILE] [--out-dir DIR] [--model PATH] \
                 [--seed N] [--clips N] [--execution-provider auto|cpu|cuda] [--shard I/N] \
                 [CAPTION...]"
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
    let mut started = Instant::now();
    let outcomes = render_all(&opts, &captions, |i, o| {
        let secs = started.elapsed().as_secs_f64();
        match &o.result {
            Ok(Done::Rendered) => println!(
                "[{}/{total}] {:?} -> {} ({secs:.1} s)",
                i + 1,
                o.caption,
                o.file.display()
            ),
            Ok(Done::Skipped) => println!(
                "[{}/{total}] {:?}: {} exists, skipped",
                i + 1,
                o.caption,
                o.file.display()
            ),
            Err(e) => eprintln!("[{}/{total}] {:?} FAILED: {e}", i + 1, o.caption),
        }
        started = Instant::now();
    });
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
