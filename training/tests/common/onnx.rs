//! Exported models in ONNX Runtime and the ONNX checker. Needs the project venv
//! (scripts/setup.sh): ONNX Runtime 1.31.1 from its onnxruntime wheel (or
//! $ORT_DYLIB_PATH) and python's `onnx` package.
use onnx_protobuf::{Message, ModelProto};
use ort::session::Session;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tch::Tensor;

fn venv() -> Option<PathBuf> {
    std::env::var_os("SYNCDRAW_VENV").map(PathBuf::from)
}

pub fn ort_env() -> &'static ort::environment::Environment {
    static ENV: OnceLock<ort::environment::Environment> = OnceLock::new();
    ENV.get_or_init(|| {
        let lib = std::env::var_os("ORT_DYLIB_PATH")
            .map(PathBuf::from)
            .or_else(|| {
                venv().map(|v| {
                    v.join("lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1")
                })
            })
            .expect("set ORT_DYLIB_PATH or SYNCDRAW_VENV (source build-env.sh)");
        ort::init_from(&lib)
            .unwrap_or_else(|e| panic!("cannot load ONNX Runtime from {}: {e}", lib.display()))
            .with_name("syncdraw-export-test")
            .build()
            .expect("ONNX Runtime environment")
    })
}

pub fn python() -> PathBuf {
    venv().map_or_else(|| PathBuf::from("python3"), |v| v.join("bin/python"))
}

/// Runs the model at `path` on `z` (and `caption`): its `video` and `canvases`
/// outputs by name, each as (shape, values).
pub fn run_ort(
    path: &Path,
    z: &Tensor,
    caption: Option<&Tensor>,
) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let mut session = Session::builder(ort_env())
        .unwrap()
        .with_intra_threads(1)
        .unwrap()
        .commit_from_file(path)
        .unwrap_or_else(|e| panic!("ONNX Runtime refuses {}: {e}", path.display()));
    let shape = |t: &Tensor| t.size().iter().map(|&s| s as usize).collect::<Vec<_>>();
    let zv = Vec::<f32>::try_from(&z.reshape([-1])).unwrap();
    let mut inputs: Vec<(std::borrow::Cow<str>, ort::session::SessionInputValue)> = vec![(
        "z".into(),
        ort::value::Tensor::from_array((shape(z), zv))
            .unwrap()
            .into(),
    )];
    if let Some(c) = caption {
        let cv = Vec::<i64>::try_from(&c.reshape([-1])).unwrap();
        inputs.push((
            "caption".into(),
            ort::value::Tensor::from_array((shape(c), cv))
                .unwrap()
                .into(),
        ));
    }
    let outputs = session.run(inputs).expect("ONNX Runtime run");
    ["video", "canvases"]
        .into_iter()
        .map(|name| {
            let a = outputs[name].try_extract_array::<f32>().unwrap();
            (
                name.to_string(),
                (a.shape().to_vec(), a.iter().copied().collect()),
            )
        })
        .collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn check_with_onnx_checker(paths: &[&Path]) {
    let out = Command::new(python())
        .arg("-c")
        .arg(
            "import sys, onnx\n\
             for p in sys.argv[1:]:\n    \
                 onnx.checker.check_model(onnx.load(p), full_check=True)\n",
        )
        .args(paths)
        .output()
        .expect("run python (source build-env.sh for the project venv)");
    assert!(
        out.status.success(),
        "onnx.checker rejects the export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn read_model(path: &Path) -> ModelProto {
    ModelProto::parse_from_bytes(&std::fs::read(path).unwrap()).unwrap()
}

/// The model's `metadata_props` by key.
pub fn metadata(m: &ModelProto) -> HashMap<String, String> {
    m.metadata_props
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect()
}
