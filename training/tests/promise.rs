//! The product promise: a caption the one-digit model never saw in training (the
//! README's own, and two more) rendered by `syncdrawsrc` in a real GStreamer
//! pipeline with the shipped `models/mnist1-captions.onnx`, shows the captioned
//! digit moving the captioned way, as read by the shipped evaluator
//! (`models/evaluator.safetensors`, docs/evaluator.md).
//!
//! Needs the release plugin (`cargo build --release`, which `scripts/test.sh` runs
//! before the tests) and gst-launch-1.0.
mod common;

use common::plugin::PluginEnv;
use common::root;
use syncdraw_data::{Content, Motion};
use syncdraw_evaluator::Evaluator;
use tch::{Device, Kind, Tensor};

const SEEDS: u64 = 10;
/// Of the 10 seeds, at least this many must show the captioned digit and motion.
const AT_LEAST: usize = 8;
const FRAMES: usize = 10;
const SIZE: usize = 64;

/// One clip of `caption` at `seed`, as GRAY8 bytes from a real pipeline.
fn render(caption: &str, seed: u64, env: &PluginEnv) -> Vec<u8> {
    let model = root().join("models/mnist1-captions.onnx");
    let (bytes, _) = env.render(
        &model,
        &[
            &format!("caption={caption}"),
            &format!("seed={seed}"),
            "clips=1",
            "execution-provider=cpu",
        ],
        "video/x-raw,format=GRAY8",
        &format!("clip-{seed}.raw"),
    );
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
    let env = PluginEnv::new("promise");
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
    assert!(
        failures.is_empty(),
        "fewer than {AT_LEAST} of {SEEDS} videos show the caption: {failures:?}"
    );
}
