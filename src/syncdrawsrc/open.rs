// SPDX-License-Identifier: MIT OR Apache-2.0
//! What start() opens from the settings, before any thread runs: the model file
//! (the one given, or the bundled one that fits the caption), the caption's ids,
//! ONNX Runtime and a session on the chosen execution provider. Errors come ready
//! for the bus; what only deserves a warning is handed back for the element to
//! post.
use std::path::Path;

use super::model::{ModelError, ModelInfo};
use super::ortlib;
use super::select;
use super::session::{self, Loaded, Provider, SessionError};

/// The settings that decide what is opened.
pub struct Request<'a> {
    /// `model-location`, or None to choose a bundled model by the caption.
    pub model_location: Option<&'a Path>,
    pub caption: &'a str,
    pub provider: Provider,
    pub device_id: u32,
    /// CPU sessions to run side by side (`parallel-batches`; 0 = one per core).
    pub cpu_sessions: usize,
    /// Run the graph to its `canvases` output instead of `video`.
    pub show_steps: bool,
    /// The plugin's own file: where bundled models and ONNX Runtime are looked for.
    pub plugin_file: Option<&'a Path>,
}

/// A warning for the bus: its message, or (for `detail`) its debug text.
pub struct Warning {
    pub kind: gst::LibraryError,
    pub message: String,
    pub detail: bool,
}

pub struct Opened {
    pub model: ModelInfo,
    /// The caption's ids; None for an unconditional model.
    pub tokens: Option<Vec<i64>>,
    pub session: Loaded,
    /// The ONNX Runtime library loaded.
    pub runtime_library: String,
    pub warnings: Vec<Warning>,
}

fn model_error(e: &ModelError) -> gst::ErrorMessage {
    match e {
        ModelError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            gst::error_msg!(gst::ResourceError::NotFound, ("{}", e))
        }
        ModelError::Io { .. } => gst::error_msg!(gst::ResourceError::OpenRead, ("{}", e)),
        _ => gst::error_msg!(gst::LibraryError::Settings, ("{}", e)),
    }
}

pub fn open(r: &Request) -> Result<Opened, gst::ErrorMessage> {
    let mut warnings = Vec::new();
    // 1. The model file and its metadata.
    let model = match r.model_location {
        Some(path) => ModelInfo::read(path).map_err(|e| model_error(&e))?,
        None => {
            let dirs = select::model_dirs(r.plugin_file);
            select::select(r.caption, &dirs).map_err(|e| match e {
                select::SelectError::NoModels { .. } => {
                    gst::error_msg!(gst::ResourceError::NotFound, ("{}", e))
                }
                select::SelectError::NoFit { .. } => {
                    gst::error_msg!(gst::LibraryError::Settings, ("{}", e))
                }
            })?
        }
    };

    // 2. The caption.
    let tokens = model.encode(r.caption).map_err(|e| {
        gst::error_msg!(
            gst::LibraryError::Settings,
            ("{}", e),
            ["model {}", model.path.display()]
        )
    })?;
    if tokens.is_none() && !r.caption.trim().is_empty() {
        warnings.push(Warning {
            kind: gst::LibraryError::Settings,
            message: format!(
                "Model {} is unconditional: the caption {:?} is ignored",
                model.path.display(),
                r.caption
            ),
            detail: true,
        });
    }

    // 3. ONNX Runtime and the session.
    let plugin_dir = r.plugin_file.and_then(|p| p.parent());
    let rt = ortlib::runtime(plugin_dir)
        .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("{}", e)))?;
    let runtime_library = rt.library.to_string();
    let output = if r.show_steps { "canvases" } else { "video" };
    let session = session::open(rt, &model, r.provider, r.device_id, output, r.cpu_sessions)
        .map_err(|e| match e {
            SessionError::Model(e) => model_error(&e),
            e @ SessionError::Cuda { .. } => gst::error_msg!(gst::LibraryError::Init, ("{}", e)),
        })?;
    if let Some(reason) = &session.fallback_reason {
        warnings.push(Warning {
            kind: gst::LibraryError::Init,
            message: format!("CUDA cannot be used, running on the CPU: {reason}"),
            detail: false,
        });
    }
    Ok(Opened {
        model,
        tokens,
        session,
        runtime_library,
        warnings,
    })
}
