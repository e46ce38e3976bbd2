// SPDX-License-Identifier: MIT OR Apache-2.0
//! Shared test helpers: GStreamer and plugin set-up, the synthetic test models, the
//! bundled models.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Once, OnceLock};

use gst::glib;
use gst::prelude::*;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst::init");
        gstsyncdraw::plugin_register_static().expect("register the syncdraw plugin");
    });
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
/// Made once per test process. 10 frames of 32x32 grey, T = 4, z_dim = 8.
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

/// The bundled models' directory (models/ of the source tree, or $SYNCDRAW_MODEL_DIR
/// to try the tests with other models). Panics with an explanation if the bundled
/// models are missing.
pub fn bundled_dir() -> PathBuf {
    let dir = std::env::var_os("SYNCDRAW_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("models"));
    for name in [
        "mnist1-caption.onnx",
        "mnist2-caption.onnx",
        "mnist1-uncond.onnx",
        "mnist2-uncond.onnx",
    ] {
        assert!(
            dir.join(name).is_file(),
            "bundled model {} is missing: this test needs the trained models of the \
             training issue in models/",
            dir.join(name).display()
        );
    }
    dir
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
        while let Some(msg) = bus.pop() {
            if let gst::MessageView::Error(e) = msg.view() {
                error = Some((e.error(), e.debug().map(|d| d.to_string()).unwrap_or_default()));
                break;
            }
        }
        assert!(error.is_some(), "state change failed without an error message");
    } else {
        // Wait for preroll (or an error while streaming).
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::AsyncDone, gst::MessageType::Error],
        );
        if let Some(msg) = msg {
            if let gst::MessageView::Error(e) = msg.view() {
                error = Some((e.error(), e.debug().map(|d| d.to_string()).unwrap_or_default()));
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
