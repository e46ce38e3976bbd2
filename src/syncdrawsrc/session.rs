// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ONNX Runtime session of a syncdraw model: the execution provider asked for
//! (CUDA, or the CPU with the reason when `auto` falls back), the graph cut to the
//! output shown (prune.rs), and the check of its inputs and outputs against the
//! contract (docs/model-format.md) and the model's metadata.

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use super::model::{ModelError, ModelInfo};
use super::ortlib::Runtime;
use syncdraw_format::prune::keep_output;

/// Which execution provider to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Auto,
    Cpu,
    Cuda,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("the CUDA execution provider cannot be used (device {device_id}): {reason}")]
    Cuda { device_id: u32, reason: String },
}

/// What really runs a loaded model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Cpu,
    Cuda,
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Cpu => "CPU",
            Engine::Cuda => "CUDA",
        })
    }
}

/// Loaded sessions, with what really runs them.
pub struct Loaded {
    /// On CUDA one session; on the CPU as many as asked for, which share the
    /// cores out (each gets cores / sessions intra-op threads, at least one).
    pub sessions: Vec<Session>,
    pub engine: Engine,
    /// Why `auto` did not get CUDA, if it did not.
    pub fallback_reason: Option<String>,
}

fn cuda_session(rt: &Runtime, model: &[u8], device_id: u32) -> Result<Session, String> {
    let cuda = ort::ep::CUDA::default()
        .with_device_id(device_id as i32)
        .build()
        .error_on_failure();
    let mut builder = Session::builder(&rt.env)
        .map_err(|e| e.to_string())?
        .with_execution_providers([cuda])
        .map_err(|e| e.to_string())?;
    builder.commit_from_memory(model).map_err(|e| e.to_string())
}

/// `count` CPU sessions (0: one per core) that share the cores out.
fn cpu_sessions(
    rt: &Runtime,
    info: &ModelInfo,
    model: &[u8],
    count: usize,
) -> Result<Vec<Session>, ModelError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let count = if count == 0 { cores } else { count };
    let threads = (cores / count).max(1);
    if count == 1 {
        return Ok(vec![cpu_session(rt, info, model, threads)?]);
    }
    // Created side by side: a session's creation (graph optimisation, memory
    // planning) runs on the calling thread, so n sessions one after another would
    // hold the first buffer back n times as long.
    std::thread::scope(|scope| {
        let makers: Vec<_> = (0..count)
            .map(|_| scope.spawn(|| cpu_session(rt, info, model, threads)))
            .collect();
        makers
            .into_iter()
            .map(|maker| {
                maker.join().unwrap_or_else(|_| {
                    Err(ModelError::Runtime {
                        path: info.path.clone(),
                        reason: "creating an ONNX Runtime session panicked".into(),
                    })
                })
            })
            .collect()
    })
}

fn cpu_session(
    rt: &Runtime,
    info: &ModelInfo,
    model: &[u8],
    threads: usize,
) -> Result<Session, ModelError> {
    let runtime = |e: ort::Error| ModelError::Runtime {
        path: info.path.clone(),
        reason: e.to_string(),
    };
    // The sessions share every core between them: the streaming side (direct frame
    // writers) costs a few microseconds a frame and overlaps with the next batch's
    // inference. Idle ONNX Runtime threads sleep instead of spinning, so they do
    // not take the core the pipeline needs between calls (docs/benchmarks.md).
    Session::builder(&rt.env)
        .map_err(runtime)?
        .with_intra_threads(threads)
        .map_err(|e| runtime(e.into()))?
        .with_intra_op_spinning(false)
        .map_err(|e| runtime(e.into()))?
        .commit_from_memory(model)
        .map_err(runtime)
}

/// Opens the model with the asked-for execution provider and checks its inputs and
/// outputs against the contract and its metadata. The session computes only
/// `output` (`video`, or `canvases` for show-steps): see prune.rs. On the CPU,
/// `cpu_count` sessions are made, 0 meaning one per core (see [`Loaded::sessions`]).
pub fn open(
    rt: &Runtime,
    info: &ModelInfo,
    provider: Provider,
    device_id: u32,
    output: &str,
    cpu_count: usize,
) -> Result<Loaded, SessionError> {
    let bytes = std::fs::read(&info.path).map_err(|source| ModelError::Io {
        path: info.path.clone(),
        source,
    })?;
    let pruned = keep_output(&bytes, output).map_err(|e| ModelError::Corrupt {
        path: info.path.clone(),
        reason: e.to_string(),
    })?;
    drop(bytes);
    let model = pruned.bytes.as_slice();
    let loaded = match provider {
        Provider::Cpu => Loaded {
            sessions: cpu_sessions(rt, info, model, cpu_count)?,
            engine: Engine::Cpu,
            fallback_reason: None,
        },
        Provider::Cuda => {
            // A model the CPU cannot load either is a model error, not a CUDA one.
            let session =
                cuda_session(rt, model, device_id).map_err(|reason| {
                    match cpu_session(rt, info, model, 1) {
                        Err(e) => SessionError::Model(e),
                        Ok(_) => SessionError::Cuda { device_id, reason },
                    }
                })?;
            Loaded {
                sessions: vec![session],
                engine: Engine::Cuda,
                fallback_reason: None,
            }
        }
        Provider::Auto => match cuda_session(rt, model, device_id) {
            Ok(session) => Loaded {
                sessions: vec![session],
                engine: Engine::Cuda,
                fallback_reason: None,
            },
            Err(reason) => Loaded {
                sessions: cpu_sessions(rt, info, model, cpu_count)?,
                engine: Engine::Cpu,
                fallback_reason: Some(reason),
            },
        },
    };
    for session in &loaded.sessions {
        check_signature(session, info, &pruned.outputs)?;
    }
    Ok(loaded)
}

/// Checks the session's inputs and output against the contract; `outputs` are the
/// graph outputs of the file, of which the session may have only one.
fn check_signature(
    session: &Session,
    info: &ModelInfo,
    outputs: &[String],
) -> Result<(), ModelError> {
    let breach = |reason: String| ModelError::Contract {
        path: info.path.clone(),
        reason,
    };
    let (t, n, c, h, w) = (
        info.timesteps as i64,
        info.frames as i64,
        info.channels as i64,
        info.height as i64,
        info.width as i64,
    );
    let check = |kind: &str,
                 outlets: &[ort::value::Outlet],
                 name: &str,
                 ty: TensorElementType,
                 dims: &[i64]|
     -> Result<(), ModelError> {
        let outlet = outlets.iter().find(|o| o.name() == name).ok_or_else(|| {
            let names: Vec<&str> = outlets.iter().map(|o| o.name()).collect();
            breach(format!(
                "no {kind} named {name:?} (the model has {names:?})"
            ))
        })?;
        let ValueType::Tensor {
            ty: got_ty, shape, ..
        } = outlet.dtype()
        else {
            return Err(breach(format!("{kind} {name:?} is not a tensor")));
        };
        if *got_ty != ty {
            return Err(breach(format!(
                "{kind} {name:?} has element type {got_ty}, expected {ty}"
            )));
        }
        let got: Vec<i64> = shape.iter().copied().collect();
        // The first dimension is the dynamic batch; all others are fixed by the metadata.
        let ok = got.len() == dims.len() + 1 && got[1..].iter().zip(dims).all(|(g, d)| g == d);
        if !ok {
            return Err(breach(format!(
                "{kind} {name:?} has shape {got:?}, expected [batch, {}] from the metadata",
                dims.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    };
    let inputs = session.inputs();
    check(
        "input",
        inputs,
        "z",
        TensorElementType::Float32,
        &[t, info.z_dim as i64],
    )?;
    if info.is_conditional() {
        check(
            "input",
            inputs,
            "caption",
            TensorElementType::Int64,
            &[info.caption_length as i64],
        )?;
    }
    let expected_inputs = if info.is_conditional() { 2 } else { 1 };
    if inputs.len() != expected_inputs {
        let names: Vec<&str> = inputs.iter().map(|o| o.name()).collect();
        return Err(breach(format!(
            "the model has inputs {names:?}; a model with caption_length {} takes {}",
            info.caption_length,
            if info.is_conditional() {
                "\"z\" and \"caption\""
            } else {
                "only \"z\""
            }
        )));
    }
    // Both outputs must be in the file; the one the session computes is checked
    // for type and shape too.
    for name in ["video", "canvases"] {
        if !outputs.iter().any(|o| o == name) {
            return Err(breach(format!(
                "no output named {name:?} (the model has {outputs:?})"
            )));
        }
    }
    let computed = session.outputs();
    if computed.iter().any(|o| o.name() == "video") {
        check(
            "output",
            computed,
            "video",
            TensorElementType::Float32,
            &[n, c, h, w],
        )?;
    }
    if computed.iter().any(|o| o.name() == "canvases") {
        check(
            "output",
            computed,
            "canvases",
            TensorElementType::Float32,
            &[t, n, c, h, w],
        )?;
    }
    Ok(())
}
