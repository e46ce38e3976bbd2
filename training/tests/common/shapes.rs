//! Captioned moving-shapes videos written as H.264 MP4 files with GStreamer
//! (data/src/shapes.rs, data/src/video_io.rs): the files a user could have.
use std::path::Path;
use syncdraw_data::bouncing::Motion;
use syncdraw_data::shapes::{self, ShapeVideo};
use syncdraw_data::video_io::encode_mp4;

/// Frame size of the test videos.
pub const SIZE: usize = 32;

/// One video of `frames` frames of SIZE x SIZE as `dir/name`.
pub fn write_video(dir: &Path, name: &str, v: ShapeVideo, frames: usize, seed: u64) {
    let rgb = shapes::render(v, frames, SIZE, 12, seed);
    encode_mp4(&dir.join(name), &rgb, SIZE, SIZE, 10).expect("encode");
}

/// Every (colour, shape, motion) once as a 12-frame MP4 with `captions.csv`;
/// with `bad`, three bad entries too: a file that is not a video, a 3-frame
/// video, and a caption with "purple".
pub fn folder(dir: &Path, bad: bool) {
    let mut csv = String::from("video,caption\n");
    for (i, v) in shapes::all_videos(1).into_iter().enumerate() {
        let name = format!("v{i:02}.mp4");
        write_video(dir, &name, v, 12, i as u64);
        csv.push_str(&format!("{name},{}\n", v.caption()));
    }
    if bad {
        std::fs::write(
            dir.join("garbage.mp4"),
            b"\x00\x00\x00\x18ftypmp42 not really a video",
        )
        .expect("write");
        csv.push_str("garbage.mp4,a red square is moving up and down\n");
        let short = ShapeVideo {
            shape: 0,
            colour: 0,
            motion: Motion::UpDown,
        };
        write_video(dir, "short.mp4", short, 3, 99);
        csv.push_str("short.mp4,\"a red square is moving up and down\"\n");
        csv.push_str("v00.mp4,a purple square is moving up and down\n");
    }
    std::fs::write(dir.join("captions.csv"), csv).expect("write");
}
