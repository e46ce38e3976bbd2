//! Captioned moving shapes in colour, in the spirit of the "Moving Shapes" set of
//! Balaji et al. 2019 (TFGAN): one shape (square, circle or triangle) of one
//! colour (red, green or blue) on black, moving up and down or left and right and
//! bouncing off the walls like the digits of Bouncing MNIST (bouncing.rs).
//! Captions follow the grammar "a {colour} {shape} is moving {motion}".
//!
//! The videos are made to be written as real encoded files (video_io.rs) and read
//! back by the video-folder import (folder.rs), so that the import path is tested
//! on files a user could have.
use super::bouncing::{bounce, Motion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use syncdraw_format::{Grammar, Role, Slot};

pub const SHAPES: [&str; 3] = ["square", "circle", "triangle"];
pub const COLOURS: [(&str, [u8; 3]); 3] = [
    ("red", [230, 40, 40]),
    ("green", [40, 210, 60]),
    ("blue", [50, 90, 240]),
];

/// "a {colour} {shape} is moving {motion}": colour and shape are what is drawn,
/// the motion where.
pub fn grammar() -> Grammar {
    Grammar {
        object: "a {colour} {shape} is moving {motion}".into(),
        joiner: "and".into(),
        min_objects: 1,
        max_objects: 1,
        slots: vec![
            Slot {
                name: "colour".into(),
                role: Role::What,
                values: COLOURS.iter().map(|c| c.0.to_string()).collect(),
            },
            Slot {
                name: "shape".into(),
                role: Role::What,
                values: SHAPES.iter().map(|s| s.to_string()).collect(),
            },
            Slot {
                name: "motion".into(),
                role: Role::Where,
                values: Motion::ALL.iter().map(|m| m.words().to_string()).collect(),
            },
        ],
    }
}

/// One video: which shape, colour and motion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeVideo {
    pub shape: usize,
    pub colour: usize,
    pub motion: Motion,
}

impl ShapeVideo {
    pub fn caption(&self) -> String {
        format!(
            "a {} {} is moving {}",
            COLOURS[self.colour].0,
            SHAPES[self.shape],
            self.motion.words()
        )
    }
}

/// Whether pixel (r, c) of a shape's `side` x `side` box is inside the shape.
pub fn inside(shape: usize, side: usize, r: usize, c: usize) -> bool {
    let (s, r, c) = (side as f32, r as f32 + 0.5, c as f32 + 0.5);
    match shape {
        0 => true,
        1 => {
            let (dr, dc) = (r - s / 2.0, c - s / 2.0);
            dr * dr + dc * dc <= s * s / 4.0
        }
        // Apex at the top centre, base along the bottom row.
        _ => (c - s / 2.0).abs() <= r / 2.0,
    }
}

/// Renders `frames` RGB frames (interleaved, row-major) of `size` x `size`: the
/// shape's box is `side` px, starts at a seeded random place and moves 0.2 of its
/// free range per frame along its motion's axis.
pub fn render(v: ShapeVideo, frames: usize, size: usize, side: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let range = (size - side) as f32;
    let (r0, c0): (f32, f32) = (rng.random_range(0.0..=range), rng.random_range(0.0..=range));
    let speed = 0.2 * range * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    let path = match v.motion {
        Motion::UpDown => bounce(r0, speed, range, frames),
        Motion::LeftRight => bounce(c0, speed, range, frames),
    };
    let rgb = COLOURS[v.colour].1;
    let mut out = vec![0u8; frames * size * size * 3];
    for (f, &p) in path.iter().enumerate() {
        let (top, left) = match v.motion {
            Motion::UpDown => (p.round() as usize, c0.round() as usize),
            Motion::LeftRight => (r0.round() as usize, p.round() as usize),
        };
        let frame = &mut out[f * size * size * 3..(f + 1) * size * size * 3];
        for r in 0..side {
            for c in 0..side {
                if inside(v.shape, side, r, c) {
                    let i = ((top + r) * size + left + c) * 3;
                    frame[i..i + 3].copy_from_slice(&rgb);
                }
            }
        }
    }
    out
}

/// Every (shape, colour, motion) combination, `per` videos each.
pub fn all_videos(per: usize) -> Vec<ShapeVideo> {
    let mut v = Vec::new();
    for colour in 0..COLOURS.len() {
        for shape in 0..SHAPES.len() {
            for motion in Motion::ALL {
                v.extend(std::iter::repeat_n(
                    ShapeVideo {
                        shape,
                        colour,
                        motion,
                    },
                    per,
                ));
            }
        }
    }
    v
}
