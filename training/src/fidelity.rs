//! Caption fidelity: generate videos from every test caption (or, to compare, every
//! training caption) of a model's data set and check that they show what the
//! caption says. Two readers: the digit evaluator (syncdraw-evaluator, trained on
//! real Bouncing MNIST) for models trained on generated Bouncing MNIST
//! ([`fidelity`]), and the rule-based moving-shapes reader (evaluator/src/shapes.rs)
//! for models trained on an imported folder set whose captions follow the
//! moving-shapes grammar ([`shapes_fidelity`]).
use crate::checkpoint::Meta;
use crate::model::SyncDraw;
use crate::source::DataSource;
use serde::Serialize;
use syncdraw_data::bouncing::contents;
use syncdraw_data::shapes::{self, ShapeVideo};
use syncdraw_data::{Content, Motion, Split};
use syncdraw_evaluator::labels::{compare, Score, Tally};
use syncdraw_evaluator::shapes::{read, read_grey, ShapesError};
use syncdraw_evaluator::{Evaluator, EvaluatorError};
use tch::{Device, Kind, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum FidelityError {
    #[error(transparent)]
    Evaluator(#[from] EvaluatorError),
    #[error(transparent)]
    Caption(#[from] syncdraw_format::CaptionError),
    #[error(transparent)]
    Shapes(#[from] ShapesError),
    #[error("the model is trained on {data}, whose captions are \"{form}\": fidelity reads Bouncing MNIST digits (generated data, with the digit evaluator) and moving shapes (an imported set whose captions are \"{shapes}\", the grammar of `syncdraw-train data --make-shapes` and `data --grammar shapes`); no reader knows this grammar")]
    NoReader {
        data: String,
        /// The model's grammar with its values spelled out.
        form: String,
        /// The moving-shapes grammar, the same way.
        shapes: String,
    },
    #[error("the model is trained on {0}, Bouncing MNIST digits: its videos are read by the digit evaluator, not by the moving-shapes reader")]
    NotShapes(String),
    #[error("the model is trained on {0}, moving shapes: its videos are read by the moving-shapes reader, not by the digit evaluator")]
    NotDigits(String),
}

/// Which reader scores a model's videos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// The digit evaluator: generated Bouncing MNIST ([`fidelity`]).
    Digits,
    /// The rule-based moving-shapes reader: a folder set whose grammar is the
    /// moving-shapes grammar, in colour or grey ([`shapes_fidelity`]).
    Shapes,
}

impl Reader {
    /// The reader for a model trained on `data`; a folder set with any other
    /// grammar than the moving-shapes one has none.
    pub fn of(data: &DataSource) -> Result<Reader, FidelityError> {
        match data {
            DataSource::Generated(_) => Ok(Reader::Digits),
            DataSource::Folder(f) if f.grammar == shapes::grammar() => Ok(Reader::Shapes),
            DataSource::Folder(f) => Err(FidelityError::NoReader {
                data: data.name(),
                form: f.grammar.form(),
                shapes: shapes::grammar().form(),
            }),
        }
    }
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

/// `n` videos from the prior, z ~ N(0, temperature² I) from libtorch's generator
/// (seed it first), for caption ids `ids` ([n, L]; None for an unconditional
/// model): [n, N, C, H, W].
pub fn draw(model: &SyncDraw, n: usize, ids: Option<&Tensor>, temperature: f64) -> Tensor {
    let mc = &model.config;
    let z = Tensor::randn(
        [n as i64, mc.timesteps, mc.z_dim],
        (Kind::Float, model.device()),
    ) * temperature;
    let (video, _) = tch::no_grad(|| model.generate(&z, ids));
    video
}

/// Generates `per_caption` videos (z ~ N(0, temperature² I), seeded; the
/// element's `temperature` property) for each distinct caption
/// of `split` of the model's data set (the test split's digit–motion combinations
/// were never seen in training) and scores them with the evaluator. An
/// unconditional model draws `per_caption` x (number of captions) videos from the
/// prior and only the number of digits is checked. Refused for a model trained on
/// a folder set: the evaluator reads digits (a moving-shapes set is scored by
/// [`shapes_fidelity`]).
pub fn fidelity(
    model: &SyncDraw,
    meta: &Meta,
    evaluator: &Evaluator,
    split: Split,
    per_caption: usize,
    seed: u64,
    temperature: f64,
) -> Result<FidelityReport, FidelityError> {
    let data = match (Reader::of(&meta.data)?, meta.data.generated()) {
        (Reader::Digits, Some(data)) => data,
        _ => return Err(FidelityError::NotDigits(meta.data.name())),
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
        draw(model, n, ids, temperature).reshape([n as i64, mc.frames, mc.height, mc.width])
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

/// Fractions of a caption's (or all) generated videos that the moving-shapes
/// reader reads as requested.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ShapeScore {
    pub videos: usize,
    /// Every attribute read as requested: colour, shape and motion (for a grey
    /// model, which draws no colour, shape and motion).
    pub exact: f64,
    /// Colour right; None (null) for a grey model.
    pub colour: Option<f64>,
    /// Square, circle or triangle right.
    pub shape: f64,
    /// Axis of motion right.
    pub motion: f64,
    /// A shape was found at all (in some frame the brightest value reaches
    /// `syncdraw_evaluator::shapes::MIN_PEAK`); a video without one is wrong on
    /// every attribute.
    pub seen: f64,
}

/// Counts behind a [`ShapeScore`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShapeTally {
    pub videos: usize,
    pub seen: usize,
    pub exact: usize,
    pub colour: usize,
    pub shape: usize,
    pub motion: usize,
}

impl ShapeTally {
    fn add(&mut self, want: &ShapeVideo, got: Option<&ShapeRead>) {
        self.videos += 1;
        let Some(got) = got else { return };
        // A grey reading has no colour; its colour counts as right so that
        // `exact` is shape and motion, and the colour fraction is not reported.
        let colour = got.colour.is_none_or(|c| c == want.colour);
        let shape = got.shape == want.shape;
        let motion = got.motion == want.motion;
        self.seen += 1;
        self.colour += usize::from(colour);
        self.shape += usize::from(shape);
        self.motion += usize::from(motion);
        self.exact += usize::from(colour && shape && motion);
    }

    pub fn merge(&mut self, other: &ShapeTally) {
        self.videos += other.videos;
        self.seen += other.seen;
        self.exact += other.exact;
        self.colour += other.colour;
        self.shape += other.shape;
        self.motion += other.motion;
    }

    /// The fractions; `colour` false for grey videos (no colour fraction).
    pub fn score(&self, colour: bool) -> ShapeScore {
        let f = |k: usize| {
            if self.videos == 0 {
                0.0
            } else {
                k as f64 / self.videos as f64
            }
        };
        ShapeScore {
            videos: self.videos,
            exact: f(self.exact),
            colour: colour.then(|| f(self.colour)),
            shape: f(self.shape),
            motion: f(self.motion),
            seen: f(self.seen),
        }
    }
}

/// What the reader made of one video: colour (None for grey), shape, motion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShapeRead {
    colour: Option<usize>,
    shape: usize,
    motion: Motion,
}

impl ShapeRead {
    fn caption(&self) -> String {
        match self.colour {
            Some(colour) => ShapeVideo {
                shape: self.shape,
                colour,
                motion: self.motion,
            }
            .caption(),
            None => format!(
                "a {} is moving {}",
                shapes::SHAPES[self.shape],
                self.motion.words()
            ),
        }
    }
}

/// What [`ShapeCaptionFidelity::most_decoded`] says of a video in which no
/// shape was found.
pub const NO_SHAPE: &str = "(no shape found)";

/// One caption's videos, read by the moving-shapes reader.
#[derive(Debug, Clone, Serialize)]
pub struct ShapeCaptionFidelity {
    pub caption: String,
    pub score: ShapeScore,
    /// The most frequent reading (ties: the first seen): a caption of the
    /// moving-shapes grammar, without the colour for a grey model, or
    /// [`NO_SHAPE`].
    pub most_decoded: String,
    /// The counts behind `score`.
    #[serde(skip)]
    pub tally: ShapeTally,
}

/// A moving-shapes model's fidelity: per caption and over all videos.
#[derive(Debug, Clone, Serialize)]
pub struct ShapesFidelityReport {
    /// Conditioned on captions; false for an unconditional model.
    pub captions: bool,
    /// What is read and scored: colour, shape and motion for a colour model;
    /// shape and motion for a grey one.
    pub attributes: Vec<&'static str>,
    pub videos_per_caption: usize,
    /// One entry per distinct caption of the split (empty for an unconditional model).
    pub per_caption: Vec<ShapeCaptionFidelity>,
    /// Over all generated videos. For an unconditional model only `videos` and
    /// `seen` (videos in which a shape is found) are meaningful.
    pub overall: ShapeScore,
    /// Mean over captions of the per-caption exact fraction.
    pub mean_caption_exact: f64,
}

impl ShapesFidelityReport {
    /// The report of per-caption rows ([`score_shape_videos`]) of `colour` (or
    /// grey) videos: the overall score is that of all their videos.
    pub fn from_rows(
        per_caption: Vec<ShapeCaptionFidelity>,
        videos_per_caption: usize,
        colour: bool,
    ) -> ShapesFidelityReport {
        let mut all = ShapeTally::default();
        for row in &per_caption {
            all.merge(&row.tally);
        }
        let mean_caption_exact = if per_caption.is_empty() {
            0.0
        } else {
            per_caption.iter().map(|c| c.score.exact).sum::<f64>() / per_caption.len() as f64
        };
        ShapesFidelityReport {
            captions: true,
            attributes: attributes(colour),
            videos_per_caption,
            per_caption,
            overall: all.score(colour),
            mean_caption_exact,
        }
    }
}

fn attributes(colour: bool) -> Vec<&'static str> {
    if colour {
        vec!["colour", "shape", "motion"]
    } else {
        vec!["shape", "motion"]
    }
}

/// Reads every video of `videos`, [n, frames, channels, height, width] in [0, 1]
/// with 3 channels (R, G, B) or 1 (grey); None where no shape is found. Also
/// whether the videos are in colour. Panics on a tensor of another rank.
fn read_shape_videos(videos: &Tensor) -> Result<(Vec<Option<ShapeRead>>, bool), FidelityError> {
    let size: Vec<usize> = videos.size().iter().map(|&s| s as usize).collect();
    let &[n, frames, channels, height, width] = size.as_slice() else {
        panic!("videos are [n, frames, channels, height, width]; got {size:?}")
    };
    let values = Vec::<f32>::try_from(
        &videos
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .reshape([-1]),
    )
    .expect("a float tensor");
    let per = frames * channels * height * width;
    let mut out = Vec::with_capacity(n);
    for video in values.chunks_exact(per.max(1)).take(n) {
        let reading = match channels {
            1 => read_grey(video, frames, height, width).map(|r| ShapeRead {
                colour: None,
                shape: r.shape,
                motion: r.motion,
            }),
            _ => read(video, frames, height, width).map(|r| ShapeRead {
                colour: Some(r.video.colour),
                shape: r.video.shape,
                motion: r.video.motion,
            }),
        };
        match reading {
            Ok(r) => out.push(Some(r)),
            Err(ShapesError::Empty) => out.push(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok((out, channels != 1))
}

/// Scores videos made (or meant) for `caption`, a caption of the moving-shapes
/// grammar: each of `videos` ([n, frames, channels, height, width] in [0, 1],
/// 3 channels R, G, B or 1 grey) is read by the moving-shapes reader and compared
/// with the caption. The same function scores generated videos
/// ([`shapes_fidelity`]) and, to check the scoring, real ones.
pub fn score_shape_videos(
    caption: &str,
    videos: &Tensor,
) -> Result<ShapeCaptionFidelity, FidelityError> {
    let objects = shapes::grammar().parse(caption)?;
    let [colour, shape, motion] = objects[0][..] else {
        unreachable!("the moving-shapes grammar has three slots and one object")
    };
    let want = ShapeVideo {
        shape,
        colour,
        motion: Motion::ALL[motion],
    };
    let (readings, in_colour) = read_shape_videos(videos)?;
    let mut tally = ShapeTally::default();
    let mut seen: Vec<(String, usize)> = Vec::new();
    for r in &readings {
        tally.add(&want, r.as_ref());
        let c = r.map_or_else(|| NO_SHAPE.to_string(), |r| r.caption());
        match seen.iter_mut().find(|(s, _)| *s == c) {
            Some((_, k)) => *k += 1,
            None => seen.push((c, 1)),
        }
    }
    let best = seen.iter().map(|(_, k)| *k).max().unwrap_or(0);
    let most_decoded = seen
        .into_iter()
        .find(|(_, k)| *k == best)
        .map(|(s, _)| s)
        .unwrap_or_default();
    Ok(ShapeCaptionFidelity {
        caption: caption.to_string(),
        score: tally.score(in_colour),
        most_decoded,
        tally,
    })
}

/// Generates `per_caption` videos (z ~ N(0, I), seeded as [`fidelity`] does)
/// for each distinct caption of `split` of a moving-shapes model's folder set
/// (the test split's colour–shape–motion combinations were never seen in
/// training) and reads them with the rule-based moving-shapes reader: colour,
/// shape and motion for a colour model, shape and motion for a grey one. No
/// evaluator is needed. An unconditional model draws `per_caption` x (number of
/// captions) videos from the prior and only whether a shape is found is
/// reported. Refused for a model of any other data (see [`Reader::of`]).
pub fn shapes_fidelity(
    model: &SyncDraw,
    meta: &Meta,
    split: Split,
    per_caption: usize,
    seed: u64,
    temperature: f64,
) -> Result<ShapesFidelityReport, FidelityError> {
    if Reader::of(&meta.data)? != Reader::Shapes {
        return Err(FidelityError::NotShapes(meta.data.name()));
    }
    let mc = &model.config;
    let per_caption = per_caption.max(1);
    let captions = meta.data.captions(split);
    let device = model.device();
    tch::manual_seed(seed as i64);
    let generate = |n: usize, ids: Option<&Tensor>| draw(model, n, ids, temperature);
    match meta.captions() {
        Some(codec) => {
            let mut rows = Vec::with_capacity(captions.len());
            for caption in &captions {
                let one = codec.encode(caption)?;
                let ids: Vec<i64> = (0..per_caption).flat_map(|_| one.iter().copied()).collect();
                let ids = Tensor::from_slice(&ids)
                    .reshape([per_caption as i64, one.len() as i64])
                    .to_device(device);
                rows.push(score_shape_videos(
                    caption,
                    &generate(per_caption, Some(&ids)),
                )?);
            }
            Ok(ShapesFidelityReport::from_rows(
                rows,
                per_caption,
                mc.channels != 1,
            ))
        }
        None => {
            let n = per_caption * captions.len();
            let mut all = ShapeTally::default();
            for start in (0..n).step_by(100) {
                let b = (n - start).min(100);
                let (readings, _) = read_shape_videos(&generate(b, None))?;
                all.videos += readings.len();
                all.seen += readings.iter().filter(|r| r.is_some()).count();
            }
            Ok(ShapesFidelityReport {
                captions: false,
                attributes: attributes(mc.channels != 1),
                videos_per_caption: per_caption,
                per_caption: Vec::new(),
                overall: all.score(mc.channels != 1),
                mean_caption_exact: 0.0,
            })
        }
    }
}
