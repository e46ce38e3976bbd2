//! The rule-based moving-shapes reader (evaluator/src/shapes.rs) on real files:
//! the shape videos encoded as H.264 MP4 with GStreamer and imported in colour
//! are each read as their caption says (colour, shape and motion), at the size
//! they were made and scaled up; grey videos and empty ones are refused.
mod common;

use common::shapes::{folder, SIZE};
use syncdraw_data::folder::{import, FolderDataset, ImportOptions};
use syncdraw_data::shapes;
use syncdraw_data::video_io::{FrameRule, FrameSpec};
use syncdraw_evaluator::shapes::{read, ShapesError};

fn imported(dir: &std::path::Path, size: usize, frames: usize) -> Vec<FolderDataset> {
    let out = dir.join(format!("set-{size}"));
    let report = import(
        &ImportOptions {
            videos: dir.to_path_buf(),
            captions: dir.join("captions.csv"),
            grammar: shapes::grammar(),
            spec: FrameSpec {
                frames,
                height: size,
                width: size,
                channels: 3,
                rule: FrameRule::Start,
            },
            out,
        },
        false,
    )
    .expect("import");
    [report.train_file, report.test_file]
        .iter()
        .map(|f| FolderDataset::read(f).expect("read"))
        .collect()
}

#[test]
fn every_encoded_shape_video_is_read_as_captioned() {
    let dir = tempfile::tempdir().expect("tmp");
    folder(dir.path(), false);
    for (size, frames) in [(SIZE, 10), (64, 6)] {
        let mut read_right = 0;
        for set in imported(dir.path(), size, frames) {
            for (i, v) in set.header.videos.iter().enumerate() {
                let video: Vec<f32> = set.video(i).iter().map(|&p| p as f32 / 255.0).collect();
                let r = read(&video, frames, size, size).expect("a shape");
                eprintln!(
                    "{size}px {}: read {:?} (fill {:.2}, moved rows {:.1} cols {:.1})",
                    v.caption,
                    r.caption(),
                    r.fill,
                    r.moved_rows,
                    r.moved_cols
                );
                assert_eq!(r.caption(), v.caption, "{size}px, {}: {r:?}", v.file);
                assert_eq!(r.frames_seen, frames);
                read_right += 1;
            }
        }
        assert_eq!(read_right, 18, "all 18 videos at {size}px");
    }
    // A grey video, and a black one.
    let grey = vec![0.5f32; 4 * 8 * 8];
    assert!(matches!(
        read(&grey, 4, 8, 8),
        Err(ShapesError::Layout { .. })
    ));
    let black = vec![0.0f32; 4 * 3 * 8 * 8];
    assert_eq!(read(&black, 4, 8, 8), Err(ShapesError::Empty));
}
