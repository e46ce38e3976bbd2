// SPDX-License-Identifier: MIT OR Apache-2.0
//! Running a syncdraw model with ONNX Runtime: the session (with its execution
//! provider), the contract check of its inputs and outputs, the prior noise, and a
//! worker thread that computes the next batch of clips while the element pushes the
//! current one.

use std::borrow::Cow;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use ort::session::{RunOptions, Session, SessionInputValue};
use ort::value::{Tensor, TensorElementType, ValueType};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::model::{ModelError, ModelInfo};
use super::ortlib::Runtime;
use super::prune::keep_output;

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

/// A loaded session, with what really runs it.
pub struct Loaded {
    pub session: Session,
    /// "CUDA" or "CPU".
    pub provider: &'static str,
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

fn cpu_session(rt: &Runtime, info: &ModelInfo, model: &[u8]) -> Result<Session, ModelError> {
    let runtime = |e: ort::Error| ModelError::Runtime {
        path: info.path.clone(),
        reason: e.to_string(),
    };
    // Inference uses every core: the streaming side (direct frame writers) costs a
    // few microseconds a frame and overlaps with the next batch's inference. Idle
    // ONNX Runtime threads sleep instead of spinning, so they do not take the core
    // the pipeline needs between calls (docs/benchmarks.md).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
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
/// `output` (`video`, or `canvases` for show-steps): see prune.rs.
pub fn open(
    rt: &Runtime,
    info: &ModelInfo,
    provider: Provider,
    device_id: u32,
    output: &str,
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
            session: cpu_session(rt, info, model)?,
            provider: "CPU",
            fallback_reason: None,
        },
        Provider::Cuda => {
            // A model the CPU cannot load either is a model error, not a CUDA one.
            let session =
                cuda_session(rt, model, device_id).map_err(|reason| {
                    match cpu_session(rt, info, model) {
                        Err(e) => SessionError::Model(e),
                        Ok(_) => SessionError::Cuda { device_id, reason },
                    }
                })?;
            Loaded {
                session,
                provider: "CUDA",
                fallback_reason: None,
            }
        }
        Provider::Auto => match cuda_session(rt, model, device_id) {
            Ok(session) => Loaded {
                session,
                provider: "CUDA",
                fallback_reason: None,
            },
            Err(reason) => Loaded {
                session: cpu_session(rt, info, model)?,
                provider: "CPU",
                fallback_reason: Some(reason),
            },
        },
    };
    check_signature(&loaded.session, info, &pruned.outputs)?;
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

/// Standard normal noise for one clip, scaled by `temperature`. Clip `index` of a seed
/// always gets the same noise, whatever the batch size: the RNG is a ChaCha8 stream
/// seeded with `seed`, stream number `index`.
pub fn prior_noise(seed: u64, index: u64, len: usize, temperature: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    (0..len)
        .map(|_| {
            let v: f32 = StandardNormal.sample(&mut rng);
            v * temperature
        })
        .collect()
}

/// What to compute: `count` clips starting at clip number `first`.
#[derive(Debug, Clone)]
pub struct Request {
    pub first: u64,
    pub count: usize,
    /// Token ids of the caption (None for an unconditional model).
    pub tokens: Option<Vec<i64>>,
    pub temperature: f32,
    /// The caption the tokens come from (for the title tag).
    pub caption: String,
    /// Changes whenever caption or temperature change, to recognize stale clips.
    pub params_version: u64,
}

/// One generated clip: `frames` frames of `[channels, height, width]` floats.
pub struct Clip {
    pub index: u64,
    pub params_version: u64,
    pub caption: String,
    pub frames: usize,
    pub data: Vec<f32>,
}

/// Runs a model for requests, owning the session.
pub struct Generator {
    pub session: Session,
    pub info: Arc<ModelInfo>,
    pub seed: u64,
    pub show_steps: bool,
    /// Shared with the [`Worker`], which sets its terminate flag to stop a running
    /// inference when the element stops.
    pub run_options: Arc<RunOptions>,
}

impl Generator {
    /// Frames per clip: N, or T * N with show-steps.
    pub fn frames_per_clip(&self) -> usize {
        if self.show_steps {
            self.info.timesteps * self.info.frames
        } else {
            self.info.frames
        }
    }

    pub fn generate(&mut self, req: &Request) -> Result<Vec<Clip>, String> {
        let rows: Vec<Row<'_>> = (0..req.count as u64)
            .map(|i| Row {
                seed: self.seed,
                index: req.first + i,
                tokens: req.tokens.as_deref(),
            })
            .collect();
        let frames = self.frames_per_clip();
        Ok(self
            .run_rows(&rows, req.temperature)?
            .into_iter()
            .enumerate()
            .map(|(i, data)| Clip {
                index: req.first + i as u64,
                params_version: req.params_version,
                caption: req.caption.clone(),
                frames,
                data,
            })
            .collect())
    }

    /// Computes one clip per row in one ONNX Runtime call: rows may have different
    /// captions and seeds (the batch renderer batches many captions this way).
    /// Returns each row's frames, `frames_per_clip` frames of `[C, H, W]` floats.
    pub fn run_rows(
        &mut self,
        rows: &[Row<'_>],
        temperature: f32,
    ) -> Result<Vec<Vec<f32>>, String> {
        let info = self.info.clone();
        let frames_per_clip = self.frames_per_clip();
        let b = rows.len();
        let z_len = info.timesteps * info.z_dim;
        let mut z = Vec::with_capacity(b * z_len);
        for row in rows {
            z.extend(prior_noise(row.seed, row.index, z_len, temperature));
        }
        let z = Tensor::from_array(([b as i64, info.timesteps as i64, info.z_dim as i64], z))
            .map_err(|e| e.to_string())?;
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = vec![("z".into(), z.into())];
        if info.is_conditional() {
            let len = info.caption_length;
            let mut ids = Vec::with_capacity(b * len);
            for row in rows {
                match row.tokens {
                    Some(t) if t.len() == len => ids.extend_from_slice(t),
                    _ => return Err(format!("every clip needs {len} caption ids")),
                }
            }
            let caption =
                Tensor::from_array(([b as i64, len as i64], ids)).map_err(|e| e.to_string())?;
            inputs.push(("caption".into(), caption.into()));
        }
        // The session computes only the output that is shown (see `open`).
        let name = if self.show_steps { "canvases" } else { "video" };
        let outputs = self
            .session
            .run_with_options(inputs, &self.run_options)
            .map_err(|e| e.to_string())?;
        let value = outputs
            .get(name)
            .ok_or_else(|| format!("the model gave no output {name:?}"))?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| format!("output {name:?}: {e}"))?;
        let per_clip = frames_per_clip * info.frame_len();
        if data.len() != b * per_clip {
            return Err(format!(
                "output {name:?} has shape {:?}, expected {} clips of {} frames of {}x{}x{}",
                shape.iter().collect::<Vec<_>>(),
                b,
                frames_per_clip,
                info.channels,
                info.height,
                info.width
            ));
        }
        // A broken model (a diverged or damaged export) can give NaN or infinity,
        // which no pixel format can show: refuse it rather than draw black.
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "output {name:?} holds {} (clip {}, value {} of {per_clip}): the model is broken; export it again from a checkpoint whose loss was finite",
                data[i],
                rows[i / per_clip].index,
                i % per_clip
            ));
        }
        // canvases is [batch, T, N, C, H, W]: each clip's T*N frames are contiguous,
        // step-major (all frames of step 1, then of step 2, ...).
        Ok(data.chunks_exact(per_clip).map(<[f32]>::to_vec).collect())
    }
}

/// One clip of a batch: the noise of clip `index` of `seed` (as [`prior_noise`]),
/// and the caption's ids (None for an unconditional model).
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub seed: u64,
    pub index: u64,
    pub tokens: Option<&'a [i64]>,
}

/// A thread running a Generator: requests in, batches of clips out. The result channel
/// holds one batch, so at most one batch waits while the next is computed.
pub struct Worker {
    requests: Option<mpsc::Sender<Request>>,
    results: Option<mpsc::Receiver<Result<Vec<Clip>, String>>>,
    thread: Option<JoinHandle<()>>,
    run_options: Arc<RunOptions>,
}

impl Worker {
    pub fn spawn(mut generator: Generator) -> std::io::Result<Worker> {
        let run_options = generator.run_options.clone();
        let (req_tx, req_rx) = mpsc::channel::<Request>();
        let (res_tx, res_rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("syncdraw-infer".into())
            .spawn(move || {
                while let Ok(req) = req_rx.recv() {
                    let result = generator.generate(&req);
                    if res_tx.send(result).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Worker {
            requests: Some(req_tx),
            results: Some(res_rx),
            thread: Some(thread),
            run_options,
        })
    }

    /// Queues a request; false if the worker is gone.
    pub fn request(&self, req: Request) -> bool {
        self.requests
            .as_ref()
            .is_some_and(|tx| tx.send(req).is_ok())
    }

    /// Waits up to `timeout` for the next result.
    pub fn recv_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Result<Vec<Clip>, String>, mpsc::RecvTimeoutError> {
        match &self.results {
            Some(rx) => rx.recv_timeout(timeout),
            None => Err(mpsc::RecvTimeoutError::Disconnected),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing both channels ends the thread; the terminate flag ends the inference
        // it may be running within one graph node, so stopping does not wait for a
        // whole batch.
        self.requests.take();
        self.results.take();
        let _ = self.run_options.terminate();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
