// SPDX-License-Identifier: MIT OR Apache-2.0
//! Build script: plugin version information, and the name of the project's cached
//! Python venv (from scripts/pins.sh), where the element looks for ONNX Runtime.

use std::collections::HashMap;

/// Expands `$NAME` and `${NAME}` with the variables read so far.
fn expand(value: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let (name, after) = if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').unwrap_or(r.len());
            (&r[..end], r.get(end + 1..).unwrap_or(""))
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        out.push_str(vars.get(name).map(String::as_str).unwrap_or(""));
        rest = after;
    }
    out.push_str(rest);
    out
}

fn main() {
    gst_plugin_version_helper::info();

    // Defaults, used if scripts/pins.sh is absent (e.g. a packaged crate).
    let mut venv_name = "venv-py311-torch2.11.0-ort1.31.1-onnx1.19.1".to_owned();
    let mut ort_version = "1.31.1".to_owned();
    println!("cargo:rerun-if-changed=scripts/pins.sh");
    if let Ok(text) = std::fs::read_to_string("scripts/pins.sh") {
        let mut vars = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    let v = v.trim_matches('"');
                    vars.insert(k.to_owned(), expand(v, &vars));
                }
            }
        }
        if let Some(v) = vars.get("SYNCDRAW_VENV") {
            if let Some(name) = v.rsplit('/').next().filter(|n| n.starts_with("venv-")) {
                venv_name = name.to_owned();
            }
        }
        if let Some(v) = vars.get("ORT_VERSION") {
            ort_version = v.clone();
        }
    }
    println!("cargo:rustc-env=SYNCDRAW_PINNED_VENV={venv_name}");
    println!("cargo:rustc-env=SYNCDRAW_PINNED_ORT_VERSION={ort_version}");
}
