// SPDX-License-Identifier: MIT OR Apache-2.0
//! Real pipelines: gst-launch-1.0 with the plugin file cargo built
//! (target/<profile>/deps/libgstsyncdraw.so) into x264enc ! mp4mux ! filesink, the file
//! decoded back with GStreamer and checked; raw output for seeds; the bundled-model
//! choice; the ONNX Runtime search; gst-inspect-1.0.
//!
//! The model is a trained one from models/ when there is one, else a synthetic test
//! model (tests/make_test_models.py), so these tests pass before and after the trained
//! models land. Nothing here needs a GPU: gst-launch runs use execution-provider=cpu
//! except where the default is the point.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use gst_pbutils::prelude::*;
use gst_video::VideoFrameExt;
use gstsyncdraw::syncdrawsrc::{model::ModelInfo, select};

/// A directory holding only the plugin cargo built with this test: a copy of
/// target/<profile>/deps/libgstsyncdraw.so (`cargo test` updates that file, not the
/// one in target/<profile>/, which only `cargo build` refreshes; deps/ also holds
/// proc-macro libraries that GStreamer should not scan).
fn plugin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/pipeline-<hash>
        let built = exe
            .parent()
            .expect("target/<profile>/deps")
            .join("libgstsyncdraw.so");
        assert!(built.is_file(), "no plugin at {}", built.display());
        let dir = tmp_dir("plugin");
        std::fs::copy(&built, dir.join("libgstsyncdraw.so")).expect("copy the plugin");
        dir
    })
    .clone()
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("syncdraw-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("create a temporary directory");
    d
}

/// A GStreamer command-line tool that sees only our plugin directory added, with a
/// private registry, and no ORT_DYLIB_PATH or SYNCDRAW_MODEL_DIR: ONNX Runtime and the
/// bundled models must be found without help.
fn gst_tool(tool: &str) -> Command {
    let mut cmd = Command::new(tool);
    cmd.env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", tmp_dir("registry").join("registry.bin"))
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("SYNCDRAW_MODEL_DIR");
    cmd
}

/// Runs a command and returns its output, echoing it for a failing test's log.
fn run(mut cmd: Command) -> Output {
    let out = cmd
        .output()
        .expect("run a GStreamer tool (install gstreamer1.0-tools)");
    eprintln!(
        "{:?}\n--- status {}\n--- stdout\n{}\n--- stderr\n{}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn all_output(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// `gst-launch-1.0 syncdrawsrc caption=... model-location=... <props> ! <tail...>`.
fn launch(model: &CaptionModel, props: &[&str], tail: &[&str]) -> Output {
    let mut cmd = gst_tool("gst-launch-1.0");
    cmd.arg("syncdrawsrc")
        .arg(format!("caption={}", model.caption))
        .arg(format!("model-location={}", model.path.display()))
        .args(props)
        .arg("!")
        .args(tail);
    run(cmd)
}

/// The luma planes of raw I420 frames, tightly packed rows.
fn i420_luma(raw: &[u8], w: u32, h: u32) -> Vec<Vec<u8>> {
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, w, h)
        .build()
        .expect("I420 video info");
    assert_eq!(raw.len() % info.size(), 0, "raw I420 length");
    let stride = info.stride()[0] as usize;
    raw.chunks_exact(info.size())
        .map(|f| {
            (0..h as usize)
                .flat_map(|row| &f[row * stride..row * stride + w as usize])
                .copied()
                .collect()
        })
        .collect()
}

/// What decoding a file back gave.
struct Decoded {
    /// The luma plane of each frame (I420 after the decoder), tightly packed rows.
    luma: Vec<Vec<u8>>,
    width: u32,
    height: u32,
    /// Titles of the tag messages on the bus.
    titles: Vec<String>,
}

/// Decodes `file` with `filesrc ! decodebin ! videoconvert ! I420 ! appsink`.
fn decode(file: &Path) -> Decoded {
    init();
    let pipeline = gst::parse::launch(
        "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=I420 \
         ! appsink name=sink sync=false",
    )
    .expect("decode pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    pipeline
        .by_name("src")
        .expect("filesrc")
        .set_property("location", file.to_str().expect("UTF-8 path"));
    let sink = pipeline
        .by_name("sink")
        .expect("appsink")
        .downcast::<gst_app::AppSink>()
        .expect("an appsink");
    let bus = pipeline.bus().expect("bus");
    pipeline
        .set_state(gst::State::Playing)
        .expect("decode pipeline to PLAYING");
    let mut out = Decoded {
        luma: Vec::new(),
        width: 0,
        height: 0,
        titles: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        while let Some(msg) = bus.pop() {
            match msg.view() {
                gst::MessageView::Error(e) => {
                    panic!(
                        "decoding {}: {} ({:?})",
                        file.display(),
                        e.error(),
                        e.debug()
                    )
                }
                gst::MessageView::Tag(t) => {
                    if let Some(title) = t.tags().get::<gst::tags::Title>() {
                        out.titles.push(title.get().to_owned());
                    }
                }
                _ => {}
            }
        }
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            let caps = sample.caps().expect("sample caps");
            let info = gst_video::VideoInfo::from_caps(caps).expect("video caps");
            (out.width, out.height) = (info.width(), info.height());
            let buffer = sample.buffer().expect("sample buffer");
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
                .expect("map the frame");
            let stride = frame.plane_stride()[0] as usize;
            let data = frame.plane_data(0).expect("luma plane");
            let w = info.width() as usize;
            out.luma.push(
                (0..info.height() as usize)
                    .flat_map(|row| &data[row * stride..row * stride + w])
                    .copied()
                    .collect(),
            );
        } else if sink.is_eos() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "decoding {} timed out",
            file.display()
        );
    }
    // Tag messages posted just before EOS.
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Tag]) {
        if let gst::MessageView::Tag(t) = msg.view() {
            if let Some(title) = t.tags().get::<gst::tags::Title>() {
                out.titles.push(title.get().to_owned());
            }
        }
    }
    pipeline
        .set_state(gst::State::Null)
        .expect("decode pipeline to NULL");
    out
}

fn discover(file: &Path) -> gst_pbutils::DiscovererInfo {
    init();
    let d = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(60)).expect("discoverer");
    let uri = gst::glib::filename_to_uri(file, None).expect("file URI");
    let info = d.discover_uri(&uri).expect("discover the file");
    assert_eq!(
        info.result(),
        gst_pbutils::DiscovererResult::Ok,
        "discovering {}",
        file.display()
    );
    info
}

/// A frame is not blank: its luma spans a real contrast range.
fn assert_not_blank(frames: &[Vec<u8>], what: &str) {
    for (i, f) in frames.iter().enumerate() {
        let (min, max) = (
            f.iter().copied().min().unwrap_or(0),
            f.iter().copied().max().unwrap_or(0),
        );
        assert!(
            max - min > 64,
            "{what}: frame {i} is blank (luma {min}..{max})"
        );
    }
}

/// The command, `syncdrawsrc caption=... ! x264enc ! mp4mux ! filesink`, run by
/// gst-launch-1.0 with the built plugin; the file is decoded back and checked against
/// the raw frames the element gives for the same seed.
#[test]
fn gst_launch_to_mp4_and_back() {
    let model = caption_model();
    let clips = 2;
    let dir = tmp_dir("mp4");
    let mp4 = dir.join("out.mp4");
    let props = [
        format!("clips={clips}"),
        "seed=7".to_owned(),
        "execution-provider=cpu".to_owned(),
    ];
    let props: Vec<&str> = props.iter().map(String::as_str).collect();
    let location = format!("location={}", mp4.display());
    let o = launch(
        &model,
        &props,
        &["x264enc", "!", "mp4mux", "!", "filesink", &location],
    );
    assert!(
        o.status.success(),
        "gst-launch-1.0 failed: {}",
        all_output(&o)
    );

    // Decoded back: frame count, size, title, content.
    let decoded = decode(&mp4);
    let n = clips * model.info.frames;
    assert_eq!(decoded.luma.len(), n, "frame count");
    assert_eq!(
        (decoded.width as usize, decoded.height as usize),
        (model.info.width, model.info.height),
        "frame size"
    );
    assert_not_blank(&decoded.luma, "decoded mp4");
    assert!(
        decoded.titles.contains(&model.caption),
        "title tag {:?} not among {:?}",
        model.caption,
        decoded.titles
    );

    // The same seed as raw I420: the file holds these frames, up to H.264 loss.
    let raw = dir.join("out.i420");
    let location = format!("location={}", raw.display());
    let o = launch(
        &model,
        &props,
        &["video/x-raw,format=I420", "!", "filesink", &location],
    );
    assert!(
        o.status.success(),
        "gst-launch-1.0 failed: {}",
        all_output(&o)
    );
    let bytes = std::fs::read(&raw).expect("read the raw output");
    let reference = i420_luma(&bytes, decoded.width, decoded.height);
    assert_eq!(reference.len(), n);
    for (i, (a, b)) in decoded.luma.iter().zip(&reference).enumerate() {
        let mad = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (x as i32 - y as i32).unsigned_abs() as u64)
            .sum::<u64>() as f64
            / a.len() as f64;
        assert!(
            mad < 8.0,
            "frame {i}: mean absolute luma difference {mad:.2}"
        );
    }
    // A clip moves: its frames are not all the same.
    let first_clip = &reference[..model.info.frames];
    assert!(
        first_clip.iter().any(|f| *f != first_clip[0]),
        "all frames of the first clip are identical"
    );

    // The container: H.264 High profile (not High 4:4:4), the size, the title.
    let info = discover(&mp4);
    let video = info.video_streams();
    assert_eq!(video.len(), 1, "one video stream");
    assert_eq!(
        (video[0].width() as usize, video[0].height() as usize),
        (model.info.width, model.info.height)
    );
    let caps = video[0].caps().expect("video caps");
    let s = caps.structure(0).expect("caps structure");
    assert_eq!(s.name(), "video/x-h264", "{caps}");
    assert_eq!(s.get::<&str>("profile").ok(), Some("high"), "{caps}");
    // The file's global tags (DiscovererInfo::tags is deprecated since 1.20 in favour
    // of per-stream tags, but qtdemux's title reaches only this list in 1.22).
    #[allow(deprecated)]
    let container_tags = info.tags().expect("file tags");
    let title = container_tags
        .get::<gst::tags::Title>()
        .expect("a title tag in the file");
    assert_eq!(title.get(), model.caption);
}

/// Raw output of gst-launch-1.0: the same seed gives the same bytes, different seeds
/// different videos.
#[test]
fn gst_launch_same_seed_same_bytes() {
    let model = caption_model();
    let dir = tmp_dir("seeds");
    let render = |seed: u64, name: &str| -> Vec<u8> {
        let file = dir.join(name);
        let location = format!("location={}", file.display());
        let seed = format!("seed={seed}");
        let o = launch(
            &model,
            &["clips=2", "batch-size=2", &seed, "execution-provider=cpu"],
            &["video/x-raw,format=GRAY8", "!", "filesink", &location],
        );
        assert!(
            o.status.success(),
            "gst-launch-1.0 failed: {}",
            all_output(&o)
        );
        std::fs::read(&file).expect("read the raw output")
    };
    let a = render(100, "a.gray");
    let frame = model.info.width * model.info.height;
    assert_eq!(a.len(), 2 * model.info.frames * frame, "two clips of GRAY8");
    assert!(a.iter().any(|&p| p != a[0]), "blank video");
    assert_eq!(
        a,
        render(100, "b.gray"),
        "the same seed must give the same bytes"
    );
    let c = render(101, "c.gray");
    assert_ne!(a, c, "different seeds must give different videos");
    // Not a few pixels: most frames differ.
    let differing = a
        .chunks_exact(frame)
        .zip(c.chunks_exact(frame))
        .filter(|(x, y)| x != y)
        .count();
    assert!(
        differing > model.info.frames,
        "only {differing} frames differ"
    );
}

/// With model-location unset, the element picks the bundled model that fits the
/// caption: from models/ of the source tree when the trained models are there, and
/// from $SYNCDRAW_MODEL_DIR (here the synthetic models) in any case.
#[test]
fn default_model_fits_caption() {
    // (models directory, via $SYNCDRAW_MODEL_DIR?)
    let mut dirs = vec![(synth_dir().to_path_buf(), true)];
    if let Some(dir) = bundled_dir() {
        dirs.push((dir, false));
    }
    let out = tmp_dir("default-model");
    for (dir, via_env) in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("read models directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
            .collect();
        files.sort();
        let mut cases: Vec<(String, PathBuf)> = Vec::new();
        for f in &files {
            let info = ModelInfo::read(f).expect("read model");
            let caption = if info.is_conditional() {
                match info.example_captions.first() {
                    Some(c) => c.clone(),
                    None => continue,
                }
            } else {
                String::new()
            };
            let chosen = select::select(&caption, std::slice::from_ref(&dir))
                .expect("a model fits the model's own example caption");
            cases.push((caption, chosen.path));
        }
        assert!(!cases.is_empty(), "no models in {}", dir.display());
        // The one-digit and two-digit caption models (bundled or synthetic) are chosen
        // for their own example captions.
        let caption_models = [
            BUNDLED_NAMES[0],
            BUNDLED_NAMES[1],
            "synth1-caption.onnx",
            "synth2-caption.onnx",
        ];
        let mut checked = 0;
        for name in caption_models {
            let path = dir.join(name);
            if let Some((_, chosen)) = cases.iter().find(|(c, _)| {
                !c.is_empty()
                    && ModelInfo::read(&path).is_ok_and(|m| m.example_captions.first() == Some(c))
            }) {
                assert_eq!(chosen, &path, "the example caption of {name}");
                checked += 1;
            }
        }
        assert!(
            checked >= 2,
            "one- and two-digit models in {}",
            dir.display()
        );
        for (i, (caption, chosen)) in cases.iter().enumerate() {
            let render = |explicit: bool| -> Vec<u8> {
                let file = out.join(format!("{i}-{explicit}.gray"));
                let mut cmd = gst_tool("gst-launch-1.0");
                if via_env {
                    cmd.env("SYNCDRAW_MODEL_DIR", &dir);
                }
                cmd.arg("syncdrawsrc");
                if !caption.is_empty() {
                    // (An empty argument would swallow the next one: leave the default.)
                    cmd.arg(format!("caption={caption}"));
                }
                cmd.args(["clips=1", "seed=3", "execution-provider=cpu"]);
                if explicit {
                    cmd.arg(format!("model-location={}", chosen.display()));
                }
                cmd.args(["!", "video/x-raw,format=GRAY8", "!", "filesink"])
                    .arg(format!("location={}", file.display()));
                let o = run(cmd);
                assert!(
                    o.status.success(),
                    "caption {caption:?}: {}",
                    all_output(&o)
                );
                std::fs::read(&file).expect("read the raw output")
            };
            let default = render(false);
            assert!(!default.is_empty());
            assert_eq!(
                default,
                render(true),
                "caption {caption:?} should use {}",
                chosen.display()
            );
        }
    }
}

/// A missing ONNX Runtime names what was looked for.
#[test]
fn missing_onnx_runtime_names_the_search() {
    let model = synth("synth1-caption.onnx");
    let args = |cmd: &mut Command| {
        cmd.args(["syncdrawsrc", "num-buffers=1"])
            .arg(format!("model-location={}", model.display()))
            .arg(format!("caption={CAPTION}"))
            .args(["!", "fakesink"]);
    };
    // ORT_DYLIB_PATH overrides everything.
    let mut cmd = gst_tool("gst-launch-1.0");
    cmd.env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so.1");
    args(&mut cmd);
    let o = run(cmd);
    let text = all_output(&o);
    assert!(!o.status.success());
    assert!(text.contains("ONNX Runtime library not found"), "{text}");
    assert!(text.contains("/nonexistent/libonnxruntime.so.1"), "{text}");

    // Without the venv (an empty home), every place looked at is named.
    let home = fresh_dir("syncdraw-empty-home");
    let mut cmd = gst_tool("gst-launch-1.0");
    cmd.env("HOME", &home).env_remove("XDG_CACHE_HOME");
    args(&mut cmd);
    let o = run(cmd);
    let text = all_output(&o);
    if o.status.success() {
        eprintln!("a system ONNX Runtime was found; skipping the not-found check");
        return;
    }
    assert!(text.contains("ONNX Runtime library not found"), "{text}");
    assert!(
        text.contains(&format!("{}/libonnxruntime.so*", plugin_dir().display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}/.cache/syncdraw/venv-", home.display())),
        "{text}"
    );
    assert!(
        text.contains("libonnxruntime.so.1 (system library search path)"),
        "{text}"
    );
}

/// ONNX Runtime is found with no variable set (the venv of scripts/setup.sh).
#[test]
fn gst_launch_finds_onnx_runtime_without_variables() {
    let model = synth("synth1-caption.onnx");
    let mut cmd = gst_tool("gst-launch-1.0");
    cmd.args(["syncdrawsrc", "clips=1", "execution-provider=cpu"])
        .arg(format!("model-location={}", model.display()))
        .arg(format!("caption={CAPTION}"))
        .args(["!", "fakesink"]);
    let o = run(cmd);
    assert!(o.status.success(), "{}", all_output(&o));
}

/// A caption outside the grammar fails gst-launch-1.0 with the offending word and the
/// accepted form on stderr.
#[test]
fn gst_launch_reports_caption_outside_grammar() {
    let model = synth("synth1-caption.onnx");
    let mut cmd = gst_tool("gst-launch-1.0");
    cmd.args([
        "syncdrawsrc",
        "caption=digit 3 is flying",
        "execution-provider=cpu",
    ])
    .arg(format!("model-location={}", model.display()))
    .args(["!", "fakesink"]);
    let o = run(cmd);
    let text = all_output(&o);
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("word 4 \"flying\" is not what the grammar expects here (\"moving\")"),
        "{text}"
    );
    assert!(text.contains(FORM), "{text}");
}

/// Without model-location and with no model fitting the caption, gst-launch-1.0 fails
/// with every caption model's reason; with a fitting caption it runs.
#[test]
fn gst_launch_default_model_names_each_models_reason() {
    let dir = synth_dir();
    let launch_default = |caption: &str| {
        let mut cmd = gst_tool("gst-launch-1.0");
        cmd.env("SYNCDRAW_MODEL_DIR", dir)
            .arg("syncdrawsrc")
            .arg(format!("caption={caption}"))
            .args(["clips=1", "execution-provider=cpu", "!", "fakesink"]);
        run(cmd)
    };
    // Three digits: too many objects for either grammar, too many words for format 1.
    let three = format!("{TWO_DIGITS} and digit 3 is moving up and down");
    let o = launch_default(&three);
    let text = all_output(&o);
    assert!(!o.status.success(), "{text}");
    for reason in [
        format!("no model in {} fits caption {three:?}", dir.display()),
        format!("synth1-caption.onnx: caption {three:?} describes 3 objects; this model draws exactly 1"),
        format!("synth2-caption.onnx: caption {three:?} describes 3 objects; this model draws exactly 2"),
        format!("synth1-words.onnx: caption {three:?} has 23 words; this model reads at most 7"),
        "Set model-location to choose a model".into(),
    ] {
        assert!(text.contains(&reason), "{reason:?} not in {text}");
    }
    for caption in [CAPTION, TWO_DIGITS] {
        let o = launch_default(caption);
        assert!(o.status.success(), "{caption:?}: {}", all_output(&o));
    }
}

#[test]
fn gst_inspect_documents_every_property() {
    let mut cmd = gst_tool("gst-inspect-1.0");
    cmd.arg("syncdrawsrc");
    let o = run(cmd);
    assert!(o.status.success(), "{}", all_output(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    for p in [
        "caption",
        "model-location",
        "execution-provider",
        "device-id",
        "seed",
        "temperature",
        "clips",
        "batch-size",
        "parallel-batches",
        "show-steps",
        "is-live",
        "num-buffers",
    ] {
        assert!(
            text.contains(&format!("  {p} ")),
            "{p} not in gst-inspect output"
        );
    }
    assert!(text.contains("format: { (string)I420"), "I420 first");
    assert!(
        text.contains("(0): auto"),
        "execution-provider values listed"
    );
}
