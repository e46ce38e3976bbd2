//! `syncdraw-train`: build data, train, evaluate, sample and export Sync-DRAW.
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;
use syncdraw_training::adam::AdamConfig;
use syncdraw_training::batch::Batcher;
use syncdraw_training::checkpoint;
use syncdraw_training::data::dataset::default_cache_dir;
use syncdraw_training::data::{Dataset, DatasetConfig, DigitSource, Pixels, Split};
use syncdraw_training::eval::evaluate;
use syncdraw_training::evaluator::train::Recipe;
use syncdraw_training::model::{DecoderKind, ModelConfig, Variant};
use syncdraw_training::sample::{save_canvas_grid, save_gif, Layout};
use syncdraw_training::train::{train, CaptionEncoderKind, TrainOptions};
use tch::{Device, Kind, Tensor};

#[derive(Parser)]
#[command(
    name = "syncdraw-train",
    version,
    about = "Sync-DRAW on captioned Bouncing MNIST: data, training, evaluation, sampling, ONNX export"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// CPU threads for libtorch (default: all cores); for every command.
    #[arg(long, global = true, value_parser = positive::<i32>)]
    threads: Option<i32>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (or continue one with --resume).
    Train(TrainArgs),
    /// Print the test-split NLL bound of a checkpoint as JSON.
    Eval(EvalArgs),
    /// Render videos from a checkpoint to a GIF and a PNG of the drawing steps.
    Sample(SampleArgs),
    /// Export the generation path of a checkpoint to ONNX (docs/model-format.md).
    Export(ExportArgs),
    /// Generate (or load from the cache) a data set and print a summary.
    Data(DataArgs),
    /// Copy a checkpoint without its optimizer state: the weights to ship.
    Weights(WeightsArgs),
    /// Train or measure the caption-fidelity evaluator (real videos only).
    #[command(subcommand)]
    Evaluator(EvaluatorCommand),
    /// Caption fidelity of a checkpoint: do its videos show what the test captions say?
    Fidelity(FidelityArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
}

impl DeviceArg {
    fn device(self) -> Result<Device> {
        Ok(match self {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Auto => Device::cuda_if_available(),
            DeviceArg::Cuda => {
                if !tch::Cuda::is_available() {
                    bail!("--device cuda: libtorch sees no CUDA device");
                }
                Device::Cuda(0)
            }
        })
    }
}

#[derive(Args, Clone)]
struct DataOpts {
    /// Digits per video: 1 or 2.
    #[arg(long, default_value_t = 1)]
    digits: usize,
    #[arg(long, value_parser = positive::<usize>, default_value_t = 12_000)]
    train_size: usize,
    #[arg(long, value_parser = positive::<usize>, default_value_t = 2_000)]
    test_size: usize,
    #[command(flatten)]
    video: VideoOpts,
}

/// What every data set of a family shares: digit source, seed, frames and size.
#[derive(Args, Clone)]
struct VideoOpts {
    /// Seed of the data set (videos and the train/test digit images).
    #[arg(long, default_value_t = 1)]
    data_seed: u64,
    /// Frames per video.
    #[arg(long, default_value_t = 10)]
    frames: usize,
    /// Frame size in pixels (square; at least 29 for 28x28 digits).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Standard MNIST IDX files (images, labels; .gz accepted) instead of the
    /// bundled 5,000-digit CSV.
    #[arg(long, num_args = 2, value_names = ["IMAGES", "LABELS"])]
    mnist_idx: Option<Vec<PathBuf>>,
    /// Cache directory for generated data.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

impl VideoOpts {
    /// A data set config of `digits` digits with the default sizes.
    fn config(&self, digits: usize) -> Result<DatasetConfig> {
        if !(1..=2).contains(&digits) {
            bail!("--digits must be 1 or 2, got {digits}");
        }
        if self.size < 29 || self.frames == 0 {
            bail!("--size must be at least 29 (digits are 28x28) and --frames at least 1");
        }
        let mut c = DatasetConfig::new(digits);
        c.seed = self.data_seed;
        c.video.frames = self.frames;
        c.video.size = self.size;
        if let Some(p) = &self.mnist_idx {
            c.source = DigitSource::Idx {
                images: p[0].clone(),
                labels: p[1].clone(),
            };
        }
        Ok(c)
    }

    fn cache(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(default_cache_dir)
    }
}

impl DataOpts {
    fn config(&self) -> Result<DatasetConfig> {
        let mut c = self.video.config(self.digits)?;
        c.train_size = self.train_size;
        c.test_size = self.test_size;
        Ok(c)
    }

    fn cache(&self) -> PathBuf {
        self.video.cache()
    }
}

#[derive(Args)]
struct TrainArgs {
    /// Run directory (config, vocabulary, checkpoint, metrics).
    #[arg(long)]
    run_dir: PathBuf,
    #[command(flatten)]
    data: DataOpts,
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
    /// Binarised pixels (as the paper's NLL): a fresh Bernoulli sample of every
    /// training batch, one fixed sample of the test split.
    #[arg(long)]
    binarize: bool,
    #[arg(long, value_enum, default_value_t = Variant::Syncdraw)]
    variant: Variant,
    /// Total optimizer steps.
    #[arg(long, default_value_t = 20_000)]
    steps: u64,
    #[arg(long, value_parser = positive::<usize>, default_value_t = 64)]
    batch: usize,
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
    #[arg(long, value_parser = positive_f64, default_value_t = 1e-3)]
    lr: f64,
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
    /// Stop with a checkpoint after this many minutes.
    #[arg(long, value_parser = positive_f64)]
    max_minutes: Option<f64>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
}

#[derive(Args)]
struct EvalArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    /// Also compute the importance-weighted bound with K samples per video.
    #[arg(long, value_parser = positive::<usize>)]
    iwae_k: Option<usize>,
    /// Evaluate only the first N test videos.
    #[arg(long, value_parser = positive::<usize>)]
    limit: Option<usize>,
    #[arg(long, value_parser = positive::<usize>, default_value_t = 100)]
    batch: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

#[derive(Args)]
struct SampleArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    /// Caption to render (repeatable); default: the model's test captions.
    #[arg(long)]
    caption: Vec<String>,
    /// Videos per caption.
    #[arg(long, value_parser = positive::<usize>, default_value_t = 4)]
    count: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Scale of the prior noise.
    #[arg(long, value_parser = non_negative_f64, default_value_t = 1.0)]
    temperature: f64,
    /// Output directory: samples.gif, drawing.png and drawing.gif.
    #[arg(long)]
    out_dir: PathBuf,
}

#[derive(Args)]
struct ExportArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct WeightsArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct DataArgs {
    #[command(flatten)]
    data: DataOpts,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(t) = cli.threads {
        tch::set_num_threads(t);
    }
    match cli.command {
        Command::Train(a) => cmd_train(a),
        Command::Eval(a) => cmd_eval(a),
        Command::Sample(a) => cmd_sample(a),
        Command::Export(a) => {
            let summary = syncdraw_training::export::export(&a.checkpoint, &a.out)
                .with_context(|| format!("exporting {}", a.checkpoint.display()))?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
        Command::Weights(a) => {
            let ck = checkpoint::load(&a.checkpoint, Device::Cpu)?;
            checkpoint::save(&a.out, &ck.model, None, &ck.meta)?;
            eprintln!(
                "wrote {} (step {}, no optimizer state)",
                a.out.display(),
                ck.meta.step
            );
            Ok(())
        }
        Command::Evaluator(EvaluatorCommand::Train(a)) => cmd_evaluator_train(a),
        Command::Evaluator(EvaluatorCommand::Accuracy(a)) => cmd_evaluator_accuracy(a),
        Command::Fidelity(a) => cmd_fidelity(a),
        Command::Data(a) => {
            let config = a.data.config()?;
            for split in [Split::Train, Split::Test] {
                let d = Dataset::load_or_generate(&config, split, &a.data.cache())?;
                let mut captions: Vec<&str> = d.videos.iter().map(|v| v.caption.as_str()).collect();
                captions.sort();
                captions.dedup();
                println!(
                    "{split:?}: {} videos, {} distinct captions, e.g. {:?}",
                    d.len(),
                    captions.len(),
                    captions.first()
                );
            }
            Ok(())
        }
    }
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    let device = a.device.device()?;
    let dataset = a.data.config()?;
    let model = ModelConfig {
        variant: a.variant,
        frames: dataset.video.frames as i64,
        height: dataset.video.size as i64,
        width: dataset.video.size as i64,
        timesteps: a.timesteps,
        read_k: a.read_k,
        write_k: a.write_k,
        enc_size: a.enc_size,
        dec_size: a.dec_size,
        z_dim: a.z_dim,
        caption: None,
        decoder: a.decoder,
        bounded_windows: a.bounded_windows,
    };
    eprintln!(
        "training on {device:?} with {} libtorch threads",
        tch::get_num_threads()
    );
    let opts = TrainOptions {
        run_dir: a.run_dir,
        model,
        dataset,
        pixels: if a.binarize {
            Pixels::Binarized
        } else {
            Pixels::Grey
        },
        captions: a.captions.then_some(a.caption_encoder),
        batch: a.batch,
        steps: a.steps,
        seed: a.seed,
        checkpoint_every: a.checkpoint_every,
        eval_every: a.eval_every,
        eval_videos: a.eval_videos,
        log_every: a.log_every,
        resume: a.resume,
        device,
        adam: AdamConfig {
            lr: a.lr,
            ..AdamConfig::default()
        },
        cache_dir: a.data.cache(),
        time_limit: a.max_minutes.map(|m| Duration::from_secs_f64(m * 60.0)),
        init_from: a.init_from,
        progress: true,
    };
    let summary = train(&opts)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

fn cmd_eval(a: EvalArgs) -> Result<()> {
    let device = a.device.device()?;
    let ck = checkpoint::load(&a.checkpoint, device)?;
    let cache = a.cache_dir.unwrap_or_else(default_cache_dir);
    let test = Dataset::load_or_generate(&ck.meta.dataset, Split::Test, &cache)?;
    // The entropy floor of grey data: no model's reconstruction term goes below it.
    let floor = match ck.meta.pixels {
        Pixels::Grey => {
            let n = a.limit.unwrap_or(test.len()).min(test.len());
            Some(syncdraw_training::data::binarize::entropy_floor(
                &test.pixels[..n * test.video_len()],
                test.video_len(),
            ))
        }
        Pixels::Binarized => None,
    };
    let test = match ck.meta.pixels {
        Pixels::Grey => test,
        Pixels::Binarized => test.binarized(),
    };
    let batcher = Batcher::new(&test, ck.meta.captions().as_ref(), device)?;
    let r = evaluate(&ck.model, &batcher, a.batch, a.seed, a.iwae_k, a.limit);
    let out = serde_json::json!({
        "pixels": ck.meta.pixels.name(),
        "entropy_floor": floor,
        "excess_over_floor": floor.map(|f| r.nll - f),
        "checkpoint": a.checkpoint,
        "dataset": ck.meta.dataset.name(),
        "variant": ck.meta.model.variant.name(),
        "captions": ck.meta.model.caption.is_some(),
        "step": ck.meta.step,
        "test_nll": r.nll,
        "reconstruction": r.reconstruction,
        "kl": r.kl,
        "iwae": r.iwae,
        "iwae_k": r.iwae_k,
        "videos": r.videos,
        "unit": "nats per video",
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn cmd_sample(a: SampleArgs) -> Result<()> {
    let ck = checkpoint::load(&a.checkpoint, Device::Cpu)?;
    let c = &ck.meta.model;
    let codec = ck.meta.captions();
    let captions: Vec<String> = match (&codec, a.caption.is_empty()) {
        (None, _) => vec![String::new()],
        (Some(_), false) => a.caption.clone(),
        (Some(_), true) => {
            let mut caps: Vec<String> =
                syncdraw_training::data::bouncing::contents(ck.meta.dataset.digits, Split::Test)
                    .iter()
                    .map(|c| c.caption())
                    .collect();
            caps.truncate(4);
            caps
        }
    };
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("creating {}", a.out_dir.display()))?;
    let n = a.count.max(1);
    let mut ids = Vec::new();
    if let Some(codec) = &codec {
        for cap in &captions {
            let one = codec.encode(cap)?;
            for _ in 0..n {
                ids.extend_from_slice(&one);
            }
        }
    }
    let total = (captions.len() * n) as i64;
    tch::manual_seed(a.seed as i64);
    let z =
        Tensor::randn([total, c.timesteps, c.z_dim], (Kind::Float, Device::Cpu)) * a.temperature;
    let ids = (!ids.is_empty()).then(|| Tensor::from_slice(&ids).reshape([total, -1]));
    let (video, canvases) = tch::no_grad(|| ck.model.generate(&z, ids.as_ref()));
    let l = Layout {
        frames: c.frames as usize,
        height: c.height as usize,
        width: c.width as usize,
    };
    let video: Vec<f32> = Vec::try_from(video.flatten(0, -1))?;
    let gif = a.out_dir.join("samples.gif");
    save_gif(&gif, &video, total as usize, l, n, 20)?;
    let first: Vec<f32> = Vec::try_from(canvases.get(0).flatten(0, -1))?;
    let png = a.out_dir.join("drawing.png");
    save_canvas_grid(&png, &first, c.timesteps as usize, l)?;
    // The drawing as an animation: the N frames side by side, one GIF frame per step.
    let steps: Vec<f32> =
        Vec::try_from(canvases.get(0).transpose(0, 1).contiguous().flatten(0, -1))?;
    let drawing = a.out_dir.join("drawing.gif");
    let lt = Layout {
        frames: c.timesteps as usize,
        ..l
    };
    save_gif(
        &drawing,
        &steps,
        c.frames as usize,
        lt,
        c.frames as usize,
        40,
    )?;
    for (i, cap) in captions.iter().enumerate() {
        println!(
            "row {}: {}",
            i + 1,
            if cap.is_empty() {
                "(unconditional)"
            } else {
                cap
            }
        );
    }
    println!(
        "wrote {}, {} and {}",
        gif.display(),
        png.display(),
        drawing.display()
    );
    Ok(())
}

#[derive(Subcommand)]
enum EvaluatorCommand {
    /// Train the evaluator on freshly rendered real videos (train images only) and
    /// print its accuracy on the real 1- and 2-digit test splits as JSON.
    Train(EvaluatorTrainArgs),
    /// Print an evaluator's accuracy on real test videos as JSON.
    Accuracy(EvaluatorAccuracyArgs),
}

#[derive(Args)]
struct EvaluatorTrainArgs {
    /// Where to write the evaluator (safetensors).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = Recipe::default().steps)]
    steps: u64,
    /// Frames per step.
    #[arg(long, value_parser = positive::<usize>, default_value_t = Recipe::default().batch)]
    batch: usize,
    #[arg(long, default_value_t = Recipe::default().seed)]
    seed: u64,
    /// Peak learning rate (cosine decay to 1/50 of it).
    #[arg(long, value_parser = positive_f64, default_value_t = Recipe::default().lr)]
    lr: f64,
    /// Strength of the random affine distortion of training digits (0: none).
    #[arg(long, default_value_t = Recipe::default().distort)]
    distort: f32,
    /// The data sets it is for: it learns from their train image pool and is
    /// measured on their 1- and 2-digit test splits (the models' --data-seed).
    #[command(flatten)]
    data: VideoOpts,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    #[arg(long, value_parser = positive::<u64>, default_value_t = 100)]
    log_every: u64,
    /// The detector's conv layers, e.g. "32k5s2,64k3p" (channels, odd kernel,
    /// stride, 2x2 pooling); their strides and poolings set the grid.
    #[arg(long, default_value = syncdraw_training::evaluator::net::DEFAULT_LAYERS)]
    layers: String,
    /// Split every cell of the layers' grid into N x N finer cells (1: no split;
    /// 2 turns the default 4-pixel cells into 2-pixel ones).
    #[arg(long, default_value_t = syncdraw_training::evaluator::net::DEFAULT_SUBCELLS,
          value_parser = clap::value_parser!(i64).range(1..=4))]
    subcells: i64,
    /// Fraction of training frames with one digit (the rest have two).
    #[arg(long, value_parser = fraction, default_value_t = Recipe::default().one_digit_fraction)]
    one_digit_fraction: f64,
    /// Stop training after this many minutes (the learning-rate schedule follows it).
    #[arg(long, value_parser = positive_f64)]
    max_minutes: Option<f64>,
    /// More training digits: MNIST IDX files (images, labels; .gz accepted), e.g.
    /// the 60,000 training digits that `bash scripts/extra-digits.sh` fetches.
    /// Images that are also among the data set's digits are skipped, so the test
    /// images stay unseen.
    #[arg(long, num_args = 2, value_names = ["IMAGES", "LABELS"])]
    extra_mnist_idx: Option<Vec<PathBuf>>,
}

#[derive(Args)]
struct EvaluatorAccuracyArgs {
    #[arg(long)]
    evaluator: PathBuf,
    /// Only the 1- or the 2-digit test split (default: both).
    #[arg(long)]
    digits: Option<usize>,
    /// Only the first N test videos of each split.
    #[arg(long, value_parser = positive::<usize>)]
    limit: Option<usize>,
    /// Also write every misread video (index, true and read captions, how far
    /// apart its digits get) and every digit image read as another digit where it
    /// stands clear (how it was read) to this JSON file.
    #[arg(long)]
    misread: Option<PathBuf>,
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
}

#[derive(Args)]
struct FidelityArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    #[arg(long)]
    evaluator: PathBuf,
    #[arg(long, value_parser = positive::<usize>, default_value_t = 10)]
    videos_per_caption: usize,
    /// Whose captions: the test split's (digit–motion combinations never seen in
    /// training; the fidelity the issue asks for) or, to compare, the training split's.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    captions: SplitArg,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
    Train,
    Test,
}

impl SplitArg {
    fn split(self) -> Split {
        match self {
            SplitArg::Train => Split::Train,
            SplitArg::Test => Split::Test,
        }
    }

    fn name(self) -> &'static str {
        match self {
            SplitArg::Train => "train",
            SplitArg::Test => "test",
        }
    }
}

/// What `evaluator accuracy` reports on the real test splits, by split name
/// ("1_digit_test", "2_digit_test").
struct AccuracyReport {
    /// Scores of every video, and "<split>_apart": the two-digit videos whose
    /// digits are ever `APART_PIXELS` apart.
    scores: std::collections::BTreeMap<String, syncdraw_training::evaluator::labels::Score>,
    /// "<split>_images": what the digit images read as another digit cost.
    images: serde_json::Map<String, serde_json::Value>,
    /// "<split>": the misread videos; "<split>_images": the misread images.
    misread: serde_json::Map<String, serde_json::Value>,
}

impl AccuracyReport {
    /// The scores and image summaries, as printed.
    fn accuracy_json(&self) -> Result<serde_json::Value> {
        let mut all = self.images.clone();
        for (k, v) in &self.scores {
            all.insert(k.clone(), serde_json::to_value(v)?);
        }
        Ok(all.into())
    }
}

fn evaluator_accuracy(
    ev: &syncdraw_training::evaluator::Evaluator,
    splits: &[usize],
    limit: Option<usize>,
    cache: &std::path::Path,
) -> Result<AccuracyReport> {
    let mut r = AccuracyReport {
        scores: Default::default(),
        images: Default::default(),
        misread: Default::default(),
    };
    for &d in splits {
        let test = syncdraw_training::evaluator::real_test_split(&ev.meta.data, d, None, cache)?;
        let a = ev.assess(&test, limit)?;
        let name = format!("{d}_digit_test");
        r.scores.insert(name.clone(), a.all);
        if let Some(apart) = a.apart {
            r.scores.insert(format!("{name}_apart"), apart);
        }
        r.images.insert(
            format!("{name}_images"),
            serde_json::to_value(&a.image_summary)?,
        );
        let hard: Vec<_> = a
            .images
            .iter()
            .filter(|(_, reading)| reading.misread())
            .map(|(&image, reading)| serde_json::json!({ "image": image, "reading": reading }))
            .collect();
        r.misread
            .insert(name.clone(), serde_json::to_value(&a.misread)?);
        r.misread.insert(format!("{name}_images"), hard.into());
    }
    Ok(r)
}

fn cmd_evaluator_train(a: EvaluatorTrainArgs) -> Result<()> {
    use syncdraw_training::evaluator::{train, EvaluatorConfig};
    let data = a.data.config(1)?;
    let digits = syncdraw_training::data::Digits::load(&data.source)?;
    let opts = train::TrainOptions {
        recipe: Recipe {
            steps: a.steps,
            batch: a.batch,
            seed: a.seed,
            lr: a.lr,
            distort: a.distort,
            one_digit_fraction: a.one_digit_fraction,
            extra_digits: a.extra_mnist_idx.map(|p| DigitSource::Idx {
                images: p[0].clone(),
                labels: p[1].clone(),
            }),
        },
        device: a.device.device()?,
        log_every: a.log_every,
        time_limit: a.max_minutes.map(|m| Duration::from_secs_f64(m * 60.0)),
    };
    eprintln!(
        "training the evaluator on {:?} with {} libtorch threads",
        opts.device,
        tch::get_num_threads()
    );
    let mut config = EvaluatorConfig::new(data.video.frames as i64, data.video.size as i64);
    config.layers =
        syncdraw_training::evaluator::net::parse_layers(&a.layers).map_err(anyhow::Error::msg)?;
    config.subcells = a.subcells;
    let start = std::time::Instant::now();
    let mut ev = train::train(&config, &data, &digits, &opts, |step, loss| {
        eprintln!(
            "step {step}: loss {loss:.4} ({:.0} s)",
            start.elapsed().as_secs_f64()
        );
    })?;
    let report = evaluator_accuracy(&ev, &[1, 2], None, &a.data.cache())?;
    ev.meta.accuracy = report.scores.clone();
    ev.save(&a.out)?;
    let out = serde_json::json!({
        "evaluator": a.out,
        "steps": ev.meta.training.recipe.steps,
        "train_seconds": ev.meta.training.seconds,
        "extra_images": ev.meta.training.extra_images,
        "accuracy": report.accuracy_json()?,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn cmd_evaluator_accuracy(a: EvaluatorAccuracyArgs) -> Result<()> {
    let ev = syncdraw_training::evaluator::Evaluator::load(&a.evaluator, a.device.device()?)?;
    let splits = match a.digits {
        None => vec![1, 2],
        Some(d @ 1..=2) => vec![d],
        Some(d) => bail!("--digits must be 1 or 2, got {d}"),
    };
    let cache = a.cache_dir.unwrap_or_else(default_cache_dir);
    let report = evaluator_accuracy(&ev, &splits, a.limit, &cache)?;
    if let Some(path) = &a.misread {
        std::fs::write(path, serde_json::to_string_pretty(&report.misread)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let acc = report.accuracy_json()?;
    println!(
        "{}",
        serde_json::to_string_pretty(
            &serde_json::json!({ "evaluator": a.evaluator, "accuracy": acc })
        )?
    );
    Ok(())
}

fn cmd_fidelity(a: FidelityArgs) -> Result<()> {
    let device = a.device.device()?;
    let ev = syncdraw_training::evaluator::Evaluator::load(&a.evaluator, device)?;
    let ck = checkpoint::load(&a.checkpoint, device)?;
    let r = syncdraw_training::evaluator::fidelity::fidelity(
        &ck.model,
        &ck.meta,
        &ev,
        a.captions.split(),
        a.videos_per_caption,
        a.seed,
    )?;
    let out = if r.captions {
        serde_json::json!({
            "checkpoint": a.checkpoint,
            "evaluator": a.evaluator,
            "dataset": ck.meta.dataset.name(),
            "step": ck.meta.step,
            "videos_per_caption": r.videos_per_caption,
            "split": a.captions.name(),
            "captions": r.per_caption.len(),
            "overall": r.overall,
            "mean_caption_exact": r.mean_caption_exact,
            "per_caption": r.per_caption,
        })
    } else {
        eprintln!("unconditional model: no caption to check; reporting how often the evaluator finds {} digit(s)", ck.meta.dataset.digits);
        serde_json::json!({
            "checkpoint": a.checkpoint,
            "evaluator": a.evaluator,
            "dataset": ck.meta.dataset.name(),
            "step": ck.meta.step,
            "unconditional": true,
            "videos": r.overall.videos,
            "digit_count_fraction": r.overall.count,
        })
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Parses an integer flag that must be at least 1.
fn positive<T>(s: &str) -> std::result::Result<T, String>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
{
    match s.trim().parse::<T>() {
        Ok(v) if v >= T::from(1) => Ok(v),
        _ => Err(format!("expected a whole number of at least 1, got {s:?}")),
    }
}

/// Parses a real flag that must be finite and above 0.
fn positive_f64(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a finite number above 0, got {s:?}")),
    }
}

/// Parses a real flag that must be finite and at least 0.
fn non_negative_f64(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("expected a finite number of at least 0, got {s:?}")),
    }
}

/// Parses a real flag that must lie in [0, 1].
fn fraction(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a number from 0 to 1, got {s:?}")),
    }
}
