//! Reading a video from the detector's per-frame maps: where the digits are in each
//! frame, how many there are, which digit each is, and which way it moves.
//!
//! 1. Peaks: in every frame, the cells whose foreground probability (1 - p(no
//!    digit)) is the highest of their 3x3 neighbourhood. A peak's position is the
//!    foreground-weighted mean of the cell centres in that neighbourhood (finer than
//!    a cell), its digit distribution the foreground-weighted mean of the digit
//!    probabilities there.
//! 2. Count: two digits when any frame has two peaks of at least
//!    [`PEAK_THRESHOLD`]; otherwise one. Overlapping digits merge into one peak,
//!    sometimes for most of the video.
//! 3. Tracks: one digit follows the best peak of every frame. Two digits start at
//!    the frame whose second peak is surest and are followed forwards, then
//!    backwards from there: each frame with two peaks extends the tracks by the
//!    pairing closest to where each track is heading (its last position plus its
//!    last velocity) and to the digit it has shown so far.
//! 4. Each track's digit is the argmax of its mean digit distribution; its motion
//!    is the axis along which its positions spread more (extremes trimmed).
use super::labels::canonical;
use syncdraw_data::{Content, Motion};

/// Classes per cell: no digit centred here (0), digit 0-9 centred here (1-10).
pub const CLASSES: usize = 11;
/// Pixels of path distance that a whole difference in digit identity (L1 distance
/// 1 between digit distributions) is worth when pairing peaks with tracks.
pub const IDENTITY_COST: f32 = 20.0;
/// Foreground probability a peak needs to count as a second digit.
pub const PEAK_THRESHOLD: f32 = 0.5;

/// The detector's output grid: `cells` x `cells`, cell i centred on pixel
/// `scale * i + offset` (rows and columns alike).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    pub cells: usize,
    pub scale: f32,
    pub offset: f32,
}

impl Grid {
    pub fn centre(&self, i: usize) -> f32 {
        self.scale * i as f32 + self.offset
    }

    /// The cell whose centre is nearest to pixel coordinate `p`.
    pub fn cell_of(&self, p: f32) -> usize {
        let i = ((p - self.offset) / self.scale).round();
        i.clamp(0.0, self.cells.saturating_sub(1) as f32) as usize
    }

    /// Values in one frame's maps: CLASSES x cells x cells.
    pub fn frame_len(&self) -> usize {
        CLASSES * self.cells * self.cells
    }
}

/// A digit seen in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Peak {
    /// Position in pixels (row, column).
    pub y: f32,
    pub x: f32,
    /// Foreground probability of the peak cell.
    pub score: f32,
    /// Probabilities of digits 0-9 (sum 1).
    pub digit_p: [f32; 10],
}

/// Peaks of one frame's probability maps (CLASSES x cells x cells, class 0 = no
/// digit), best first. Among equal neighbours the first in raster order wins.
pub fn peaks(maps: &[f32], grid: Grid) -> Vec<Peak> {
    let g = grid.cells;
    let fg = |r: usize, c: usize| 1.0 - maps[r * g + c];
    let p = |k: usize, r: usize, c: usize| maps[(k * g + r) * g + c];
    let around = |r: usize, c: usize| {
        let rows = r.saturating_sub(1)..(r + 2).min(g);
        rows.flat_map(move |rr| (c.saturating_sub(1)..(c + 2).min(g)).map(move |cc| (rr, cc)))
    };
    let mut out = Vec::new();
    for r in 0..g {
        for c in 0..g {
            let v = fg(r, c);
            let is_peak = around(r, c).all(|(rr, cc)| {
                let w = fg(rr, cc);
                if (rr, cc) < (r, c) {
                    v > w
                } else {
                    v >= w
                }
            });
            if !is_peak {
                continue;
            }
            let (mut sw, mut y, mut x) = (0.0f32, 0.0f32, 0.0f32);
            let mut digit_p = [0.0f32; 10];
            for (rr, cc) in around(r, c) {
                let w = fg(rr, cc).max(0.0);
                sw += w;
                y += w * grid.centre(rr);
                x += w * grid.centre(cc);
                for (d, dp) in digit_p.iter_mut().enumerate() {
                    *dp += p(d + 1, rr, cc);
                }
            }
            let total: f32 = digit_p.iter().sum();
            if total > 0.0 {
                digit_p.iter_mut().for_each(|d| *d /= total);
            } else {
                digit_p = [0.1; 10];
            }
            let (y, x) = if sw > 0.0 {
                (y / sw, x / sw)
            } else {
                (grid.centre(r), grid.centre(c))
            };
            out.push(Peak {
                y,
                x,
                score: v,
                digit_p,
            });
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// The digit the maps of one frame show around pixel (`y`, `x`): the argmax of the
/// digit probabilities summed over the cell nearest it and its 8 neighbours.
pub fn digit_at(maps: &[f32], grid: Grid, y: f32, x: f32) -> u8 {
    let g = grid.cells;
    let (r, c) = (grid.cell_of(y), grid.cell_of(x));
    let mut sum = [0.0f32; 10];
    for rr in r.saturating_sub(1)..(r + 2).min(g) {
        for cc in c.saturating_sub(1)..(c + 2).min(g) {
            for (d, s) in sum.iter_mut().enumerate() {
                *s += maps[((d + 1) * g + rr) * g + cc];
            }
        }
    }
    (0..10u8)
        .max_by(|&a, &b| sum[a as usize].total_cmp(&sum[b as usize]))
        .unwrap_or(0)
}

/// What a video shows, from the maps of its frames (frames x CLASSES x cells x
/// cells), pairs in canonical order. Always one or two digits.
pub fn read(maps: &[f32], grid: Grid) -> Content {
    let frames: Vec<Vec<Peak>> = maps
        .chunks_exact(grid.frame_len())
        .map(|f| peaks(f, grid))
        .collect();
    let two = |ps: &Vec<Peak>| ps.len() >= 2 && ps[1].score >= PEAK_THRESHOLD;
    let with_two: Vec<(usize, &Vec<Peak>)> = frames
        .iter()
        .enumerate()
        .filter(|(_, ps)| two(ps))
        .collect();
    // One frame is enough: on the real one-digit test videos no frame shows a
    // second peak, while two overlapping digits can merge for most of a video.
    let tracks = if !with_two.is_empty() {
        link(&with_two)
    } else {
        vec![frames
            .iter()
            .enumerate()
            .filter_map(|(f, ps)| ps.first().map(|p| (f, p)))
            .collect()]
    };
    canonical(&Content(
        tracks.iter().map(|t| (digit_of(t), motion_of(t))).collect(),
    ))
}

type Track<'a> = Vec<(usize, &'a Peak)>;

/// Two tracks through the frames with two peaks (`(frame, peaks)`, in order, at
/// least one), from the surest frame forwards, then from it backwards.
fn link<'a>(frames: &[(usize, &'a Vec<Peak>)]) -> Vec<Track<'a>> {
    let start = (0..frames.len())
        .max_by(|&a, &b| frames[a].1[1].score.total_cmp(&frames[b].1[1].score))
        .expect("at least one frame");
    let (f0, first) = frames[start];
    let seed = || vec![vec![(f0, &first[0])], vec![(f0, &first[1])]];
    let mut tracks = seed();
    extend(&mut tracks, frames[start + 1..].iter());
    let mut back = seed();
    extend(&mut back, frames[..start].iter().rev());
    for (t, b) in tracks.iter_mut().zip(back) {
        t.extend(b.into_iter().skip(1));
    }
    tracks
}

/// Extends two tracks through `frames`, each frame's two peaks paired with the
/// tracks the cheaper way: distance to where each track is heading, plus
/// [`IDENTITY_COST`] times how far the peak's digit distribution is from the
/// track's (L1, 0 to 2), so two different digits are told apart where their paths
/// cross.
fn extend<'a, 'b>(
    tracks: &mut [Track<'a>],
    frames: impl Iterator<Item = &'b (usize, &'a Vec<Peak>)>,
) where
    'a: 'b,
{
    for &(f, ps) in frames {
        let (a, b) = (heading(&tracks[0], f), heading(&tracks[1], f));
        let (da, db) = (digits_of(&tracks[0]), digits_of(&tracks[1]));
        let d = |(y, x): (f32, f32), digits: &[f32; 10], p: &Peak| {
            let apart: f32 = digits
                .iter()
                .zip(&p.digit_p)
                .map(|(a, b)| (a - b).abs())
                .sum();
            ((p.y - y).powi(2) + (p.x - x).powi(2)).sqrt() + IDENTITY_COST * apart
        };
        let keep = d(a, &da, &ps[0]) + d(b, &db, &ps[1]);
        let swap = d(a, &da, &ps[1]) + d(b, &db, &ps[0]);
        let (p0, p1) = if keep <= swap {
            (&ps[0], &ps[1])
        } else {
            (&ps[1], &ps[0])
        };
        tracks[0].push((f, p0));
        tracks[1].push((f, p1));
    }
}

/// Where a track is expected in frame `f`: its last position plus its last
/// velocity (per frame, forwards or backwards in time).
fn heading(track: &Track, f: usize) -> (f32, f32) {
    let &(fl, last) = track.last().expect("tracks start with a peak");
    match track.len() {
        0 | 1 => (last.y, last.x),
        n => {
            let (fp, prev) = track[n - 2];
            let steps = (f as f32 - fl as f32) / (fl as f32 - fp as f32);
            (
                last.y + (last.y - prev.y) * steps,
                last.x + (last.x - prev.x) * steps,
            )
        }
    }
}

/// Mean digit distribution of a track's peaks.
fn digits_of(track: &Track) -> [f32; 10] {
    let mut mean = [0.0f32; 10];
    for (_, p) in track {
        for (m, d) in mean.iter_mut().zip(p.digit_p) {
            *m += d / track.len() as f32;
        }
    }
    mean
}

fn digit_of(track: &Track) -> u8 {
    let mean = digits_of(track);
    (0..10u8)
        .max_by(|&a, &b| mean[a as usize].total_cmp(&mean[b as usize]))
        .unwrap_or(0)
}

/// The axis a track moves along: the one its positions spread over more, ignoring
/// the extreme position at each end when it has five or more (so one mispaired
/// frame does not decide it).
fn motion_of(track: &Track) -> Motion {
    let spread = |v: &dyn Fn(&Peak) -> f32| {
        let mut vals: Vec<f32> = track.iter().map(|(_, p)| v(p)).collect();
        vals.sort_by(f32::total_cmp);
        let trim = usize::from(vals.len() >= 5);
        match vals.len() {
            0 => 0.0,
            n => vals[n - 1 - trim] - vals[trim],
        }
    };
    if spread(&|p| p.x) > spread(&|p| p.y) {
        Motion::LeftRight
    } else {
        Motion::UpDown
    }
}
