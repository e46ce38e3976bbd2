//! `syncdraw-train export`: a checkpoint's generation path as one ONNX file
//! (docs/model-format.md).
//!
//! The graph is not written by hand: [`Decoder::generate`](crate::model::decoder::Decoder::generate),
//! the same function that produces videos on libtorch, runs once on an
//! [`OnnxRecorder`], which writes every tensor operation down as an ONNX node
//! (docs/architecture.md, "Why training and export cannot drift").
use crate::backend::onnx::{Dim, ElemType, OnnxRecorder, RecordError, Value};
use crate::checkpoint::{self, CheckpointError, Meta};
use crate::model::{CaptionConfig, SyncDraw};
use onnx_protobuf::{Message, ModelProto};
use std::fmt;
use std::path::{Path, PathBuf};
use syncdraw_data::bouncing::Split;
use syncdraw_format::{keys, CaptionCodec};
use tch::Device;

/// `syncdraw.format_version` of the files written here (models with a word
/// caption encoder are written as version 1).
pub use syncdraw_format::FORMAT_VERSION;
/// How many example captions a caption-conditioned model carries.
const EXAMPLES: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("checkpoint {path} cannot be exported: {reason}")]
    Inconsistent { path: PathBuf, reason: String },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("cannot serialise the ONNX model: {0}")]
    Serialise(String),
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// What [`export`] wrote (printable with `Display`, or as JSON with serde).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExportSummary {
    pub path: PathBuf,
    /// Size of the ONNX file.
    pub bytes: u64,
    pub nodes: usize,
    pub initializers: usize,
    /// Trained f32 values stored in the file (decoder and caption encoder only).
    pub parameters: usize,
    pub variant: String,
    pub frames: i64,
    /// 1 (grey) or 3 (R, G, B).
    pub channels: i64,
    pub height: i64,
    pub width: i64,
    pub timesteps: i64,
    pub z_dim: i64,
    /// L; 0 for an unconditional model.
    pub caption_length: i64,
    pub training_steps: u64,
    /// The `metadata_props` written, in file order.
    pub metadata: Vec<(String, String)>,
}

impl fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wrote {} ({:.1} MB): {} model, {} frames of {}x{} {}, T = {}, z_dim = {}, {}, \
             {} nodes, {} parameters, {} training steps",
            self.path.display(),
            self.bytes as f64 / 1e6,
            self.variant,
            self.frames,
            self.height,
            self.width,
            if self.channels == 3 { "RGB" } else { "grey" },
            self.timesteps,
            self.z_dim,
            if self.caption_length > 0 {
                format!("captions of up to {} words", self.caption_length)
            } else {
                "unconditional".to_string()
            },
            self.nodes,
            self.parameters,
            self.training_steps,
        )
    }
}

/// Exports the checkpoint at `checkpoint` to the ONNX file `out`.
///
/// The checkpoint is read completely before anything is written; the file is
/// written to a temporary name next to `out` and renamed, so `out` is either the
/// complete new model or untouched.
pub fn export(checkpoint: &Path, out: &Path) -> Result<ExportSummary, ExportError> {
    let ckpt = checkpoint::load(checkpoint, Device::Cpu)?;
    if same_file(checkpoint, out) {
        return Err(ExportError::Write {
            path: out.to_path_buf(),
            reason: "that is the checkpoint itself".into(),
        });
    }
    export_model(&ckpt.model, &ckpt.meta, out).map_err(|e| match e {
        ExportError::Inconsistent { reason, .. } => ExportError::Inconsistent {
            path: checkpoint.to_path_buf(),
            reason,
        },
        e => e,
    })
}

/// Exports an in-memory model described by `meta` to the ONNX file `out`.
pub fn export_model(
    model: &SyncDraw,
    meta: &Meta,
    out: &Path,
) -> Result<ExportSummary, ExportError> {
    let (proto, parameters) = record(model, meta)?;
    let bytes = proto
        .write_to_bytes()
        .map_err(|e| ExportError::Serialise(e.to_string()))?;
    write_atomically(out, &bytes)?;
    let graph = proto.graph.as_ref().expect("build sets the graph");
    let c = &meta.model;
    Ok(ExportSummary {
        path: out.to_path_buf(),
        bytes: bytes.len() as u64,
        nodes: graph.node.len(),
        initializers: graph.initializer.len(),
        parameters,
        variant: c.variant.name().to_string(),
        frames: c.frames,
        channels: c.channels,
        height: c.height,
        width: c.width,
        timesteps: c.timesteps,
        z_dim: c.z_dim,
        caption_length: c.caption.as_ref().map_or(0, |cc| cc.length()),
        training_steps: meta.total_steps(),
        metadata: metadata(meta),
    })
}

/// Records the generation path of `model` into an ONNX model (not yet written),
/// with the number of trained f32 values in it.
fn record(model: &SyncDraw, meta: &Meta) -> Result<(ModelProto, usize), ExportError> {
    check(model, meta)?;
    let c = &meta.model;
    let batch = || Dim::Named("batch".into());
    let mut rec = OnnxRecorder::new();
    let z = rec.input(
        "z",
        ElemType::Float,
        &[batch(), Dim::Fixed(c.timesteps), Dim::Fixed(c.z_dim)],
    );
    let caption: Option<Value> = c.caption.as_ref().map(|cc| {
        rec.input(
            "caption",
            ElemType::Int64,
            &[batch(), Dim::Fixed(cc.length())],
        )
    });
    let generated = {
        let _guard = tch::no_grad_guard();
        let dec = model.decoder.bind(&mut rec);
        dec.generate(&mut rec, &z, caption.as_ref())
    };
    let (n, ch, h, w) = (
        Dim::Fixed(c.frames),
        Dim::Fixed(c.channels),
        Dim::Fixed(c.height),
        Dim::Fixed(c.width),
    );
    rec.output(
        &generated.video,
        "video",
        ElemType::Float,
        &[batch(), n.clone(), ch.clone(), h.clone(), w.clone()],
    );
    rec.output(
        &generated.canvases,
        "canvases",
        ElemType::Float,
        &[batch(), Dim::Fixed(c.timesteps), n, ch, h, w],
    );
    let doc = format!(
        "Sync-DRAW ({}) generation path: z [batch, T, z_dim]{} -> video, canvases. \
         See docs/model-format.md of syncdraw.",
        c.variant.name(),
        if caption.is_some() {
            " and caption [batch, L]"
        } else {
            ""
        }
    );
    let parameters = rec.parameter_values();
    Ok((
        rec.finish("syncdraw-decoder", &doc, &metadata(meta))?,
        parameters,
    ))
}

/// Refuses models the contract cannot describe.
fn check(model: &SyncDraw, meta: &Meta) -> Result<(), ExportError> {
    let bad = |reason: String| ExportError::Inconsistent {
        path: PathBuf::new(),
        reason,
    };
    if model.config != meta.model {
        return Err(bad(
            "the model's configuration differs from the one in its description".into(),
        ));
    }
    let c = &meta.model;
    for (what, v) in [
        (keys::FRAMES, c.frames),
        (keys::HEIGHT, c.height),
        (keys::WIDTH, c.width),
        (keys::TIMESTEPS, c.timesteps),
        (keys::Z_DIM, c.z_dim),
    ] {
        if v < 1 {
            return Err(bad(format!("{what} is {v}")));
        }
    }
    if c.channels != 1 && c.channels != 3 {
        return Err(bad(format!(
            "{} is {}: only 1 (grey) and 3 (R, G, B) are defined",
            keys::CHANNELS,
            c.channels
        )));
    }
    match (&c.caption, meta.captions()) {
        (None, _) => {}
        (Some(_), None) => {
            return Err(bad(
                "the model reads captions but the checkpoint has no grammar or vocabulary".into(),
            ))
        }
        (Some(CaptionConfig::Slots(sc)), Some(CaptionCodec::Grammar(g))) => {
            g.validate()
                .map_err(|e| bad(format!("caption grammar: {e}")))?;
            let sizes: Vec<i64> = g.slots.iter().map(|s| s.values.len() as i64).collect();
            let want: Vec<i64> = sc.slots.iter().map(|s| s.values).collect();
            if sizes != want || g.max_objects as i64 != sc.objects {
                return Err(bad(format!(
                    "the grammar's slots ({sizes:?} values, {} objects) differ from the caption \
                     encoder's ({want:?}, {})",
                    g.max_objects, sc.objects
                )));
            }
        }
        (Some(CaptionConfig::Words(wc)), Some(CaptionCodec::Words { vocabulary, .. })) => {
            if vocabulary.len() as i64 != wc.vocab_size {
                return Err(bad(format!(
                    "the vocabulary has {} tokens but the caption encoder {}",
                    vocabulary.len(),
                    wc.vocab_size
                )));
            }
            if vocabulary.pad_id != crate::model::caption::PAD_ID {
                return Err(bad(format!(
                    "the vocabulary's pad id is {}, the caption encoder masks {}",
                    vocabulary.pad_id,
                    crate::model::caption::PAD_ID
                )));
            }
            if wc.length < 1 {
                return Err(bad(format!("caption length is {}", wc.length)));
            }
        }
        (Some(_), Some(_)) => {
            return Err(bad(
                "the caption encoder and the checkpoint's caption description disagree".into(),
            ))
        }
    }
    Ok(())
}

/// The `metadata_props` of the exported model (docs/model-format.md), in order.
pub fn metadata(meta: &Meta) -> Vec<(String, String)> {
    let c = &meta.model;
    let codec = meta.captions();
    // Format 2 describes captions by a grammar; a model with a word encoder can
    // only be described by format 1.
    let (version, grammar, vocabulary) = match &codec {
        Some(CaptionCodec::Words { vocabulary, .. }) => (1, None, Some(vocabulary)),
        Some(CaptionCodec::Grammar(g)) => (FORMAT_VERSION, Some(g), None),
        None => (FORMAT_VERSION, None, None),
    };
    let mut entries: Vec<(&str, String)> = vec![
        (keys::FORMAT_VERSION, version.to_string()),
        (keys::FRAMES, c.frames.to_string()),
        (keys::HEIGHT, c.height.to_string()),
        (keys::WIDTH, c.width.to_string()),
        (keys::CHANNELS, c.channels.to_string()),
        (keys::TIMESTEPS, c.timesteps.to_string()),
        (keys::Z_DIM, c.z_dim.to_string()),
        (
            keys::CAPTION_LENGTH,
            c.caption.as_ref().map_or(0, |cc| cc.length()).to_string(),
        ),
    ];
    if version == 1 {
        entries.push((
            keys::VOCABULARY,
            serde_json::to_string(&vocabulary).expect("vocabulary serialises"),
        ));
    } else {
        entries.push((
            keys::CAPTION_GRAMMAR,
            serde_json::to_string(&grammar).expect("grammar serialises"),
        ));
    }
    entries.extend([
        (keys::DATASET, meta.data.name()),
        (keys::VARIANT, c.variant.name().into()),
        (
            keys::EXAMPLE_CAPTIONS,
            serde_json::to_string(&example_captions(meta)).expect("strings serialise"),
        ),
        (keys::TRAINING_STEPS, meta.total_steps().to_string()),
        (
            keys::TEST_NLL,
            // serde_json writes a non-finite value as null too.
            serde_json::to_string(&meta.test_nll).expect("a number serialises"),
        ),
    ]);
    entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// A few captions to try: held-out (test-split) captions first, then training ones,
/// spread over the list, keeping only captions the vocabulary can encode at length L.
pub fn example_captions(meta: &Meta) -> Vec<String> {
    let Some(codec) = meta.captions() else {
        return vec![];
    };
    let mut out: Vec<String> = Vec::new();
    for (split, want) in [(Split::Test, EXAMPLES / 2), (Split::Train, EXAMPLES)] {
        let captions: Vec<String> = meta
            .data
            .captions(split)
            .into_iter()
            .filter(|c| codec.encode(c).is_ok())
            .collect();
        let take = want.min(EXAMPLES - out.len()).min(captions.len());
        for i in 0..take {
            // Evenly spaced, so the examples show different digits and motions.
            let c = &captions[i * captions.len() / take];
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
    }
    out
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Writes `bytes` to a temporary file next to `path`, syncs it and renames it over
/// `path`. On any failure the temporary file is removed and `path` is untouched.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    syncdraw_data::atomic::replace(path, |tmp| std::fs::write(tmp, bytes)).map_err(|e| {
        ExportError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })
}
