//! Helpers shared by the training crate's tests: moving-shapes videos encoded as
//! real MP4 files ([`shapes`]), ONNX Runtime and the ONNX checker for exported
//! models ([`onnx`]), and the release plugin in a private registry for
//! `gst-launch-1.0` ([`plugin`]).
#![allow(dead_code)]

pub mod onnx;
pub mod plugin;
pub mod shapes;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
