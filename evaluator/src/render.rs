//! Fresh real training frames for the evaluator's detector: one or two MNIST digits
//! at uniformly random positions, added and clipped the way the data generator
//! renders Bouncing MNIST, from the TRAIN image pool only, with the digit images
//! lightly distorted (rotation, scale, shear, shift) so the detector learns digits
//! rather than the few hundred training images of each class.
use super::reading::Grid;
use rand::Rng;
use syncdraw_data::mnist::DIGIT_SIZE;
use syncdraw_data::Digits;

const PIXELS: usize = DIGIT_SIZE * DIGIT_SIZE;

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

/// Fraction of second digits placed near the first (within [`NEAR_PIXELS`] on both
/// axes) rather than anywhere: two-digit videos often show their digits heavily
/// overlapping, and those are the hardest frames to read.
pub const NEAR_FRACTION: f64 = 0.5;
pub const NEAR_PIXELS: usize = 14;

/// One training frame (size x size, 0..255) of the digits `shown` (0-9) at
/// random positions (see [`NEAR_FRACTION`]), images drawn at random from `pools`
/// and distorted with `strength`, added and clipped as in the data set, and its
/// target per grid cell: 1 + the digit in the cell nearest each digit's centre, 0
/// elsewhere (a later digit wins a shared cell).
pub fn render_frame(
    size: usize,
    grid: Grid,
    digits: &Digits,
    pools: &[Vec<usize>; 10],
    shown: &[u8],
    strength: f32,
    rng: &mut impl Rng,
) -> (Vec<u8>, Vec<i64>) {
    let mut frame = vec![0u8; size * size];
    let mut target = vec![0i64; grid.cells * grid.cells];
    let range = size - DIGIT_SIZE;
    let mut placed: Vec<(usize, usize)> = Vec::new();
    for &digit in shown {
        let pool = &pools[digit as usize];
        let img = distort(
            &digits.images[pool[rng.random_range(0..pool.len())]],
            strength,
            rng,
        );
        let (r0, c0) = match placed.last() {
            Some(&(r, c)) if rng.random_bool(NEAR_FRACTION) => {
                let near = |v: usize, rng: &mut _| {
                    let lo = v.saturating_sub(NEAR_PIXELS);
                    Rng::random_range(rng, lo..=(v + NEAR_PIXELS).min(range))
                };
                (near(r, rng), near(c, rng))
            }
            _ => (rng.random_range(0..=range), rng.random_range(0..=range)),
        };
        placed.push((r0, c0));
        for r in 0..DIGIT_SIZE {
            let row = &mut frame[(r0 + r) * size + c0..][..DIGIT_SIZE];
            for (px, &v) in row
                .iter_mut()
                .zip(&img[r * DIGIT_SIZE..(r + 1) * DIGIT_SIZE])
            {
                *px = px.saturating_add(v);
            }
        }
        let centre = (DIGIT_SIZE as f32 - 1.0) / 2.0;
        let (cy, cx) = (
            grid.cell_of(r0 as f32 + centre),
            grid.cell_of(c0 as f32 + centre),
        );
        target[cy * grid.cells + cx] = 1 + digit as i64;
    }
    (frame, target)
}
