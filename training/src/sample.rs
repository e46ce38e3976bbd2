//! Pictures of generated videos: an animated GIF of several videos side by side,
//! and a PNG grid of the canvases after every step (the paper's Figure 2c). Grey
//! or colour (R, G, B planes per frame).
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
}

fn werr(path: &Path, e: impl std::fmt::Display) -> ImageError {
    ImageError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Video layout: `videos` holds `count` videos of `frames` x `channels` x
/// `height` x `width` values in [0, 1] (channels 1, grey, or 3, R, G, B).
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub frames: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Layout {
    fn frame_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The colour of pixel `i` (row-major) of the frame starting at `base`.
    fn rgb(&self, values: &[f32], base: usize, i: usize) -> [u8; 3] {
        let plane = self.height * self.width;
        let at = |c: usize| to_u8(values[base + c.min(self.channels - 1) * plane + i]);
        [at(0), at(1), at(2)]
    }
}

const GAP: usize = 2;
/// The background between videos (dark grey).
const GAP_RGB: [u8; 3] = [40, 40, 40];

/// GIF palettes: 256 greys, or for colour 8 levels of red and green and 4 of
/// blue (3-3-2 bits), so that no quantiser is needed.
fn palette(colour: bool) -> Vec<u8> {
    if colour {
        (0..=255u8)
            .flat_map(|i| {
                let (r, g, b) = ((i >> 5) & 7, (i >> 2) & 7, i & 3);
                [
                    (r as u32 * 255 / 7) as u8,
                    (g as u32 * 255 / 7) as u8,
                    (b as u32 * 255 / 3) as u8,
                ]
            })
            .collect()
    } else {
        (0..=255u8).flat_map(|v| [v, v, v]).collect()
    }
}

/// The palette index of a colour (grey: its red value, all three being equal).
fn index(rgb: [u8; 3], colour: bool) -> u8 {
    if colour {
        (rgb[0] >> 5) << 5 | (rgb[1] >> 5) << 2 | rgb[2] >> 6
    } else {
        rgb[0]
    }
}

/// Writes an animated GIF: the videos in a grid of `cols` columns, looping.
pub fn save_gif(
    path: &Path,
    videos: &[f32],
    count: usize,
    l: Layout,
    cols: usize,
    delay_cs: u16,
) -> Result<(), ImageError> {
    let cols = cols.clamp(1, count.max(1));
    let rows = count.div_ceil(cols);
    let (w, h) = (cols * (l.width + GAP) + GAP, rows * (l.height + GAP) + GAP);
    let file = File::create(path).map_err(|e| werr(path, e))?;
    let colour = l.channels > 1;
    let mut enc = gif::Encoder::new(BufWriter::new(file), w as u16, h as u16, &palette(colour))
        .map_err(|e| werr(path, e))?;
    enc.set_repeat(gif::Repeat::Infinite)
        .map_err(|e| werr(path, e))?;
    let vlen = l.frames * l.frame_len();
    for f in 0..l.frames {
        let mut buf = vec![index(GAP_RGB, colour); w * h];
        for v in 0..count {
            let (r0, c0) = (
                (v / cols) * (l.height + GAP) + GAP,
                (v % cols) * (l.width + GAP) + GAP,
            );
            let base = v * vlen + f * l.frame_len();
            for y in 0..l.height {
                for x in 0..l.width {
                    let rgb = l.rgb(videos, base, y * l.width + x);
                    buf[(r0 + y) * w + c0 + x] = index(rgb, colour);
                }
            }
        }
        let mut frame = gif::Frame::from_indexed_pixels(w as u16, h as u16, buf, None);
        frame.delay = delay_cs;
        enc.write_frame(&frame).map_err(|e| werr(path, e))?;
    }
    Ok(())
}

/// Writes a PNG grid: one row per drawing step t = 1..T (canvases `[T, N, C, H, W]`),
/// one column per frame; the last row is the final video. Grey or RGB.
pub fn save_canvas_grid(
    path: &Path,
    canvases: &[f32],
    steps: usize,
    l: Layout,
) -> Result<(), ImageError> {
    let (w, h) = (
        l.frames * (l.width + GAP) + GAP,
        steps * (l.height + GAP) + GAP,
    );
    let colour = l.channels > 1;
    let depth = if colour { 3 } else { 1 };
    let mut buf: Vec<u8> = (0..w * h).flat_map(|_| GAP_RGB[..depth].to_vec()).collect();
    for t in 0..steps {
        for f in 0..l.frames {
            let (r0, c0) = (t * (l.height + GAP) + GAP, f * (l.width + GAP) + GAP);
            let base = (t * l.frames + f) * l.frame_len();
            for y in 0..l.height {
                for x in 0..l.width {
                    let rgb = l.rgb(canvases, base, y * l.width + x);
                    let at = ((r0 + y) * w + c0 + x) * depth;
                    buf[at..at + depth].copy_from_slice(&rgb[..depth]);
                }
            }
        }
    }
    let file = File::create(path).map_err(|e| werr(path, e))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), w as u32, h as u32);
    enc.set_color(if colour {
        png::ColorType::Rgb
    } else {
        png::ColorType::Grayscale
    });
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().map_err(|e| werr(path, e))?;
    wr.write_image_data(&buf).map_err(|e| werr(path, e))
}
