//! Pictures of generated videos: an animated GIF of several videos side by side,
//! and a PNG grid of the canvases after every step (the paper's Figure 2c).
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

/// Video layout: `videos` holds `count` videos of `frames` x `height` x `width`
/// values in [0, 1].
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
}

const GAP: usize = 2;

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
    let palette: Vec<u8> = (0..=255u8).flat_map(|v| [v, v, v]).collect();
    let mut enc = gif::Encoder::new(BufWriter::new(file), w as u16, h as u16, &palette)
        .map_err(|e| werr(path, e))?;
    enc.set_repeat(gif::Repeat::Infinite)
        .map_err(|e| werr(path, e))?;
    let vlen = l.frames * l.height * l.width;
    for f in 0..l.frames {
        let mut buf = vec![40u8; w * h];
        for v in 0..count {
            let (r0, c0) = (
                (v / cols) * (l.height + GAP) + GAP,
                (v % cols) * (l.width + GAP) + GAP,
            );
            for y in 0..l.height {
                for x in 0..l.width {
                    buf[(r0 + y) * w + c0 + x] =
                        to_u8(videos[v * vlen + (f * l.height + y) * l.width + x]);
                }
            }
        }
        let mut frame = gif::Frame::from_indexed_pixels(w as u16, h as u16, buf, None);
        frame.delay = delay_cs;
        enc.write_frame(&frame).map_err(|e| werr(path, e))?;
    }
    Ok(())
}

/// Writes a PNG grid: one row per drawing step t = 1..T (canvases `[T, N, H, W]`),
/// one column per frame; the last row is the final video.
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
    let mut buf = vec![40u8; w * h];
    for t in 0..steps {
        for f in 0..l.frames {
            let (r0, c0) = (t * (l.height + GAP) + GAP, f * (l.width + GAP) + GAP);
            let base = (t * l.frames + f) * l.height * l.width;
            for y in 0..l.height {
                for x in 0..l.width {
                    buf[(r0 + y) * w + c0 + x] = to_u8(canvases[base + y * l.width + x]);
                }
            }
        }
    }
    let file = File::create(path).map_err(|e| werr(path, e))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), w as u32, h as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().map_err(|e| werr(path, e))?;
    wr.write_image_data(&buf).map_err(|e| werr(path, e))
}
