//! Fresh real training videos for the evaluator: Bouncing MNIST rendered the way the
//! data generator renders it (`make_tracks`, add and clip), from the TRAIN image pool
//! only, over every (digit, motion) combination of one and two digits, with the
//! digit images lightly distorted (rotation, scale, shear) so the classifier learns
//! digits rather than the few hundred training images of each class.
use crate::data::bouncing::{make_tracks, VideoSpec};
use crate::data::mnist::DIGIT_SIZE;
use crate::data::{Content, Digits, Motion};
use rand::Rng;

const PIXELS: usize = DIGIT_SIZE * DIGIT_SIZE;

/// Random content of one or two digits, every (digit, motion) pair equally likely.
pub fn random_content(num_digits: usize, rng: &mut impl Rng) -> Content {
    Content(
        (0..num_digits)
            .map(|_| {
                (
                    rng.random_range(0..10u8),
                    Motion::ALL[rng.random_range(0..2)],
                )
            })
            .collect(),
    )
}

/// A random affine distortion of a 28x28 digit (bilinear, zero outside).
pub fn distort(img: &[u8; PIXELS], strength: f32, rng: &mut impl Rng) -> [u8; PIXELS] {
    if strength <= 0.0 {
        return *img;
    }
    let angle = rng.random_range(-0.2..=0.2f32) * strength;
    let scale = 1.0 + rng.random_range(-0.1..=0.1f32) * strength;
    let shear = rng.random_range(-0.2..=0.2f32) * strength;
    let (dy, dx) = (
        rng.random_range(-1.0..=1.0f32) * strength,
        rng.random_range(-1.0..=1.0f32) * strength,
    );
    // Forward map A = R(angle) * [[scale, shear], [0, scale]]; sample at A^-1 (p - c - t) + c.
    let (s, c) = angle.sin_cos();
    let a = [
        [c * scale, c * shear - s * scale],
        [s * scale, s * shear + c * scale],
    ];
    let det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
    let inv = [
        [a[1][1] / det, -a[0][1] / det],
        [-a[1][0] / det, a[0][0] / det],
    ];
    let mid = (DIGIT_SIZE as f32 - 1.0) / 2.0;
    let at = |r: i32, c: i32| -> f32 {
        if r < 0 || c < 0 || r >= DIGIT_SIZE as i32 || c >= DIGIT_SIZE as i32 {
            0.0
        } else {
            img[r as usize * DIGIT_SIZE + c as usize] as f32
        }
    };
    let mut out = [0u8; PIXELS];
    for r in 0..DIGIT_SIZE {
        for col in 0..DIGIT_SIZE {
            // p = (x, y) with x the column, y the row, relative to the centre.
            let (x, y) = (col as f32 - mid - dx, r as f32 - mid - dy);
            let sx = inv[0][0] * x + inv[0][1] * y + mid;
            let sy = inv[1][0] * x + inv[1][1] * y + mid;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i32, y0 as i32);
            let v = at(y0, x0) * (1.0 - fx) * (1.0 - fy)
                + at(y0, x0 + 1) * fx * (1.0 - fy)
                + at(y0 + 1, x0) * (1.0 - fx) * fy
                + at(y0 + 1, x0 + 1) * fx * fy;
            out[r * DIGIT_SIZE + col] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// Renders one video of `content` (frames x size x size, 0..255) with images drawn
/// from `pools` and distorted with `strength` (0: the images as they are).
pub fn render_video(
    spec: &VideoSpec,
    digits: &Digits,
    pools: &[Vec<usize>; 10],
    content: &Content,
    strength: f32,
    rng: &mut impl Rng,
) -> Vec<u8> {
    let tracks = make_tracks(spec, content, pools, rng);
    let s = spec.size;
    let mut out = vec![0u8; spec.frames * s * s];
    for track in &tracks {
        let img = distort(&digits.images[track.image], strength, rng);
        for (f, &(r0, c0)) in track.positions.iter().enumerate() {
            let frame = &mut out[f * s * s..(f + 1) * s * s];
            for r in 0..DIGIT_SIZE {
                let row = &mut frame[(r0 as usize + r) * s + c0 as usize..][..DIGIT_SIZE];
                for (px, &v) in row
                    .iter_mut()
                    .zip(&img[r * DIGIT_SIZE..(r + 1) * DIGIT_SIZE])
                {
                    *px = px.saturating_add(v);
                }
            }
        }
    }
    out
}
