//! Helpers shared by the training crate's tests: moving-shapes videos encoded as
//! real MP4 files ([`shapes`]), ONNX Runtime and the ONNX checker for exported
//! models ([`onnx`]), and the release plugin in a private registry for
//! `gst-launch-1.0` ([`plugin`]), and the lock that keeps training tests one at a
//! time ([`training_lock`]).
#![allow(dead_code)]

pub mod onnx;
pub mod plugin;
pub mod shapes;

use std::path::{Path, PathBuf};

/// libtorch's random generator is global to the process and training seeds it per
/// step, so two tests training at once on the test harness's threads would draw
/// each other's noise: tests that train, and tests that seed the generator and
/// depend on what it then draws, hold this lock.
static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn training_lock() -> std::sync::MutexGuard<'static, ()> {
    TRAINING.lock().unwrap_or_else(|e| e.into_inner())
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
