//! Any bytes as an ONNX model file: the metadata reader never panics, and a
//! grammar or vocabulary found in the metadata is parsed, validated and, when
//! valid, used to encode a caption, as the element does before loading a model.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use syncdraw_format::onnx::metadata_props;
use syncdraw_format::{keys, Grammar, Vocabulary};

fuzz_target!(|data: &[u8]| {
    let Ok(props) = metadata_props(Cursor::new(data), data.len() as u64) else {
        return;
    };
    if let Some(json) = props.get(keys::CAPTION_GRAMMAR) {
        if let Ok(g) = serde_json::from_str::<Grammar>(json) {
            if g.validate().is_ok() {
                let _ = g.accepted();
                let _ = g.encode("digit 3 is moving up and down");
            }
        }
    }
    if let Some(json) = props.get(keys::VOCABULARY) {
        if let Ok(v) = serde_json::from_str::<Vocabulary>(json) {
            let _ = v.encode("digit 3 is moving up and down", 7);
        }
    }
});
