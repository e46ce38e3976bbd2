// SPDX-License-Identifier: MIT OR Apache-2.0
//! Shared test helpers: GStreamer and plugin set-up, the synthetic test models, the
//! bundled models.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Once, OnceLock};

use gst::glib;
use gst::prelude::*;
use gstsyncdraw::syncdrawsrc::model::ModelInfo;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst::init");
        gstsyncdraw::plugin_register_static().expect("register the syncdraw plugin");
    });
}

/// An empty directory for one test's files, `NAME-PID` under the temporary
/// directory. Whatever an earlier process with the same id left there is removed
/// first (process ids repeat across fresh machines and containers), so a test
/// never finds the files of another run.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a test directory");
    dir
}

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python of the project's venv (it has `onnx`), as scripts/pins.sh names it.
pub fn python() -> PathBuf {
    if let Some(v) = std::env::var_os("SYNCDRAW_VENV") {
        let p = PathBuf::from(v).join("bin/python");
        if p.exists() {
            return p;
        }
    }
    if let Some(cache) = gstsyncdraw::syncdrawsrc::ortlib::syncdraw_cache_dir() {
        let p = cache
            .join(gstsyncdraw::syncdrawsrc::ortlib::PINNED_VENV)
            .join("bin/python");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("python3")
}

/// A directory of SYNTHETIC test models (tests/make_test_models.py): contract-shaped
/// graphs with fixed pseudo-random weights; bad/ holds one contract breach per file.
/// Made once per test process. 10 frames of 32x32 grey, T = 4, z_dim = 8:
/// - synth1-caption.onnx: format 2, the one-digit grammar (caption_length 2);
/// - synth2-caption.onnx: format 2, the two-digit grammar (caption_length 4);
/// - synth1-uncond.onnx: format 2, unconditional;
/// - synth1-words.onnx: format 1, word vocabulary, caption_length 7.
pub fn synth_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("syncdraw-test-models-{}", std::process::id()));
        let status = Command::new(python())
            .arg(manifest_dir().join("tests/make_test_models.py"))
            .arg(&dir)
            .status()
            .expect("run tests/make_test_models.py (needs the venv's python with onnx; run scripts/setup.sh)");
        assert!(status.success(), "tests/make_test_models.py failed");
        // A file that is not ONNX at all.
        std::fs::write(dir.join("bad/bad-corrupt.onnx"), b"this is not an ONNX model\n\x08\x07")
            .expect("write corrupt model");
        dir
    })
}

pub fn synth(name: &str) -> PathBuf {
    synth_dir().join(name)
}

pub const SYNTH_FRAMES: usize = 10;
pub const SYNTH_SIZE: u32 = 32;
pub const SYNTH_STEPS: usize = 4;
pub const CAPTION: &str = "digit 3 is moving up and down";
/// A caption of the two-digit grammar (synth2-caption.onnx's example caption).
pub const TWO_DIGITS: &str = "digit 1 is moving up and down and digit 2 is moving left and right";
/// One object of the Bouncing MNIST grammar as caption errors show it.
pub const FORM: &str = "digit <0|1|2|3|4|5|6|7|8|9> is moving <up and down|left and right>";

/// The names the trained, bundled models will have in models/.
pub const BUNDLED_NAMES: [&str; 4] = [
    "mnist1-captions.onnx",
    "mnist2-captions.onnx",
    "mnist1-uncond.onnx",
    "mnist2-uncond.onnx",
];

/// The source tree's models/ directory, if it holds any `*.onnx` file (the trained
/// models land there later; until then the tests use the synthetic ones).
pub fn bundled_dir() -> Option<PathBuf> {
    let dir = manifest_dir().join("models");
    let has_onnx = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .any(|e| e.path().extension().is_some_and(|x| x == "onnx"))
        })
        .unwrap_or(false);
    has_onnx.then_some(dir)
}

/// A caption-conditioned model to run and a caption it accepts.
pub struct CaptionModel {
    pub path: PathBuf,
    pub info: ModelInfo,
    pub caption: String,
    /// True for a model from models/, false for a synthetic one.
    pub bundled: bool,
}

/// A bundled caption model (mnist1-captions.onnx first, else the first by name that has
/// an example caption) with its first example caption; else the synthetic
/// synth1-caption.onnx with [`CAPTION`].
pub fn caption_model() -> CaptionModel {
    if let Some(dir) = bundled_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("read models/")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
            .collect();
        files.sort_by_key(|p| (p.file_name() != Some(BUNDLED_NAMES[0].as_ref()), p.clone()));
        for path in files {
            let info = ModelInfo::read(&path)
                .unwrap_or_else(|e| panic!("bundled model {}: {e}", path.display()));
            if let (true, Some(caption)) = (
                info.is_conditional(),
                info.example_captions.first().cloned(),
            ) {
                return CaptionModel {
                    path,
                    info,
                    caption,
                    bundled: true,
                };
            }
        }
    }
    let path = synth("synth1-caption.onnx");
    let info = ModelInfo::read(&path).expect("read the synthetic model");
    CaptionModel {
        path,
        info,
        caption: CAPTION.to_owned(),
        bundled: false,
    }
}

/// Sets the element's properties from (name, value-as-string) pairs.
pub fn set_props(element: &gst::Element, props: &[(&str, &str)]) {
    for (k, v) in props {
        element.set_property_from_str(k, v);
    }
}

/// Runs `syncdrawsrc ! fakesink` to PAUSED and returns the error on the bus, if the
/// state change fails.
/// The error is (GError, debug text).
pub fn start_error(props: &[(&str, &str)]) -> Option<(glib::Error, String)> {
    init();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("syncdrawsrc").build().unwrap();
    set_props(&src, props);
    let sink = gst::ElementFactory::make("fakesink").build().unwrap();
    pipeline.add_many([&src, &sink]).unwrap();
    src.link(&sink).unwrap();
    let res = pipeline.set_state(gst::State::Paused);
    let bus = pipeline.bus().unwrap();
    let mut error = None;
    if res.is_err() {
        let errors: Vec<(glib::Error, String)> = std::iter::from_fn(|| bus.pop())
            .filter_map(|msg| match msg.view() {
                gst::MessageView::Error(e) => Some((
                    e.error(),
                    e.debug().map(|d| d.to_string()).unwrap_or_default(),
                )),
                _ => None,
            })
            .collect();
        // One failure, one message: no generic "failed to start" after the reason.
        assert_eq!(
            errors.len(),
            1,
            "a failed start must post exactly one error: {errors:?}"
        );
        error = errors.into_iter().next();
    } else {
        // Wait for preroll (or an error while streaming).
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::AsyncDone, gst::MessageType::Error],
        );
        if let Some(msg) = msg {
            if let gst::MessageView::Error(e) = msg.view() {
                error = Some((
                    e.error(),
                    e.debug().map(|d| d.to_string()).unwrap_or_default(),
                ));
            }
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    error
}

/// The message and debug text of an error, for assertions.
pub fn error_text(e: &(glib::Error, String)) -> String {
    format!("{} | {}", e.0, e.1)
}
