//! Any bytes as an ONNX model to the graph pruner, as the element hands it a
//! model whose metadata passed: it never panics, and a model it prunes parses
//! again with the kept output as its only graph output (or comes back unchanged
//! when that output is missing or the graph has subgraphs).
#![no_main]
use libfuzzer_sys::fuzz_target;
use onnx_protobuf::{Message, ModelProto};
use syncdraw_format::prune::keep_output;

fuzz_target!(|data: &[u8]| {
    for keep in ["video", "canvases"] {
        let Ok(pruned) = keep_output(data, keep) else {
            continue;
        };
        let model = ModelProto::parse_from_bytes(&pruned.bytes).expect("pruned model parses");
        let outputs: Vec<&str> = model
            .graph
            .output
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        assert!(
            outputs == [keep] || pruned.bytes == data,
            "kept {keep}, outputs {outputs:?}"
        );
    }
});
