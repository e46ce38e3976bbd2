// SPDX-License-Identifier: MIT OR Apache-2.0
//! Choosing a bundled model when `model-location` is not set.
//!
//! The models directory is the first of these that exists and holds `*.onnx` files:
//! 1. `$SYNCDRAW_MODEL_DIR`, if set (an override, e.g. for tests);
//! 2. `<prefix>/share/syncdraw/models` found from the plugin file after `meson
//!    install`: for `<prefix>/<libdir>/gstreamer-1.0/libgstsyncdraw.so`, each ancestor
//!    directory of the plugin is tried, so any libdir depth works;
//! 3. `models/` of the source tree the plugin was built from.
//!
//! Rule: an empty caption (no words) picks an unconditional model (caption_length 0),
//! the first by file name. Otherwise, among the caption-conditioned models that
//! accept the caption (its grammar parses it, or for format-1 models its
//! vocabulary has every word and caption_length is at least the number of words),
//! the one with the smallest caption_length (ties: by file name).

use std::path::{Path, PathBuf};

use super::model::{ModelError, ModelInfo};
use syncdraw_format::words::words;

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("no models directory with *.onnx files found; looked in:\n  {}\nSet model-location to a model file", looked.join("\n  "))]
    NoModels { looked: Vec<String> },
    #[error("no model in {dir} fits caption {caption:?}:\n  {}\nSet model-location to choose a model", reasons.join("\n  "))]
    NoFit {
        dir: PathBuf,
        caption: String,
        reasons: Vec<String>,
    },
}

/// Where bundled models may be, in order, with `plugin_file` the plugin's .so (None
/// when linked statically).
pub fn model_dirs(plugin_file: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("SYNCDRAW_MODEL_DIR").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(d));
        return dirs;
    }
    if let Some(file) = plugin_file {
        // <prefix>/lib/gstreamer-1.0/x.so or <prefix>/lib/x86_64-linux-gnu/gstreamer-1.0/x.so
        for anc in file.ancestors().skip(2).take(4) {
            dirs.push(anc.join("share/syncdraw/models"));
        }
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
    dirs
}

fn onnx_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "onnx") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files
}

/// Picks the model for `caption` from the first models directory of `dirs` that has
/// `*.onnx` files.
pub fn select(caption: &str, dirs: &[PathBuf]) -> Result<ModelInfo, SelectError> {
    let Some((dir, files)) = dirs
        .iter()
        .map(|d| (d, onnx_files(d)))
        .find(|(_, f)| !f.is_empty())
    else {
        return Err(SelectError::NoModels {
            looked: dirs.iter().map(|d| d.display().to_string()).collect(),
        });
    };
    let mut reasons = Vec::new();
    let mut models: Vec<ModelInfo> = Vec::new();
    for f in &files {
        match ModelInfo::read(f) {
            Ok(m) => models.push(m),
            Err(
                e @ (ModelError::Io { .. }
                | ModelError::Corrupt { .. }
                | ModelError::Contract { .. }
                | ModelError::Runtime { .. }),
            ) => reasons.push(e.to_string()),
        }
    }
    let name = |m: &ModelInfo| {
        m.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if words(caption).is_empty() {
        if let Some(m) = models.iter().find(|m| !m.is_conditional()) {
            return Ok(m.clone());
        }
        reasons.push("the caption is empty and there is no unconditional model".into());
    } else {
        let mut fitting: Vec<&ModelInfo> = Vec::new();
        for m in &models {
            if !m.is_conditional() {
                continue;
            }
            match m.encode(caption) {
                Ok(_) => fitting.push(m),
                Err(e) => reasons.push(format!("{}: {e}", name(m))),
            }
        }
        // files are sorted by name, and sort_by_key is stable: ties stay by name.
        fitting.sort_by_key(|m| m.caption_length);
        if let Some(m) = fitting.first() {
            return Ok((*m).clone());
        }
        if models.iter().all(|m| !m.is_conditional()) {
            reasons.push("there is no caption-conditioned model".into());
        }
    }
    Err(SelectError::NoFit {
        dir: dir.clone(),
        caption: caption.to_owned(),
        reasons,
    })
}
