//! Tensor files with a description: one safetensors file holding named tensors
//! and a JSON description under `meta.json` (a u8 tensor), written atomically.
//! Checkpoints (syncdraw-training) and evaluators (syncdraw-evaluator) are such
//! files, each with its own "format" string in the description.
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// Name of the description's tensor.
pub const META: &str = "meta.json";

/// `meta` as JSON under `meta.json`, then the variables of `vs` (on the CPU) sorted
/// by name: as [`read_with_meta`] reads it.
pub fn named_with_meta(meta: &impl Serialize, vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let json = serde_json::to_vec(meta).expect("meta serialises");
    let mut vars: Vec<_> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    std::iter::once((META.to_string(), Tensor::from_slice(&json)))
        .chain(vars.into_iter().map(|(n, t)| (n, t.to_device(Device::Cpu))))
        .collect()
}

/// Writes named tensors as safetensors atomically: a temporary file beside `path`,
/// fsync, rename. On failure the temporary file is removed and `path` is untouched.
pub fn write_safetensors_atomic(named: &[(String, Tensor)], path: &Path) -> Result<(), String> {
    crate::atomic::replace(path, |tmp| {
        Tensor::write_safetensors(named, tmp).map_err(std::io::Error::other)
    })
    .map_err(|e| e.to_string())
}

/// Why a tensor file could not be read; checkpoints and evaluators wrap it in
/// their own error, with the path.
#[derive(Debug)]
pub enum ReadFailure {
    Missing,
    Unreadable(String),
    Foreign(String),
}

/// Reads a safetensors file written with a `meta.json` entry : the JSON, whose "format" must be `format`, and the other
/// tensors by name.
pub fn read_with_meta(
    path: &Path,
    format: &str,
) -> Result<(serde_json::Value, HashMap<String, Tensor>), ReadFailure> {
    use ReadFailure::Foreign;
    if !path.exists() {
        return Err(ReadFailure::Missing);
    }
    let tensors =
        Tensor::read_safetensors(path).map_err(|e| ReadFailure::Unreadable(e.to_string()))?;
    let mut map: HashMap<String, Tensor> = tensors.into_iter().collect();
    let json = map
        .remove(META)
        .ok_or_else(|| Foreign("it has no meta.json entry".into()))?;
    if json.kind() != Kind::Uint8 {
        return Err(Foreign("meta.json is not a byte tensor".into()));
    }
    let bytes = Vec::<u8>::try_from(&json.flatten(0, -1))
        .map_err(|_| Foreign("meta.json unreadable".into()))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Foreign(format!("meta.json: {e}")))?;
    // The format first: another kind or version of file may not parse as this one.
    if value["format"] != format {
        return Err(Foreign(format!(
            "format {}, expected {format:?}",
            value["format"]
        )));
    }
    Ok((value, map))
}

/// Copies the tensor named like each variable of `vs` from `map` into it (removing
/// it from `map`); every variable must be there with its shape.
pub fn copy_weights(vs: &nn::VarStore, map: &mut HashMap<String, Tensor>) -> Result<(), String> {
    let mut vars = vs.variables();
    for (name, var) in vars.iter_mut() {
        let value = map
            .remove(name)
            .ok_or_else(|| format!("weight {name} is missing"))?;
        if value.size() != var.size() {
            return Err(format!(
                "weight {name} has shape {:?}, the config needs {:?}",
                value.size(),
                var.size()
            ));
        }
        tch::no_grad(|| var.copy_(&value));
    }
    Ok(())
}
