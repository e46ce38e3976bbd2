// SPDX-License-Identifier: MIT OR Apache-2.0
//! Finding and loading the ONNX Runtime library (ort's `load-dynamic`).
//!
//! Search order (documented in docs/element.md):
//! 1. `ORT_DYLIB_PATH`, if set and not empty: only that file;
//! 2. `libonnxruntime.so*` in the directory of the plugin's own .so file;
//! 3. the project's Python venv cache, as scripts/pins.sh names it:
//!    `${XDG_CACHE_HOME:-$HOME/.cache}/syncdraw/<pinned venv>/lib/python3.11/site-packages/onnxruntime/capi/`,
//!    then any other `venv-*` there;
//! 4. the system's `libonnxruntime.so.1` (and `libonnxruntime.so`) through the dynamic
//!    linker's search path.
//!
//! ONNX Runtime can be loaded, and its environment built, only once per process: the
//! result is kept in a `OnceLock` for the life of the process. A failed attempt is not
//! kept, so a later start() can try again.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The pinned venv directory name and ONNX Runtime version, from scripts/pins.sh.
pub const PINNED_VENV: &str = env!("SYNCDRAW_PINNED_VENV");
pub const PINNED_ORT_VERSION: &str = env!("SYNCDRAW_PINNED_ORT_VERSION");

#[derive(Debug, Clone, thiserror::Error)]
pub enum OrtLoadError {
    #[error("ONNX Runtime library not found; looked for:\n  {}\nInstall it (scripts/setup.sh does) or set ORT_DYLIB_PATH to libonnxruntime.so", looked.join("\n  "))]
    NotFound { looked: Vec<String> },
    #[error("ONNX Runtime library could not be used; tried:\n  {}", tried.join("\n  "))]
    Unusable { tried: Vec<String> },
}

/// The loaded ONNX Runtime and its process-wide environment.
pub struct Runtime {
    pub env: ort::environment::Environment,
    /// What was loaded: a path, or a library name resolved by the dynamic linker.
    pub library: String,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// A place to look for the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// A file path (tried only if it exists).
    File(PathBuf),
    /// A library name resolved by the dynamic linker.
    System(String),
}

impl Candidate {
    fn describe(&self) -> String {
        match self {
            Candidate::File(p) => p.display().to_string(),
            Candidate::System(n) => format!("{n} (system library search path)"),
        }
    }
}

fn ort_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n == "libonnxruntime.so" || n.starts_with("libonnxruntime.so.")
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The cache directory scripts/pins.sh uses: `${XDG_CACHE_HOME:-$HOME/.cache}/syncdraw`.
pub fn syncdraw_cache_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    Some(base.join("syncdraw"))
}

fn venv_capi(venv: &Path) -> Vec<PathBuf> {
    let lib = venv.join("lib");
    let mut pys: Vec<PathBuf> = std::fs::read_dir(&lib)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("python3"))
                })
                .collect()
        })
        .unwrap_or_default();
    pys.sort();
    pys.into_iter()
        .map(|p| p.join("site-packages/onnxruntime/capi"))
        .collect()
}

/// Every place looked at, in order. `plugin_dir` is the directory of the plugin .so
/// (None when the plugin is linked statically).
pub fn candidates(plugin_dir: Option<&Path>) -> Vec<Candidate> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        return vec![Candidate::File(PathBuf::from(p))];
    }
    let mut out = Vec::new();
    if let Some(dir) = plugin_dir {
        let found = ort_files_in(dir);
        if found.is_empty() {
            out.push(Candidate::File(dir.join("libonnxruntime.so*")));
        }
        out.extend(found.into_iter().map(Candidate::File));
    }
    if let Some(cache) = syncdraw_cache_dir() {
        let pinned = cache
            .join(PINNED_VENV)
            .join("lib/python3.11/site-packages/onnxruntime/capi")
            .join(format!("libonnxruntime.so.{PINNED_ORT_VERSION}"));
        out.push(Candidate::File(pinned.clone()));
        let mut venvs: Vec<PathBuf> = std::fs::read_dir(&cache)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("venv-"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        venvs.sort();
        venvs.reverse();
        for venv in venvs {
            for capi in venv_capi(&venv) {
                for f in ort_files_in(&capi) {
                    if f != pinned {
                        out.push(Candidate::File(f));
                    }
                }
            }
        }
        if out.iter().all(|c| c != &Candidate::File(pinned.clone())) {
            out.push(Candidate::File(pinned));
        }
    }
    out.push(Candidate::System("libonnxruntime.so.1".into()));
    out.push(Candidate::System("libonnxruntime.so".into()));
    out
}

/// A library opened with `dlopen`, closed on drop.
struct Dl(*mut libc::c_void);

impl Dl {
    /// Opens `target` (a path, or a name for the dynamic linker's search); the error
    /// is the dynamic linker's message.
    fn open(target: &str) -> Result<Dl, String> {
        let name = std::ffi::CString::new(target)
            .map_err(|_| format!("{target:?} contains a NUL byte"))?;
        // SAFETY: `name` is a valid C string; dlerror() is read right after the failing
        // call on this thread, and its text is copied before any other dl* call.
        unsafe {
            let handle = libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if handle.is_null() {
                let err = libc::dlerror();
                if err.is_null() {
                    return Err("dlopen failed".into());
                }
                return Err(std::ffi::CStr::from_ptr(err).to_string_lossy().into_owned());
            }
            Ok(Dl(handle))
        }
    }
}

impl Drop for Dl {
    fn drop(&mut self) {
        // SAFETY: the handle came from a successful dlopen and is closed once.
        unsafe {
            libc::dlclose(self.0);
        }
    }
}

/// Loads ONNX Runtime (once per process) and returns it.
pub fn runtime(plugin_dir: Option<&Path>) -> Result<&'static Runtime, OrtLoadError> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let cands = candidates(plugin_dir);
    let mut tried = Vec::new();
    let mut any_present = false;
    for cand in &cands {
        let target = match cand {
            Candidate::File(p) => {
                if !p.is_file() {
                    continue;
                }
                p.display().to_string()
            }
            Candidate::System(n) => n.clone(),
        };
        // Open it first ourselves: the dynamic linker's message says why a library
        // cannot be loaded (ort's does not), and tells a system library name that is
        // not there from one that is there but fails.
        let handle = match Dl::open(&target) {
            Ok(h) => h,
            Err(e) => {
                let missing = matches!(cand, Candidate::System(_))
                    && e.contains("cannot open shared object file");
                if !missing {
                    any_present = true;
                    tried.push(format!("{}: {e}", cand.describe()));
                }
                continue;
            }
        };
        let result = ort::init_from(&target)
            .map_err(|e| e.to_string())
            .and_then(|b| b.with_name("syncdraw").build().map_err(|e| e.to_string()));
        // ort holds its own reference to the library from here on.
        drop(handle);
        match result {
            Ok(env) => {
                let rt = Runtime {
                    env,
                    library: target,
                };
                return Ok(RUNTIME.get_or_init(|| rt));
            }
            Err(e) => {
                any_present = true;
                tried.push(format!("{}: {e}", cand.describe()));
            }
        }
    }
    if any_present {
        Err(OrtLoadError::Unusable { tried })
    } else {
        Err(OrtLoadError::NotFound {
            looked: cands.iter().map(Candidate::describe).collect(),
        })
    }
}
