//! Video files through GStreamer: encoding frames to MP4 (for the shapes data set
//! and the tests) and decoding any file the installed plugins can read into a
//! fixed number of frames of a fixed size (for the video-folder import).
use gst::prelude::*;
use gst_video::prelude::*;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("GStreamer: {0}")]
    Gst(String),
    #[error("cannot decode: {0}")]
    Decode(String),
    #[error("has {got} frames, {needed} are needed ({rule})")]
    TooShort {
        got: usize,
        needed: usize,
        rule: String,
    },
}

fn gst_err(e: impl std::fmt::Display) -> VideoError {
    VideoError::Gst(e.to_string())
}

/// Which frames of a video a data set takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FrameRule {
    /// The first N frames.
    Start,
    /// Frames 0, K, 2K, ... (N of them).
    Stride(usize),
    /// N frames evenly spaced over the whole video (first and last included).
    Even,
}

impl FrameRule {
    /// "start", "stride:K" or "even".
    pub fn parse(s: &str) -> Result<FrameRule, String> {
        match s {
            "start" => Ok(FrameRule::Start),
            "even" => Ok(FrameRule::Even),
            _ => s
                .strip_prefix("stride:")
                .and_then(|k| k.parse::<usize>().ok())
                .filter(|k| *k >= 1)
                .map(FrameRule::Stride)
                .ok_or_else(|| {
                    format!("frame rule {s:?}: expected start, stride:K (K >= 1) or even")
                }),
        }
    }

    /// Decoded frames needed before the rule can pick `n` (None: all of them).
    fn needed(self, n: usize) -> Option<usize> {
        match self {
            FrameRule::Start => Some(n),
            FrameRule::Stride(k) => Some((n - 1) * k + 1),
            FrameRule::Even => None,
        }
    }

    /// The indices of the `n` frames taken from `total` decoded ones.
    pub fn pick(self, n: usize, total: usize) -> Result<Vec<usize>, VideoError> {
        let too_short = |needed| VideoError::TooShort {
            got: total,
            needed,
            rule: format!("{self:?}").to_lowercase(),
        };
        match self {
            FrameRule::Even => {
                if total < n {
                    return Err(too_short(n));
                }
                Ok((0..n)
                    .map(|i| {
                        if n == 1 {
                            0
                        } else {
                            (i * (total - 1) + (n - 1) / 2) / (n - 1)
                        }
                    })
                    .collect())
            }
            rule => {
                let needed = rule.needed(n).unwrap_or(n);
                if total < needed {
                    return Err(too_short(needed));
                }
                let k = if let FrameRule::Stride(k) = rule {
                    k
                } else {
                    1
                };
                Ok((0..n).map(|i| i * k).collect())
            }
        }
    }
}

/// What a data set takes of every video: `frames` frames picked by `rule`, scaled
/// to `height` x `width`, grey (`channels` 1) or RGB (3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FrameSpec {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub rule: FrameRule,
}

impl FrameSpec {
    /// Bytes of one video: frames x channels x height x width.
    pub fn video_len(&self) -> usize {
        self.frames * self.channels * self.height * self.width
    }
}

pub fn init() -> Result<(), VideoError> {
    gst::init().map_err(gst_err)
}

fn run_to_eos(pipeline: &gst::Pipeline) -> Result<(), VideoError> {
    let bus = pipeline.bus().ok_or_else(|| gst_err("no bus"))?;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => return Err(VideoError::Gst(error_text(e))),
            _ => {}
        }
    }
    Ok(())
}

/// An error message and its debug text, on one line.
fn error_text(e: &gst::message::Error) -> String {
    format!(
        "{}{}",
        e.error(),
        e.debug().map(|d| format!(" ({d})")).unwrap_or_default()
    )
}

/// Encodes RGB frames (interleaved, `width` x `height` each) to an H.264 MP4 file
/// at `fps` frames per second: `appsrc ! videoconvert ! x264enc ! mp4mux ! filesink`.
pub fn encode_mp4(
    path: &Path,
    rgb: &[u8],
    width: usize,
    height: usize,
    fps: i32,
) -> Result<(), VideoError> {
    init()?;
    let info =
        gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, width as u32, height as u32)
            .fps(gst::Fraction::new(fps, 1))
            .build()
            .map_err(gst_err)?;
    let src = gst_app::AppSrc::builder()
        .caps(&info.to_caps().map_err(gst_err)?)
        .format(gst::Format::Time)
        .build();
    let make = |name: &str| gst::ElementFactory::make(name).build().map_err(gst_err);
    let (convert, enc, mux, sink) = (
        make("videoconvert")?,
        make("x264enc")?,
        make("mp4mux")?,
        make("filesink")?,
    );
    sink.set_property("location", path.to_string_lossy().as_ref());
    let pipeline = gst::Pipeline::new();
    let chain = [src.upcast_ref(), &convert, &enc, &mux, &sink];
    pipeline.add_many(chain).map_err(gst_err)?;
    gst::Element::link_many(chain).map_err(gst_err)?;
    pipeline.set_state(gst::State::Playing).map_err(gst_err)?;
    let frame = width * height * 3;
    let stride = info.stride()[0] as usize;
    for (n, f) in rgb.chunks_exact(frame).enumerate() {
        let mut buffer = gst::Buffer::with_size(info.size()).map_err(gst_err)?;
        {
            let b = buffer.get_mut().ok_or_else(|| gst_err("buffer"))?;
            let mut map = b.map_writable().map_err(gst_err)?;
            for (row, src) in f.chunks_exact(width * 3).enumerate() {
                map[row * stride..row * stride + width * 3].copy_from_slice(src);
            }
            drop(map);
            let t = |n: u64| gst::ClockTime::SECOND.mul_div_floor(n, fps as u64);
            b.set_pts(t(n as u64));
            b.set_duration(t(1));
        }
        if src.push_buffer(buffer).is_err() {
            break;
        }
    }
    let _ = src.end_of_stream();
    let result = run_to_eos(&pipeline);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Decodes the video at `path` (any container and codec the installed plugins
/// read: `uridecodebin ! videoconvert ! videoscale`) as `spec` says. Returns
/// frames x channels x height x width bytes, channel-planar per frame (the
/// model's [C, H, W] order).
pub fn decode(path: &Path, spec: &FrameSpec) -> Result<Vec<u8>, VideoError> {
    let FrameSpec {
        frames: n,
        height,
        width,
        channels,
        rule,
    } = *spec;
    init()?;
    let format = if channels == 3 { "RGB" } else { "GRAY8" };
    // A URI needs an absolute path: a relative one (`--videos DIR`) is taken from
    // the current directory.
    let absolute = std::path::absolute(path)
        .map_err(|e| VideoError::Gst(format!("cannot make {} absolute: {e}", path.display())))?;
    let uri = gst::glib::filename_to_uri(&absolute, None).map_err(gst_err)?;
    let pipeline = gst::parse::launch(&format!(
        "uridecodebin uri=\"{uri}\" ! videoconvert ! videoscale ! \
         video/x-raw,format={format},width={width},height={height},pixel-aspect-ratio=1/1 ! \
         appsink name=sink sync=false"
    ))
    .map_err(gst_err)?
    .downcast::<gst::Pipeline>()
    .map_err(|_| gst_err("not a pipeline"))?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| gst_err("no appsink"))?;
    let result = pull_frames(&pipeline, &sink, rule.needed(n), width, height, channels);
    let _ = pipeline.set_state(gst::State::Null);
    let frames = result?;
    let idx = rule.pick(n, frames.len())?;
    let plane = width * height;
    let mut out = Vec::with_capacity(n * channels * plane);
    for i in idx {
        let f = &frames[i];
        // Interleaved RGB to planar R, G, B.
        for c in 0..channels {
            out.extend(f.iter().skip(c).step_by(channels));
        }
    }
    Ok(out)
}

/// How long decoding may go without a frame before the file is given up.
const DECODE_STALL: std::time::Duration = std::time::Duration::from_secs(30);

/// Decoded frames (packed rows, `channels` bytes a pixel), up to `limit`.
fn pull_frames(
    pipeline: &gst::Pipeline,
    sink: &gst_app::AppSink,
    limit: Option<usize>,
    width: usize,
    height: usize,
    channels: usize,
) -> Result<Vec<Vec<u8>>, VideoError> {
    if pipeline.set_state(gst::State::Playing).is_err() {
        return Err(
            bus_error(pipeline).unwrap_or_else(|| VideoError::Decode("cannot start".into()))
        );
    }
    let mut frames = Vec::new();
    let mut waited = std::time::Duration::ZERO;
    let poll = std::time::Duration::from_millis(50);
    while limit.is_none_or(|l| frames.len() < l) {
        // A decoder error does not reach the sink as EOS: watch the bus while waiting.
        if let Some(e) = bus_error(pipeline) {
            return Err(e);
        }
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(50)) else {
            if sink.is_eos() {
                break;
            }
            waited += poll;
            if waited > DECODE_STALL {
                return Err(VideoError::Decode(format!(
                    "no frame for {} s",
                    DECODE_STALL.as_secs()
                )));
            }
            continue;
        };
        waited = std::time::Duration::ZERO;
        let buffer = sample
            .buffer()
            .ok_or_else(|| gst_err("sample without a buffer"))?;
        let caps = sample
            .caps()
            .ok_or_else(|| gst_err("sample without caps"))?;
        let info = gst_video::VideoInfo::from_caps(caps).map_err(gst_err)?;
        let frame =
            gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).map_err(gst_err)?;
        let stride = frame.plane_stride()[0] as usize;
        let data = frame.plane_data(0).map_err(gst_err)?;
        let mut packed = Vec::with_capacity(width * height * channels);
        for r in 0..height {
            packed.extend_from_slice(&data[r * stride..r * stride + width * channels]);
        }
        frames.push(packed);
    }
    if let Some(e) = bus_error(pipeline) {
        return Err(e);
    }
    Ok(frames)
}

fn bus_error(pipeline: &gst::Pipeline) -> Option<VideoError> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            return Some(VideoError::Decode(error_text(e)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_path_decodes_like_an_absolute_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.mp4");
        let (w, h, n) = (16usize, 16usize, 3usize);
        let rgb: Vec<u8> = (0..n * w * h * 3).map(|i| (i % 251) as u8).collect();
        encode_mp4(&file, &rgb, w, h, 10).unwrap();
        // The same file through a path relative to the current directory.
        let cwd = std::env::current_dir().unwrap();
        let mut relative = std::path::PathBuf::new();
        for _ in cwd.components().skip(1) {
            relative.push("..");
        }
        relative.push(file.strip_prefix("/").unwrap());
        assert!(relative.is_relative());
        let spec = FrameSpec {
            frames: n,
            height: h,
            width: w,
            channels: 3,
            rule: FrameRule::Start,
        };
        assert_eq!(
            decode(&relative, &spec).unwrap(),
            decode(&file, &spec).unwrap()
        );
    }
}
