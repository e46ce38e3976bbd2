//! The product promise: a caption the one-digit model never saw in training (the
//! README's own, and two more) rendered by `syncdrawsrc` in a real GStreamer
//! pipeline with the shipped `models/mnist1-captions.onnx`, shows the captioned
//! digit moving the captioned way, as read by the shipped evaluator
//! (`models/evaluator.safetensors`, docs/evaluator.md).
//!
//! Needs the release plugin (`cargo build --release`, which `scripts/test.sh` runs
//! before the tests) and gst-launch-1.0.
use std::path::{Path, PathBuf};
use std::process::Command;
use syncdraw_data::{Content, Motion};
use syncdraw_evaluator::Evaluator;
use tch::{Device, Kind, Tensor};

const SEEDS: u64 = 10;
/// Of the 10 seeds, at least this many must show the captioned digit and motion.
const AT_LEAST: usize = 8;
const FRAMES: usize = 10;
const SIZE: usize = 64;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A directory holding only the release plugin, and a private registry for it.
fn plugin_env() -> (PathBuf, PathBuf) {
    let built = root().join("target/release/libgstsyncdraw.so");
    assert!(
        built.is_file(),
        "no plugin at {}: build it first with `cargo build --release` (scripts/test.sh does)",
        built.display()
    );
    let dir = std::env::temp_dir().join(format!("syncdraw-promise-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&built, dir.join("libgstsyncdraw.so")).unwrap();
    let registry = dir.join("registry.bin");
    (dir, registry)
}

/// One clip of `caption` at `seed`, as GRAY8 bytes from a real pipeline.
fn render(caption: &str, seed: u64, env: &(PathBuf, PathBuf)) -> Vec<u8> {
    let out = env.0.join(format!("clip-{seed}.raw"));
    let model = root().join("models/mnist1-captions.onnx");
    let status = Command::new("gst-launch-1.0")
        .env("GST_PLUGIN_PATH", &env.0)
        .env("GST_REGISTRY", &env.1)
        .arg("-q")
        .arg("syncdrawsrc")
        .arg(format!("caption={caption}"))
        .arg(format!("model-location={}", model.display()))
        .arg(format!("seed={seed}"))
        .arg("clips=1")
        .arg("execution-provider=cpu")
        .args(["!", "video/x-raw,format=GRAY8", "!", "filesink"])
        .arg(format!("location={}", out.display()))
        .output()
        .expect("run gst-launch-1.0 (gstreamer1.0-tools)");
    assert!(
        status.status.success(),
        "gst-launch-1.0 failed for {caption:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(
        bytes.len(),
        FRAMES * SIZE * SIZE,
        "one clip of 10 64x64 frames"
    );
    bytes
}

#[test]
fn unseen_captions_are_drawn_as_captioned() {
    let evaluator = Evaluator::load(&root().join("models/evaluator.safetensors"), Device::Cpu)
        .expect("the shipped evaluator");
    let env = plugin_env();
    // Test-split captions: in training, even digits only moved up and down and odd
    // digits only left and right.
    let cases = [
        (3, Motion::UpDown),
        (0, Motion::LeftRight),
        (7, Motion::UpDown),
    ];
    let mut failures = Vec::new();
    for (digit, motion) in cases {
        let want = Content(vec![(digit, motion)]);
        let caption = want.caption();
        let mut pixels = Vec::new();
        for seed in 1..=SEEDS {
            pixels.extend(render(&caption, seed, &env));
        }
        let videos = Tensor::from_slice(&pixels)
            .reshape([SEEDS as i64, FRAMES as i64, SIZE as i64, SIZE as i64])
            .to_kind(Kind::Float)
            / 255.0;
        let read = evaluator.predict(&videos).unwrap();
        let right = read.iter().filter(|c| **c == want).count();
        eprintln!(
            "{caption:?}: {right}/{SEEDS} read as captioned; read: {:?}",
            read.iter().map(Content::caption).collect::<Vec<_>>()
        );
        if right < AT_LEAST {
            failures.push(format!("{caption:?}: {right}/{SEEDS}"));
        }
    }
    let _ = std::fs::remove_dir_all(&env.0);
    assert!(
        failures.is_empty(),
        "fewer than {AT_LEAST} of {SEEDS} videos show the caption: {failures:?}"
    );
}
