//! Checkpoints: one safetensors file holding the weights, the optimizer state and a
//! JSON description (`meta.json`, stored as a u8 tensor), so a checkpoint alone is
//! enough to resume, evaluate, sample or export. Written atomically: a temporary
//! file in the same directory, fsync, then rename.
use crate::data::{DatasetConfig, Pixels};
use crate::model::{ModelConfig, SyncDraw};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use syncdraw_format::{CaptionCodec, Grammar, Vocabulary};
use tch::{nn, Device, Kind, Tensor};

pub const FORMAT: &str = "syncdraw-checkpoint-1";
const META: &str = "meta.json";
pub const ADAM_M: &str = "adam.m.";
pub const ADAM_V: &str = "adam.v.";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot read checkpoint {path}: {reason} (is it a syncdraw-train checkpoint, and complete?)")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path} is not a syncdraw checkpoint: {reason}")]
    Foreign { path: PathBuf, reason: String },
    #[error("cannot write checkpoint {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// Everything about a checkpoint except its tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub format: String,
    pub model: ModelConfig,
    /// Format-1 captions: the word vocabulary (words caption encoder).
    pub vocabulary: Option<Vocabulary>,
    /// Format-2 captions: the caption grammar (slots caption encoder).
    #[serde(default)]
    pub grammar: Option<Grammar>,
    pub dataset: DatasetConfig,
    /// How the model reads pixels: grey Bernoulli means or binarised samples.
    #[serde(default)]
    pub pixels: Pixels,
    /// Optimizer steps taken.
    pub step: u64,
    /// Seed of the run (data order and noise are derived from it and the step).
    pub seed: u64,
    /// Test-split NLL bound at this step, if it was measured.
    pub test_nll: Option<f64>,
    /// Wall-clock seconds of training so far.
    #[serde(default)]
    pub train_seconds: f64,
    /// Device the run trained on ("cpu", "cuda:0").
    #[serde(default)]
    pub device: String,
    /// Steps trained by earlier runs whose weights this run started from
    /// (`train --init-from`); the model has seen `steps_before + step` steps.
    #[serde(default)]
    pub steps_before: u64,
    /// The checkpoint this run's weights were initialised from, if any.
    #[serde(default)]
    pub initialised_from: Option<String>,
}

impl Meta {
    /// How this model reads captions; None for an unconditional model.
    pub fn captions(&self) -> Option<CaptionCodec> {
        let cc = self.model.caption.as_ref()?;
        match (&self.grammar, &self.vocabulary) {
            (Some(g), _) => Some(CaptionCodec::Grammar(g.clone())),
            (None, Some(v)) => Some(CaptionCodec::Words {
                vocabulary: v.clone(),
                length: cc.length() as usize,
            }),
            (None, None) => None,
        }
    }

    /// Optimizer steps behind these weights, over every run that trained them.
    pub fn total_steps(&self) -> u64 {
        self.steps_before + self.step
    }
}

/// Adam moments, by variable name.
pub type AdamState = HashMap<String, (Tensor, Tensor)>;

pub struct Checkpoint {
    pub model: SyncDraw,
    pub adam: Option<AdamState>,
    pub meta: Meta,
}

pub fn save(
    path: &Path,
    model: &SyncDraw,
    adam: Option<&AdamState>,
    meta: &Meta,
) -> Result<(), CheckpointError> {
    let werr = |reason: String| CheckpointError::Write {
        path: path.to_path_buf(),
        reason,
    };
    let mut named = named_with_meta(meta, &model.vs);
    if let Some(adam) = adam {
        for (name, (m, v)) in adam {
            named.push((format!("{ADAM_M}{name}"), m.to_device(Device::Cpu)));
            named.push((format!("{ADAM_V}{name}"), v.to_device(Device::Cpu)));
        }
    }
    write_safetensors_atomic(&named, path).map_err(werr)
}

/// `meta` as JSON under `meta.json`, then the variables of `vs` (on the CPU) sorted
/// by name: what [`save`] and the evaluator write, and [`read_with_meta`] reads.
pub fn named_with_meta(meta: &impl Serialize, vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let json = serde_json::to_vec(meta).expect("meta serialises");
    let mut vars: Vec<_> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    std::iter::once((META.to_string(), Tensor::from_slice(&json)))
        .chain(vars.into_iter().map(|(n, t)| (n, t.to_device(Device::Cpu))))
        .collect()
}

/// Writes named tensors as safetensors atomically: a temporary file beside `path`,
/// fsync, rename. On failure the temporary file is removed and `path` is untouched.
/// Shared by checkpoints and the evaluator.
pub fn write_safetensors_atomic(named: &[(String, Tensor)], path: &Path) -> Result<(), String> {
    crate::atomic::replace(path, |tmp| {
        Tensor::write_safetensors(named, tmp).map_err(std::io::Error::other)
    })
    .map_err(|e| e.to_string())
}

/// Reads only the description of a checkpoint.
pub fn read_meta(path: &Path) -> Result<Meta, CheckpointError> {
    let (meta, _) = read_tensors(path)?;
    Ok(meta)
}

/// Why a tensor file with a `meta.json` entry could not be read; checkpoints and
/// evaluators wrap it in their own error, with the path.
#[derive(Debug)]
pub enum ReadFailure {
    Missing,
    Unreadable(String),
    Foreign(String),
}

/// Reads a safetensors file written with a `meta.json` entry (as [`save`] and the
/// evaluator write them): the JSON, whose "format" must be `format`, and the other
/// tensors by name.
pub fn read_with_meta(
    path: &Path,
    format: &str,
) -> Result<(serde_json::Value, HashMap<String, Tensor>), ReadFailure> {
    use ReadFailure::Foreign;
    if !path.exists() {
        return Err(ReadFailure::Missing);
    }
    let tensors =
        Tensor::read_safetensors(path).map_err(|e| ReadFailure::Unreadable(e.to_string()))?;
    let mut map: HashMap<String, Tensor> = tensors.into_iter().collect();
    let json = map
        .remove(META)
        .ok_or_else(|| Foreign("it has no meta.json entry".into()))?;
    if json.kind() != Kind::Uint8 {
        return Err(Foreign("meta.json is not a byte tensor".into()));
    }
    let bytes = Vec::<u8>::try_from(&json.flatten(0, -1))
        .map_err(|_| Foreign("meta.json unreadable".into()))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Foreign(format!("meta.json: {e}")))?;
    // The format first: another kind or version of file may not parse as this one.
    if value["format"] != format {
        return Err(Foreign(format!(
            "format {}, expected {format:?}",
            value["format"]
        )));
    }
    Ok((value, map))
}

/// Copies the tensor named like each variable of `vs` from `map` into it (removing
/// it from `map`); every variable must be there with its shape.
pub fn copy_weights(vs: &nn::VarStore, map: &mut HashMap<String, Tensor>) -> Result<(), String> {
    let mut vars = vs.variables();
    for (name, var) in vars.iter_mut() {
        let value = map
            .remove(name)
            .ok_or_else(|| format!("weight {name} is missing"))?;
        if value.size() != var.size() {
            return Err(format!(
                "weight {name} has shape {:?}, the config needs {:?}",
                value.size(),
                var.size()
            ));
        }
        tch::no_grad(|| var.copy_(&value));
    }
    Ok(())
}

fn read_tensors(path: &Path) -> Result<(Meta, HashMap<String, Tensor>), CheckpointError> {
    let to_path = || path.to_path_buf();
    let (value, map) = read_with_meta(path, FORMAT).map_err(|f| match f {
        ReadFailure::Missing => CheckpointError::Missing { path: to_path() },
        ReadFailure::Unreadable(reason) => CheckpointError::Unreadable {
            path: to_path(),
            reason,
        },
        ReadFailure::Foreign(reason) => CheckpointError::Foreign {
            path: to_path(),
            reason,
        },
    })?;
    let meta = serde_json::from_value(value).map_err(|e| CheckpointError::Foreign {
        path: to_path(),
        reason: format!("meta.json: {e}"),
    })?;
    Ok((meta, map))
}

/// Loads a checkpoint onto `device`.
pub fn load(path: &Path, device: Device) -> Result<Checkpoint, CheckpointError> {
    let (meta, mut map) = read_tensors(path)?;
    let foreign = |reason: String| CheckpointError::Foreign {
        path: path.to_path_buf(),
        reason,
    };
    let model = SyncDraw::new(&meta.model, device);
    copy_weights(&model.vs, &mut map).map_err(foreign)?;
    let mut adam = AdamState::new();
    for name in model.vs.variables().into_keys() {
        if let (Some(m), Some(v)) = (
            map.remove(&format!("{ADAM_M}{name}")),
            map.remove(&format!("{ADAM_V}{name}")),
        ) {
            adam.insert(name.clone(), (m.to_device(device), v.to_device(device)));
        }
    }
    let adam = (!adam.is_empty()).then_some(adam);
    Ok(Checkpoint { model, adam, meta })
}
