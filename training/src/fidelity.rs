//! Caption fidelity: generate videos from every test caption (or, to compare, every
//! training caption) of a model's data set and check with the evaluator that they
//! show what the caption says.
use crate::checkpoint::Meta;
use crate::model::SyncDraw;
use serde::Serialize;
use syncdraw_data::bouncing::contents;
use syncdraw_data::{Content, Split};
use syncdraw_evaluator::labels::{compare, Score, Tally};
use syncdraw_evaluator::{Evaluator, EvaluatorError};
use tch::{Kind, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum FidelityError {
    #[error(transparent)]
    Evaluator(#[from] EvaluatorError),
    #[error(transparent)]
    Caption(#[from] syncdraw_format::CaptionError),
    #[error("the model is trained on {0}: fidelity scores Bouncing MNIST digits only (its evaluator reads digits)")]
    NoReader(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct CaptionFidelity {
    pub caption: String,
    pub score: Score,
    /// The most frequent decoded caption (ties: the first seen).
    pub most_decoded: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FidelityReport {
    /// Conditioned on captions; false for an unconditional model.
    pub captions: bool,
    pub videos_per_caption: usize,
    /// One entry per distinct caption of the split (empty for an unconditional model).
    pub per_caption: Vec<CaptionFidelity>,
    /// Over all generated videos. For an unconditional model only `count` (videos
    /// in which the evaluator finds the data set's number of digits) is meaningful.
    pub overall: Score,
    /// Mean over captions of the per-caption exact fraction.
    pub mean_caption_exact: f64,
}

/// Generates `per_caption` videos (z ~ N(0, I), seeded) for each distinct caption
/// of `split` of the model's data set (the test split's digit–motion combinations
/// were never seen in training) and scores them with the evaluator. An
/// unconditional model draws `per_caption` x (number of captions) videos from the
/// prior and only the number of digits is checked. Refused for a model trained on
/// a folder set: the evaluator reads digits.
pub fn fidelity(
    model: &SyncDraw,
    meta: &Meta,
    evaluator: &Evaluator,
    split: Split,
    per_caption: usize,
    seed: u64,
) -> Result<FidelityReport, FidelityError> {
    let Some(data) = meta.data.generated() else {
        return Err(FidelityError::NoReader(meta.data.name()));
    };
    let mc = &model.config;
    let ec = &evaluator.meta.config;
    if mc.frames != ec.frames || mc.height != ec.size || mc.width != ec.size {
        return Err(FidelityError::Evaluator(EvaluatorError::Shape {
            want: format!("{} frames of {}x{}", ec.frames, ec.size, ec.size),
            got: format!(
                "a model of {} frames of {}x{}",
                mc.frames, mc.height, mc.width
            ),
        }));
    }
    let per_caption = per_caption.max(1);
    let tests = contents(data.digits, split);
    let device = model.device();
    tch::manual_seed(seed as i64);
    let mut per = Vec::new();
    let mut overall = Tally::default();
    let generate = |n: usize, ids: Option<&Tensor>| -> Tensor {
        let z = Tensor::randn([n as i64, mc.timesteps, mc.z_dim], (Kind::Float, device));
        let (video, _) = tch::no_grad(|| model.generate(&z, ids));
        video.reshape([n as i64, mc.frames, mc.height, mc.width])
    };
    match meta.captions() {
        Some(codec) => {
            for content in &tests {
                let caption = content.caption();
                let one = codec.encode(&caption)?;
                let ids: Vec<i64> = (0..per_caption).flat_map(|_| one.iter().copied()).collect();
                let ids = Tensor::from_slice(&ids)
                    .reshape([per_caption as i64, one.len() as i64])
                    .to_device(device);
                let decoded = evaluator.predict(&generate(per_caption, Some(&ids)))?;
                let mut tally = Tally::default();
                for d in &decoded {
                    let m = compare(d, content);
                    tally.add(m);
                    overall.add(m);
                }
                per.push(CaptionFidelity {
                    caption,
                    score: tally.score(),
                    most_decoded: most_common(&decoded),
                });
            }
        }
        None => {
            let n = per_caption * tests.len();
            let want = Content(vec![(0, syncdraw_data::Motion::UpDown); data.digits]);
            for start in (0..n).step_by(100) {
                let b = (n - start).min(100);
                for d in evaluator.predict(&generate(b, None))? {
                    overall.add(compare(&d, &want));
                }
            }
        }
    }
    let mean_caption_exact = if per.is_empty() {
        0.0
    } else {
        per.iter().map(|c| c.score.exact).sum::<f64>() / per.len() as f64
    };
    Ok(FidelityReport {
        captions: mc.caption.is_some(),
        videos_per_caption: per_caption,
        per_caption: per,
        overall: overall.score(),
        mean_caption_exact,
    })
}

fn most_common(decoded: &[Content]) -> String {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for d in decoded {
        let c = d.caption();
        match seen.iter_mut().find(|(s, _)| *s == c) {
            Some((_, n)) => *n += 1,
            None => seen.push((c, 1)),
        }
    }
    let best = seen.iter().map(|(_, n)| *n).max().unwrap_or(0);
    seen.into_iter()
        .find(|(_, n)| *n == best)
        .map(|(s, _)| s)
        .unwrap_or_default()
}
