//! Captioned Bouncing MNIST (the paper's §4.2, §4.3, §4.5).
//!
//! Every digit moves either up and down or left and right from a uniform random
//! start, with a speed of 0.2 of its free range per frame (7.2 px for 28 px digits
//! in 64 px frames), and bounces off the walls by reflection. Two digits are added
//! and clipped at 1. The caption names the motion actually rendered.
use super::mnist::{Digits, DIGIT_SIZE, PIXELS};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use syncdraw_format::Grammar;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Motion {
    /// The digit's row changes; its column stays.
    UpDown,
    /// The digit's column changes; its row stays.
    LeftRight,
}

impl Motion {
    pub const ALL: [Motion; 2] = [Motion::UpDown, Motion::LeftRight];

    pub fn words(self) -> &'static str {
        match self {
            Motion::UpDown => "up and down",
            Motion::LeftRight => "left and right",
        }
    }
}

/// The caption grammar of videos with `digits` digits: "digit {digit} is moving
/// {motion}" per digit, joined by "and"; [`Content::caption`] writes in it, and
/// its motion values are the words of [`Motion::ALL`] in order (tested).
pub fn grammar(digits: usize) -> Grammar {
    Grammar::bouncing_mnist(digits, digits)
}

/// What a video shows: one (digit, motion) pair per digit, in caption order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Content(pub Vec<(u8, Motion)>);

impl Content {
    /// "digit 3 is moving up and down [and digit 1 is moving left and right]"
    pub fn caption(&self) -> String {
        self.0
            .iter()
            .map(|(d, m)| format!("digit {d} is moving {}", m.words()))
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Split {
    Train,
    Test,
}

/// The paper's split by caption. One digit: every digit has one motion in train
/// and the other in test (even digits train up and down, odd digits left and
/// right). Two digits: of the 4 motion combinations of each ordered pair (a, b),
/// the 2 with equal motions are in train when a + b is even, else the 2 mixed ones.
/// Every single (digit, motion) pair thus still appears in training.
pub fn split_of(content: &Content) -> Split {
    let in_train = match content.0.as_slice() {
        [(d, m)] => (*m == Motion::UpDown) == (d % 2 == 0),
        [(a, ma), (b, mb)] => (ma == mb) == ((a + b) % 2 == 0),
        _ => true,
    };
    if in_train {
        Split::Train
    } else {
        Split::Test
    }
}

/// All contents of `num_digits` digits in a split.
pub fn contents(num_digits: usize, split: Split) -> Vec<Content> {
    let mut all = vec![Content(vec![])];
    for _ in 0..num_digits {
        all = all
            .into_iter()
            .flat_map(|c| {
                (0..10u8).flat_map(move |d| {
                    let c = c.clone();
                    Motion::ALL.into_iter().map(move |m| {
                        let mut v = c.0.clone();
                        v.push((d, m));
                        Content(v)
                    })
                })
            })
            .collect();
    }
    all.into_iter().filter(|c| split_of(c) == split).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoSpec {
    pub frames: usize,
    pub size: usize,
    /// Fraction of the free range moved per frame.
    pub speed: f32,
}

impl Default for VideoSpec {
    fn default() -> Self {
        Self {
            frames: 10,
            size: 64,
            speed: 0.2,
        }
    }
}

impl VideoSpec {
    pub fn free_range(&self) -> f32 {
        (self.size - DIGIT_SIZE) as f32
    }
}

/// One digit's path: top-left (row, col) per frame, in pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    pub digit: u8,
    pub motion: Motion,
    /// Index of the digit image in the source digits.
    pub image: usize,
    pub positions: Vec<(u16, u16)>,
}

/// Positions of a bouncing coordinate: start in [0, range], reflect at the walls.
pub fn bounce(start: f32, velocity: f32, range: f32, frames: usize) -> Vec<f32> {
    let (mut p, mut v) = (start, velocity);
    let mut out = Vec::with_capacity(frames);
    for _ in 0..frames {
        out.push(p);
        p += v;
        if p < 0.0 {
            p = -p;
            v = -v;
        }
        if p > range {
            p = 2.0 * range - p;
            v = -v;
        }
    }
    out
}

/// Renders tracks into N frames of size x size (u8), adding and clipping at 255.
pub fn render(spec: &VideoSpec, digits: &Digits, tracks: &[Track]) -> Vec<u8> {
    render_images(spec, tracks, |_, track| &digits.images[track.image])
}

/// Renders tracks as [`render`] does, with the image of track `k` given by
/// `image(k, track)` (a binarised sample of it, say: data/binarize.rs).
pub fn render_images<'a>(
    spec: &VideoSpec,
    tracks: &[Track],
    image: impl Fn(usize, &Track) -> &'a [u8; PIXELS],
) -> Vec<u8> {
    let s = spec.size;
    let mut out = vec![0u8; spec.frames * s * s];
    for (k, track) in tracks.iter().enumerate() {
        let img = image(k, track);
        for (f, &(r0, c0)) in track.positions.iter().enumerate() {
            let frame = &mut out[f * s * s..(f + 1) * s * s];
            for r in 0..DIGIT_SIZE {
                for c in 0..DIGIT_SIZE {
                    let px = &mut frame[(r0 as usize + r) * s + c0 as usize + c];
                    *px = px.saturating_add(img[r * DIGIT_SIZE + c]);
                }
            }
        }
    }
    out
}

/// Makes the tracks of one video showing `content` from the given image pools.
pub fn make_tracks(
    spec: &VideoSpec,
    content: &Content,
    pools: &[Vec<usize>; 10],
    rng: &mut impl Rng,
) -> Vec<Track> {
    let range = spec.free_range();
    content
        .0
        .iter()
        .map(|&(digit, motion)| {
            let pool = &pools[digit as usize];
            let image = pool[rng.random_range(0..pool.len())];
            let row0 = rng.random_range(0.0..=range);
            let col0 = rng.random_range(0.0..=range);
            let v = if rng.random_bool(0.5) {
                spec.speed
            } else {
                -spec.speed
            } * range;
            let moving = bounce(
                if motion == Motion::UpDown { row0 } else { col0 },
                v,
                range,
                spec.frames,
            );
            let positions = moving
                .iter()
                .map(|&p| {
                    let p = p.round() as u16;
                    match motion {
                        Motion::UpDown => (p, row_or_col(col0)),
                        Motion::LeftRight => (row_or_col(row0), p),
                    }
                })
                .collect();
            Track {
                digit,
                motion,
                image,
                positions,
            }
        })
        .collect()
}

fn row_or_col(x: f32) -> u16 {
    x.round() as u16
}

/// Indices of the digit images of each class used by a split: a seeded shuffle of
/// each class, the first 80% for train, the rest for test (never seen in training).
pub fn image_pools(digits: &Digits, split: Split, seed: u64) -> [Vec<usize>; 10] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_d161_7500);
    std::array::from_fn(|d| {
        let mut idx: Vec<usize> = (0..digits.labels.len())
            .filter(|&i| digits.labels[i] == d as u8)
            .collect();
        idx.shuffle(&mut rng);
        let cut = (idx.len() * 4 / 5).clamp(1, idx.len() - 1);
        match split {
            Split::Train => idx[..cut].to_vec(),
            Split::Test => idx[cut..].to_vec(),
        }
    })
}
