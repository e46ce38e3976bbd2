// SPDX-License-Identifier: MIT OR Apache-2.0
//! Generating clips with an open session: the prior noise of every clip, the
//! caption ids, one ONNX Runtime call per batch, and the clips cut from its output.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use ort::session::{RunOptions, Session, SessionInputValue};
use ort::value::{DynValue, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::model::ModelInfo;
use super::session::{Engine, Loaded};

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
    pub data: ClipData,
}

/// The values of one clip: its range of the output of the ONNX Runtime call that
/// computed it, shared by every clip of that call, so no clip is copied out of the
/// output (docs/benchmarks.md, "Parallel batches by default, and clips without
/// copies").
#[derive(Clone)]
pub struct ClipData {
    values: Arc<Values>,
    range: Range<usize>,
}

enum Values {
    /// An ONNX Runtime output, checked to be f32 values on the CPU when it was made.
    Output(DynValue),
    /// Values made without a model (the scheduler's tests).
    #[cfg(test)]
    Owned(Vec<f32>),
}

impl ClipData {
    /// A clip's values held on their own, for tests without a model.
    #[cfg(test)]
    pub fn from_vec(values: Vec<f32>) -> ClipData {
        let range = 0..values.len();
        ClipData {
            values: Arc::new(Values::Owned(values)),
            range,
        }
    }

    /// The clip's values: its frames one after another.
    pub fn values(&self) -> Result<&[f32], String> {
        let all = match &*self.values {
            #[cfg(test)]
            Values::Owned(v) => v.as_slice(),
            Values::Output(value) => {
                value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| format!("the model's output cannot be read: {e}"))?
                    .1
            }
        };
        all.get(self.range.clone())
            .ok_or_else(|| format!("the model's output has no values {:?}", self.range))
    }
}

/// Clips per ONNX Runtime call on the CPU. A larger batch is computed in runs of
/// at most this many clips, one after another: the values of all T steps of a
/// run (filterbanks, write patches) then stay in the cache, where a run of 256
/// clips spills them to memory and computes fewer frames per second than a run
/// of 16 (docs/benchmarks.md, "Large batches on the CPU"). The output does not
/// change: every clip's noise depends only on its index.
pub const CPU_CLIPS_PER_RUN: usize = 16;

/// Runs a model for requests, owning the session.
pub struct Generator {
    pub session: Session,
    pub info: Arc<ModelInfo>,
    pub seed: u64,
    pub show_steps: bool,
    /// Shared with the [`Worker`], which sets its terminate flag to stop a running
    /// inference when the element stops.
    pub run_options: Arc<RunOptions>,
    /// The most clips one ONNX Runtime call computes: [`CPU_CLIPS_PER_RUN`] on the
    /// CPU, unbounded on CUDA, where one large call is fastest.
    pub clips_per_run: usize,
}

impl Generator {
    /// One generator per loaded session, all sharing `run_options`.
    pub fn for_each_session(
        loaded: Loaded,
        info: &Arc<ModelInfo>,
        seed: u64,
        show_steps: bool,
        run_options: &Arc<RunOptions>,
    ) -> Vec<Generator> {
        let clips_per_run = if loaded.engine == Engine::Cpu {
            CPU_CLIPS_PER_RUN
        } else {
            usize::MAX
        };
        loaded
            .sessions
            .into_iter()
            .map(|session| Generator {
                session,
                info: info.clone(),
                seed,
                show_steps,
                run_options: run_options.clone(),
                clips_per_run,
            })
            .collect()
    }

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

    /// Computes one clip per row, in ONNX Runtime calls of at most
    /// `clips_per_run` rows: rows may have different captions and seeds (the batch
    /// renderer batches many captions this way). Returns each row's frames,
    /// `frames_per_clip` frames of `[C, H, W]` floats.
    pub fn run_rows(
        &mut self,
        rows: &[Row<'_>],
        temperature: f32,
    ) -> Result<Vec<ClipData>, String> {
        let mut clips = Vec::with_capacity(rows.len());
        for run in rows.chunks(self.clips_per_run.max(1)) {
            clips.extend(self.run_once(run, temperature)?);
        }
        Ok(clips)
    }

    /// [`Generator::run_rows`] in one ONNX Runtime call.
    fn run_once(&mut self, rows: &[Row<'_>], temperature: f32) -> Result<Vec<ClipData>, String> {
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
        let mut outputs = self
            .session
            .run_with_options(inputs, &self.run_options)
            .map_err(|e| e.to_string())?;
        let value = outputs
            .remove(name)
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
        // canvases is [batch, T, N, C, H, W]: each clip's T*N frames are contiguous,
        // step-major (all frames of step 1, then of step 2, ...). A broken model (a
        // diverged or damaged export) can give NaN or infinity, which no pixel
        // format can show: refuse it rather than draw black.
        for (row, values) in rows.iter().zip(data.chunks_exact(per_clip)) {
            if let Some(i) = first_non_finite(values) {
                return Err(format!(
                    "output {name:?} holds {} (clip {}, value {i} of {per_clip}): the model is broken; export it again from a checkpoint whose loss was finite",
                    values[i], row.index
                ));
            }
        }
        let values = Arc::new(Values::Output(value));
        Ok((0..b)
            .map(|i| ClipData {
                values: Arc::clone(&values),
                range: i * per_clip..(i + 1) * per_clip,
            })
            .collect())
    }
}

/// The index of the first NaN or infinity in `data`. Chunks are checked with an
/// integer maximum over the values' bits without sign (associative, so it
/// vectorises, where a search for the first one does not): a value is not finite
/// when its exponent bits are all ones, i.e. above f32::MAX's bits.
fn first_non_finite(data: &[f32]) -> Option<usize> {
    const CHUNK: usize = 4096;
    data.chunks(CHUNK).enumerate().find_map(|(c, chunk)| {
        let top = chunk
            .iter()
            .fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff));
        (top > f32::MAX.to_bits())
            .then(|| chunk.iter().position(|v| !v.is_finite()))
            .flatten()
            .map(|i| c * CHUNK + i)
    })
}

/// One clip of a batch: the noise of clip `index` of `seed` (as [`prior_noise`]),
/// and the caption's ids (None for an unconditional model).
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub seed: u64,
    pub index: u64,
    pub tokens: Option<&'a [i64]>,
}

#[cfg(test)]
mod tests {
    use super::first_non_finite;

    #[test]
    fn non_finite_values_are_found_where_they_are() {
        let mut data = vec![0.5f32; 10_000];
        data[0] = -f32::MAX;
        data[1] = f32::MIN_POSITIVE / 2.0;
        assert_eq!(first_non_finite(&data), None);
        for (i, bad) in [
            (0, f32::NAN),
            (4095, f32::INFINITY),
            (4096, f32::NEG_INFINITY),
            (9_999, -f32::NAN),
        ] {
            let mut d = data.clone();
            d[i] = bad;
            assert_eq!(first_non_finite(&d), Some(i), "{bad} at {i}");
        }
        assert_eq!(first_non_finite(&[]), None);
    }
}
