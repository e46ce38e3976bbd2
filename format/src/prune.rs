//! The model graph cut down to the one output the element shows.
//!
//! ONNX Runtime runs every node of a graph whatever outputs a run asks for, so a
//! model computes `canvases` (T times the size of `video`) on every call even
//! when only `video` is shown. The element therefore opens a copy of the model
//! whose only graph output is the one it uses, without the nodes and
//! initializers that only fed the others.
use onnx_protobuf::{Message, ModelProto};
use std::collections::HashSet;

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error("not a valid ONNX file: {0}")]
    Parse(String),
    #[error("cannot write the pruned model: {0}")]
    Write(String),
}

/// A model with one graph output left.
pub struct Pruned {
    /// The serialized model.
    pub bytes: Vec<u8>,
    /// Every graph output of the original model, in order.
    pub outputs: Vec<String>,
}

/// Keeps graph output `keep` and what it needs. If the model has no output of that
/// name (or declares it twice), or its graph has control flow (subgraphs may read any outer value), the
/// model is returned unchanged: the contract check then reports what is wrong.
pub fn keep_output(model: &[u8], keep: &str) -> Result<Pruned, PruneError> {
    let mut proto =
        ModelProto::parse_from_bytes(model).map_err(|e| PruneError::Parse(e.to_string()))?;
    let graph = proto.graph.mut_or_insert_default();
    let outputs: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let has_subgraphs = graph.node.iter().any(|n| {
        n.attribute
            .iter()
            .any(|a| a.g.is_some() || !a.graphs.is_empty())
    });
    // Kept only when declared exactly once: a graph that declares an output twice
    // is invalid, and is left to ONNX Runtime to refuse.
    if outputs.iter().filter(|o| *o == keep).count() != 1 || has_subgraphs {
        return Ok(Pruned {
            bytes: model.to_vec(),
            outputs,
        });
    }
    graph.output.retain(|o| o.name == keep);
    // Nodes are in topological order: walking back from the kept output, a node is
    // live if it produces a value something live (or the output) reads.
    let mut needed: HashSet<String> = HashSet::from([keep.to_string()]);
    let mut live = vec![false; graph.node.len()];
    for (i, node) in graph.node.iter().enumerate().rev() {
        if node.output.iter().any(|o| needed.contains(o)) {
            live[i] = true;
            needed.extend(node.input.iter().filter(|s| !s.is_empty()).cloned());
        }
    }
    let mut flags = live.into_iter();
    graph.node.retain(|_| flags.next().unwrap_or(false));
    graph.initializer.retain(|t| needed.contains(&t.name));
    graph.value_info.retain(|v| needed.contains(&v.name));
    let bytes = proto
        .write_to_bytes()
        .map_err(|e| PruneError::Write(e.to_string()))?;
    Ok(Pruned { bytes, outputs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::{GraphProto, NodeProto, TensorProto, ValueInfoProto};

    fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
        let mut n = NodeProto::new();
        n.op_type = op.into();
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = outputs.iter().map(|s| s.to_string()).collect();
        n
    }

    fn value(name: &str) -> ValueInfoProto {
        let mut v = ValueInfoProto::new();
        v.name = name.into();
        v
    }

    fn tensor(name: &str) -> TensorProto {
        let mut t = TensorProto::new();
        t.name = name.into();
        t
    }

    /// z -> a -> video, and a -> b (with weight w2) -> canvases.
    fn model() -> Vec<u8> {
        let mut g = GraphProto::new();
        g.node = vec![
            node("MatMul", &["z", "w1"], &["a"]),
            node("MatMul", &["a", "w2"], &["b"]),
            node("Sigmoid", &["a"], &["video"]),
            node("Sigmoid", &["b"], &["canvases"]),
        ];
        g.initializer = vec![tensor("w1"), tensor("w2")];
        g.input = vec![value("z")];
        g.output = vec![value("video"), value("canvases")];
        let mut m = ModelProto::new();
        m.graph = Some(g).into();
        m.write_to_bytes().unwrap()
    }

    fn graph(bytes: &[u8]) -> GraphProto {
        ModelProto::parse_from_bytes(bytes).unwrap().graph.unwrap()
    }

    #[test]
    fn keeps_only_what_the_output_needs() {
        let p = keep_output(&model(), "video").unwrap();
        assert_eq!(p.outputs, ["video", "canvases"]);
        let g = graph(&p.bytes);
        let outs: Vec<_> = g.output.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(outs, ["video"]);
        let nodes: Vec<_> = g.node.iter().map(|n| n.output[0].as_str()).collect();
        assert_eq!(nodes, ["a", "video"]);
        let inits: Vec<_> = g.initializer.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(inits, ["w1"]);
        assert_eq!(g.input.len(), 1);

        let g = graph(&keep_output(&model(), "canvases").unwrap().bytes);
        let nodes: Vec<_> = g.node.iter().map(|n| n.output[0].as_str()).collect();
        assert_eq!(nodes, ["a", "b", "canvases"]);
    }

    /// Found by fuzzing: an output declared twice was kept twice.
    #[test]
    fn an_output_declared_twice_is_left_alone() {
        let mut m = ModelProto::parse_from_bytes(&model()).unwrap();
        let g = m.graph.mut_or_insert_default();
        g.output.push(value("video"));
        let bytes = m.write_to_bytes().unwrap();
        let p = keep_output(&bytes, "video").unwrap();
        assert_eq!(p.bytes, bytes);
        assert_eq!(p.outputs, ["video", "canvases", "video"]);
    }

    #[test]
    fn unknown_output_or_garbage() {
        let m = model();
        let p = keep_output(&m, "nope").unwrap();
        assert_eq!(
            p.bytes, m,
            "a model without the output is left for the contract check"
        );
        assert!(matches!(
            keep_output(b"\xff\xff not protobuf", "video"),
            Err(PruneError::Parse(_))
        ));
    }
}
