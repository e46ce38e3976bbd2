//! Checkpoints: one safetensors file holding the weights, the optimizer state and a
//! JSON description (`meta.json`, stored as a u8 tensor), so a checkpoint alone is
//! enough to resume, evaluate, sample or export. Written atomically: a temporary
//! file in the same directory, fsync, then rename.
use crate::adam::AdamConfig;
use crate::average::{AverageState, AVERAGE};
use crate::backend::tch_backend::Products;
use crate::fused::CanvasStep;
use crate::model::{ModelConfig, SyncDraw};
use crate::source::DataSource;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use syncdraw_data::tensors::{
    copy_weights, named_with_meta, read_with_meta, write_safetensors_atomic, ReadFailure,
};
use syncdraw_data::Pixels;
use syncdraw_format::{CaptionCodec, Grammar, Vocabulary};
use tch::{Device, Tensor};

pub const FORMAT: &str = "syncdraw-checkpoint-1";
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
    /// What the model is trained on: `"dataset": {..}` (generated Bouncing
    /// MNIST, as in every older checkpoint) or `"folder": {..}` (an imported
    /// set, with its grammar, frames, size and channels); source.rs.
    #[serde(flatten)]
    pub data: DataSource,
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
    /// Prefixes of the variables this run holds fixed (`train --freeze-decoder`:
    /// `decoder`); a resumed run keeps them fixed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frozen: Vec<String>,
    /// The weight of the KL term in the training objective (`train --kl-weight`):
    /// 1 trains the negative ELBO, as the paper; above 1 pulls the posterior
    /// towards the prior, so videos drawn from the prior look more like the
    /// training videos. Evaluation always uses the ELBO. A resumed run keeps it.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub kl_weight: f64,
    /// The probability with which training hides each caption slot of a video
    /// (`train --slot-dropout`): the slot reads as row 0 of its table, the
    /// embedding of an absent object, so the latents must carry what it said.
    /// 0 (none) in checkpoints written before it was recorded. Evaluation and
    /// generation always read the whole caption. A resumed run keeps it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub slot_dropout: f64,
    /// The weight of the layer-target term in the training objective (`train
    /// --layer-targets`; model/canvas.rs, `layer_target_loss`): each layer of a
    /// model that draws objects on layers is also scored alone against its
    /// object's own video. 0 (none) in checkpoints written before it was
    /// recorded. Evaluation always uses the ELBO. A resumed run keeps it unless
    /// `--layer-targets` gives another.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub layer_targets: f64,
    /// Adam's learning rate (`train --lr`). A resumed run, and a run started from
    /// these weights with `--init-from`, keep it unless `--lr` gives another (a
    /// lower rate where the test NLL has flattened). Checkpoints written before
    /// it was recorded read as the paper's 1e-3.
    #[serde(default = "paper_lr")]
    pub lr: f64,
    /// Adam's beta1 (`train --beta1`), kept by a resumed or continued run like
    /// the learning rate. Checkpoints written before it was recorded read as the
    /// paper's 0.5.
    #[serde(default = "paper_beta1")]
    pub beta1: f64,
    /// The global gradient-norm threshold (`train --clip`; 0: no clipping), kept
    /// like the learning rate. Checkpoints written before it was recorded read
    /// as the paper's 10.
    #[serde(default = "paper_clip")]
    pub clip: f64,
    /// Videos per optimizer step (`train --batch`), kept like the learning
    /// rate. Checkpoints written before it was recorded read as 64, the batch
    /// a continued run of them took then (the default); that is not always
    /// the batch they were trained at (the unconditional models' GPU runs took
    /// 256, their model cards say so).
    #[serde(default = "earlier_batch")]
    pub batch: usize,
    /// The number format of the matrix products of the latest training run
    /// on these weights (`train --products`). Checkpoints written before it was
    /// recorded were trained in f32 and read as f32.
    #[serde(default)]
    pub products: Products,
    /// How the latest training run on these weights computed its steps'
    /// canvas half: `fused` where `train --canvas-step fused` (the default)
    /// applied to the model and machine (`train::uses_fused_step`), else
    /// `plain`. Checkpoints written before it was recorded read as plain.
    #[serde(default = "plain_step")]
    pub canvas_step: CanvasStep,
    /// The decay of the moving average of the weights the run keeps
    /// (`train --ema-decay`, average.rs); none where it keeps none. A resumed
    /// run keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_decay: Option<f64>,
    /// Whether these weights are that average (`weights --average`) rather
    /// than the weights of the run's last step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub averaged: bool,
}

fn plain_step() -> CanvasStep {
    CanvasStep::Plain
}

fn paper_lr() -> f64 {
    AdamConfig::default().lr
}

fn paper_beta1() -> f64 {
    AdamConfig::default().beta1
}

fn paper_clip() -> f64 {
    AdamConfig::default().clip
}

fn earlier_batch() -> usize {
    64
}

fn one() -> f64 {
    1.0
}

fn is_one(w: &f64) -> bool {
    *w == 1.0
}

fn is_zero(p: &f64) -> bool {
    *p == 0.0
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
    /// The moving average of the weights, where the run kept one.
    pub average: Option<AverageState>,
    pub meta: Meta,
}

/// Writes the weights, Adam's moments where given, and the description.
pub fn save(
    path: &Path,
    model: &SyncDraw,
    adam: Option<&AdamState>,
    meta: &Meta,
) -> Result<(), CheckpointError> {
    save_run(path, model, adam, &[], meta)
}

/// [`save`] with the moving average of the weights (`average`: name and
/// averaged weight; empty where the run keeps none).
pub fn save_run(
    path: &Path,
    model: &SyncDraw,
    adam: Option<&AdamState>,
    average: &[(&str, &Tensor)],
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
    for (name, a) in average {
        named.push((format!("{AVERAGE}{name}"), a.to_device(Device::Cpu)));
    }
    write_safetensors_atomic(&named, path).map_err(werr)
}

/// Reads only the description of a checkpoint.
pub fn read_meta(path: &Path) -> Result<Meta, CheckpointError> {
    let (meta, _) = read_tensors(path)?;
    Ok(meta)
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
    let mut average = AverageState::new();
    for name in model.vs.variables().into_keys() {
        if let Some(a) = map.remove(&format!("{AVERAGE}{name}")) {
            average.insert(name, a.to_device(device));
        }
    }
    let average = (!average.is_empty()).then_some(average);
    Ok(Checkpoint {
        model,
        adam,
        average,
        meta,
    })
}
