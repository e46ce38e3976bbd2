// SPDX-License-Identifier: MIT OR Apache-2.0
//! Model frames (float intensities in [0, 1], `[channels, height, width]`) to raw video.
//!
//! One generic writer covers every offered format: it walks the components of the
//! negotiated format (plane, offset, pixel stride, subsampling from GstVideoFormatInfo),
//! rows by stride, and averages the source pixels under each subsampled sample.
//! Grey frames into 8-bit formats (every shipped model, every format but GRAY16)
//! take a direct writer instead: there each byte is the quantized intensity or a
//! constant (neutral chroma, opaque alpha), so nothing is averaged or dispatched
//! per pixel. The two give byte-identical output (tested).

use gst_video::prelude::*;
use gst_video::{VideoColorMatrix, VideoColorRange, VideoFormat};

/// The formats offered on the src pad, in order of preference. I420 comes first:
/// x264enc takes the first format it is offered and gives H.264 High profile for it.
pub const FORMATS: &[VideoFormat] = &[
    VideoFormat::I420,
    VideoFormat::Nv12,
    VideoFormat::Gray8,
    VideoFormat::Rgb,
    VideoFormat::Rgba,
    VideoFormat::Bgrx,
    VideoFormat::Yv12,
    VideoFormat::Nv21,
    VideoFormat::Y42b,
    VideoFormat::Y444,
    VideoFormat::Gray16Le,
    VideoFormat::Bgr,
    VideoFormat::Bgra,
    VideoFormat::Argb,
    VideoFormat::Abgr,
    VideoFormat::Rgbx,
    VideoFormat::Xrgb,
    VideoFormat::Xbgr,
];

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("frame has {got} values, expected {expected}")]
    Size { got: usize, expected: usize },
    #[error("cannot map the output buffer: {0}")]
    Map(String),
}

/// Luma weights (Kr, Kb) for a colour matrix; BT.601 when unknown.
fn luma_weights(m: VideoColorMatrix) -> (f32, f32) {
    match m {
        VideoColorMatrix::Bt709 => (0.2126, 0.0722),
        VideoColorMatrix::Bt2020 => (0.2627, 0.0593),
        VideoColorMatrix::Smpte240m => (0.212, 0.087),
        VideoColorMatrix::Fcc => (0.30, 0.11),
        _ => (0.299, 0.114),
    }
}

/// Writes one frame into a buffer of the format and size in `info`.
///
/// `frame` is `[channels, height, width]` with channels 1 (grey) or 3 (R, G, B), and
/// its height and width equal the video's.
pub fn write_frame(
    frame: &[f32],
    channels: usize,
    info: &gst_video::VideoInfo,
    buffer: &mut gst::BufferRef,
) -> Result<(), ConvertError> {
    write_with(frame, channels, info, buffer, Writer::Best)
}

/// Which writer [`write_with`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// The direct writer where it applies, else the generic one.
    Best,
    /// Always the generic writer (the reference the direct one is tested against).
    #[cfg_attr(not(test), allow(dead_code))]
    Generic,
}

fn write_with(
    frame: &[f32],
    channels: usize,
    info: &gst_video::VideoInfo,
    buffer: &mut gst::BufferRef,
    writer: Writer,
) -> Result<(), ConvertError> {
    let expected = channels * info.width() as usize * info.height() as usize;
    if frame.len() != expected {
        return Err(ConvertError::Size {
            got: frame.len(),
            expected,
        });
    }
    // Start from zeros: padding bytes (the x of RGBx, row padding, the extra row of
    // an odd-height I420 luma plane) are then defined and the output is
    // byte-for-byte reproducible.
    buffer
        .map_writable()
        .map_err(|e| ConvertError::Map(e.to_string()))?
        .fill(0);
    let mut vframe = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, info)
        .map_err(|e| ConvertError::Map(e.to_string()))?;
    let finfo = info.format_info();
    let direct = writer == Writer::Best
        && channels == 1
        && (0..finfo.n_components() as usize).all(|c| finfo.depth()[c] == 8);
    if direct {
        write_grey8(frame, info, &mut vframe)
    } else {
        write_generic(frame, channels, info, &mut vframe)
    }
}

/// What a component of an 8-bit format holds when the frame is grey.
#[derive(Clone, Copy)]
enum Grey8 {
    /// The quantized intensity (luma, R, G or B); never subsampled.
    Intensity,
    /// The same byte everywhere: neutral chroma, opaque alpha.
    Constant(u8),
}

/// The direct writer: a grey frame into a format whose components are all 8 bits.
fn write_grey8(
    frame: &[f32],
    info: &gst_video::VideoInfo,
    vframe: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
) -> Result<(), ConvertError> {
    let (w, h) = (info.width() as usize, info.height() as usize);
    let finfo = info.format_info();
    let yuv = finfo.is_yuv() || finfo.is_gray();
    let limited = yuv && info.colorimetry().range() == VideoColorRange::Range16_235;
    // The generic writer's quantization, for luma/RGB; chroma of a grey frame is
    // 0.5 (128 in both ranges) and alpha 1.0 (255).
    let (scale, offset) = if limited { (219.0, 16.5) } else { (255.0, 0.5) };
    let quantize = |v: f32| -> u8 {
        // max and min return the other operand for NaN: NaN becomes 0 (clamp would
        // keep it, and the unchecked conversion below needs a number).
        #[allow(clippy::manual_clamp)]
        let v = v.max(0.0).min(1.0);
        // Adding 0.5 and truncating rounds as round() does (half away from zero)
        // without a libm call per pixel; the plain truncating conversion below lets
        // the loop vectorise (about 4x faster than a saturating `as u8`).
        // SAFETY: v is in [0, 1], so the value is finite and within [0.5, 255.5],
        // which an i32 holds.
        let q: i32 = unsafe { (v * scale + offset).to_int_unchecked() };
        q as u8
    };
    let mut intensity = Vec::new();
    for comp in 0..finfo.n_components() as usize {
        let kind = match comp {
            1 | 2 if yuv => Grey8::Constant(128),
            0..=2 => Grey8::Intensity,
            _ => Grey8::Constant(255),
        };
        let plane = finfo.plane()[comp] as usize;
        let offset = finfo.poffset()[comp] as usize;
        let pstride = finfo.pixel_stride()[comp] as usize;
        let (wsub, hsub) = (finfo.w_sub()[comp], finfo.h_sub()[comp]);
        let (cw, ch) = ((w + (1 << wsub) - 1) >> wsub, (h + (1 << hsub) - 1) >> hsub);
        let stride = vframe.plane_stride()[plane] as usize;
        let data = vframe
            .plane_data_mut(plane as u32)
            .map_err(|e| ConvertError::Map(e.to_string()))?;
        match kind {
            // A packed plane (GRAY8, the luma of I420 and NV12) is quantized straight
            // into its rows; interleaved components (RGB, BGRx, ...) share one
            // quantized copy of the frame.
            Grey8::Intensity if pstride == 1 => {
                for (y, src) in frame.chunks_exact(w).enumerate() {
                    let row = &mut data[y * stride + offset..][..w];
                    for (dst, &v) in row.iter_mut().zip(src) {
                        *dst = quantize(v);
                    }
                }
            }
            Grey8::Intensity => {
                if intensity.is_empty() {
                    intensity = frame.iter().map(|&v| quantize(v)).collect();
                }
                for (y, src) in intensity.chunks_exact(w).enumerate() {
                    let row = &mut data[y * stride + offset..];
                    for (dst, &q) in row.iter_mut().step_by(pstride).zip(src) {
                        *dst = q;
                    }
                }
            }
            Grey8::Constant(c) => {
                for y in 0..ch {
                    let row = &mut data[y * stride + offset..];
                    if pstride == 1 {
                        row[..cw].fill(c);
                    } else {
                        for dst in row.iter_mut().step_by(pstride).take(cw) {
                            *dst = c;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// The generic writer: any offered format, grey or RGB frames.
fn write_generic(
    frame: &[f32],
    channels: usize,
    info: &gst_video::VideoInfo,
    vframe: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
) -> Result<(), ConvertError> {
    let (w, h) = (info.width() as usize, info.height() as usize);
    let finfo = info.format_info();
    let full_range = info.colorimetry().range() != VideoColorRange::Range16_235;
    let (kr, kb) = luma_weights(info.colorimetry().matrix());
    let plane_len = w * h;

    // Per-pixel component values in [0, 1] (and for chroma: centred on 0.5).
    let rgb = |c: usize, i: usize| -> f32 {
        let v = if channels == 1 {
            frame[i]
        } else {
            frame[c * plane_len + i]
        };
        if v.is_nan() {
            0.0
        } else {
            v.clamp(0.0, 1.0)
        }
    };
    let component = |comp: usize, i: usize| -> f32 {
        if (finfo.is_yuv() || finfo.is_gray()) && channels == 1 {
            // Grey: luma is the intensity, chroma neutral.
            match comp {
                0 => rgb(0, i),
                1 | 2 => 0.5,
                _ => 1.0,
            }
        } else if finfo.is_yuv() || finfo.is_gray() {
            let (r, g, b) = (rgb(0, i), rgb(1, i), rgb(2, i));
            let y = kr * r + (1.0 - kr - kb) * g + kb * b;
            match comp {
                0 => y,
                1 => (b - y) / (2.0 * (1.0 - kb)) + 0.5,
                2 => (r - y) / (2.0 * (1.0 - kr)) + 0.5,
                _ => 1.0,
            }
        } else if comp < 3 {
            rgb(comp, i)
        } else {
            1.0
        }
    };
    // Quantization: full range maps [0, 1] to [0, max]; limited range luma to
    // [16, 235] and chroma to [16, 240] (scaled for deeper formats).
    let quantize = |comp: usize, v: f32, depth: u32| -> u16 {
        let scale = (1u32 << (depth - 8)) as f32;
        let max = ((1u32 << depth) - 1) as f32;
        let yuv = finfo.is_yuv() || finfo.is_gray();
        let q = if yuv && !full_range && comp < 3 {
            if comp == 0 {
                (16.0 + 219.0 * v) * scale
            } else {
                (16.0 + 224.0 * v) * scale
            }
        } else {
            v * max
        };
        q.round().clamp(0.0, max) as u16
    };

    let le = finfo.flags().contains(gst_video::VideoFormatFlags::LE);
    for comp in 0..finfo.n_components() as usize {
        let plane = finfo.plane()[comp];
        let offset = finfo.poffset()[comp] as usize;
        let pstride = finfo.pixel_stride()[comp] as usize;
        let depth = finfo.depth()[comp];
        let (wsub, hsub) = (finfo.w_sub()[comp], finfo.h_sub()[comp]);
        let (cw, ch) = ((w + (1 << wsub) - 1) >> wsub, (h + (1 << hsub) - 1) >> hsub);
        let stride = vframe.plane_stride()[plane as usize] as usize;
        let data = vframe
            .plane_data_mut(plane)
            .map_err(|e| ConvertError::Map(e.to_string()))?;
        for cy in 0..ch {
            let row = &mut data[cy * stride..];
            for cx in 0..cw {
                // Average the source pixels under this (possibly subsampled) sample.
                let (mut sum, mut n) = (0.0f32, 0u32);
                for sy in (cy << hsub)..((cy + 1) << hsub).min(h) {
                    for sx in (cx << wsub)..((cx + 1) << wsub).min(w) {
                        sum += component(comp, sy * w + sx);
                        n += 1;
                    }
                }
                let q = quantize(comp, sum / n.max(1) as f32, depth);
                let at = cx * pstride + offset;
                if depth > 8 {
                    let bytes = if le { q.to_le_bytes() } else { q.to_be_bytes() };
                    row[at..at + 2].copy_from_slice(&bytes);
                } else {
                    row[at] = q as u8;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(format: VideoFormat, frame: &[f32], channels: usize, w: u32, h: u32) -> Vec<u8> {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(format, w, h).build().unwrap();
        let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
        write_frame(frame, channels, &info, buffer.get_mut().unwrap()).unwrap();
        let out = buffer.map_readable().unwrap().to_vec();
        out
    }

    #[test]
    fn grey_to_formats() {
        // 4x2: black, white, grey, white / all black. Rows of 4 bytes need no padding.
        let f = [0.0, 1.0, 0.5, 1.0, 0.0, 0.0, 0.0, 0.0];
        let g8 = convert(VideoFormat::Gray8, &f, 1, 4, 2);
        assert_eq!(&g8[..4], &[0, 255, 128, 255]);
        let i420 = convert(VideoFormat::I420, &f, 1, 4, 2);
        // Default colorimetry for small I420 is BT.601 limited range: Y in [16, 235].
        assert_eq!(&i420[..4], &[16, 235, 126, 235]);
        assert_eq!(&i420[4..8], &[16, 16, 16, 16]);
        // Chroma planes (2x1 samples, stride 4): neutral.
        assert_eq!(&i420[8..10], &[128, 128]);
        assert_eq!(&i420[12..14], &[128, 128]);
        let rgba = convert(VideoFormat::Rgba, &f, 1, 4, 2);
        assert_eq!(&rgba[..8], &[0, 0, 0, 255, 255, 255, 255, 255]);
        let bgrx = convert(VideoFormat::Bgrx, &f, 1, 4, 2);
        assert_eq!(&bgrx[4..8], &[255, 255, 255, 0]);
        let g16 = convert(VideoFormat::Gray16Le, &f, 1, 4, 2);
        assert_eq!(&g16[2..4], &[255, 255]);
    }

    #[test]
    fn rgb_channel_order() {
        // 1x1 pure red from a 3-channel model.
        let f = [1.0, 0.0, 0.0];
        assert_eq!(&convert(VideoFormat::Rgb, &f, 3, 1, 1)[..3], &[255, 0, 0]);
        assert_eq!(
            &convert(VideoFormat::Bgra, &f, 3, 1, 1)[..4],
            &[0, 0, 255, 255]
        );
        assert_eq!(
            &convert(VideoFormat::Xrgb, &f, 3, 1, 1)[..4],
            &[0, 255, 0, 0]
        );
    }

    #[test]
    fn every_format_converts_odd_sizes() {
        let f = vec![0.25; 5 * 3];
        for fmt in FORMATS {
            let out = convert(*fmt, &f, 1, 5, 3);
            assert!(out.iter().any(|&b| b != 0), "{fmt:?}");
        }
    }

    /// Converts with one writer into a buffer with extra row padding, so strides
    /// differ from the row width.
    fn convert_with(writer: Writer, info: &gst_video::VideoInfo, frame: &[f32]) -> Vec<u8> {
        let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
        write_with(frame, 1, info, buffer.get_mut().unwrap(), writer).unwrap();
        let out = buffer.map_readable().unwrap().to_vec();
        out
    }

    #[test]
    fn direct_writer_matches_the_generic_one_byte_for_byte() {
        gst::init().unwrap();
        let ranges = [VideoColorRange::Range16_235, VideoColorRange::Range0_255];
        let mut checked = 0;
        for &(w, h) in &[(64u32, 64u32), (5, 3), (7, 5), (1, 1), (33, 17)] {
            // Every intensity, with values outside [0, 1], infinities and NaN mixed in.
            let frame: Vec<f32> = (0..w * h)
                .map(|i| match i % 7 {
                    4 if i % 3 == 0 => f32::INFINITY,
                    4 if i % 3 == 1 => f32::NEG_INFINITY,
                    5 => -0.3,
                    6 if i % 2 == 0 => f32::NAN,
                    6 => 1.7,
                    _ => (i as f32 * 0.618_034).fract(),
                })
                .collect();
            for fmt in FORMATS {
                for range in ranges {
                    let mut info = gst_video::VideoInfo::builder(*fmt, w, h);
                    let c = gst_video::VideoColorimetry::new(
                        range,
                        VideoColorMatrix::Bt601,
                        gst_video::VideoTransferFunction::Bt709,
                        gst_video::VideoColorPrimaries::Bt709,
                    );
                    if gst_video::VideoFormatInfo::from_format(*fmt).is_yuv() {
                        info = info.colorimetry(&c);
                    }
                    let mut info = info.build().unwrap();
                    // Pad every row by 8 bytes on the right.
                    let mut align = gst_video::VideoAlignment::new(0, 0, 8, 0, &[0; 4]);
                    info.align(&mut align).unwrap();
                    let generic = convert_with(Writer::Generic, &info, &frame);
                    let best = convert_with(Writer::Best, &info, &frame);
                    assert_eq!(best, generic, "{fmt:?} {w}x{h} {range:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 5 * FORMATS.len() * 2);
    }
}
