// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `syncdrawsrc` element.
//!
//! Three pieces of guarded state, each with its own lock: `Settings` (property values),
//! `State` (the loaded model, negotiated video info, counters, generated clips) and the
//! clock-wait slot used by `unlock()`. The inference worker sits in its own lock that
//! only the streaming thread (and start/stop) takes, so a property change or a query
//! never waits for a model run.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;

use super::convert;
use super::inference::{Generator, CPU_CLIPS_PER_RUN};
use super::model::ModelInfo;
use super::open;
use super::schedule::{Next, Params, Schedule};
use super::session::Provider;
use super::worker::Worker;
use super::{ExecutionProvider, DEFAULT_FPS};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "syncdrawsrc",
        gst::DebugColorFlags::empty(),
        Some("Sync-DRAW caption-to-video source"),
    )
});

const DEFAULT_CAPTION: &str = "";
const DEFAULT_DEVICE_ID: u32 = 0;
const DEFAULT_SEED: i64 = -1;
const DEFAULT_TEMPERATURE: f64 = syncdraw_format::DEFAULT_TEMPERATURE;
/// One clip, then EOS: a caption gives a video and `... ! mp4mux ! filesink` finishes.
const DEFAULT_CLIPS: u64 = 1;
const DEFAULT_BATCH_SIZE: u32 = 1;
/// One single-threaded session per core (docs/benchmarks.md, "Parallel batches by
/// default, and clips without copies").
const DEFAULT_PARALLEL_BATCHES: u32 = 0;
const DEFAULT_SHOW_STEPS: bool = false;
const DEFAULT_IS_LIVE: bool = false;

/// How often a wait for the inference worker checks for flushing.
const WAIT_POLL: Duration = Duration::from_millis(20);
/// How long a live source's start() waits for its first batch.
const FIRST_BATCH_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
struct Settings {
    caption: String,
    model_location: Option<PathBuf>,
    execution_provider: ExecutionProvider,
    device_id: u32,
    seed: i64,
    temperature: f64,
    clips: u64,
    batch_size: u32,
    parallel_batches: u32,
    show_steps: bool,
    is_live: bool,
    /// Bumped on every accepted change of caption or temperature.
    params_version: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            caption: DEFAULT_CAPTION.into(),
            model_location: None,
            execution_provider: ExecutionProvider::default(),
            device_id: DEFAULT_DEVICE_ID,
            seed: DEFAULT_SEED,
            temperature: DEFAULT_TEMPERATURE,
            clips: DEFAULT_CLIPS,
            batch_size: DEFAULT_BATCH_SIZE,
            parallel_batches: DEFAULT_PARALLEL_BATCHES,
            show_steps: DEFAULT_SHOW_STEPS,
            is_live: DEFAULT_IS_LIVE,
            params_version: 0,
        }
    }
}

#[derive(Default)]
struct State {
    model: Option<Arc<ModelInfo>>,
    /// Which clips to ask for and push (schedule.rs).
    schedule: Schedule,
    info: Option<gst_video::VideoInfo>,
    /// Number of the next frame (buffer offset).
    frame_num: u64,
    /// The title last sent downstream.
    last_title: Option<String>,
    /// Live mode: how long the first batch took to compute (measured in start()).
    /// The latency query reports one frame plus twice this.
    batch_time: Option<gst::ClockTime>,
}

struct ClockWait {
    clock_id: Option<gst::SingleShotClockId>,
    flushing: bool,
}

impl Default for ClockWait {
    fn default() -> Self {
        ClockWait {
            clock_id: None,
            flushing: true,
        }
    }
}

#[derive(Default)]
pub struct SyncdrawSrc {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    worker: Mutex<Option<Worker>>,
    clock_wait: Mutex<ClockWait>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[glib::object_subclass]
impl ObjectSubclass for SyncdrawSrc {
    const NAME: &'static str = "GstSyncdrawSrc";
    type Type = super::SyncdrawSrc;
    type ParentType = gst_base::PushSrc;
}

impl ObjectImpl for SyncdrawSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let batch_size_blurb = format!(
                "Clips computed together (on the CPU in ONNX Runtime calls of at most \
                 {CPU_CLIPS_PER_RUN} clips, which keep their values in the cache)"
            );
            vec![
                glib::ParamSpecString::builder("caption")
                    .nick("Caption")
                    .blurb(
                        "What the video shows, e.g. \"digit 3 is moving up and down\": per \
                         digit \"digit <0-9> is moving <up and down|left and right>\", joined \
                         by \"and\" (case and spacing are free). Can be changed while playing: \
                         the next clip uses it (an invalid caption then posts a warning and \
                         the previous one stays). Empty: an unconditional model. Sent \
                         downstream as the title tag",
                    )
                    .default_value(Some(DEFAULT_CAPTION))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("model-location")
                    .nick("Model location")
                    .blurb(
                        "Path of the syncdraw ONNX model (docs/model-format.md). Unset: a \
                         bundled model that fits the caption (one-digit and two-digit \
                         captions use different models; an empty caption an unconditional \
                         one), from $SYNCDRAW_MODEL_DIR, <prefix>/share/syncdraw/models or \
                         the source tree's models/",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default(
                    "execution-provider",
                    ExecutionProvider::default(),
                )
                .nick("Execution provider")
                .blurb(
                    "Where ONNX Runtime runs the model: auto (CUDA if it can be used, else \
                     CPU with a warning on the bus saying why), cpu, or cuda (an error if \
                     CUDA cannot be used)",
                )
                .mutable_ready()
                .build(),
                glib::ParamSpecUInt::builder("device-id")
                    .nick("Device ID")
                    .blurb("CUDA device to run on (for execution-provider auto or cuda)")
                    .default_value(DEFAULT_DEVICE_ID)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt64::builder("seed")
                    .nick("Seed")
                    .blurb(
                        "Seed of the prior noise: the same seed, caption and settings give \
                         byte-identical video. -1: a fresh random seed at every start",
                    )
                    .minimum(-1)
                    .default_value(DEFAULT_SEED)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("temperature")
                    .nick("Temperature")
                    .blurb(
                        "Scale of the prior noise z ~ N(0, I): below 1 gives more typical, \
                         above 1 more varied videos; 1 samples the model as trained. \
                         Applies from the next clip",
                    )
                    .minimum(0.0)
                    .maximum(10.0)
                    .default_value(DEFAULT_TEMPERATURE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder("clips")
                    .nick("Clips")
                    .blurb("Number of clips to generate before EOS (default 1: one video per caption; 0 = endless, e.g. for live streams)")
                    .default_value(DEFAULT_CLIPS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("batch-size")
                    .nick("Batch size")
                    .blurb(&batch_size_blurb)
                    .minimum(1)
                    .maximum(256)
                    .default_value(DEFAULT_BATCH_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("parallel-batches")
                    .nick("Parallel batches")
                    .blurb(
                        "On the CPU, batches computed at once, each by its own ONNX Runtime \
                         session with its share of the cores (0 = one single-threaded \
                         session per core, the fastest with or without an encoder \
                         downstream; 1 = one session on all cores). Ignored on CUDA",
                    )
                    .maximum(64)
                    .default_value(DEFAULT_PARALLEL_BATCHES)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("show-steps")
                    .nick("Show steps")
                    .blurb(
                        "Show the drawing process: each clip becomes T x N frames, the \
                         canvases of step 1 (all N frames), then of step 2, ..., up to step \
                         T, the final video (the paper's Figure 2c)",
                    )
                    .default_value(DEFAULT_SHOW_STEPS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("is-live")
                    .nick("Is live")
                    .blurb("Act as a live source: push each frame at its time on the clock")
                    .default_value(DEFAULT_IS_LIVE)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_live(DEFAULT_IS_LIVE);
        obj.set_format(gst::Format::Time);
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "caption" => {
                let caption: String = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_default();
                // While a model is loaded, check the caption before taking it.
                let model = lock(&self.state).model.clone();
                if let Some(model) = model {
                    if let Err(e) = model.encode(&caption) {
                        gst::element_imp_warning!(
                            self,
                            gst::LibraryError::Settings,
                            ("Caption not changed: {}", e),
                            ["model {}", model.path.display()]
                        );
                        return;
                    }
                }
                let mut settings = lock(&self.settings);
                gst::info!(
                    CAT,
                    imp = self,
                    "Changing caption from {:?} to {:?}",
                    settings.caption,
                    caption
                );
                settings.caption = caption;
                settings.params_version += 1;
            }
            "model-location" => {
                let mut settings = lock(&self.settings);
                let location: Option<String> = value.get().expect("type checked upstream");
                settings.model_location = location.filter(|s| !s.is_empty()).map(PathBuf::from);
                gst::info!(
                    CAT,
                    imp = self,
                    "Model location set to {:?}",
                    settings.model_location
                );
            }
            "execution-provider" => {
                let mut settings = lock(&self.settings);
                settings.execution_provider = value.get().expect("type checked upstream");
                gst::info!(
                    CAT,
                    imp = self,
                    "Execution provider set to {:?}",
                    settings.execution_provider
                );
            }
            "device-id" => {
                let mut settings = lock(&self.settings);
                settings.device_id = value.get().expect("type checked upstream");
            }
            "seed" => {
                let mut settings = lock(&self.settings);
                settings.seed = value.get().expect("type checked upstream");
                gst::info!(CAT, imp = self, "Seed set to {}", settings.seed);
            }
            "temperature" => {
                let mut settings = lock(&self.settings);
                let t: f64 = value.get().expect("type checked upstream");
                gst::info!(
                    CAT,
                    imp = self,
                    "Changing temperature from {} to {}",
                    settings.temperature,
                    t
                );
                settings.temperature = t;
                settings.params_version += 1;
            }
            "clips" => {
                lock(&self.settings).clips = value.get().expect("type checked upstream");
            }
            "parallel-batches" => {
                lock(&self.settings).parallel_batches = value.get().expect("type checked upstream");
            }
            "batch-size" => {
                lock(&self.settings).batch_size = value.get().expect("type checked upstream");
            }
            "show-steps" => {
                lock(&self.settings).show_steps = value.get().expect("type checked upstream");
            }
            "is-live" => {
                lock(&self.settings).is_live = value.get().expect("type checked upstream");
            }
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "caption" => settings.caption.to_value(),
            "model-location" => settings
                .model_location
                .as_ref()
                .map(|p| p.display().to_string())
                .to_value(),
            "execution-provider" => settings.execution_provider.to_value(),
            "device-id" => settings.device_id.to_value(),
            "seed" => settings.seed.to_value(),
            "temperature" => settings.temperature.to_value(),
            "clips" => settings.clips.to_value(),
            "batch-size" => settings.batch_size.to_value(),
            "parallel-batches" => settings.parallel_batches.to_value(),
            "show-steps" => settings.show_steps.to_value(),
            "is-live" => settings.is_live.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for SyncdrawSrc {}

impl ElementImpl for SyncdrawSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Sync-DRAW video source",
                "Source/Video",
                "Generates video clips from a caption with a Sync-DRAW model on ONNX Runtime",
                "syncdraw authors",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = SyncdrawSrc::caps_for(None);
            vec![gst::PadTemplate::new(
                "src",
                gst::PadDirection::Src,
                gst::PadPresence::Always,
                &caps,
            )
            .expect("valid pad template")]
        });
        PAD_TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            let settings = lock(&self.settings).clone();
            self.obj().set_live(settings.is_live);
            // The model, ONNX Runtime and the session are opened here rather than in
            // BaseSrc::start(): a failed start() gets a second, generic error from the
            // base class after ours, and one failure should post one message.
            *lock(&self.state) = State::default();
            if let Err(e) = self.load(&settings) {
                self.post_error_message(e);
                return Err(gst::StateChangeError);
            }
        }
        let result = self.parent_change_state(transition);
        if transition == gst::StateChange::ReadyToPaused && result.is_err() {
            self.release();
        }
        result
    }
}

impl SyncdrawSrc {
    /// Drops what load() made: the worker (ending a running inference and joining
    /// its thread) and the stream state.
    fn release(&self) {
        lock(&self.worker).take();
        *lock(&self.state) = State::default();
    }

    /// Raw video caps, with the model's size once a model is loaded.
    fn caps_for(model: Option<&ModelInfo>) -> gst::Caps {
        let builder = gst_video::VideoCapsBuilder::new()
            .format_list(convert::FORMATS.iter().copied())
            .framerate_range(gst::Fraction::new(1, i32::MAX)..=gst::Fraction::new(i32::MAX, 1))
            .pixel_aspect_ratio(gst::Fraction::new(1, 1))
            .field("interlace-mode", "progressive");
        match model {
            Some(m) => builder
                .width(m.width as i32)
                .height(m.height as i32)
                .build(),
            None => builder
                .width_range(1..=i32::MAX)
                .height_range(1..=i32::MAX)
                .build(),
        }
    }

    /// The plugin's own file (None when registered statically).
    fn plugin_file(&self) -> Option<PathBuf> {
        self.obj()
            .factory()
            .and_then(|f| f.plugin())
            .and_then(|p| p.filename())
    }

    /// Loads the model, ONNX Runtime and a session, checks the caption, and starts the
    /// worker. Errors are for the bus.
    fn load(&self, settings: &Settings) -> Result<(), gst::ErrorMessage> {
        let plugin_file = self.plugin_file();
        let opened = open::open(&open::Request {
            model_location: settings.model_location.as_deref(),
            caption: &settings.caption,
            provider: match settings.execution_provider {
                ExecutionProvider::Auto => Provider::Auto,
                ExecutionProvider::Cpu => Provider::Cpu,
                ExecutionProvider::Cuda => Provider::Cuda,
            },
            device_id: settings.device_id,
            cpu_sessions: settings.parallel_batches as usize,
            show_steps: settings.show_steps,
            plugin_file: plugin_file.as_deref(),
        })?;
        let model = opened.model;
        gst::info!(
            CAT,
            imp = self,
            "Model {}: {} frames of {}x{}x{}, T = {}, z_dim = {}, caption_length = {}; \
             ONNX Runtime from {}, running on {}",
            model.path.display(),
            model.frames,
            model.channels,
            model.height,
            model.width,
            model.timesteps,
            model.z_dim,
            model.caption_length,
            opened.runtime_library,
            opened.session.engine
        );
        for w in &opened.warnings {
            if w.detail {
                gst::element_imp_warning!(self, w.kind, ["{}", w.message]);
            } else {
                gst::element_imp_warning!(self, w.kind, ("{}", w.message));
            }
        }
        let tokens = opened.tokens;

        // 4. The worker.
        let seed = if settings.seed >= 0 {
            settings.seed as u64
        } else {
            rand::random::<u64>() >> 1
        };
        gst::info!(CAT, imp = self, "Seed {}", seed);
        let model = Arc::new(model);
        let run_options = ort::session::RunOptions::new().map_err(|e| {
            gst::error_msg!(
                gst::LibraryError::Init,
                ("Cannot create ONNX Runtime run options: {}", e)
            )
        })?;
        let run_options = Arc::new(run_options);
        let generators = Generator::for_each_session(
            opened.session,
            &model,
            seed,
            settings.show_steps,
            &run_options,
        );
        let worker = Worker::spawn(generators, run_options).map_err(|e| {
            gst::error_msg!(
                gst::CoreError::Thread,
                ("Cannot start the inference thread: {}", e)
            )
        })?;

        let mut worker_guard = lock(&self.worker);
        let worker = worker_guard.insert(worker);
        let mut state = lock(&self.state);
        *state = State {
            model: Some(model),
            schedule: Schedule::new(Params {
                caption: settings.caption.clone(),
                tokens,
                temperature: settings.temperature as f32,
                version: settings.params_version,
            }),
            ..Default::default()
        };
        // 5. The first batch is asked for now, not at the first create(), so it is
        // computed while caps are negotiated. A live source waits for it here: its
        // first clip is then on time, and the time it took sets the latency it reports.
        let asked = Instant::now();
        self.maybe_request(&mut state, settings, worker);
        if settings.is_live && state.schedule.in_flight() {
            drop(state);
            let result = worker.recv_timeout(FIRST_BATCH_TIMEOUT).map_err(|e| {
                gst::error_msg!(
                    gst::LibraryError::Failed,
                    ("The first batch was not computed: {:?}", e)
                )
            })?;
            let clips = result.map_err(|e| {
                gst::error_msg!(gst::LibraryError::Failed, ("Inference failed: {}", e))
            })?;
            let mut state = lock(&self.state);
            state.schedule.received(clips);
            let took = gst::ClockTime::from_nseconds(asked.elapsed().as_nanos() as u64);
            gst::info!(CAT, imp = self, "First batch computed in {}", took);
            state.batch_time = Some(took);
        }
        Ok(())
    }

    /// Brings the clip parameters up to date with the settings. Returns a warning to
    /// post (after the locks are dropped) if the new caption cannot be used.
    fn refresh_params(&self, state: &mut State, settings: &Settings) -> Option<String> {
        let model = state.model.clone()?;
        state.schedule.refresh(
            &model,
            &settings.caption,
            settings.temperature as f32,
            settings.params_version,
        )
    }

    /// Sends the next request to the worker if one is due (schedule.rs): the next
    /// batch is generated while the current one is pushed.
    fn maybe_request(&self, state: &mut State, settings: &Settings, worker: &Worker) {
        let Some(req) =
            state
                .schedule
                .due(settings.batch_size as usize, settings.clips, worker.lanes())
        else {
            return;
        };
        gst::debug!(
            CAT,
            imp = self,
            "Requesting clips {}..{}",
            req.first,
            req.first + req.count as u64
        );
        let sent = req.clone();
        if worker.request(req) {
            state.schedule.sent(&sent);
        }
    }

    /// Makes the next clip current: from the generated ones if up to date, else waits
    /// for the worker. Also asks for the clips after it.
    fn next_clip(&self, settings: &Settings) -> Result<(), gst::FlowError> {
        let worker_guard = lock(&self.worker);
        let Some(worker) = worker_guard.as_ref() else {
            gst::element_imp_error!(self, gst::CoreError::Failed, ("No model loaded"));
            return Err(gst::FlowError::Error);
        };
        loop {
            let mut state = lock(&self.state);
            if let Some(warning) = self.refresh_params(&mut state, settings) {
                drop(state);
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Settings,
                    ("Caption not changed: {}", warning)
                );
                continue;
            }
            match state.schedule.advance(settings.clips) {
                Next::Clip => {
                    self.maybe_request(&mut state, settings, worker);
                    return Ok(());
                }
                Next::Eos => {
                    gst::debug!(CAT, imp = self, "All {} clips done", settings.clips);
                    return Err(gst::FlowError::Eos);
                }
                Next::Wait => {}
            }
            self.maybe_request(&mut state, settings, worker);
            if !state.schedule.in_flight() {
                // Nothing more to come (clip limit reached while clips were stale).
                return Err(gst::FlowError::Eos);
            }
            drop(state);

            // Wait for the worker; inference cannot be interrupted, so poll for flushing.
            let result = loop {
                if lock(&self.clock_wait).flushing {
                    gst::debug!(CAT, imp = self, "Flushing while waiting for inference");
                    return Err(gst::FlowError::Flushing);
                }
                match worker.recv_timeout(WAIT_POLL) {
                    Ok(r) => break r,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        gst::element_imp_error!(
                            self,
                            gst::CoreError::Failed,
                            ("The inference thread stopped")
                        );
                        return Err(gst::FlowError::Error);
                    }
                }
            };
            let mut state = lock(&self.state);
            match result {
                Ok(clips) => state.schedule.received(clips),
                Err(e) => {
                    state.schedule.failed();
                    drop(state);
                    gst::element_imp_error!(
                        self,
                        gst::LibraryError::Failed,
                        ("Inference failed: {}", e)
                    );
                    return Err(gst::FlowError::Error);
                }
            }
            drop(state);
            if lock(&self.clock_wait).flushing {
                return Err(gst::FlowError::Flushing);
            }
        }
    }

    /// Waits on the clock until `until` (running time) in live mode.
    fn wait_live(&self, until: gst::ClockTime) -> Result<(), gst::FlowError> {
        let obj = self.obj();
        let Some((clock, base_time)) = Option::zip(obj.clock(), obj.base_time()) else {
            return Ok(());
        };
        let mut clock_wait = lock(&self.clock_wait);
        if clock_wait.flushing {
            return Err(gst::FlowError::Flushing);
        }
        let id = clock.new_single_shot_id(until + base_time);
        clock_wait.clock_id = Some(id.clone());
        drop(clock_wait);
        gst::log!(
            CAT,
            imp = self,
            "Waiting until {}, now {}",
            until + base_time,
            clock.time()
        );
        let (res, jitter) = id.wait();
        gst::log!(CAT, imp = self, "Waited: {:?}, jitter {}", res, jitter);
        lock(&self.clock_wait).clock_id.take();
        if res == Err(gst::ClockError::Unscheduled) {
            return Err(gst::FlowError::Flushing);
        }
        Ok(())
    }
}

impl BaseSrcImpl for SyncdrawSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        // The model was loaded in change_state() (READY -> PAUSED), just before.
        self.unlock_stop()?;
        gst::info!(CAT, imp = self, "Started");
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.unlock()?;
        self.release();
        gst::info!(CAT, imp = self, "Stopped");
        Ok(())
    }

    fn is_seekable(&self) -> bool {
        false
    }

    fn caps(&self, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        let model = lock(&self.state).model.clone();
        let caps = Self::caps_for(model.as_deref());
        Some(match filter {
            Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    fn fixate(&self, mut caps: gst::Caps) -> gst::Caps {
        let model = lock(&self.state).model.clone();
        caps.truncate();
        {
            let caps = caps.make_mut();
            if let Some(s) = caps.structure_mut(0) {
                s.fixate_field_nearest_fraction("framerate", DEFAULT_FPS);
                // Downstream lists formats in its own order (x264enc puts Y444 first,
                // which gives High 4:4:4): pick the first of ours it accepts, so I420
                // wins whenever it is possible.
                if let Ok(list) = s.get::<gst::List>("format") {
                    let accepted: Vec<String> =
                        list.iter().filter_map(|v| v.get::<String>().ok()).collect();
                    if let Some(f) = convert::FORMATS
                        .iter()
                        .find(|f| accepted.iter().any(|a| a == f.to_str()))
                    {
                        s.set("format", f.to_str());
                    }
                }
                if let Some(m) = model {
                    s.fixate_field_nearest_int("width", m.width as i32);
                    s.fixate_field_nearest_int("height", m.height as i32);
                }
            }
        }
        self.parent_fixate(caps)
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|_| gst::loggable_error!(CAT, "Invalid caps {}", caps))?;
        if info.fps().numer() <= 0 {
            return Err(gst::loggable_error!(CAT, "Need a framerate, got {}", caps));
        }
        gst::debug!(CAT, imp = self, "Configuring for caps {}", caps);
        let mut state = lock(&self.state);
        if let Some(m) = &state.model {
            if info.width() as usize != m.width || info.height() as usize != m.height {
                return Err(gst::loggable_error!(
                    CAT,
                    "Caps {} do not have the model's size {}x{}",
                    caps,
                    m.width,
                    m.height
                ));
            }
        }
        // Keep the stream time running across a renegotiation: the frame counter is
        // converted to the new rate.
        if let Some(old) = &state.info {
            let t = state.frame_num.mul_div_floor(
                old.fps().denom() as u64 * *gst::ClockTime::SECOND,
                old.fps().numer() as u64,
            );
            state.frame_num = t
                .and_then(|t| {
                    t.mul_div_floor(
                        info.fps().numer() as u64,
                        info.fps().denom() as u64 * *gst::ClockTime::SECOND,
                    )
                })
                .unwrap_or(0);
        }
        state.info = Some(info);
        drop(state);
        let _ = self
            .obj()
            .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        Ok(())
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        match query.view_mut() {
            gst::QueryViewMut::Latency(q) => {
                let is_live = lock(&self.settings).is_live;
                let state = lock(&self.state);
                match &state.info {
                    Some(info) => {
                        let frame = gst::ClockTime::SECOND
                            .mul_div_floor(info.fps().denom() as u64, info.fps().numer() as u64)
                            .unwrap_or(gst::ClockTime::ZERO);
                        // Live: a frame, plus two batches' inference, which is how
                        // late a clip can be after a caption change: the batch
                        // computed ahead with the old caption finishes first, then
                        // the new one is computed.
                        let latency = if is_live {
                            frame + 2 * state.batch_time.unwrap_or(gst::ClockTime::ZERO)
                        } else {
                            gst::ClockTime::ZERO
                        };
                        gst::debug!(CAT, imp = self, "Latency {}", latency);
                        q.set(is_live, latency, gst::ClockTime::NONE);
                        true
                    }
                    None => false,
                }
            }
            _ => BaseSrcImplExt::parent_query(self, query),
        }
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        gst::debug!(CAT, imp = self, "Unlocking");
        let mut clock_wait = lock(&self.clock_wait);
        if let Some(id) = clock_wait.clock_id.take() {
            id.unschedule();
        }
        clock_wait.flushing = true;
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        gst::debug!(CAT, imp = self, "Unlock stop");
        lock(&self.clock_wait).flushing = false;
        Ok(())
    }
}

impl PushSrcImpl for SyncdrawSrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        let need_clip = {
            let state = lock(&self.state);
            if state.info.is_none() {
                drop(state);
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ("Have no caps yet"));
                return Err(gst::FlowError::NotNegotiated);
            }
            state.schedule.needs_clip()
        };
        if need_clip {
            // Settings are read once per clip, not per frame (a clone allocates).
            let settings = lock(&self.settings).clone();
            self.next_clip(&settings)?;
        }

        let mut state = lock(&self.state);
        let (Some(info), Some(model)) = (state.info.clone(), state.model.clone()) else {
            return Err(gst::FlowError::Flushing);
        };
        let Some(clip) = state.schedule.clip.as_ref() else {
            drop(state);
            gst::element_imp_error!(
                self,
                gst::CoreError::Failed,
                ("No clip to push after the next clip was made current")
            );
            return Err(gst::FlowError::Error);
        };
        // The caption goes downstream as a global title tag (mp4mux stores it) when a
        // clip with a new caption starts.
        let title = (model.is_conditional() && !clip.caption.trim().is_empty())
            .then(|| clip.caption.clone());
        let send_title =
            state.schedule.clip_frame == 0 && title.is_some() && title != state.last_title;
        let frame_len = model.frame_len();
        let start = state.schedule.clip_frame * frame_len;
        let frame = match clip.data.values() {
            Ok(values) => &values[start..start + frame_len],
            Err(e) => {
                drop(state);
                gst::element_imp_error!(self, gst::CoreError::Failed, ("{}", e));
                return Err(gst::FlowError::Error);
            }
        };

        let Ok(mut buffer) = gst::Buffer::with_size(info.size()) else {
            drop(state);
            gst::element_imp_error!(
                self,
                gst::ResourceError::NoSpaceLeft,
                ("Cannot allocate a buffer of {} bytes", info.size())
            );
            return Err(gst::FlowError::Error);
        };
        {
            let buffer = buffer.make_mut();
            if let Err(e) = convert::write_frame(frame, model.channels, &info, buffer) {
                drop(state);
                gst::element_imp_error!(self, gst::CoreError::Failed, ("{}", e));
                return Err(gst::FlowError::Error);
            }
            let n = state.frame_num;
            let (fps_n, fps_d) = (info.fps().numer() as u64, info.fps().denom() as u64);
            let time = |n: u64| {
                n.mul_div_floor(fps_d * *gst::ClockTime::SECOND, fps_n)
                    .map(gst::ClockTime::from_nseconds)
            };
            let (pts, next) = (time(n), time(n + 1));
            buffer.set_pts(pts);
            buffer.set_duration(next.zip(pts).map(|(next, pts)| next - pts));
            buffer.set_offset(n);
            buffer.set_offset_end(n + 1);
        }
        state.frame_num += 1;
        state.schedule.clip_frame += 1;
        if send_title {
            state.last_title = title.clone();
        }
        drop(state);

        if let (true, Some(title)) = (send_title, title) {
            let mut tags = gst::TagList::new();
            {
                let tags = tags.make_mut();
                tags.add::<gst::tags::Title>(&title.as_str(), gst::TagMergeMode::Replace);
                tags.set_scope(gst::TagScope::Global);
            }
            // BaseSrc queues serialized events and pushes them after the segment, before
            // this buffer.
            self.obj().send_event(gst::event::Tag::new(tags));
        }

        if self.obj().is_live() {
            let segment = self.obj().segment();
            let end = buffer.pts().opt_add(buffer.duration());
            let running = segment
                .downcast_ref::<gst::format::Time>()
                .and_then(|s| s.to_running_time(end));
            if let Some(running) = running {
                self.wait_live(running)?;
            }
        }
        gst::trace!(CAT, imp = self, "Produced {:?}", buffer);
        Ok(CreateSuccess::NewBuffer(buffer))
    }
}
