//! A rule-based reader of captioned moving-shapes videos (data/src/shapes.rs):
//! which colour, which shape and which motion a colour video shows, and so its
//! caption. Nothing is learnt:
//!
//! - **colour**: the brightest of the R, G and B planes over the whole video;
//! - **where the shape is**, per frame: the pixels of that plane at half its
//!   brightest value or more (relative, so a dim generated shape is found too);
//!   a frame whose plane stays under [`MIN_PEAK`] shows nothing and is skipped;
//! - **shape**: the median over frames of the share of the shape's bounding box it
//!   fills: 1 for a square, π/4 for a circle, 1/2 for the triangle;
//! - **motion**: the axis along which the centroid moved more, summed over
//!   consecutive frames.
use syncdraw_data::bouncing::Motion;
use syncdraw_data::shapes::{ShapeVideo, COLOURS, SHAPES};

/// A frame whose brightest value in the colour's plane is under this shows no shape.
pub const MIN_PEAK: f32 = 0.2;
/// Fill ratios above this are squares, and between this and [`TRIANGLE_BELOW`]
/// circles (the ideal values are 1, 0.785 and 0.5).
pub const SQUARE_ABOVE: f32 = 0.89;
pub const TRIANGLE_BELOW: f32 = 0.64;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ShapesError {
    #[error("a moving-shapes video has 3 channels (R, G, B) of frames; got {values} values for {frames} frames of 3 x {height} x {width}")]
    Layout {
        values: usize,
        frames: usize,
        height: usize,
        width: usize,
    },
    #[error("no frame shows a shape (every frame's brightest value is under {MIN_PEAK})")]
    Empty,
}

/// What a video shows, with the measurements behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeReading {
    pub video: ShapeVideo,
    /// Median share of the bounding box the shape fills.
    pub fill: f32,
    /// Centroid movement summed over consecutive frames, in pixels: along rows
    /// (up and down) and along columns (left and right).
    pub moved_rows: f32,
    pub moved_cols: f32,
    /// Frames in which a shape was found.
    pub frames_seen: usize,
}

impl ShapeReading {
    /// "a {colour} {shape} is moving {motion}", as the shapes grammar writes it.
    pub fn caption(&self) -> String {
        self.video.caption()
    }
}

/// One frame's shape: the centroid and the fill of the bounding box.
struct Blob {
    row: f32,
    col: f32,
    fill: f32,
}

fn blob(plane: &[f32], width: usize) -> Option<Blob> {
    let peak = plane.iter().copied().fold(0.0f32, f32::max);
    if peak < MIN_PEAK {
        return None;
    }
    let (mut n, mut rs, mut cs) = (0usize, 0.0f32, 0.0f32);
    let (mut r0, mut r1, mut c0, mut c1) = (usize::MAX, 0, usize::MAX, 0);
    for (i, &v) in plane.iter().enumerate() {
        if v >= peak / 2.0 {
            let (r, c) = (i / width, i % width);
            n += 1;
            rs += r as f32;
            cs += c as f32;
            (r0, r1, c0, c1) = (r0.min(r), r1.max(r), c0.min(c), c1.max(c));
        }
    }
    let boxed = (r1 - r0 + 1) * (c1 - c0 + 1);
    Some(Blob {
        row: rs / n as f32,
        col: cs / n as f32,
        fill: n as f32 / boxed as f32,
    })
}

/// Reads one video: `frames` frames of 3 x `height` x `width` values in [0, 1]
/// (planes R, G, B per frame, the model's and the imported sets' layout).
pub fn read(
    video: &[f32],
    frames: usize,
    height: usize,
    width: usize,
) -> Result<ShapeReading, ShapesError> {
    let plane = height * width;
    if frames == 0 || plane == 0 || video.len() != frames * 3 * plane {
        return Err(ShapesError::Layout {
            values: video.len(),
            frames,
            height,
            width,
        });
    }
    let frame = |f: usize, c: usize| &video[(f * 3 + c) * plane..(f * 3 + c + 1) * plane];
    let sums: Vec<f32> = (0..3)
        .map(|c| (0..frames).map(|f| frame(f, c).iter().sum::<f32>()).sum())
        .collect();
    let colour = (0..3)
        .max_by(|&a, &b| sums[a].total_cmp(&sums[b]))
        .expect("three planes");
    let blobs: Vec<Blob> = (0..frames)
        .filter_map(|f| blob(frame(f, colour), width))
        .collect();
    if blobs.is_empty() {
        return Err(ShapesError::Empty);
    }
    let mut fills: Vec<f32> = blobs.iter().map(|b| b.fill).collect();
    fills.sort_by(f32::total_cmp);
    let fill = fills[fills.len() / 2];
    let shape = if fill > SQUARE_ABOVE {
        0
    } else if fill >= TRIANGLE_BELOW {
        1
    } else {
        2
    };
    let (moved_rows, moved_cols) = blobs.windows(2).fold((0.0, 0.0), |(r, c), w| {
        (
            r + (w[1].row - w[0].row).abs(),
            c + (w[1].col - w[0].col).abs(),
        )
    });
    let motion = if moved_rows > moved_cols {
        Motion::UpDown
    } else {
        Motion::LeftRight
    };
    debug_assert!(colour < COLOURS.len() && shape < SHAPES.len());
    Ok(ShapeReading {
        video: ShapeVideo {
            shape,
            colour,
            motion,
        },
        fill,
        moved_rows,
        moved_cols,
        frames_seen: blobs.len(),
    })
}
