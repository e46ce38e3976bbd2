// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reliability of syncdrawsrc over long runs, with the synthetic test model: a soak
//! (frames through fakesink, resident memory sampled), state cycling (NULL ->
//! PLAYING -> NULL, and PAUSED <-> PLAYING in live mode) and caption changes from
//! another thread while playing.
//!
//! The suite runs short versions. `scripts/reliability.sh` runs the long ones by
//! setting the counts in the environment (`SYNCDRAW_SOAK_FRAMES`,
//! `SYNCDRAW_CYCLES`, `SYNCDRAW_CAPTION_CHANGES`); every test prints its figures
//! (docs/reliability.md).

mod common;

use common::*;
use gst::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A count from the environment, or `default`.
fn count(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .expect("VmRSS in /proc/self/status")
}

/// Bytes the C allocator has handed out and not had back (arena and mmapped
/// blocks): what the process holds, unlike resident memory, which also counts
/// freed pages the allocator keeps for reuse.
fn heap_in_use() -> u64 {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as u64
}

/// Names of this process's threads (the kernel cuts them to 15 characters).
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .collect()
}

/// Threads of this process.
fn threads() -> usize {
    thread_names().len()
}

/// Inference threads of this process (named `syncdraw-infer-N`).
fn inference_threads() -> usize {
    thread_names()
        .iter()
        .filter(|name| name.starts_with("syncdraw-infer"))
        .count()
}

/// These tests measure memory and threads of the whole process: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn pipeline(description: &str) -> gst::Pipeline {
    gst::parse::launch(description)
        .expect("pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline")
}

/// Waits for EOS; panics on an error message or after `timeout`.
fn wait_eos(p: &gst::Pipeline, timeout: Duration) {
    let msg = p
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .unwrap_or_else(|| panic!("no EOS within {timeout:?}"));
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("error: {} ({:?})", e.error(), e.debug());
    }
}

/// Frames through fakesink with clips=0: memory sampled every 1,000 frames stays
/// within 5 % of the sample after the warm-up (a quarter of the run, at most
/// 10,000 frames), and the run ends at EOS without an error.
#[test]
fn soak_memory_is_flat() {
    let _serial = serial();
    init();
    let frames = count("SYNCDRAW_SOAK_FRAMES", 20_000);
    let warmup = (frames / 4).min(10_000);
    // (batch size, parallel-batches): one session, then one session per core.
    for (batch, parallel) in [(1u32, 1u32), (16, 1), (1, 0)] {
        let p = pipeline(&format!(
            "syncdrawsrc model-location={} caption=\"{CAPTION}\" clips=0 batch-size={batch} \
             parallel-batches={parallel} num-buffers={frames} execution-provider=cpu \
             ! fakesink name=sink sync=false signal-handoffs=true",
            synth("synth1-caption.onnx").display()
        ));
        let seen = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(Mutex::new(Vec::<(u64, u64)>::new()));
        let sink = p.by_name("sink").unwrap();
        let (s, m) = (seen.clone(), samples.clone());
        sink.connect("handoff", false, move |_| {
            let n = s.fetch_add(1, Ordering::Relaxed) + 1;
            if n % 1_000 == 0 {
                m.lock().unwrap().push((n, rss_kib()));
            }
            None
        });
        let started = Instant::now();
        p.set_state(gst::State::Playing).unwrap();
        wait_eos(&p, Duration::from_secs(3_600));
        let secs = started.elapsed().as_secs_f64();
        p.set_state(gst::State::Null).unwrap();
        assert_eq!(seen.load(Ordering::Relaxed), frames);
        let samples = samples.lock().unwrap().clone();
        let base = samples
            .iter()
            .find(|(n, _)| *n >= warmup)
            .expect("a sample after the warm-up")
            .1;
        let after: Vec<u64> = samples
            .iter()
            .filter(|(n, _)| *n > warmup)
            .map(|s| s.1)
            .collect();
        let max = after.iter().copied().max().unwrap_or(base);
        println!(
            "soak batch {batch}, parallel-batches {parallel}: {frames} frames in {secs:.1} s \
             ({:.0} frames/s); RSS after \
             {warmup} frames {base} KiB, highest after it {max} KiB ({:+.2} %), last {} KiB",
            frames as f64 / secs,
            100.0 * (max as f64 / base as f64 - 1.0),
            after.last().copied().unwrap_or(base)
        );
        assert!(
            max as f64 <= base as f64 * 1.05,
            "memory grew from {base} to {max} KiB: {samples:?}"
        );
    }
}

/// What the process holds, sampled after returning the allocator's free pages to
/// the system (malloc_trim): threads, resident memory and heap in use.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    threads: usize,
    rss_kib: u64,
    heap_kib: u64,
}

/// The thread count once threads that are ending have ended: the same count
/// twice, 100 ms apart (at most 2 s).
fn settled_threads() -> usize {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut last = threads();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = threads();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

fn held() -> Held {
    // SAFETY: malloc_trim only gives free pages back to the system.
    unsafe { libc::malloc_trim(0) };
    Held {
        threads: settled_threads(),
        rss_kib: rss_kib(),
        heap_kib: heap_in_use() / 1024,
    }
}

/// NULL -> PLAYING (first buffer) -> NULL, many times: every stop returns promptly,
/// and no thread or memory is left behind: threads after the last cycle against
/// after the tenth (the first ones load ONNX Runtime), resident memory and heap in
/// use at the end against half-way (caches fill for a few hundred cycles, see
/// docs/reliability.md). Memory is sampled after malloc_trim: without it,
/// resident memory also counts freed pages that glibc keeps for reuse.
#[test]
fn state_cycles_leak_nothing() {
    let _serial = serial();
    init();
    let cycles = count("SYNCDRAW_CYCLES", 100).max(20);
    let p = pipeline(&format!(
        "syncdrawsrc model-location={} caption=\"{CAPTION}\" clips=0 batch-size=4 \
         execution-provider=cpu ! fakesink sync=false",
        synth("synth1-caption.onnx").display()
    ));
    let (mut base, mut mid) = (Held::default(), Held::default());
    let mut untrimmed_base = 0;
    let mut slowest_stop = Duration::ZERO;
    // One cycle; returns how long the stop took.
    let cycle = |i: u64| {
        p.set_state(gst::State::Playing).unwrap();
        // Wait until the sink has a buffer (PLAYING reached).
        let (res, state, _) = p.state(gst::ClockTime::from_seconds(30));
        assert!(
            res.is_ok() && state == gst::State::Playing,
            "cycle {i}: {res:?}"
        );
        let t = Instant::now();
        p.set_state(gst::State::Null).unwrap();
        t.elapsed()
    };
    for i in 0..cycles {
        slowest_stop = slowest_stop.max(cycle(i));
        if i == 9 {
            untrimmed_base = rss_kib();
            base = held();
        }
        if i == (cycles + 10) / 2 {
            mid = held();
        }
    }
    let untrimmed_end = rss_kib();
    let end = held();
    println!(
        "state cycles: {cycles} NULL->PLAYING->NULL; threads {} after 10 cycles, {} at the \
         end; after malloc_trim, RSS {} / {} / {} KiB and heap in use {} / {} / {} KiB after \
         10 cycles / half-way / the end ({:+.2} % and {:+.1} bytes per cycle over the second \
         half); untrimmed RSS {untrimmed_base} KiB after 10 cycles, {untrimmed_end} KiB at \
         the end; slowest stop {slowest_stop:?}",
        base.threads,
        end.threads,
        base.rss_kib,
        mid.rss_kib,
        end.rss_kib,
        base.heap_kib,
        mid.heap_kib,
        end.heap_kib,
        100.0 * (end.rss_kib as f64 / mid.rss_kib as f64 - 1.0),
        1024.0 * (end.heap_kib as f64 - mid.heap_kib as f64)
            / (cycles - (cycles + 10) / 2 - 1) as f64,
    );
    // A stopped source's streaming thread goes back to GStreamer's task pool, a
    // GLib thread pool that keeps up to two idle threads (GLib's default) for 15 s:
    // one more or one fewer idle thread is not a leak; a thread per cycle would be.
    assert!(
        end.threads <= base.threads + 2,
        "threads leaked: {} after 10 cycles, {} at the end",
        base.threads,
        end.threads
    );
    // Over the second half the process must hold no more than it did half-way:
    // a leak of L bytes per cycle would add L x cycles / 2. Resident memory can
    // also step up once without a leak (on a loaded machine, a pool thread's
    // stack or a malloc arena first touched late, outside the heap in use, which
    // stays flat): where it grew by more than 5 %, the second half is run again,
    // and a leak must grow it again by as much.
    let (mut rss_from, mut rss_to) = (mid.rss_kib, end.rss_kib);
    if rss_to as f64 > rss_from as f64 * 1.05 {
        for i in cycles..cycles + (cycles - (cycles + 10) / 2) {
            slowest_stop = slowest_stop.max(cycle(i));
        }
        let again = held();
        println!(
            "RSS grew {:+.2} % over the second half; over the same number of cycles \
             again: {} -> {} KiB ({:+.2} %), heap in use {} KiB",
            100.0 * (rss_to as f64 / rss_from as f64 - 1.0),
            end.rss_kib,
            again.rss_kib,
            100.0 * (again.rss_kib as f64 / end.rss_kib as f64 - 1.0),
            again.heap_kib
        );
        (rss_from, rss_to) = (end.rss_kib, again.rss_kib);
    }
    assert!(
        rss_to as f64 <= rss_from as f64 * 1.05,
        "resident memory grew from {} to {} KiB over the second half, and again",
        rss_from,
        rss_to
    );
    assert!(
        end.heap_kib as f64 <= mid.heap_kib as f64 * 1.05,
        "heap in use grew from {} to {} KiB over the second half",
        mid.heap_kib,
        end.heap_kib
    );
    assert!(slowest_stop < Duration::from_secs(1), "{slowest_stop:?}");

    // Live: PAUSED <-> PLAYING, and frames keep coming.
    let p = pipeline(&format!(
        "syncdrawsrc model-location={} caption=\"{CAPTION}\" clips=0 is-live=true \
         execution-provider=cpu ! fakesink name=sink sync=true signal-handoffs=true",
        synth("synth1-caption.onnx").display()
    ));
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    p.by_name("sink")
        .unwrap()
        .connect("handoff", false, move |_| {
            s.fetch_add(1, Ordering::Relaxed);
            None
        });
    p.set_state(gst::State::Playing).unwrap();
    for _ in 0..(cycles / 5) {
        std::thread::sleep(Duration::from_millis(30));
        p.set_state(gst::State::Paused).unwrap();
        p.set_state(gst::State::Playing).unwrap();
    }
    let before = seen.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.load(Ordering::Relaxed) < before + 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        seen.load(Ordering::Relaxed) >= before + 3,
        "no frames after PAUSED <-> PLAYING"
    );
    let error = p.bus().unwrap().pop_filtered(&[gst::MessageType::Error]);
    assert!(error.is_none(), "{error:?}");
    p.set_state(gst::State::Null).unwrap();
}

/// Captions changed from another thread while playing, valid and invalid mixed:
/// no error, no deadlock, a warning for each invalid one (which keeps the previous
/// caption), and every title tag downstream names a valid caption that was set.
#[test]
fn concurrent_caption_changes() {
    caption_changes_while_playing(1);
}

/// The same with batches computed on three inference threads at once.
#[test]
fn concurrent_caption_changes_with_parallel_batches() {
    caption_changes_while_playing(3);
}

fn caption_changes_while_playing(parallel_batches: u32) {
    let _serial = serial();
    init();
    let changes = count("SYNCDRAW_CAPTION_CHANGES", 1_000);
    let valid: Vec<String> = (0..10)
        .map(|d| {
            format!(
                "digit {d} is moving {}",
                if d % 2 == 0 {
                    "up and down"
                } else {
                    "left and right"
                }
            )
        })
        .collect();
    let p = pipeline(&format!(
        "syncdrawsrc name=src model-location={} caption=\"{}\" clips=0 batch-size=4 \
         parallel-batches={parallel_batches} execution-provider=cpu ! fakesink name=sink sync=false",
        synth("synth1-caption.onnx").display(),
        valid[0]
    ));
    let src = p.by_name("src").unwrap();
    let titles = Arc::new(Mutex::new(Vec::<String>::new()));
    let t = titles.clone();
    p.by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(ev)) = &info.data {
                if let gst::EventView::Tag(tag) = ev.view() {
                    if let Some(title) = tag.tag().get::<gst::tags::Title>() {
                        t.lock().unwrap().push(title.get().to_string());
                    }
                }
            }
            gst::PadProbeReturn::Ok
        });
    p.set_state(gst::State::Playing).unwrap();
    let (res, _, _) = p.state(gst::ClockTime::from_seconds(30));
    assert!(res.is_ok());

    let changer = {
        let (src, valid) = (src.clone(), valid.clone());
        std::thread::spawn(move || {
            let (mut invalid, mut last_valid) = (0u64, valid[0].clone());
            for i in 0..changes {
                if i % 3 == 2 {
                    src.set_property("caption", "digit 3 is flying over the moon");
                    invalid += 1;
                } else {
                    last_valid = valid[(i as usize * 7) % valid.len()].clone();
                    src.set_property("caption", &last_valid);
                }
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            (invalid, last_valid)
        })
    };
    let started = Instant::now();
    let (invalid, last_valid) = changer.join().expect("the changing thread");
    let secs = started.elapsed().as_secs_f64();
    // Let a few more clips through, then stop.
    std::thread::sleep(Duration::from_millis(200));
    let bus = p.bus().unwrap();
    let mut warnings = 0;
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Error(e) => panic!("error: {} ({:?})", e.error(), e.debug()),
            gst::MessageView::Warning(w) => {
                assert!(w.error().to_string().contains("flying"), "{}", w.error());
                warnings += 1;
            }
            _ => {}
        }
    }
    assert_eq!(src.property::<String>("caption"), last_valid);
    let t = Instant::now();
    p.set_state(gst::State::Null).unwrap();
    let stop = t.elapsed();
    let titles = titles.lock().unwrap().clone();
    println!(
        "caption changes, parallel-batches {parallel_batches}: {changes} from another thread \
         in {secs:.2} s ({invalid} invalid, \
         {warnings} warnings); {} title tags downstream; stop {stop:?}",
        titles.len()
    );
    assert_eq!(warnings, invalid, "one warning per invalid caption");
    assert!(!titles.is_empty());
    for title in &titles {
        assert!(
            valid.contains(title),
            "title {title:?} was never a valid caption"
        );
    }
}

/// By default the element computes batches on one single-threaded session per
/// core, each on an inference thread of its own; `parallel-batches=1` gives one.
#[test]
fn one_inference_thread_per_core_by_default() {
    let _serial = serial();
    init();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (setting, expected) in [("", cores), ("parallel-batches=1", 1)] {
        let p = pipeline(&format!(
            "syncdrawsrc model-location={} caption=\"{CAPTION}\" clips=0 {setting} \
             execution-provider=cpu ! fakesink sync=false",
            synth("synth1-caption.onnx").display()
        ));
        p.set_state(gst::State::Playing).expect("playing");
        let (result, _, _) = p.state(gst::ClockTime::from_seconds(30));
        result.expect("reached PLAYING");
        let found = inference_threads();
        p.set_state(gst::State::Null).expect("null");
        assert_eq!(
            found, expected,
            "inference threads with {setting:?} on {cores} cores"
        );
    }
}
