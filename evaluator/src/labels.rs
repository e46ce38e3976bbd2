//! The scores that compare what the evaluator reads with what a video should show.
//! They ignore caption order: a two-digit caption is compared as an unordered
//! multiset of (digit, motion) pairs:
//! "digit 3 is moving up and down and digit 1 is moving left and right" equals
//! "digit 1 is moving left and right and digit 3 is moving up and down".
use serde::{Deserialize, Serialize};
use syncdraw_data::{Content, Motion, Track};

/// The content with its pairs in canonical order (by digit, then up-down before
/// left-right), for multiset comparison and decoded captions.
pub fn canonical(content: &Content) -> Content {
    let mut pairs = content.0.clone();
    pairs.sort_by_key(|&(d, m)| (d, m == Motion::LeftRight));
    Content(pairs)
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// How one decoded video compares with what it should show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Match {
    /// Same multiset of (digit, motion) pairs: the decoded caption is the requested one.
    pub exact: bool,
    /// Same multiset of digits, motions ignored.
    pub digits: bool,
    /// Same multiset of motions (how many digits move up and down, how many left
    /// and right), digits ignored.
    pub motion: bool,
    /// Same number of digits.
    pub count: bool,
}

pub fn compare(predicted: &Content, truth: &Content) -> Match {
    let digits = |c: &Content| sorted(c.0.iter().map(|p| p.0).collect());
    let motions = |c: &Content| {
        sorted(
            c.0.iter()
                .map(|p| u8::from(p.1 == Motion::LeftRight))
                .collect(),
        )
    };
    Match {
        exact: canonical(predicted) == canonical(truth),
        digits: digits(predicted) == digits(truth),
        motion: motions(predicted) == motions(truth),
        count: predicted.0.len() == truth.0.len(),
    }
}

/// Fractions of matching videos.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub videos: usize,
    /// Decoded caption equals the true (or requested) one, as a multiset of pairs.
    pub exact: f64,
    /// Digit identities right (as a multiset), motions ignored.
    pub digits: f64,
    /// Motions right (as a multiset), digit identities ignored.
    pub motion: f64,
    /// Number of digits right.
    pub count: f64,
}

/// Accumulates matches into a [`Score`].
#[derive(Debug, Clone, Default)]
pub struct Tally {
    n: usize,
    exact: usize,
    digits: usize,
    motion: usize,
    count: usize,
}

impl Tally {
    pub fn add(&mut self, m: Match) {
        self.n += 1;
        self.exact += usize::from(m.exact);
        self.digits += usize::from(m.digits);
        self.motion += usize::from(m.motion);
        self.count += usize::from(m.count);
    }

    pub fn score(&self) -> Score {
        let f = |k: usize| {
            if self.n == 0 {
                0.0
            } else {
                k as f64 / self.n as f64
            }
        };
        Score {
            videos: self.n,
            exact: f(self.exact),
            digits: f(self.digits),
            motion: f(self.motion),
            count: f(self.count),
        }
    }
}

/// Two digits at least this far apart (in rows or in columns) in some frame can be
/// told apart; closer than this in every frame, they overlap heavily all video
/// long and a reader (person or evaluator) often cannot say which digits they are.
pub const APART_PIXELS: u32 = 8;

/// How far apart two digits' 28x28 boxes are: the distance between their top-left
/// corners (row, column) along the axis where it is larger (Chebyshev, pixels).
fn box_distance(p: (u16, u16), q: (u16, u16)) -> u32 {
    u32::from(p.0.abs_diff(q.0).max(p.1.abs_diff(q.1)))
}

/// A digit whose 28x28 box is at least this far from every other digit's (in rows
/// or in columns) in a frame stands clear of them there: they overlap by at most
/// half a digit.
pub const CLEAR_PIXELS: u32 = 14;

/// Frames in which track `k` of a real video stands clear of its other tracks
/// ([`CLEAR_PIXELS`]); every frame for a one-digit video.
pub fn clear_frames(tracks: &[Track], k: usize) -> Vec<usize> {
    let me = &tracks[k];
    (0..me.positions.len())
        .filter(|&f| {
            let p = me.positions[f];
            tracks
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != k)
                .all(|(_, o)| box_distance(p, o.positions[f]) >= CLEAR_PIXELS)
        })
        .collect()
}

/// How far apart a real video's two digits get: the largest, over frames, of the
/// distance between their 28x28 boxes' corners along the axis where it is larger
/// (Chebyshev distance, pixels). `None` for one digit.
pub fn separation(tracks: &[Track]) -> Option<u32> {
    let [a, b] = tracks else { return None };
    a.positions
        .iter()
        .zip(&b.positions)
        .map(|(&p, &q)| box_distance(p, q))
        .max()
}
