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
//!
//! A grey video ([`read_grey`]) has no colour to read: its one plane is read for
//! the shape and the motion in the same way.
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
    #[error("{values} values are not a moving-shapes video of {frames} frames of {channels} x {height} x {width} (channels: 3 for R, G, B, 1 for grey)")]
    Layout {
        values: usize,
        channels: usize,
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

/// What a grey video shows: the shape and the motion (grey frames keep no
/// colour), with the measurements behind them.
#[derive(Debug, Clone, PartialEq)]
pub struct GreyReading {
    /// Index into [`SHAPES`].
    pub shape: usize,
    pub motion: Motion,
    /// As in [`ShapeReading`].
    pub fill: f32,
    pub moved_rows: f32,
    pub moved_cols: f32,
    pub frames_seen: usize,
}

impl GreyReading {
    /// "a {shape} is moving {motion}": the shapes grammar's caption without
    /// the colour.
    pub fn caption(&self) -> String {
        format!("a {} is moving {}", SHAPES[self.shape], self.motion.words())
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

/// The shape and motion read from one plane per frame.
struct Form {
    shape: usize,
    motion: Motion,
    fill: f32,
    moved_rows: f32,
    moved_cols: f32,
    frames_seen: usize,
}

fn form<'a>(planes: impl Iterator<Item = &'a [f32]>, width: usize) -> Result<Form, ShapesError> {
    let blobs: Vec<Blob> = planes.filter_map(|p| blob(p, width)).collect();
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
    debug_assert!(shape < SHAPES.len());
    Ok(Form {
        shape,
        motion,
        fill,
        moved_rows,
        moved_cols,
        frames_seen: blobs.len(),
    })
}

fn check_layout(
    video: &[f32],
    frames: usize,
    channels: usize,
    height: usize,
    width: usize,
) -> Result<(), ShapesError> {
    let plane = height * width;
    if frames == 0 || plane == 0 || video.len() != frames * channels * plane {
        return Err(ShapesError::Layout {
            values: video.len(),
            channels,
            frames,
            height,
            width,
        });
    }
    Ok(())
}

/// Reads one video: `frames` frames of 3 x `height` x `width` values in [0, 1]
/// (planes R, G, B per frame, the model's and the imported sets' layout).
pub fn read(
    video: &[f32],
    frames: usize,
    height: usize,
    width: usize,
) -> Result<ShapeReading, ShapesError> {
    check_layout(video, frames, 3, height, width)?;
    let plane = height * width;
    let frame = |f: usize, c: usize| &video[(f * 3 + c) * plane..(f * 3 + c + 1) * plane];
    let sums: Vec<f32> = (0..3)
        .map(|c| (0..frames).map(|f| frame(f, c).iter().sum::<f32>()).sum())
        .collect();
    let colour = (0..3)
        .max_by(|&a, &b| sums[a].total_cmp(&sums[b]))
        .expect("three planes");
    debug_assert!(colour < COLOURS.len());
    let f = form((0..frames).map(|f| frame(f, colour)), width)?;
    Ok(ShapeReading {
        video: ShapeVideo {
            shape: f.shape,
            colour,
            motion: f.motion,
        },
        fill: f.fill,
        moved_rows: f.moved_rows,
        moved_cols: f.moved_cols,
        frames_seen: f.frames_seen,
    })
}

/// Reads one grey video: `frames` frames of `height` x `width` values in [0, 1],
/// for its shape and motion.
pub fn read_grey(
    video: &[f32],
    frames: usize,
    height: usize,
    width: usize,
) -> Result<GreyReading, ShapesError> {
    check_layout(video, frames, 1, height, width)?;
    let f = form(video.chunks_exact(height * width), width)?;
    Ok(GreyReading {
        shape: f.shape,
        motion: f.motion,
        fill: f.fill,
        moved_rows: f.moved_rows,
        moved_cols: f.moved_cols,
        frames_seen: f.frames_seen,
    })
}
