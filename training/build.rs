//! Link libtorch so the binary runs without LD_LIBRARY_PATH and keeps CUDA.
//!
//! * rpath to the venv's torch/lib (found the way torch-sys finds it, through the
//!   python on PATH), so `syncdraw-train` runs without any variable set;
//! * `--no-as-needed` around libtorch_cuda: otherwise the linker drops it (no symbol
//!   is referenced directly) and `tch::Cuda::is_available()` is false on a GPU;
//! * `mkl_serv_intel_cpu_true` of `syncdraw-train` in its dynamic symbol table,
//!   so MKL inside libtorch finds it (src/bin/syncdraw-train/mkl_dispatch.rs).
//!   rustc 1.9x puts a `#[no_mangle]` function of an executable there by itself
//!   (checked with `nm -D`), but says nothing of it: the flag states the need. A
//!   test fails if MKL stops hearing the answer (tests/cli.rs).
use std::process::Command;

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
        println!(
            "cargo:rustc-link-arg-bin=syncdraw-train=-Wl,--export-dynamic-symbol=mkl_serv_intel_cpu_true"
        );
    }
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    println!("cargo:rerun-if-env-changed=PATH");
    let python = std::env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args([
            "-c",
            "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))",
        ])
        .output();
    if let Ok(out) = out {
        if out.status.success() {
            let lib = String::from_utf8_lossy(&out.stdout).trim().to_string();
            println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
            if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
                println!("cargo:rustc-link-search=native={lib}");
                println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
            }
        }
    }
}
