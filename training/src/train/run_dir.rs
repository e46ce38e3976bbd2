//! A run directory and how a run starts in it.
//!
//! The directory holds `config.json` (what the run is: the checkpoint's
//! description, with the caption grammar or vocabulary), `checkpoint.safetensors`
//! (the latest, written atomically) and `metrics.jsonl`. A run starts in one of
//! four ways: resumed from the directory's own checkpoint (every setting that
//! shapes the run then comes from it; `init_from` and `warm_start` are not used
//! again), initialised from another checkpoint's weights with a fresh optimizer,
//! warm-started from a model of fewer objects per caption, or fresh.
use super::{CanvasInit, CaptionEncoderKind, TrainError, TrainOptions};
use crate::adam::AdamConfig;
use crate::average::AverageState;
use crate::checkpoint::{self, AdamState, Meta};
use crate::fused::CanvasStep;
use crate::model::config::{DecoderKind, DrawOrder, SlotKind, SlotsConfig, WordsConfig};
use crate::model::{CaptionConfig, SyncDraw};
use crate::source::{DataSource, SourceError, Videos};
use crate::warm_start::warm_start;
use serde::Serialize;
use std::path::{Path, PathBuf};
use syncdraw_data::{Pixels, Split};
use syncdraw_format::words::words;
use syncdraw_format::{Grammar, Vocabulary};

/// The checkpoint's file name in a run directory.
pub const CHECKPOINT: &str = "checkpoint.safetensors";

/// Refuses Adam settings (and a moving average) it cannot train with, before
/// anything is written.
fn check_optimizer(opts: &TrainOptions) -> Result<(), TrainError> {
    if let Some(beta1) = opts.optimizer.beta1 {
        if !(0.0..1.0).contains(&beta1) {
            return Err(TrainError::Invalid(format!(
                "beta1 must be at least 0 and below 1, got {beta1}"
            )));
        }
    }
    if let Some(d) = opts.ema_decay {
        if !(0.0..1.0).contains(&d) {
            return Err(TrainError::Invalid(format!(
                "the moving average's decay must be at least 0 and below 1 (0: none), got {d}"
            )));
        }
    }
    if let Some(clip) = opts.optimizer.clip {
        if !(clip.is_finite() && clip >= 0.0) {
            return Err(TrainError::Invalid(format!(
                "the gradient clip must be a finite number of at least 0 (0: no clipping), got {clip}"
            )));
        }
    }
    Ok(())
}

/// Layer targets need layers, each named by a caption slot, and each object's
/// own video: binarised generated digits (data/binarize.rs) as many as the
/// layers. `eval` takes the term where this holds.
pub fn check_layer_targets(meta: &Meta) -> Result<(), TrainError> {
    let binarized = meta.pixels == Pixels::Binarized;
    let objects = match &meta.model.caption {
        Some(CaptionConfig::Slots(s)) => s.objects,
        _ => 0,
    };
    let digits = meta.data.generated().map_or(0, |d| d.digits as i64);
    let fail = |why: String| {
        Err(TrainError::Invalid(format!(
            "--layer-targets scores each layer against its object's own video: {why}; drop --layer-targets (or give 0)"
        )))
    };
    if !meta.model.layered() {
        return fail("this model draws on one canvas (layers come with --draw-order layers and two or more objects)".into());
    }
    if objects == 0 {
        return fail(
            "the layers must be named by caption slots (--captions --caption-encoder slots)".into(),
        );
    }
    if !binarized {
        return fail(
            "only binarised generated digits have each object's video (--binarize)".into(),
        );
    }
    if digits != objects {
        return fail(format!(
            "the model has {objects} layers and the data {digits} digits per video"
        ));
    }
    Ok(())
}

/// A run ready to train.
pub struct Start {
    pub model: SyncDraw,
    /// Adam's moments when resumed.
    pub adam: Option<AdamState>,
    /// The moving average of the weights when resumed from a run that kept one.
    pub average: Option<AverageState>,
    pub meta: Meta,
    /// The training split, when starting it needed it (a fresh run).
    pub train: Option<Videos>,
    pub checkpoint: PathBuf,
}

/// Opens the run directory and starts the run as `opts` ask; writes config.json.
pub fn start(opts: &TrainOptions) -> Result<Start, TrainError> {
    check_optimizer(opts)?;
    let dir = &opts.run_dir;
    let checkpoint_path = dir.join(CHECKPOINT);
    let existing = checkpoint_path.exists();
    // A new run on a folder set cannot binarise (source.rs); refused before
    // anything is written.
    if !existing && opts.init_from.is_none() && opts.pixels == Pixels::Binarized {
        if let DataSource::Folder(_) = &opts.data {
            return Err(SourceError::NoBinarization(opts.data.name()).into());
        }
    }
    let made_dir = !dir.exists();
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;

    if existing && !opts.resume {
        return Err(TrainError::RunExists(dir.clone()));
    }
    if opts.init_from.is_some() && opts.warm_start.is_some() {
        return Err(TrainError::Invalid(
            "start from --init-from or from --warm-start, not both".into(),
        ));
    }
    // On resume every setting that shapes the run comes from the checkpoint (the
    // Adam settings too, unless opts.optimizer replaces them, below).
    let (model, (adam, mut average), mut meta, train) = if existing {
        let ck = checkpoint::load(&checkpoint_path, opts.device)?;
        (ck.model, (ck.adam, ck.average), ck.meta, None)
    } else if let Some(init) = &opts.init_from {
        let mut ck = checkpoint::load(init, opts.device)?;
        // A model on layers may switch between the two orders of inferring
        // them: the same weights, the same decoder (config.rs,
        // `LayersInterleaved`).
        let on_layers =
            |o: DrawOrder| matches!(o, DrawOrder::Layers | DrawOrder::LayersInterleaved);
        if on_layers(opts.model.draw_order) && on_layers(ck.model.config.draw_order) {
            ck.model.config.draw_order = opts.model.draw_order;
            ck.meta.model.draw_order = opts.model.draw_order;
        }
        let mut meta = ck.meta;
        meta.steps_before = meta.total_steps();
        meta.step = 0;
        meta.seed = opts.seed;
        meta.test_nll = None;
        meta.initialised_from = Some(init.display().to_string());
        meta.frozen = frozen(opts);
        meta.kl_weight = opts.kl_weight;
        meta.slot_dropout = opts.slot_dropout;
        meta.device = format!("{:?}", opts.device);
        // A fresh optimizer and a fresh average (from these weights).
        meta.ema_decay = None;
        meta.averaged = false;
        (ck.model, (None, None), meta, None)
    } else {
        let train = opts.data.load(Split::Train, &opts.cache_dir)?;
        let mut config = opts.model.clone();
        let (mut vocabulary, mut grammar) = (None, None);
        let captions = || (0..train.len()).map(|i| train.caption(i));
        config.caption = match opts.captions {
            None => None,
            Some(CaptionEncoderKind::Slots) => {
                let g = opts.data.grammar();
                let cc = slots_config(&g);
                grammar = Some(g);
                Some(cc)
            }
            Some(CaptionEncoderKind::Words) => {
                let v = Vocabulary::from_captions(captions());
                let length = captions().map(|c| words(c).len()).max().unwrap_or(1);
                let cc = words_config(&v, length);
                vocabulary = Some(v);
                Some(cc)
            }
        };
        if config.decoder == DecoderKind::WhatWhere
            && matches!(config.caption, Some(CaptionConfig::Words(_)))
        {
            return Err(TrainError::Invalid(
                "the what-where decoder needs the slots caption encoder".into(),
            ));
        }
        if config.draw_order != DrawOrder::Together {
            // An unconditional model draws one block per object of the data.
            if config.caption.is_none() {
                config.objects = Some(opts.data.grammar().max_objects as i64);
            }
            match config.objects_in_turn() {
                Some(n) if n <= config.timesteps => {}
                Some(n) => {
                    return Err(TrainError::Invalid(format!(
                        "--draw-order {} gives every object a block of steps: {n} objects need at least {n} steps, not {}",
                        config.draw_order.name(),
                        config.timesteps
                    )))
                }
                None => {
                    return Err(TrainError::Invalid(
                        format!(
                            "--draw-order {} needs captions read by the slots caption encoder (--caption-encoder slots), or no captions (--captions false)",
                            config.draw_order.name()
                        ),
                    ))
                }
            }
        }
        let shape = opts.data.shape();
        let model_shape = (config.frames, config.channels, config.height, config.width);
        let data_shape = (
            shape.frames as i64,
            shape.channels as i64,
            shape.height as i64,
            shape.width as i64,
        );
        if model_shape != data_shape || train.shape() != shape {
            return Err(TrainError::Invalid(format!(
                "the model's frames, channels, height and width {model_shape:?} must be the data set's {data_shape:?}"
            )));
        }
        if opts.canvas_init == CanvasInit::DataMean {
            config.canvas_init = Some(mean_logit(train.pixels()));
        }
        tch::manual_seed(opts.seed as i64);
        let model = SyncDraw::new(&config, opts.device);
        let (mut steps_before, mut initialised_from) = (0, None);
        if let Some(path) = &opts.warm_start {
            let source = checkpoint::load(path, opts.device)?;
            let compatible = match (&source.meta.grammar, &grammar) {
                (Some(a), Some(b)) => a.slots == b.slots,
                // Unconditional models (more objects drawn on layers or in turn).
                (None, None) => source.model.config.caption.is_none() && config.caption.is_none(),
                _ => false,
            };
            if !compatible {
                return Err(TrainError::Invalid(format!(
                    "--warm-start {}: both models must be unconditional, or read captions with the slots encoder and the same slot values (digits, motions)",
                    path.display()
                )));
            }
            warm_start(&model, &source.model)?;
            steps_before = source.meta.total_steps();
            initialised_from = Some(path.display().to_string());
        }
        let meta = Meta {
            format: checkpoint::FORMAT.into(),
            model: config,
            vocabulary,
            grammar,
            data: opts.data.clone(),
            pixels: opts.pixels,
            step: 0,
            seed: opts.seed,
            test_nll: None,
            train_seconds: 0.0,
            device: format!("{:?}", opts.device),
            steps_before,
            initialised_from,
            frozen: frozen(opts),
            kl_weight: opts.kl_weight,
            slot_dropout: opts.slot_dropout,
            layer_targets: 0.0,
            lr: AdamConfig::default().lr,
            beta1: AdamConfig::default().beta1,
            clip: AdamConfig::default().clip,
            batch: super::DEFAULT_BATCH,
            products: opts.products,
            canvas_step: CanvasStep::Plain,
            ema_decay: None,
            averaged: false,
        };
        (model, (None, None), meta, Some(train))
    };
    // An explicit learning rate replaces the run's own (and is recorded with it).
    if let Some(lr) = opts.optimizer.lr {
        meta.lr = lr;
    }
    if let Some(beta1) = opts.optimizer.beta1 {
        meta.beta1 = beta1;
    }
    if let Some(clip) = opts.optimizer.clip {
        meta.clip = clip;
    }
    if let Some(batch) = opts.optimizer.batch {
        meta.batch = batch;
    }
    // A decay given replaces the run's own (0: keep no average); a new average
    // starts from the weights as they are.
    match opts.ema_decay {
        Some(0.0) => {
            meta.ema_decay = None;
            average = None;
        }
        Some(d) => {
            if meta.ema_decay.is_some_and(|old| old != d) {
                average = None;
            }
            meta.ema_decay = Some(d);
        }
        None => {}
    }
    if let Some(w) = opts.layer_targets {
        meta.layer_targets = w;
    }
    if meta.layer_targets > 0.0 {
        if let Err(e) = check_layer_targets(&meta) {
            if made_dir {
                // Made above, and nothing written in it yet.
                let _ = std::fs::remove_dir(dir);
            }
            return Err(e);
        }
    }
    // The arithmetic of this run's steps (a resumed run may change it).
    meta.products = opts.products;
    meta.canvas_step = if super::uses_fused_step(opts, &meta.model) {
        CanvasStep::Fused
    } else {
        CanvasStep::Plain
    };
    write_json(&dir.join("config.json"), &meta)?;
    Ok(Start {
        model,
        adam,
        average,
        meta,
        train,
        checkpoint: checkpoint_path,
    })
}

/// The variable prefixes a new run holds fixed.
fn frozen(opts: &TrainOptions) -> Vec<String> {
    if opts.freeze_decoder {
        vec!["decoder.".into()]
    } else {
        Vec::new()
    }
}

/// logit of the mean of 8-bit pixels (as values in [0, 1]), clamped away from 0 and 1.
pub fn mean_logit(pixels: &[u8]) -> f64 {
    let sum: u64 = pixels.iter().map(|&p| p as u64).sum();
    let mean = (sum as f64 / (255.0 * pixels.len().max(1) as f64)).clamp(1e-4, 1.0 - 1e-4);
    (mean / (1.0 - mean)).ln()
}

/// Slot encoder sizes for a grammar.
pub fn slots_config(g: &Grammar) -> CaptionConfig {
    CaptionConfig::Slots(SlotsConfig {
        objects: g.max_objects as i64,
        slots: g
            .slots
            .iter()
            .map(|s| SlotKind {
                name: s.name.clone(),
                values: s.values.len() as i64,
                role: s.role,
            })
            .collect(),
        embed_size: 32,
    })
}

/// Word encoder sizes used when a run conditions on captions with words.
pub fn words_config(vocab: &Vocabulary, length: usize) -> CaptionConfig {
    CaptionConfig::Words(WordsConfig {
        vocab_size: vocab.len() as i64,
        length: length as i64,
        embed_size: 64,
        hidden_size: 128,
    })
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn write_json(path: &Path, value: &impl Serialize) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(value).expect("serialisable");
    std::fs::write(path, text + "\n").map_err(io_err(path))
}
