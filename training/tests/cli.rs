//! The `syncdraw-train` command line: bad numbers are refused up front with a
//! message that names the flag and what it accepts; `eval` says what its NLL is on,
//! and of which split.
use std::path::Path;
use std::process::{Command, Output};
use syncdraw_data::Split;
use syncdraw_training::batch::Batcher;
use syncdraw_training::checkpoint;
use syncdraw_training::train::Products;
use tch::{Device, Kind, Tensor};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_syncdraw-train"))
        .args(args)
        .output()
        .expect("runs syncdraw-train")
}

/// Runs a command that must succeed and parses the JSON report it prints.
fn json_report(args: &[&str]) -> serde_json::Value {
    let out = cli(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

#[test]
fn bad_numeric_flags_are_refused_with_what_is_accepted() {
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["eval", "--checkpoint", "x", "--batch", "0"],
            "--batch",
            "at least 1",
        ),
        (
            &["eval", "--checkpoint", "x", "--iwae-k", "0"],
            "--iwae-k",
            "at least 1",
        ),
        (
            &["eval", "--checkpoint", "x", "--limit=-3"],
            "--limit",
            "at least 1",
        ),
        (
            &["--threads", "0", "eval", "--checkpoint", "x"],
            "--threads",
            "at least 1",
        ),
        (
            &["train", "--run-dir", "r", "--lr", "nan"],
            "--lr",
            "finite number above 0",
        ),
        (
            &["train", "--run-dir", "r", "--lr=-1"],
            "--lr",
            "finite number above 0",
        ),
        (
            &["train", "--run-dir", "r", "--beta1", "1"],
            "--beta1",
            "from 0 to below 1",
        ),
        (
            &["train", "--run-dir", "r", "--ema-decay", "1"],
            "--ema-decay",
            "from 0 to below 1",
        ),
        (
            &["train", "--run-dir", "r", "--clip=-1"],
            "--clip",
            "at least 0",
        ),
        (
            &["train", "--run-dir", "r", "--batch", "0"],
            "--batch",
            "at least 1",
        ),
        (
            &["train", "--run-dir", "r", "--z-dim", "0"],
            "--z-dim",
            "at least 1",
        ),
        (
            &["train", "--run-dir", "r", "--checkpoint-every", "0"],
            "--checkpoint-every",
            "at least 1",
        ),
        (
            &["train", "--run-dir", "r", "--max-minutes", "0"],
            "--max-minutes",
            "above 0",
        ),
        (
            &[
                "sample",
                "--checkpoint",
                "x",
                "--out-dir",
                "o",
                "--temperature=-1",
            ],
            "--temperature",
            "at least 0",
        ),
        (
            &[
                "fidelity",
                "--checkpoint",
                "x",
                "--evaluator",
                "e",
                "--videos-per-caption",
                "0",
            ],
            "--videos-per-caption",
            "at least 1",
        ),
        (
            &[
                "fidelity",
                "--checkpoint",
                "x",
                "--evaluator",
                "e",
                "--temperature",
                "nan",
            ],
            "--temperature",
            "at least 0",
        ),
    ];
    for (args, flag, accepted) in cases {
        let out = cli(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} was accepted: {stderr}"
        );
        assert!(
            stderr.contains(flag) && stderr.contains(accepted),
            "{args:?}: the error should name {flag} and say {accepted:?}: {stderr}"
        );
    }
}

/// What `eval --checkpoint MODEL EXTRA` prints, on one thread, with a
/// fresh cache.
fn eval_report(model: &Path, cache: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--threads",
        "1",
        "eval",
        "--checkpoint",
        model.to_str().expect("utf-8 path"),
        "--cache-dir",
        cache.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    json_report(&args)
}

/// `eval` on the shipped one-digit model reports grey pixels, the entropy floor
/// of the evaluated videos and the NLL's excess over it.
#[test]
fn eval_reports_the_pixels_and_the_entropy_floor_of_grey_data() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mnist1-captions.safetensors");
    let cache = tempfile::tempdir().expect("tmp");
    let r = eval_report(&model, cache.path(), &["--limit", "20", "--batch", "20"]);
    assert_eq!(r["pixels"], "grey");
    let (floor, nll, excess) = (
        r["entropy_floor"].as_f64().expect("floor"),
        r["test_nll"].as_f64().expect("nll"),
        r["excess_over_floor"].as_f64().expect("excess"),
    );
    // One digit of about 46 nats per frame, 10 frames.
    assert!((300.0..700.0).contains(&floor), "floor {floor}");
    assert!(nll > floor, "NLL {nll} below the floor {floor}");
    // The far background is a part of the background's share.
    let background =
        r["reconstruction"].as_f64().expect("rec") - r["reconstruction_ink"].as_f64().expect("ink");
    let far = r["reconstruction_far_background"].as_f64().expect("far");
    assert!(
        (0.0..=background).contains(&far),
        "far {far}, background {background}"
    );
    assert!((excess - (nll - floor)).abs() < 1e-6);
}

/// `eval` of a two-digit model on layers named by caption slots, on binarised
/// digits, also scores each layer alone against its own digit's video (the
/// `--layer-targets` term, not part of the NLL); a one-canvas model gets no
/// such figure (the grey one-digit model above: checked here too).
///
/// The figures are checked against the library's term on the same videos and
/// noise, with the digits in caption order and swapped: `layer_targets` is
/// the first, `layer_targets_best` the smaller of the two per video, and
/// `layers_reassigned` the share of videos where the swapped order is
/// smaller. The committed captioned cell draws one digit on each layer:
/// against the digit it draws best, the layers miss by less than twice the
/// union's reconstruction; in three of these four videos (both digits moving the
/// same way) the layer a slot names draws the other slot's digit
/// (docs/results.md). `--per-video` writes each video's figures, which add
/// up to the report, with its caption.
#[test]
fn eval_scores_each_layer_against_its_own_digit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cache = tempfile::tempdir().expect("tmp");
    let report = |model: &Path| eval_report(model, cache.path(), &["--limit", "4", "--batch", "4"]);
    let weights = root.join("docs/runs/mnist2-layers-binarized-t64/weights-step-7016.safetensors");
    let lines = cache.path().join("per-video.jsonl");
    let per_video = ["--per-video", lines.to_str().expect("utf-8")];
    let layered = eval_report(
        &weights,
        cache.path(),
        &[&["--limit", "4", "--batch", "4"], &per_video[..]].concat(),
    );
    assert_eq!(layered["pixels"], "binarized");
    let term = layered["layer_targets"].as_f64().expect("the layer term");
    assert!(term.is_finite() && term > 0.0, "{term}");

    // The same four videos and noise (eval's default seed, 1) through the library.
    let ck = checkpoint::load(&weights, Device::Cpu).expect("weights");
    let digits = ck.meta.data.binarization_digits().expect("digits");
    let videos = ck
        .meta
        .data
        .load(Split::Test, cache.path())
        .expect("test split")
        .binarized(&digits)
        .expect("binarised");
    let batcher = Batcher::new(&videos, ck.meta.captions().as_ref(), Device::Cpu).expect("batcher");
    let idx = [0, 1, 2, 3];
    let (x, ids) = batcher.batch(&idx);
    let own = batcher.fixed_objects(&idx, &digits).expect("objects");
    let _guard = tch::no_grad_guard();
    let c = &ck.model.config;
    tch::manual_seed(1);
    let eps = Tensor::randn([4, c.timesteps, c.z_dim], (Kind::Float, Device::Cpu));
    // The training objective's term (not eval's matrix of every layer
    // against every digit), in caption order and with the digits swapped.
    let per_video = |targets: &Tensor| {
        let loss =
            ck.model
                .loss_observed(&x, ids.as_ref(), &eps, None, Products::F32, Some(targets));
        loss.layer_targets.expect("the term")
    };
    let (mine, swapped) = (per_video(&own), per_video(&own.flip([1])));
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-3 * b.abs().max(1.0);
    let figure = |key: &str| layered[key].as_f64().unwrap_or_else(|| panic!("{key}"));
    let best = mine.minimum(&swapped).mean(Kind::Double).double_value(&[]);
    let share = mine
        .gt_tensor(&swapped)
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[]);
    let in_order = mine.mean(Kind::Double).double_value(&[]);
    assert!(close(term, in_order), "eval {term}, library {in_order}");
    assert!(
        close(figure("layer_targets_best"), best),
        "{layered}, library {best}"
    );
    assert!(
        close(figure("layers_reassigned"), share),
        "{layered}, library {share}"
    );
    assert!(best < 2.0 * figure("reconstruction"), "{layered}");
    // Its write windows clear the background away from the strokes: of the
    // background's nats, almost none are more than 3 px from the ink
    // (docs/results.md: 2.0 of 191.2 on 200 videos).
    let background = figure("reconstruction") - figure("reconstruction_ink");
    let far = figure("reconstruction_far_background");
    assert!(
        far >= 0.0 && far < 0.05 * background,
        "far {far} of {background}"
    );
    assert!(share > 0.0 && share < 1.0, "{share}");

    // --per-video: a line per video, with its caption, adding up to the report.
    let videos: Vec<serde_json::Value> = std::fs::read_to_string(&lines)
        .expect("per-video file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(videos.len(), 4);
    let mean = |key: &str| {
        videos
            .iter()
            .map(|v| v[key].as_f64().expect(key))
            .sum::<f64>()
            / 4.0
    };
    for key in ["test_nll", "layer_targets", "layer_targets_best"] {
        let line_key = if key == "test_nll" { "nll" } else { key };
        assert!(close(mean(line_key), figure(key)), "{key}: {videos:?}");
    }
    let g = ck
        .meta
        .data
        .load(Split::Test, cache.path())
        .expect("test split");
    let frames = ck.meta.data.shape().frames;
    for (i, v) in videos.iter().enumerate() {
        assert_eq!(v["video"], i);
        assert_eq!(v["caption"], g.caption(i));
        // Its frames' reconstruction terms add up to its own.
        let per_frame: Vec<f64> = v["reconstruction_per_frame"]
            .as_array()
            .expect("a term per frame")
            .iter()
            .map(|f| f.as_f64().expect("nats"))
            .collect();
        assert_eq!(per_frame.len(), frames);
        let r = v["reconstruction"].as_f64().expect("nats");
        assert!(
            close(per_frame.iter().sum(), r),
            "{per_frame:?} against {r}"
        );
    }
    // A path that cannot be written: refused with the path, after the report.
    let out = cli(&[
        "--threads",
        "1",
        "eval",
        "--checkpoint",
        weights.to_str().expect("utf-8"),
        "--cache-dir",
        cache.path().to_str().expect("utf-8"),
        "--limit",
        "1",
        "--per-video",
        "/nonexistent/dir/v.jsonl",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dir/v.jsonl"));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the report");
    assert!(printed["test_nll"].is_f64());
    let one = report(&root.join("models/mnist1-captions.safetensors"));
    assert!(one.get("layer_targets").is_none(), "{one}");
}

/// `evaluator accuracy --binarize` says it read binarised videos, and the
/// shipped evaluator reads real binarised digits about as well as grey ones
/// (97.3 % against 98.9 % of all 2,000 one-digit test videos when this was
/// written): a binarised model's fidelity is not capped by the evaluator.
#[test]
fn the_evaluator_reads_real_binarised_videos() {
    let evaluator = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/evaluator.safetensors");
    let cache = tempfile::tempdir().expect("tmp");
    let r = json_report(&[
        "--threads",
        "1",
        "evaluator",
        "accuracy",
        "--evaluator",
        evaluator.to_str().expect("utf-8 path"),
        "--digits",
        "1",
        "--limit",
        "100",
        "--binarize",
        "--cache-dir",
        cache.path().to_str().expect("utf-8 path"),
    ]);
    assert_eq!(r["pixels"], "binarized");
    let score = &r["accuracy"]["1_digit_test"];
    assert_eq!(score["videos"], 100);
    let exact = score["exact"].as_f64().expect("exact");
    assert!(exact >= 0.9, "exact {exact}");
}

/// `eval --split train` evaluates the training videos, so a reader can tell how
/// much of the test NLL is the gap between the two splits. The shipped
/// one-digit model draws its training videos (captions and digit images it was
/// trained on) better than the test split's unseen digit-motion combinations
/// and digit images: 1,027 against 1,153 nats on the first 50 of each when this
/// was written. If `--split` were ignored, both reports would be of the same
/// videos.
#[test]
fn eval_measures_the_training_split_on_request() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mnist1-captions.safetensors");
    let cache = tempfile::tempdir().expect("tmp");
    let report = |split: &str| {
        eval_report(
            &model,
            cache.path(),
            &["--split", split, "--limit", "50", "--batch", "50"],
        )
    };
    let (train, test) = (report("train"), report("test"));
    assert_eq!(train["split"], "train");
    assert_eq!(test["split"], "test");
    assert_eq!(train["videos"], 50);
    let nll = |r: &serde_json::Value| r["test_nll"].as_f64().expect("nll");
    let floor = |r: &serde_json::Value| r["entropy_floor"].as_f64().expect("floor");
    assert_ne!(
        floor(&train),
        floor(&test),
        "the same videos were evaluated"
    );
    assert!(
        nll(&train) < 0.95 * nll(&test),
        "training videos {} nats, test videos {}",
        nll(&train),
        nll(&test)
    );
    let out = cli(&["eval", "--checkpoint", "x", "--split", "validation"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--split") && stderr.contains("train") && stderr.contains("test"),
        "the error should name --split and what it accepts: {stderr}"
    );
}

/// `syncdraw-train` answers MKL's vendor question itself so MKL runs its AVX2
/// kernels on AMD CPUs (src/bin/syncdraw-train/mkl_dispatch.rs). Training with
/// that answer and with MKL's own (`SYNCDRAW_MKL_VENDOR_CHECK=1`) gives the same
/// losses to float rounding: the fast kernels compute the same products. On an
/// x86-64 CPU not made by Intel the two must also differ in their last bits:
/// otherwise MKL never heard the answer (the symbol not exported, or renamed in
/// a later MKL) and both runs took the generic kernels.
#[test]
fn training_losses_do_not_depend_on_mkls_vendor_check() {
    let cache = tempfile::tempdir().expect("tmp");
    let losses = |vendor_check: Option<&str>| -> Vec<f64> {
        let run = tempfile::tempdir().expect("tmp");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_syncdraw-train"));
        cmd.args(["--threads", "1", "train", "--run-dir"])
            .arg(run.path())
            .args([
                "--train-size",
                "64",
                "--test-size",
                "16",
                "--steps",
                "3",
                "--batch",
                "16",
                "--eval-every",
                "0",
                "--log-every",
                "1",
                "--device",
                "cpu",
                "--cache-dir",
            ])
            .arg(cache.path())
            .env_remove("SYNCDRAW_MKL_VENDOR_CHECK");
        if let Some(v) = vendor_check {
            cmd.env("SYNCDRAW_MKL_VENDOR_CHECK", v);
        }
        let out = cmd.output().expect("runs syncdraw-train");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let metrics = std::fs::read_to_string(run.path().join("metrics.jsonl")).expect("metrics");
        metrics
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
                v["loss"].as_f64().expect("loss")
            })
            .collect()
    };
    let fast = losses(None);
    let checked = losses(Some("1"));
    assert_eq!(fast.len(), 3, "{fast:?}");
    for (a, b) in fast.iter().zip(&checked) {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs(),
            "losses differ: {fast:?} against {checked:?}"
        );
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let vendor = cpuinfo
        .lines()
        .find(|l| l.starts_with("vendor_id"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim);
    if cfg!(target_arch = "x86_64") && vendor.is_some_and(|v| v != "GenuineIntel") {
        assert_ne!(
            fast, checked,
            "on a {vendor:?} CPU the answer should change MKL's kernels, and so the last bits"
        );
    }
}

/// `weights --average` writes the moving average a run kept (`train
/// --ema-decay`) as the weights, marked as such; on weights with no average it
/// says why it cannot, and writes nothing.
#[test]
fn weights_writes_the_moving_average_on_request() {
    use syncdraw_training::checkpoint;
    let dir = tempfile::tempdir().expect("tmp");
    let path = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_string();
    let (run, cache) = (path("run"), path("cache"));
    let args = [
        "--threads",
        "1",
        "train",
        "--run-dir",
        &run,
        "--cache-dir",
        &cache,
        "--digits",
        "1",
        "--train-size",
        "32",
        "--test-size",
        "8",
        "--frames",
        "4",
        "--size",
        "32",
        "--timesteps",
        "3",
        "--read-k",
        "4",
        "--write-k",
        "4",
        "--enc-size",
        "16",
        "--dec-size",
        "16",
        "--z-dim",
        "4",
        "--steps",
        "3",
        "--batch",
        "8",
        "--ema-decay",
        "0.5",
    ];
    let out = cli(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ck_path = dir.path().join("run/checkpoint.safetensors");
    let ck_path = ck_path.to_str().expect("utf-8");
    let (avg, plain) = (path("average.safetensors"), path("plain.safetensors"));
    for (out_path, flag) in [(&avg, Some("--average")), (&plain, None)] {
        let mut a = vec![
            "weights",
            "--checkpoint",
            ck_path,
            "--out",
            out_path.as_str(),
        ];
        a.extend(flag);
        let out = cli(&a);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let load = |p: &str| checkpoint::load(Path::new(p), tch::Device::Cpu).expect("loads");
    let (ck, w_avg, w_plain) = (load(ck_path), load(&avg), load(&plain));
    let average = ck.average.expect("the run kept an average");
    assert!(w_avg.meta.averaged && !w_plain.meta.averaged);
    assert!(w_avg.adam.is_none() && w_avg.average.is_none());
    let (va, vp, vc) = (
        w_avg.model.vs.variables(),
        w_plain.model.vs.variables(),
        ck.model.vs.variables(),
    );
    for (name, w) in &vc {
        assert!(va[name].equal(&average[name]), "{name} is not the average");
        assert!(vp[name].equal(w), "{name} is not the run's weight");
    }
    assert!(
        vc.iter().any(|(n, w)| !w.equal(&va[n])),
        "average = weights"
    );
    // Weights without an average: a clear refusal, nothing written.
    let again = path("again.safetensors");
    let out = cli(&[
        "weights",
        "--checkpoint",
        &plain,
        "--out",
        &again,
        "--average",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no moving average") && stderr.contains("--ema-decay"),
        "{stderr}"
    );
    assert!(!Path::new(&again).exists());
}

/// `data --overlap --per-video` writes a line per test video, in split order
/// with its caption, whose counts average to the printed summary and whose
/// distances between the two digits are per frame, with their least and mean.
#[test]
fn overlap_per_video_lines_add_up_to_the_summary() {
    let cache = tempfile::tempdir().expect("tmp");
    let file = cache.path().join("overlap.jsonl");
    let out = cli(&[
        "--threads",
        "1",
        "data",
        "--digits",
        "2",
        "--train-size",
        "20",
        "--test-size",
        "60",
        "--cache-dir",
        cache.path().to_str().expect("utf-8"),
        "--overlap",
        "--per-video",
        file.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The test split's summary: the JSON line after "Test: ...".
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a summary"))
        .find(|v| v["split"] == "Test")
        .expect("the test split's summary");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .expect("the per-video file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 60);
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().expect(k);
    let mean = |k: &str| lines.iter().map(|v| f(v, k)).sum::<f64>() / 60.0;
    for k in ["pixels_covered_twice", "hidden_pixels", "ink_pixels"] {
        assert!((mean(k) - f(&summary, k)).abs() < 1e-9, "{k}");
    }
    let (mut near, mut moving) = (0, 0);
    for (i, v) in lines.iter().enumerate() {
        assert_eq!(v["video"], i);
        assert_eq!(
            v["caption"].as_str().map(|c| c.matches("digit").count()),
            Some(2)
        );
        let d: Vec<f64> = v["distances"]
            .as_array()
            .expect("distances")
            .iter()
            .map(|x| x.as_f64().expect("px"))
            .collect();
        assert_eq!(d.len(), 10);
        let least = d.iter().copied().fold(f64::INFINITY, f64::min);
        assert!((f(v, "least_distance") - least).abs() < 1e-9);
        assert!((f(v, "mean_distance") - d.iter().sum::<f64>() / 10.0).abs() < 1e-9);
        // Digits that cover a pixel twice have boxes that meet in some frame,
        // and the boxes lie in the 64 x 64 frame.
        if f(v, "pixels_covered_twice") > 0.0 {
            assert!(least < 28.0 * std::f64::consts::SQRT_2, "{v}");
            near += 1;
        }
        assert!(d
            .iter()
            .all(|&x| (0.0..=36.0 * std::f64::consts::SQRT_2).contains(&x)));
        moving += usize::from(d.iter().any(|&x| (x - d[0]).abs() > 1e-9));
    }
    // The digits move: their distance changes over the frames of most videos.
    assert!(
        moving > 30,
        "{moving} of 60 videos with a changing distance"
    );
    assert!(
        near > 0,
        "no video whose digits meet: the counts are untested"
    );
}
