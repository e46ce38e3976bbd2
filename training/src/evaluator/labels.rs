//! Video content as counts (for every digit 0-9 and motion, how many copies, 0, 1
//! or 2, the video shows) and the scores that compare what the evaluator reads with
//! what a video should show. Counts ignore caption order, so a two-digit caption is
//! compared as an unordered multiset of (digit, motion) pairs:
//! "digit 3 is moving up and down and digit 1 is moving left and right" equals
//! "digit 1 is moving left and right and digit 3 is moving up and down".
use crate::data::{Content, Motion};
use serde::{Deserialize, Serialize};

/// Count entries: one per (digit, motion).
pub const HEADS: usize = 20;

/// Count index of a (digit, motion) pair: digit * 2 + motion (up-down 0, left-right 1).
pub fn head(digit: u8, motion: Motion) -> usize {
    digit as usize * 2 + usize::from(motion == Motion::LeftRight)
}

/// The (digit, motion) pair of a count index.
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
