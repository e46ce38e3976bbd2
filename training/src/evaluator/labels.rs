//! Video content as counts, the evaluator's target: for every digit 0-9 and motion,
//! how many copies (0, 1 or 2) the video shows. Counts ignore caption order, so a
//! two-digit caption is compared as an unordered multiset of (digit, motion) pairs:
//! "digit 3 is moving up and down and digit 1 is moving left and right" equals
//! "digit 1 is moving left and right and digit 3 is moving up and down".
use crate::data::{Content, Motion};
use serde::{Deserialize, Serialize};

/// Classes per count head: 0, 1 or 2 copies.
pub const COUNT_CLASSES: i64 = 3;
/// Count heads: one per (digit, motion).
pub const HEADS: usize = 20;

/// Head index of a (digit, motion) pair: digit * 2 + motion (up-down 0, left-right 1).
pub fn head(digit: u8, motion: Motion) -> usize {
    digit as usize * 2 + usize::from(motion == Motion::LeftRight)
}

/// The (digit, motion) pair of a head index.
pub fn pair(head: usize) -> (u8, Motion) {
    (
        ((head / 2) as u8),
        if head.is_multiple_of(2) {
            Motion::UpDown
        } else {
            Motion::LeftRight
        },
    )
}

/// Counts per head of a content (capped at 2, the most a video of 1 or 2 digits has).
pub fn counts(content: &Content) -> [u8; HEADS] {
    let mut c = [0u8; HEADS];
    for &(d, m) in &content.0 {
        let h = head(d, m);
        c[h] = (c[h] + 1).min(2);
    }
    c
}

/// Content of the given counts, pairs sorted by digit then motion (up-down first).
pub fn content_of(counts: &[u8; HEADS]) -> Content {
    let mut pairs = Vec::new();
    for (h, &n) in counts.iter().enumerate() {
        for _ in 0..n {
            pairs.push(pair(h));
        }
    }
    Content(pairs)
}

/// The content with its pairs in canonical order (sorted), for multiset comparison.
pub fn canonical(content: &Content) -> Content {
    let mut pairs = content.0.clone();
    pairs.sort_by_key(|&(d, m)| head(d, m));
    Content(pairs)
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// How one decoded video compares with what it should show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The most likely counts with one or two digits in all, given per-head log
/// probabilities `lp[head][count]`: the heads are scored jointly (independent heads),
/// over every multiset of one or two (digit, motion) pairs, so a video is always
/// read as one or two digits even where no single head is sure.
pub fn decode(lp: &[[f32; COUNT_CLASSES as usize]; HEADS]) -> [u8; HEADS] {
    let base: f32 = lp.iter().map(|l| l[0]).sum();
    let one = |h: usize| lp[h][1] - lp[h][0];
    let mut best = (f32::NEG_INFINITY, [0u8; HEADS]);
    let mut consider = |score: f32, heads: &[(usize, u8)]| {
        if score > best.0 {
            let mut c = [0u8; HEADS];
            for &(h, n) in heads {
                c[h] = n;
            }
            best = (score, c);
        }
    };
    for (h, l) in lp.iter().enumerate() {
        consider(base + one(h), &[(h, 1)]);
        consider(base + l[2] - l[0], &[(h, 2)]);
        for g in h + 1..HEADS {
            consider(base + one(h) + one(g), &[(h, 1), (g, 1)]);
        }
    }
    best.1
}
