//! The release plugin (`cargo build --release`, which `scripts/test.sh` runs
//! before the tests) in a directory of its own with a private registry, and
//! `syncdrawsrc` run by `gst-launch-1.0`.
use super::root;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory holding only the release plugin, and a private registry for it.
pub struct PluginEnv {
    pub dir: PathBuf,
    pub registry: PathBuf,
}

impl PluginEnv {
    /// `name` keeps the directories of tests running at once apart.
    pub fn new(name: &str) -> PluginEnv {
        let built = root().join("target/release/libgstsyncdraw.so");
        assert!(
            built.is_file(),
            "no plugin at {}: build it first with `cargo build --release` (scripts/test.sh does)",
            built.display()
        );
        let dir = std::env::temp_dir().join(format!("syncdraw-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&built, dir.join("libgstsyncdraw.so")).unwrap();
        let registry = dir.join("registry.bin");
        PluginEnv { dir, registry }
    }

    /// Runs `syncdrawsrc` with `props` (name=value) into the caps `caps` and a
    /// file, in a real pipeline: the file's bytes, and what `gst-launch-1.0 -v`
    /// printed (the negotiated caps).
    pub fn render(&self, model: &Path, props: &[&str], caps: &str, out: &str) -> (Vec<u8>, String) {
        let out = self.dir.join(out);
        let run = Command::new("gst-launch-1.0")
            .env("GST_PLUGIN_PATH", &self.dir)
            .env("GST_REGISTRY", &self.registry)
            .arg("-v")
            .arg("syncdrawsrc")
            .arg(format!("model-location={}", model.display()))
            .args(props)
            .args(["!", caps, "!", "filesink"])
            .arg(format!("location={}", out.display()))
            .output()
            .expect("run gst-launch-1.0 (gstreamer1.0-tools)");
        assert!(
            run.status.success(),
            "gst-launch-1.0 failed for {props:?} {caps}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        (
            std::fs::read(&out).unwrap(),
            String::from_utf8_lossy(&run.stdout).into_owned(),
        )
    }
}

impl Drop for PluginEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
