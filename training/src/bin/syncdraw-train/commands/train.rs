//! `train`: train a model, or continue one.
use super::print_report;
use crate::args::{below_one, non_negative_f64, positive, positive_f64, DataOpts, DeviceArg};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use syncdraw_data::Pixels;
use syncdraw_training::backend::tch_backend::{cpu_has_bf16, products_warning};
use syncdraw_training::model::{DecoderKind, DrawOrder, ModelConfig, Variant};
use syncdraw_training::source::{DataSource, FolderSource};
use syncdraw_training::train::{
    train, CanvasInit, CanvasStep, CaptionEncoderKind, OptimizerOptions, Products, TrainOptions,
};

#[derive(Args)]
pub struct TrainArgs {
    /// Run directory (config, vocabulary, checkpoint, metrics).
    #[arg(long)]
    run_dir: PathBuf,
    #[command(flatten)]
    data: DataOpts,
    /// Train on this imported folder set (train.sdfv and test.sdfv, from
    /// `syncdraw-train data --videos ... --out SET`) instead of generated
    /// Bouncing MNIST; the model takes the set's frames, size and channels, and
    /// its captions are read with the set's grammar.
    #[arg(long = "data", value_name = "SET", conflicts_with_all = ["digits", "train_size", "test_size", "data_seed", "frames", "size", "mnist_idx"])]
    data_set: Option<PathBuf>,
    /// Condition on captions.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    captions: bool,
    /// Caption encoder: grammar slots (format 2) or an LSTM over words (format 1).
    #[arg(long, value_enum, default_value_t = CaptionEncoderKind::Slots)]
    caption_encoder: CaptionEncoderKind,
    /// Decoder: what-where (motion slots place the write windows, digit slots
    /// fill the patches) or the paper's joint decoder LSTM.
    #[arg(long, value_enum, default_value_t = DecoderKind::WhatWhere)]
    decoder: DecoderKind,
    /// Keep attention windows in the frame (bounded raw parameters).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    bounded_windows: bool,
    /// Normalise filterbank rows stably, so that no row of a window that leaves
    /// the frame reads zeros and stops learning (false: the paper's normaliser).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    stable_filterbank: bool,
    /// Whether the encoder reads the caption (eq. 12; true, the paper's). false:
    /// the latents are inferred from the video alone, and only the decoder reads
    /// the caption, so a caption never seen in training meets no part of the
    /// model that learnt its slots together (docs/results.md). With
    /// --warm-start from a model whose encoder reads it, the encoder starts
    /// from that one's weights less the caption's.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    encoder_caption: bool,
    /// Binarised pixels (as the paper's NLL): a fresh Bernoulli sample of every
    /// training batch, one fixed sample of the test split. Generated digits
    /// only: refused with --data (binarisation is defined per digit image).
    #[arg(long)]
    binarize: bool,
    /// Added to the forget-gate bias of the encoder and decoder LSTMs at
    /// initialisation (0: the paper's setup).
    #[arg(long, value_parser = non_negative_f64, default_value_t = 0.0)]
    forget_bias: f64,
    /// Initial canvas c^0: a learned logit that starts at the training data's
    /// mean pixel, or zero (the paper's).
    #[arg(long, value_enum, default_value_t = CanvasInit::DataMean)]
    canvas_init: CanvasInit,
    /// How the objects of a caption are drawn: all together at every step (the
    /// paper's eq. 13); in turn, one block of steps per object in caption order,
    /// each block reading only its object's slots from a fresh decoder state; or
    /// in turn on canvas layers of their own, composed as a union (needs the
    /// slots caption encoder or --captions false, which gives one block per
    /// digit of the data; give each object as many steps as a one-object
    /// model has, e.g. --timesteps 20 for two digits); layers-interleaved
    /// draws the same layers but infers their steps in turn, one step of each
    /// object at a time (docs/architecture.md). With --init-from of a model on
    /// layers, layers or layers-interleaved switches its order of inference
    /// (the other orders are the checkpoint's).
    #[arg(long, value_enum, default_value_t = DrawOrder::Together)]
    draw_order: DrawOrder,
    #[arg(long, value_enum, default_value_t = Variant::Syncdraw)]
    variant: Variant,
    /// Baseline only: temporal points of the cuboid (default: half the frames,
    /// rounded up, so the cuboid has fewer temporal than spatial points as the
    /// paper's Baseline has).
    #[arg(long, value_parser = positive::<i64>)]
    temporal_k: Option<i64>,
    /// Total optimizer steps.
    #[arg(long, default_value_t = 20_000)]
    steps: u64,
    /// Videos per optimizer step [default: 64 for a new run]. Kept by a
    /// continued run like --lr, so a resumed run draws the batches it would
    /// have drawn uninterrupted.
    #[arg(long, value_parser = positive::<usize>)]
    batch: Option<usize>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Drawing steps T.
    #[arg(long, value_parser = positive::<i64>, default_value_t = 10)]
    timesteps: i64,
    #[arg(long, value_parser = positive::<i64>, default_value_t = 10)]
    read_k: i64,
    #[arg(long, value_parser = positive::<i64>, default_value_t = 10)]
    write_k: i64,
    #[arg(long, value_parser = positive::<i64>, default_value_t = 256)]
    enc_size: i64,
    #[arg(long, value_parser = positive::<i64>, default_value_t = 256)]
    dec_size: i64,
    #[arg(long, value_parser = positive::<i64>, default_value_t = 100)]
    z_dim: i64,
    /// Adam's learning rate [default: 1e-3, the paper's, for a new run]. A run
    /// continued with --resume or --init-from keeps the rate its checkpoint
    /// records unless this gives another, which is then recorded.
    #[arg(long, value_parser = positive_f64)]
    lr: Option<f64>,
    /// Adam's beta1, from 0 to below 1 [default: 0.5, the paper's, for a new
    /// run]. Kept by a continued run like --lr.
    #[arg(long, value_parser = below_one)]
    beta1: Option<f64>,
    /// Clip the gradients' global norm to this (0: no clipping) [default: 10,
    /// the paper's, for a new run]. Kept by a continued run like --lr.
    #[arg(long, value_parser = non_negative_f64)]
    clip: Option<f64>,
    /// Keep a moving average of the weights, a <- d a + (1 - d) w after every
    /// step, with this decay d (from 0 to below 1; 0: none), and evaluate it
    /// beside the weights (`test_nll_average` in metrics.jsonl; `weights
    /// --average` writes it) [default: none for a new run]. Kept by a resumed
    /// run like --lr; a run started with --init-from starts a new one.
    #[arg(long, value_parser = below_one)]
    ema_decay: Option<f64>,
    #[arg(long, value_parser = positive::<u64>, default_value_t = 500)]
    checkpoint_every: u64,
    /// Evaluate on test videos every N steps (0: only at the end).
    #[arg(long, default_value_t = 2000)]
    eval_every: u64,
    /// Test videos for the periodic evaluation (the final one uses all).
    #[arg(long, value_parser = positive::<usize>, default_value_t = 500)]
    eval_videos: usize,
    #[arg(long, value_parser = positive::<u64>, default_value_t = 50)]
    log_every: u64,
    /// Continue the run in --run-dir from its checkpoint (starts fresh if none).
    #[arg(long)]
    resume: bool,
    /// Start a new run from the weights of this checkpoint, with fresh optimizer
    /// state (model, vocabulary and data set come from the checkpoint).
    #[arg(long, conflicts_with = "resume")]
    init_from: Option<PathBuf>,
    /// Start a new run, set up by the other options, from the weights of a
    /// model trained on fewer objects per caption (a one-digit model for a
    /// two-digit run, captioned or both unconditional), or on as many with
    /// fewer drawing steps (--timesteps 32 from a T = 10 model): equal weights
    /// are copied, the caption inputs of the added objects start at zero, and
    /// the added steps continue the source's drawing.
    #[arg(long, conflicts_with_all = ["resume", "init_from"])]
    warm_start: Option<PathBuf>,
    /// Train only the encoder; the decoder (what the model draws) stays as it
    /// starts, from --warm-start or --init-from. Kept on --resume.
    #[arg(long, conflicts_with = "resume")]
    freeze_decoder: bool,
    /// Weight of the KL term in the training objective: 1 (the default) trains
    /// the negative ELBO, as the paper; above 1 pulls the posterior towards the
    /// prior, so videos drawn from the prior look more like the training videos,
    /// at some cost in the bound. Kept on --resume; eval reports the ELBO.
    #[arg(long, value_parser = positive_f64, conflicts_with = "resume", default_value_t = 1.0)]
    kl_weight: f64,
    /// Hide each caption slot (digit, motion) of a training video with this
    /// probability: the slot reads as the absent object's embedding, so the
    /// latents must carry what it said. A regulariser for captions never seen
    /// in training (docs/results.md); 0 (the default) hides none. Slot captions
    /// only; kept on --resume; eval, sampling and export read whole captions.
    #[arg(long, value_parser = below_one, conflicts_with = "resume", default_value_t = 0.0)]
    slot_dropout: f64,
    /// Also score each layer of a model that draws its objects on layers
    /// (--draw-order layers) alone against its object's own video, with this
    /// weight beside the ELBO: the data know which digit each caption slot
    /// names, so each layer is told which digit is its own. Binarised,
    /// generated digits with slot captions only. 0 turns it off; a run
    /// resumed or started with --init-from keeps its checkpoint's weight
    /// unless this gives another.
    /// Evaluation reports the ELBO alone (docs/results.md).
    #[arg(long, value_parser = non_negative_f64)]
    layer_targets: Option<f64>,
    /// Number format of the training step's matrix products. bf16: faster on a
    /// CPU with AVX-512 BF16, but it trained 1.6 % worse at equal steps
    /// (docs/benchmarks.md). Parameters, the optimizer, evaluation and export
    /// are always f32.
    #[arg(long, value_enum, default_value_t = Products::F32)]
    products: Products,
    /// How the step computes its canvas half (each step's write, the canvas's
    /// sigmoid and the reads of it and of the video). fused: kernels of our own
    /// with their own backward, one pass per frame (Sync-DRAW and Global models
    /// with stable filterbank rows on grey 64 x 64 frames with grids of 10, in
    /// any draw order (layers-interleaved: two objects), on a CPU with AVX2 and
    /// FMA, with f32 products; other runs take the plain step);
    /// plain: libtorch's operations and autograd. The same numbers to float
    /// rounding; the checkpoint records which one ran (`canvas_step`).
    #[arg(long, value_enum, default_value_t = CanvasStep::Fused)]
    canvas_step: CanvasStep,
    /// Stop with a checkpoint after this many minutes.
    #[arg(long, value_parser = positive_f64)]
    max_minutes: Option<f64>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
}

pub fn run(a: TrainArgs) -> Result<()> {
    if a.temporal_k.is_some() && a.variant != Variant::Baseline {
        anyhow::bail!("--temporal-k is the Baseline cuboid's: it needs --variant baseline");
    }
    let device = a.device.device()?;
    let data = match &a.data_set {
        Some(dir) => DataSource::Folder(FolderSource::open(dir)?.0),
        None => DataSource::Generated(a.data.config()?),
    };
    let shape = data.shape();
    let model = ModelConfig {
        variant: a.variant,
        frames: shape.frames as i64,
        channels: shape.channels as i64,
        height: shape.height as i64,
        width: shape.width as i64,
        timesteps: a.timesteps,
        read_k: a.read_k,
        write_k: a.write_k,
        enc_size: a.enc_size,
        dec_size: a.dec_size,
        z_dim: a.z_dim,
        caption: None,
        decoder: a.decoder,
        bounded_windows: a.bounded_windows,
        forget_bias: a.forget_bias,
        stable_filterbank: a.stable_filterbank,
        temporal_k: (a.variant == Variant::Baseline)
            .then(|| a.temporal_k.unwrap_or((shape.frames as i64 + 1) / 2)),
        canvas_init: None,
        draw_order: a.draw_order,
        objects: None,
        encoder_caption: a.encoder_caption,
    };
    let products = a.products;
    if let Some(w) = products_warning(products, device, cpu_has_bf16()) {
        eprintln!("{w}");
    }
    eprintln!(
        "training on {device:?} with {} libtorch threads, {products:?} matrix products",
        tch::get_num_threads()
    );
    let opts = TrainOptions {
        run_dir: a.run_dir,
        model,
        data,
        pixels: if a.binarize {
            Pixels::Binarized
        } else {
            Pixels::Grey
        },
        captions: a.captions.then_some(a.caption_encoder),
        canvas_init: a.canvas_init,
        steps: a.steps,
        seed: a.seed,
        checkpoint_every: a.checkpoint_every,
        eval_every: a.eval_every,
        eval_videos: a.eval_videos,
        log_every: a.log_every,
        resume: a.resume,
        device,
        optimizer: OptimizerOptions {
            lr: a.lr,
            beta1: a.beta1,
            clip: a.clip,
            batch: a.batch,
        },
        cache_dir: a.data.cache(),
        time_limit: a.max_minutes.map(|m| Duration::from_secs_f64(m * 60.0)),
        init_from: a.init_from,
        warm_start: a.warm_start,
        freeze_decoder: a.freeze_decoder,
        kl_weight: a.kl_weight,
        slot_dropout: a.slot_dropout,
        layer_targets: a.layer_targets,
        products,
        canvas_step: a.canvas_step,
        ema_decay: a.ema_decay,
        progress: true,
    };
    print_report(&train(&opts)?)
}
