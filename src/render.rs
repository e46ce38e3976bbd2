// SPDX-License-Identifier: MIT OR Apache-2.0
//! Rendering many captions to MP4 files outside a pipeline (examples/batch_render.rs).
//!
//! `syncdrawsrc` draws one caption at a time and opens an ONNX Runtime session per
//! pipeline. For thousands of captions that start-up dominates, so here the captions
//! of one model share one session and are drawn together, many per ONNX Runtime
//! call ([`Renderer`]); a pool of GStreamer pipelines
//! `appsrc ! x264enc ! mp4mux ! filesink` encodes the clips in parallel while the
//! next batch is drawn ([`Encoders`]). A clip is the one `syncdrawsrc` draws for the
//! same caption, seed, temperature and clip number (the same noise,
//! `inference::prior_noise`), in
//! the format it gives x264enc (I420), at its default frame rate, with the caption
//! as the title tag.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use gst::prelude::*;

use crate::syncdrawsrc::convert::write_frame;
use crate::syncdrawsrc::inference::{ClipData, Generator, Row};
use crate::syncdrawsrc::model::{CaptionError, ModelError, ModelInfo};
use crate::syncdrawsrc::session::{self, Provider, SessionError};
use crate::syncdrawsrc::{ortlib, ExecutionProvider, DEFAULT_FPS};

/// Frame rate of the files: the element's default.
const FPS: gst::Fraction = DEFAULT_FPS;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Caption(#[from] CaptionError),
    /// No model fits the caption (the model directory's reasons).
    #[error("{0}")]
    Select(String),
    #[error("{0}")]
    Runtime(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("cannot create element {element}: {source} (is the GStreamer plugin that has it installed?)")]
    Element {
        element: &'static str,
        #[source]
        source: gst::glib::BoolError,
    },
    #[error("encoding failed: {message}{}", debug.as_ref().map(|d| format!("\n  ({d})")).unwrap_or_default())]
    Pipeline {
        message: String,
        debug: Option<String>,
    },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One clip to draw: clip number `clip` of `seed`, for caption ids `tokens`.
#[derive(Debug, Clone)]
pub struct Job {
    pub tokens: Option<Vec<i64>>,
    pub seed: u64,
    pub clip: u64,
}

/// A model open for drawing many captions, on one ONNX Runtime session.
pub struct Renderer {
    generator: Generator,
    /// Scale of the prior noise (the element's `temperature`).
    temperature: f32,
}

impl Renderer {
    pub fn open(
        info: ModelInfo,
        provider: ExecutionProvider,
        device_id: u32,
        temperature: f32,
    ) -> Result<Renderer, RenderError> {
        let rt = ortlib::runtime(None).map_err(|e| RenderError::Runtime(e.to_string()))?;
        let provider = match provider {
            ExecutionProvider::Auto => Provider::Auto,
            ExecutionProvider::Cpu => Provider::Cpu,
            ExecutionProvider::Cuda => Provider::Cuda,
        };
        let loaded =
            session::open(rt, &info, provider, device_id, "video", 1).map_err(|e| match e {
                SessionError::Model(e) => RenderError::Model(e),
                e => RenderError::Runtime(e.to_string()),
            })?;
        let run_options =
            ort::session::RunOptions::new().map_err(|e| RenderError::Runtime(e.to_string()))?;
        let generator =
            Generator::for_each_session(loaded, &Arc::new(info), 0, false, &Arc::new(run_options))
                .pop()
                .ok_or_else(|| RenderError::Runtime("no session was made".into()))?;
        Ok(Renderer {
            generator,
            temperature,
        })
    }

    pub fn info(&self) -> &Arc<ModelInfo> {
        &self.generator.info
    }

    /// Draws every job in one ONNX Runtime call: one clip of `[N, C, H, W]` floats
    /// per job.
    pub fn draw(&mut self, jobs: &[Job]) -> Result<Vec<ClipData>, RenderError> {
        let rows: Vec<Row<'_>> = jobs
            .iter()
            .map(|j| Row {
                seed: j.seed,
                index: j.clip,
                tokens: j.tokens.as_deref(),
            })
            .collect();
        self.generator
            .run_rows(&rows, self.temperature)
            .map_err(RenderError::Inference)
    }
}

/// A file to encode: the frames of its clips, one after another.
pub struct Encode {
    pub file: PathBuf,
    pub caption: String,
    pub info: Arc<ModelInfo>,
    pub frames: Vec<f32>,
    /// Returned with the result, to say which caption it was.
    pub tag: usize,
}

/// A pool of threads that each encode one file at a time.
pub struct Encoders {
    jobs: Option<mpsc::SyncSender<Encode>>,
    results: mpsc::Receiver<(usize, Result<(), RenderError>)>,
    threads: Vec<JoinHandle<()>>,
}

impl Encoders {
    /// `threads` encoders; at most `2 * threads` files wait for one.
    pub fn new(threads: usize) -> std::io::Result<Encoders> {
        let threads = threads.max(1);
        let (job_tx, job_rx) = mpsc::sync_channel::<Encode>(2 * threads);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (res_tx, results) = mpsc::channel();
        let handles = (0..threads)
            .map(|i| {
                let (rx, tx) = (job_rx.clone(), res_tx.clone());
                std::thread::Builder::new()
                    .name(format!("syncdraw-encode-{i}"))
                    .spawn(move || loop {
                        let job = match rx.lock().map(|r| r.recv()) {
                            Ok(Ok(job)) => job,
                            _ => return,
                        };
                        let result = encode(&job);
                        if tx.send((job.tag, result)).is_err() {
                            return;
                        }
                    })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Encoders {
            jobs: Some(job_tx),
            results,
            threads: handles,
        })
    }

    /// Queues a file (blocks while the queue is full).
    pub fn send(&self, job: Encode) {
        if let Some(tx) = &self.jobs {
            let _ = tx.send(job);
        }
    }

    /// Results that are ready, without waiting.
    pub fn ready(&self) -> Vec<(usize, Result<(), RenderError>)> {
        self.results.try_iter().collect()
    }

    /// Waits for every queued file; returns the results not taken yet.
    pub fn finish(mut self) -> Vec<(usize, Result<(), RenderError>)> {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.results.try_iter().collect()
    }
}

fn make(element: &'static str) -> Result<gst::Element, RenderError> {
    gst::ElementFactory::make(element)
        .build()
        .map_err(|source| RenderError::Element { element, source })
}

/// Encodes one file through `<file>.part`, renamed when the pipeline reached EOS:
/// a failure leaves no file.
pub fn encode(job: &Encode) -> Result<(), RenderError> {
    let mut part = job.file.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let result = encode_to(job, &part);
    match result {
        Ok(()) => std::fs::rename(&part, &job.file).map_err(|source| RenderError::Io {
            path: job.file.clone(),
            source,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

fn pipeline_error(message: impl ToString) -> RenderError {
    RenderError::Pipeline {
        message: message.to_string(),
        debug: None,
    }
}

fn encode_to(job: &Encode, part: &Path) -> Result<(), RenderError> {
    let info = &job.info;
    let vinfo = gst_video::VideoInfo::builder(
        gst_video::VideoFormat::I420,
        info.width as u32,
        info.height as u32,
    )
    .fps(FPS)
    .build()
    .map_err(pipeline_error)?;
    let caps = vinfo.to_caps().map_err(pipeline_error)?;
    let src = gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .build();
    let enc = make("x264enc")?;
    let mux = make("mp4mux")?;
    let sink = make("filesink")?;
    sink.set_property("location", part.to_string_lossy().as_ref());
    if let Some(setter) = mux.dynamic_cast_ref::<gst::TagSetter>() {
        let mut tags = gst::TagList::new();
        tags.make_mut()
            .add::<gst::tags::Title>(&job.caption.as_str(), gst::TagMergeMode::Replace);
        setter.merge_tags(&tags, gst::TagMergeMode::Replace);
    }
    let pipeline = gst::Pipeline::new();
    pipeline
        .add_many([src.upcast_ref(), &enc, &mux, &sink])
        .map_err(pipeline_error)?;
    gst::Element::link_many([src.upcast_ref(), &enc, &mux, &sink]).map_err(pipeline_error)?;
    let result = run(&pipeline, &src, job, &vinfo);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn run(
    pipeline: &gst::Pipeline,
    src: &gst_app::AppSrc,
    job: &Encode,
    vinfo: &gst_video::VideoInfo,
) -> Result<(), RenderError> {
    let bus = pipeline.bus().ok_or_else(|| pipeline_error("no bus"))?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        let posted = bus.pop_filtered(&[gst::MessageType::Error]);
        return Err(match posted.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Error(e)) => error_message(e),
            _ => pipeline_error("did not start"),
        });
    }
    let frame_len = job.info.frame_len();
    let duration = gst::ClockTime::SECOND
        .mul_div_floor(FPS.denom() as u64, FPS.numer() as u64)
        .unwrap_or(gst::ClockTime::ZERO);
    for (n, frame) in job.frames.chunks_exact(frame_len).enumerate() {
        let mut buffer = gst::Buffer::with_size(vinfo.size()).map_err(pipeline_error)?;
        {
            let b = buffer.get_mut().ok_or_else(|| pipeline_error("buffer"))?;
            write_frame(frame, job.info.channels, vinfo, b).map_err(pipeline_error)?;
            let pts = gst::ClockTime::SECOND
                .mul_div_floor(n as u64 * FPS.denom() as u64, FPS.numer() as u64);
            b.set_pts(pts);
            b.set_duration(duration);
        }
        if src.push_buffer(buffer).is_err() {
            break;
        }
    }
    let _ = src.end_of_stream();
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => return Err(error_message(e)),
            _ => {}
        }
    }
    Err(pipeline_error("the pipeline ended without EOS"))
}

fn error_message(e: &gst::message::Error) -> RenderError {
    RenderError::Pipeline {
        message: e.error().to_string(),
        debug: e.debug().map(|d| d.to_string()),
    }
}
