//! What overlapping digits hide in a binarised video.
//!
//! A Bouncing MNIST frame is the union of its digits (added and clipped; on
//! binary pixels, a logical or). Where another digit's ink covers a pixel, the
//! frame shows ink whatever the covered digit has there. A binarised digit keeps
//! its strokes in every frame (data/binarize.rs), so a pixel of it that is
//! covered in one frame is shown by any frame where it is not: the video hides
//! it only if it is covered in *every* frame. Those pixels are the digit shape
//! the union cannot tell a model about; each is one binary value, so they carry
//! at most ln 2 nats each. This bounds how far below twice one digit's entropy a
//! two-digit video's can go through what overlaps hide (docs/results.md, "What
//! two digits hide of each other").
use super::bouncing::{render_images, Track, VideoSpec};
use super::mnist::{DIGIT_SIZE, PIXELS};

/// Overlap counts of one video, in pixels (or their sums over videos).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overlap {
    /// Ink pixels of the video's digit images (each image counted once).
    pub ink: usize,
    /// Frame pixels that two or more digits' ink cover, summed over the frames.
    pub covered_twice: usize,
    /// Pixels of a digit's image (ink or not) that another digit's ink covers in
    /// every frame: no frame shows their value.
    pub hidden: usize,
    /// The hidden pixels that are ink in their own digit.
    pub hidden_ink: usize,
}

impl std::ops::Add for Overlap {
    type Output = Overlap;
    fn add(self, o: Overlap) -> Overlap {
        Overlap {
            ink: self.ink + o.ink,
            covered_twice: self.covered_twice + o.covered_twice,
            hidden: self.hidden + o.hidden,
            hidden_ink: self.hidden_ink + o.hidden_ink,
        }
    }
}

/// Counts what the digits `images` (binary, 0 or non-zero, one per track) hide
/// of each other when placed along `tracks` in frames of `spec`.
pub fn overlap(spec: &VideoSpec, tracks: &[Track], images: &[[u8; PIXELS]]) -> Overlap {
    let s = spec.size;
    // How many digits' ink covers each pixel of each frame: rendering adds the
    // digits, here as ones on their ink.
    let ones: Vec<[u8; PIXELS]> = images
        .iter()
        .map(|img| img.map(|v| u8::from(v != 0)))
        .collect();
    let count = render_images(spec, tracks, |k, _| &ones[k]);
    let mut out = Overlap {
        ink: images.iter().flatten().filter(|&&v| v != 0).count(),
        covered_twice: count.iter().filter(|&&n| n >= 2).count(),
        ..Overlap::default()
    };
    for (track, img) in tracks.iter().zip(images) {
        for (i, &v) in img.iter().enumerate() {
            let own = u8::from(v != 0);
            // Covered by another digit in every frame: the others' count there is at least 1.
            let hidden = track.positions.iter().enumerate().all(|(f, &(r0, c0))| {
                let (r, c) = (r0 as usize + i / DIGIT_SIZE, c0 as usize + i % DIGIT_SIZE);
                count[f * s * s + r * s + c] > own
            });
            if hidden && !track.positions.is_empty() {
                out.hidden += 1;
                out.hidden_ink += usize::from(own == 1);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bouncing::Motion;

    fn track(positions: &[(u16, u16)]) -> Track {
        Track {
            digit: 0,
            motion: Motion::UpDown,
            image: 0,
            positions: positions.to_vec(),
        }
    }

    fn spec(frames: usize) -> VideoSpec {
        VideoSpec {
            frames,
            size: 64,
            speed: 0.2,
        }
    }

    /// An image with ink in the rows `rows` (all columns).
    fn rows(rows: std::ops::Range<usize>) -> [u8; PIXELS] {
        let mut img = [0u8; PIXELS];
        for r in rows {
            img[r * DIGIT_SIZE..(r + 1) * DIGIT_SIZE].fill(255);
        }
        img
    }

    #[test]
    fn digits_on_top_of_each_other_in_every_frame_hide_what_the_other_covers() {
        // The same place in both frames: a has ink in rows 0-9, b in rows 5-19.
        // b's ink covers 15 rows of a's image (ink or not), a's covers 10 rows of b's.
        let (a, b) = (rows(0..10), rows(5..20));
        let tracks = [track(&[(3, 4), (3, 4)]), track(&[(3, 4), (3, 4)])];
        let o = overlap(&spec(2), &tracks, &[a, b]);
        assert_eq!(o.ink, (10 + 15) * DIGIT_SIZE);
        assert_eq!(o.covered_twice, 2 * 5 * DIGIT_SIZE);
        assert_eq!(o.hidden, (15 + 10) * DIGIT_SIZE);
        // a's ink under b: rows 5-9; b's ink under a: rows 5-9.
        assert_eq!(o.hidden_ink, 2 * 5 * DIGIT_SIZE);
    }

    #[test]
    fn a_pixel_shown_in_one_frame_is_not_hidden() {
        // Overlapping in frame 0, apart in frame 1: nothing is hidden, though
        // frame 0 covers pixels twice.
        let (a, b) = (rows(0..28), rows(0..28));
        let tracks = [track(&[(0, 0), (0, 0)]), track(&[(0, 10), (30, 30)])];
        let o = overlap(&spec(2), &tracks, &[a, b]);
        assert_eq!(o.covered_twice, 28 * 18);
        assert_eq!(o.hidden, 0);
        assert_eq!(o.hidden_ink, 0);
    }

    #[test]
    fn one_digit_hides_nothing() {
        let o = overlap(&spec(1), &[track(&[(0, 0)])], &[rows(0..28)]);
        assert_eq!(
            o,
            Overlap {
                ink: PIXELS,
                ..Overlap::default()
            }
        );
    }
}
