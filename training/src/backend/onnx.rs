//! [`Backend`] that records an ONNX graph instead of computing.
//!
//! Every [`Backend`] call appends one ONNX node (a few for `token_mask`) to a graph
//! and returns the name of its output; parameters and constants become
//! initializers. Running the generic model code on an [`OnnxRecorder`] therefore
//! writes down exactly the operations that [`TchBackend`](super::TchBackend) would
//! execute, in the same order, with the same constants and the same weights.
//!
//! Operators are all in the default domain at opset 17 ([`OPSET`]); the mapping is:
//!
//! | `Backend` call | ONNX |
//! |---|---|
//! | `add`, `sub`, `mul`, `div`, `matmul` | `Add`, `Sub`, `Mul`, `Div`, `MatMul` |
//! | `sigmoid`, `tanh`, `exp` | `Sigmoid`, `Tanh`, `Exp` |
//! | `clamp_min(a, f)` | `Max(a, f)` |
//! | `sum_keepdim` | `ReduceSum` (axes input, `keepdims = 1`) |
//! | `softmax` | over the last axis (given as -1): `Softmax`; over any other: `ReduceMax`, `Sub`, `Exp`, `ReduceSum`, `Div` |
//! | `reshape` | `Reshape` (shape initializer, `-1` inferred) |
//! | `narrow` | `Slice` (starts, ends, axes initializers) |
//! | `concat`, `transpose`, `unsqueeze` | `Concat`, `Transpose`, `Unsqueeze` (axes input) |
//! | `cumsum` | `CumSum` (axis input) |
//! | `lstm_sequence` | `LSTM` (one direction, zero initial state; its W, R, B made from the cell's weights by `Transpose`, `Slice` and `Concat` on initializers, which ONNX Runtime folds when it loads the model), then `Squeeze` |
//! | `embedding` | `Gather` (axis 0) |
//! | `token_mask` | `Cast(Not(Equal(ids, pad)), FLOAT)` |
//!
//! Errors (a parameter that is not a float tensor, a name used twice, a reshape
//! with a zero entry) cannot be returned from [`Backend`] calls; the recorder
//! remembers the first one and [`OnnxRecorder::finish`] returns it.
use super::Backend;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use protobuf::EnumOrUnknown;
use std::collections::{HashMap, HashSet};

/// ONNX IR version of the written models.
pub const IR_VERSION: i64 = 8;
/// Default-domain opset of the written models.
pub const OPSET: i64 = 17;

/// The name of a value (graph input, node output or initializer) in the graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Value(String);

impl Value {
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// Element types of graph inputs and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    Float,
    Int64,
}

impl ElemType {
    fn onnx(self) -> DataType {
        match self {
            ElemType::Float => DataType::FLOAT,
            ElemType::Int64 => DataType::INT64,
        }
    }
}

/// One dimension of a graph input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(i64),
    /// A dynamic dimension with a symbolic name (`batch`).
    Named(String),
}

/// What went wrong while recording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot record the ONNX graph: {0}")]
pub struct RecordError(pub String);

#[derive(Hash, PartialEq, Eq)]
enum ConstKey {
    F32(Vec<u32>, Vec<i64>),
    I64(Vec<i64>, Vec<i64>),
}

/// Records [`Backend`] calls as an ONNX graph. See the module documentation.
#[derive(Default)]
pub struct OnnxRecorder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    /// Every name in use (inputs, initializers, node outputs).
    names: HashSet<String>,
    /// Parameter name -> its shape, to dedupe repeated binds.
    params: HashMap<String, Vec<i64>>,
    /// Constant contents -> initializer name, to share equal constants.
    constants: HashMap<ConstKey, String>,
    counter: usize,
    error: Option<String>,
}

impl OnnxRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Nodes recorded so far.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Trained values recorded so far (the elements of every parameter).
    pub fn parameter_values(&self) -> usize {
        self.params
            .values()
            .map(|s| s.iter().product::<i64>() as usize)
            .sum()
    }

    fn fail(&mut self, reason: String) {
        if self.error.is_none() {
            self.error = Some(reason);
        }
    }

    /// Claims `name`; records an error if it is already used.
    fn claim(&mut self, name: &str) {
        if !self.names.insert(name.to_string()) {
            self.fail(format!("the name {name:?} is used twice in the graph"));
        }
    }

    fn fresh(&mut self, prefix: &str) -> String {
        loop {
            self.counter += 1;
            let name = format!("{prefix}_{}", self.counter);
            if !self.names.contains(&name) {
                self.names.insert(name.clone());
                return name;
            }
        }
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem: ElemType, dims: &[Dim]) -> Value {
        self.claim(name);
        self.inputs.push(value_info(name, elem, dims));
        Value(name.to_string())
    }

    /// Declares a graph output named `name` holding `value` (through an `Identity`
    /// node, so that the output has exactly this name).
    pub fn output(&mut self, value: &Value, name: &str, elem: ElemType, dims: &[Dim]) {
        self.claim(name);
        self.nodes
            .push(node("Identity", &[value.name()], name, vec![]));
        self.outputs.push(value_info(name, elem, dims));
    }

    /// Appends a node with one output and returns that output.
    fn node(&mut self, op: &str, inputs: &[&Value], attrs: Vec<AttributeProto>) -> Value {
        let out = self.fresh(op);
        let ins: Vec<&str> = inputs.iter().map(|v| v.name()).collect();
        self.nodes.push(node(op, &ins, &out, attrs));
        Value(out)
    }

    fn initializer(&mut self, name: String, dtype: DataType, dims: &[i64], raw: Vec<u8>) {
        self.initializers.push(TensorProto {
            name,
            dims: dims.to_vec(),
            data_type: dtype as i32,
            raw_data: raw,
            ..Default::default()
        });
    }

    fn constant_f32(&mut self, values: &[f32], shape: &[i64]) -> Value {
        if values.len() as i64 != shape.iter().product::<i64>() {
            self.fail(format!(
                "constant of shape {shape:?} given {} values",
                values.len()
            ));
        }
        let key = ConstKey::F32(values.iter().map(|v| v.to_bits()).collect(), shape.to_vec());
        if let Some(name) = self.constants.get(&key) {
            return Value(name.clone());
        }
        let name = self.fresh("const");
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name.clone(), DataType::FLOAT, shape, raw);
        self.constants.insert(key, name.clone());
        Value(name)
    }

    /// An int64 constant (shapes, axes, slice bounds, token ids).
    pub fn constant_i64(&mut self, values: &[i64], shape: &[i64]) -> Value {
        let key = ConstKey::I64(values.to_vec(), shape.to_vec());
        if let Some(name) = self.constants.get(&key) {
            return Value(name.clone());
        }
        let name = self.fresh("const");
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name.clone(), DataType::INT64, shape, raw);
        self.constants.insert(key, name.clone());
        Value(name)
    }

    fn axes(&mut self, axes: &[i64]) -> Value {
        self.constant_i64(axes, &[axes.len() as i64])
    }

    /// Builds the model: IR version [`IR_VERSION`], opset [`OPSET`], the recorded
    /// graph, and `metadata` as `metadata_props` (in the given order).
    pub fn finish(
        self,
        graph_name: &str,
        doc: &str,
        metadata: &[(String, String)],
    ) -> Result<ModelProto, RecordError> {
        if let Some(e) = self.error {
            return Err(RecordError(e));
        }
        if self.outputs.is_empty() {
            return Err(RecordError("the graph has no outputs".into()));
        }
        let graph = GraphProto {
            name: graph_name.to_string(),
            doc_string: doc.to_string(),
            node: self.nodes,
            initializer: self.initializers,
            input: self.inputs,
            output: self.outputs,
            ..Default::default()
        };
        Ok(ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
                ..Default::default()
            }],
            producer_name: "syncdraw-train".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.to_string(),
            graph: Some(graph).into(),
            metadata_props: metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: k.clone(),
                    value: v.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.to_string(),
        name: output.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        attribute: attrs,
        ..Default::default()
    }
}

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        type_: EnumOrUnknown::new(AttributeType::INT),
        i,
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        type_: EnumOrUnknown::new(AttributeType::INTS),
        ints: ints.to_vec(),
        ..Default::default()
    }
}

fn value_info(name: &str, elem: ElemType, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => dimension::Value::DimValue(*n),
                Dim::Named(s) => dimension::Value::DimParam(s.clone()),
            }),
            ..Default::default()
        })
        .collect();
    let tensor = type_proto::Tensor {
        elem_type: elem.onnx() as i32,
        shape: Some(TensorShapeProto {
            dim,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.to_string(),
        type_: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(tensor)),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

/// The f32 data of a parameter, row-major, little-endian.
fn f32_bytes(t: &tch::Tensor) -> Result<Vec<u8>, String> {
    if t.kind() != tch::Kind::Float {
        return Err(format!("is a {:?} tensor, expected f32", t.kind()));
    }
    let flat = t
        .detach()
        .to_device(tch::Device::Cpu)
        .contiguous()
        .reshape([-1]);
    let values = Vec::<f32>::try_from(&flat).map_err(|e| e.to_string())?;
    Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

impl Backend for OnnxRecorder {
    type Tensor = Value;

    fn param(&mut self, name: &str, value: &tch::Tensor) -> Value {
        let shape = value.size();
        if let Some(seen) = self.params.get(name) {
            if *seen != shape {
                self.fail(format!(
                    "parameter {name} bound with shapes {seen:?} and {shape:?}"
                ));
            }
            return Value(name.to_string());
        }
        self.claim(name);
        self.params.insert(name.to_string(), shape.clone());
        match f32_bytes(value) {
            Ok(raw) => self.initializer(name.to_string(), DataType::FLOAT, &shape, raw),
            Err(e) => self.fail(format!("parameter {name} {e}")),
        }
        Value(name.to_string())
    }
    fn constant(&mut self, values: &[f32], shape: &[i64]) -> Value {
        self.constant_f32(values, shape)
    }
    fn add(&mut self, a: &Value, b: &Value) -> Value {
        self.node("Add", &[a, b], vec![])
    }
    fn sub(&mut self, a: &Value, b: &Value) -> Value {
        self.node("Sub", &[a, b], vec![])
    }
    fn mul(&mut self, a: &Value, b: &Value) -> Value {
        self.node("Mul", &[a, b], vec![])
    }
    fn div(&mut self, a: &Value, b: &Value) -> Value {
        self.node("Div", &[a, b], vec![])
    }
    fn matmul(&mut self, a: &Value, b: &Value) -> Value {
        self.node("MatMul", &[a, b], vec![])
    }
    fn sigmoid(&mut self, a: &Value) -> Value {
        self.node("Sigmoid", &[a], vec![])
    }
    fn tanh(&mut self, a: &Value) -> Value {
        self.node("Tanh", &[a], vec![])
    }
    fn exp(&mut self, a: &Value) -> Value {
        self.node("Exp", &[a], vec![])
    }
    fn softplus(&mut self, a: &Value) -> Value {
        self.node("Softplus", &[a], vec![])
    }
    fn clamp_min(&mut self, a: &Value, floor: f32) -> Value {
        let f = self.constant_f32(&[floor], &[]);
        self.node("Max", &[a, &f], vec![])
    }
    fn sum_keepdim(&mut self, a: &Value, axis: i64) -> Value {
        let axes = self.axes(&[axis]);
        self.node("ReduceSum", &[a, &axes], vec![attr_int("keepdims", 1)])
    }
    fn softmax(&mut self, a: &Value, axis: i64) -> Value {
        if axis == -1 {
            // Softmax-13 over the last axis: one pass.
            return self.node("Softmax", &[a], vec![attr_int("axis", axis)]);
        }
        // Any other axis (the recorder does not know ranks, so any axis not
        // given as -1): ONNX Runtime's Softmax moves the axis last and back,
        // which made the whole generation graph of a stable-filterbank model
        // 1.3x slower (docs/benchmarks.md); written out it is not.
        let max = self.node(
            "ReduceMax",
            &[a],
            vec![attr_ints("axes", &[axis]), attr_int("keepdims", 1)],
        );
        let shifted = self.node("Sub", &[a, &max], vec![]);
        let e = self.node("Exp", &[&shifted], vec![]);
        let z = self.sum_keepdim(&e, axis);
        self.node("Div", &[&e, &z], vec![])
    }
    fn reshape(&mut self, a: &Value, shape: &[i64]) -> Value {
        // ONNX reads 0 as "copy this dimension", libtorch as "size 0": refuse it.
        if shape.contains(&0) {
            self.fail(format!(
                "reshape to {shape:?}: a 0 entry means different things in ONNX and libtorch"
            ));
        }
        let s = self.constant_i64(shape, &[shape.len() as i64]);
        self.node("Reshape", &[a, &s], vec![])
    }
    fn narrow(&mut self, a: &Value, axis: i64, start: i64, len: i64) -> Value {
        let starts = self.axes(&[start]);
        let ends = self.axes(&[start + len]);
        let axes = self.axes(&[axis]);
        self.node("Slice", &[a, &starts, &ends, &axes], vec![])
    }
    fn concat(&mut self, parts: &[&Value], axis: i64) -> Value {
        self.node("Concat", parts, vec![attr_int("axis", axis)])
    }
    fn transpose(&mut self, a: &Value, perm: &[i64]) -> Value {
        self.node("Transpose", &[a], vec![attr_ints("perm", perm)])
    }
    fn unsqueeze(&mut self, a: &Value, axis: i64) -> Value {
        let axes = self.axes(&[axis]);
        self.node("Unsqueeze", &[a, &axes], vec![])
    }
    fn cumsum(&mut self, a: &Value, axis: i64) -> Value {
        let axis = self.constant_i64(&[axis], &[]);
        self.node("CumSum", &[a, &axis], vec![])
    }
    fn lstm_sequence(
        &mut self,
        x: &Value,
        wx: &Value,
        wh: &Value,
        b: &Value,
        hidden: i64,
    ) -> Option<Value> {
        // ONNX orders the gates i, o, f, c and stores W as [dirs, 4H, I]; layers.rs
        // orders them i, f, g(= c), o and stores wx as [I, 4H].
        let gates_iofc = |r: &mut Self, w: &Value, axis: i64| {
            let i = r.narrow(w, axis, 0, hidden);
            let f = r.narrow(w, axis, hidden, hidden);
            let g = r.narrow(w, axis, 2 * hidden, hidden);
            let o = r.narrow(w, axis, 3 * hidden, hidden);
            r.concat(&[&i, &o, &f, &g], axis)
        };
        let w = self.transpose(wx, &[1, 0]);
        let w = gates_iofc(self, &w, 0);
        let w = self.unsqueeze(&w, 0);
        let r = self.transpose(wh, &[1, 0]);
        let r = gates_iofc(self, &r, 0);
        let r = self.unsqueeze(&r, 0);
        // B = [Wb, Rb]: the cell's one bias as Wb, Rb = 0.
        let bias = gates_iofc(self, b, 0);
        let zeros = self.constant_f32(&vec![0.0; 4 * hidden as usize], &[4 * hidden]);
        let bias = self.concat(&[&bias, &zeros], 0);
        let bias = self.unsqueeze(&bias, 0);
        let y = self.node(
            "LSTM",
            &[x, &w, &r, &bias],
            vec![attr_int("hidden_size", hidden)],
        ); // [S, 1, B, H]
        let axes = self.axes(&[1]);
        Some(self.node("Squeeze", &[&y, &axes], vec![]))
    }
    fn embedding(&mut self, table: &Value, ids: &Value) -> Value {
        self.node("Gather", &[table, ids], vec![attr_int("axis", 0)])
    }
    fn token_mask(&mut self, ids: &Value, pad_id: i64) -> Value {
        let pad = self.constant_i64(&[pad_id], &[]);
        let is_pad = self.node("Equal", &[ids, &pad], vec![]);
        let keep = self.node("Not", &[&is_pad], vec![]);
        self.node(
            "Cast",
            &[&keep],
            vec![attr_int("to", DataType::FLOAT as i64)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_shared_and_names_unique() {
        let mut r = OnnxRecorder::new();
        let x = r.input(
            "x",
            ElemType::Float,
            &[Dim::Named("batch".into()), Dim::Fixed(3)],
        );
        let a = r.scale(&x, 2.0);
        let b = r.scale(&a, 2.0);
        let c = r.add_scalar(&b, 1.0);
        r.output(
            &c,
            "y",
            ElemType::Float,
            &[Dim::Named("batch".into()), Dim::Fixed(3)],
        );
        let m = r.finish("g", "", &[]).unwrap();
        let g = m.graph.as_ref().unwrap();
        assert_eq!(g.initializer.len(), 2, "2.0 once, 1.0 once");
        assert_eq!(g.node.len(), 4);
        let mut outs: Vec<&String> = g.node.iter().flat_map(|n| &n.output).collect();
        outs.sort();
        outs.dedup();
        assert_eq!(outs.len(), 4);
    }

    #[test]
    fn errors_surface_at_finish() {
        let mut r = OnnxRecorder::new();
        let x = r.input("x", ElemType::Float, &[Dim::Fixed(2)]);
        let y = r.reshape(&x, &[0, 2]);
        r.output(&y, "y", ElemType::Float, &[Dim::Fixed(0), Dim::Fixed(2)]);
        assert!(r.finish("g", "", &[]).is_err());

        let mut r = OnnxRecorder::new();
        let x = r.input("x", ElemType::Float, &[Dim::Fixed(2)]);
        let p = r.param("x", &tch::Tensor::from_slice(&[1f32, 2.0]));
        r.output(&p, "y", ElemType::Float, &[Dim::Fixed(2)]);
        let _ = x;
        assert!(
            r.finish("g", "", &[]).is_err(),
            "a parameter may not reuse an input name"
        );
    }
}
