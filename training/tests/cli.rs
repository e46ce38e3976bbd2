//! The `syncdraw-train` command line: bad numbers are refused up front with a
//! message that names the flag and what it accepts; `eval` says what its NLL is on.
use std::path::Path;
use std::process::{Command, Output};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_syncdraw-train"))
        .args(args)
        .output()
        .expect("runs syncdraw-train")
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

/// `eval` on the shipped one-digit model reports grey pixels, the entropy floor
/// of the evaluated videos and the NLL's excess over it.
#[test]
fn eval_reports_the_pixels_and_the_entropy_floor_of_grey_data() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/mnist1-captions.safetensors");
    let cache = tempfile::tempdir().expect("tmp");
    let out = cli(&[
        "--threads",
        "1",
        "eval",
        "--checkpoint",
        model.to_str().expect("utf-8 path"),
        "--limit",
        "20",
        "--batch",
        "20",
        "--cache-dir",
        cache.path().to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(r["pixels"], "grey");
    let (floor, nll, excess) = (
        r["entropy_floor"].as_f64().expect("floor"),
        r["test_nll"].as_f64().expect("nll"),
        r["excess_over_floor"].as_f64().expect("excess"),
    );
    // One digit of about 46 nats per frame, 10 frames.
    assert!((300.0..700.0).contains(&floor), "floor {floor}");
    assert!(nll > floor, "NLL {nll} below the floor {floor}");
    assert!((excess - (nll - floor)).abs() < 1e-6);
}
