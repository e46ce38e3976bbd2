//! The video-folder import on real encoded files, made here with GStreamer: the
//! frame count, size and channel order of what is imported, the split by caption,
//! and a corrupt file, a too-short one and a caption outside the grammar each
//! reported by name while the rest is imported.
mod common;

use common::shapes::{folder, write_video, SIZE};
use std::path::Path;
use syncdraw_data::bouncing::{Motion, Split};
use syncdraw_data::folder::{csv_fields, import, split_of, FolderDataset, ImportOptions};
use syncdraw_data::shapes::{self, ShapeVideo};
use syncdraw_data::video_io::{FrameRule, FrameSpec};

fn options(dir: &Path, out: &Path, channels: usize, rule: FrameRule) -> ImportOptions {
    ImportOptions {
        videos: dir.to_path_buf(),
        captions: dir.join("captions.csv"),
        grammar: shapes::grammar(),
        spec: FrameSpec {
            frames: 10,
            height: SIZE,
            width: SIZE,
            channels,
            rule,
        },
        out: out.to_path_buf(),
    }
}

#[test]
fn imports_encoded_files_and_reports_the_bad_ones_by_name() {
    let dir = tempfile::tempdir().expect("tmp");
    folder(dir.path(), true);
    let out = dir.path().join("set");
    let report = import(&options(dir.path(), &out, 3, FrameRule::Start), false).expect("import");
    assert_eq!(report.listed, 21);
    assert_eq!(report.imported, 18, "{report:?}");
    // Of every (colour, shape), one motion is held out for testing.
    assert_eq!((report.train, report.test), (9, 9));
    let skipped: Vec<(&str, &str)> = report
        .skipped
        .iter()
        .map(|s| (s.file.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert_eq!(skipped[0].0, "garbage.mp4");
    assert!(skipped[0].1.contains("decode"), "{skipped:?}");
    assert_eq!(skipped[1].0, "short.mp4");
    assert!(
        skipped[1].1.contains("has 3 frames, 10 are needed"),
        "{skipped:?}"
    );
    assert_eq!(skipped[2].0, "v00.mp4");
    assert!(skipped[2].1.contains("\"purple\""), "{skipped:?}");

    let train = FolderDataset::read(&report.train_file).expect("read train");
    let test = FolderDataset::read(&report.test_file).expect("read test");
    assert_eq!(train.header.split, Split::Train);
    assert_eq!((train.len(), test.len()), (9, 9));
    assert_eq!(train.video_len(), 10 * 3 * SIZE * SIZE);
    for d in [&train, &test] {
        for (i, v) in d.header.videos.iter().enumerate() {
            assert_eq!(split_of(&d.header.grammar, &v.objects), d.header.split);
            // Channel order R, G, B: the shape's own colour is the brightest plane
            // over the frame, and a black background elsewhere.
            let video = d.video(i);
            let plane = SIZE * SIZE;
            let sums: Vec<u64> = (0..3)
                .map(|c| {
                    (0..10)
                        .map(|f| {
                            video[(f * 3 + c) * plane..(f * 3 + c + 1) * plane]
                                .iter()
                                .map(|&p| p as u64)
                                .sum::<u64>()
                        })
                        .sum()
                })
                .collect();
            let colour = v.objects[0][0];
            let brightest = (0..3).max_by_key(|&c| sums[c]).expect("3 planes");
            assert_eq!(brightest, colour, "{}: plane sums {sums:?}", v.caption);
            let dark = video.iter().filter(|&&p| p < 40).count() as f64 / video.len() as f64;
            assert!(dark > 0.6, "{}: {dark} of the pixels are dark", v.caption);
        }
    }
    // The decoded shape moves along its caption's axis.
    let v = &train.header.videos[0];
    let video = train.video(0);
    let centre = |f: usize| {
        let c = v.objects[0][0];
        let p = &video[(f * 3 + c) * SIZE * SIZE..(f * 3 + c + 1) * SIZE * SIZE];
        let (mut r, mut col, mut n) = (0.0, 0.0, 0.0);
        for (i, &x) in p.iter().enumerate() {
            if x > 128 {
                r += (i / SIZE) as f64;
                col += (i % SIZE) as f64;
                n += 1.0;
            }
        }
        (r / n, col / n)
    };
    // Summed frame-to-frame motion of the centre along the caption's axis and
    // across it.
    let (moved, still) = (1..10).fold((0.0, 0.0), |(along, across), f| {
        let (a, b) = (centre(f - 1), centre(f));
        let (dr, dc) = ((a.0 - b.0).abs(), (a.1 - b.1).abs());
        if v.objects[0][2] == 0 {
            (along + dr, across + dc)
        } else {
            (along + dc, across + dr)
        }
    });
    assert!(
        moved > 10.0 && still < 2.0,
        "{}: moved {moved}, still {still}",
        v.caption
    );
}

#[test]
fn grey_import_and_frame_rules() {
    let dir = tempfile::tempdir().expect("tmp");
    let v = ShapeVideo {
        shape: 1,
        colour: 1,
        motion: Motion::LeftRight,
    };
    write_video(dir.path(), "a.mp4", v, 12, 5);
    std::fs::write(
        dir.path().join("captions.csv"),
        format!("video,caption\na.mp4,{}\n", v.caption()),
    )
    .expect("write");
    let grey = |rule| {
        let out = dir.path().join(format!("{rule:?}"));
        let report = import(&options(dir.path(), &out, 1, rule), false).expect("import");
        let f = if report.train == 1 {
            report.train_file
        } else {
            report.test_file
        };
        FolderDataset::read(&f).expect("read")
    };
    let start = grey(FrameRule::Start);
    assert_eq!(start.video_len(), 10 * SIZE * SIZE);
    let even = grey(FrameRule::Even);
    // Evenly spaced over 12 frames: 0, 1, 2, 4, 5, 6, 7, 9, 10, 11 -> the first
    // frames agree with start, the last differs.
    let frame =
        |d: &FolderDataset, f: usize| d.video(0)[f * SIZE * SIZE..(f + 1) * SIZE * SIZE].to_vec();
    assert_eq!(frame(&start, 0), frame(&even, 0));
    assert_ne!(frame(&start, 9), frame(&even, 9));
    // stride:2 needs 19 frames: the 12-frame video is refused by name.
    let out = dir.path().join("stride");
    let report =
        import(&options(dir.path(), &out, 1, FrameRule::Stride(2)), false).expect("import");
    assert_eq!(report.imported, 0);
    assert_eq!(report.skipped[0].file, "a.mp4");
    assert!(
        report.skipped[0]
            .reason
            .contains("has 12 frames, 19 are needed"),
        "{:?}",
        report.skipped
    );
    assert_eq!(
        FrameRule::parse("stride:0").unwrap_err(),
        "frame rule \"stride:0\": expected start, stride:K (K >= 1) or even"
    );
}

#[test]
fn csv_records_and_the_held_out_split() {
    assert_eq!(csv_fields("a.mp4,digit 3").unwrap(), ["a.mp4", "digit 3"]);
    assert_eq!(
        csv_fields("\"my, video.mp4\",\"say \"\"hi\"\"\"").unwrap(),
        ["my, video.mp4", "say \"hi\""]
    );
    assert!(csv_fields("\"open").is_err());
    // One-digit Bouncing MNIST: the rule gives the paper's split.
    let g = syncdraw_data::bouncing::grammar(1);
    for d in 0..10usize {
        for (m, motion) in Motion::ALL.into_iter().enumerate() {
            let content = syncdraw_data::Content(vec![(d as u8, motion)]);
            assert_eq!(
                split_of(&g, &[vec![d, m]]),
                syncdraw_data::bouncing::split_of(&content),
                "digit {d} {motion:?}"
            );
        }
    }
}
