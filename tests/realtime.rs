// SPDX-License-Identifier: MIT OR Apache-2.0
//! syncdrawsrc against the wall clock, with the shipped one-digit model: stopping
//! during an inference, and live playback across a caption change. These measure
//! time, so they live in a test binary of their own: cargo runs test binaries one
//! after another, and the two tests here take turns (a lock), so no other test's
//! inference competes for the CPU while they run.

mod common;

use common::*;
use gst::prelude::*;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stopping while a batch-256 inference of the shipped model runs does not wait for
/// it: the worker sets ONNX Runtime's terminate flag, so the state change returns
/// within 100 ms (or a quarter of one inference on a machine where that is longer).
#[test]
fn stop_during_inference_returns_without_waiting_for_it() {
    use std::time::{Duration, Instant};
    let _serial = serial();
    init();
    let model = manifest_dir().join("models/mnist1-captions.onnx");
    let pipeline = gst::parse::launch(&format!(
        "syncdrawsrc model-location={} caption=\"digit 3 is moving up and down\" \
         batch-size=256 clips=0 execution-provider=cpu ! appsink name=sink sync=false",
        model.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let pull = || sink.pull_sample().expect("a frame before any error or EOS");
    pull();
    // Batch 2 was asked for when batch 1 arrived: the time to its first frame is
    // about one inference. Batch 3 is asked for as soon as batch 2 arrives.
    let t1 = Instant::now();
    for _ in 0..256 * 10 {
        pull();
    }
    let inference = t1.elapsed();
    let t2 = Instant::now();
    pipeline.set_state(gst::State::Null).unwrap();
    let stop = t2.elapsed();
    let bound = Duration::from_millis(100).max(inference / 4);
    assert!(
        stop < bound,
        "stopping took {stop:?} with an inference of about {inference:?} running"
    );
}

/// Live mode on the system clock, with a queue before a sink that drops frames
/// later than 20 ms, the caption changed at the fifth frame so that the next clip
/// has to be computed on demand (batch 256 of the shipped model): the first batch
/// is computed in start() and the reported latency covers the inference, so no
/// frame is dropped. (Before, 36 of these 40 frames were dropped.)
#[test]
fn live_with_a_real_clock_drops_no_frame_across_a_caption_change() {
    let _serial = serial();
    init();
    let model = manifest_dir().join("models/mnist1-captions.onnx");
    let pipeline = gst::parse::launch(&format!(
        "syncdrawsrc name=src model-location={} caption=\"digit 3 is moving up and down\" \
         is-live=true batch-size=256 clips=0 num-buffers=40 execution-provider=cpu \
         ! video/x-raw,framerate=25/1 \
         ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 \
         ! fakesink name=sink sync=true qos=true max-lateness=20000000",
        model.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline.by_name("src").unwrap();
    let pushed = std::sync::atomic::AtomicU32::new(0);
    let element = src.clone();
    src.static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if pushed.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 4 {
                element.set_property("caption", "digit 7 is moving left and right");
            }
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS within two minutes");
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    let stats = pipeline
        .by_name("sink")
        .unwrap()
        .property::<gst::Structure>("stats");
    pipeline.set_state(gst::State::Null).unwrap();
    let rendered = stats.get::<u64>("rendered").unwrap();
    let dropped = stats.get::<u64>("dropped").unwrap();
    assert_eq!((rendered, dropped), (40, 0), "{stats:?}");
}
