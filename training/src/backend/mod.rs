//! The small set of tensor operations the generation path is written in.
//!
//! The decoder (caption encoder, decoder LSTM, write attention, canvas) is written
//! once, generic over [`Backend`]. Training runs it on [`TchBackend`] (eager libtorch
//! tensors, with autograd); export runs the very same functions on
//! [`OnnxRecorder`](onnx::OnnxRecorder), which records each call as an ONNX node.
//! Because both paths execute the same Rust code, the exported graph cannot drift
//! from the trained model: a change to the math changes both.
//!
//! Shapes follow NumPy broadcasting (both libtorch and ONNX do). A shape entry of
//! `-1` in [`Backend::reshape`] is inferred; the batch dimension is always written as
//! `-1` so that exported graphs keep a dynamic batch.

pub mod onnx;
pub mod tch_backend;

pub use tch_backend::TchBackend;

/// Tensor operations used by the generation path. `f32` tensors unless said.
pub trait Backend {
    /// A tensor handle: a libtorch tensor, or the name of a value in an ONNX graph.
    type Tensor;

    /// A trained parameter. `name` is its stable name (used as the ONNX initializer
    /// name); `value` holds its data.
    fn param(&mut self, name: &str, value: &tch::Tensor) -> Self::Tensor;
    /// A constant tensor of the given shape (row-major values).
    fn constant(&mut self, values: &[f32], shape: &[i64]) -> Self::Tensor;

    fn add(&mut self, a: &Self::Tensor, b: &Self::Tensor) -> Self::Tensor;
    fn sub(&mut self, a: &Self::Tensor, b: &Self::Tensor) -> Self::Tensor;
    fn mul(&mut self, a: &Self::Tensor, b: &Self::Tensor) -> Self::Tensor;
    fn div(&mut self, a: &Self::Tensor, b: &Self::Tensor) -> Self::Tensor;
    /// Batched matrix product over the last two axes, broadcasting the others.
    fn matmul(&mut self, a: &Self::Tensor, b: &Self::Tensor) -> Self::Tensor;

    fn sigmoid(&mut self, a: &Self::Tensor) -> Self::Tensor;
    fn tanh(&mut self, a: &Self::Tensor) -> Self::Tensor;
    fn exp(&mut self, a: &Self::Tensor) -> Self::Tensor;
    /// Elementwise log(1 + exp(a)).
    fn softplus(&mut self, a: &Self::Tensor) -> Self::Tensor;
    /// Elementwise max(a, floor).
    fn clamp_min(&mut self, a: &Self::Tensor, floor: f32) -> Self::Tensor;
    /// Sum over one axis, keeping it with size 1.
    fn sum_keepdim(&mut self, a: &Self::Tensor, axis: i64) -> Self::Tensor;
    /// exp(a - max) / sum(exp(a - max)) over one axis. Give the last axis as
    /// -1: a recording backend writes it as one operation, any other axis as
    /// its steps (backend/onnx.rs).
    fn softmax(&mut self, a: &Self::Tensor, axis: i64) -> Self::Tensor;

    fn reshape(&mut self, a: &Self::Tensor, shape: &[i64]) -> Self::Tensor;
    /// `len` entries of `axis` starting at `start`.
    fn narrow(&mut self, a: &Self::Tensor, axis: i64, start: i64, len: i64) -> Self::Tensor;
    fn concat(&mut self, parts: &[&Self::Tensor], axis: i64) -> Self::Tensor;
    fn transpose(&mut self, a: &Self::Tensor, perm: &[i64]) -> Self::Tensor;
    fn unsqueeze(&mut self, a: &Self::Tensor, axis: i64) -> Self::Tensor;

    /// Running sum along one axis: out[t] = a[0] + .. + a[t].
    fn cumsum(&mut self, a: &Self::Tensor, axis: i64) -> Self::Tensor;

    /// The LSTM of layers.rs run over a whole sequence as one operation, where the
    /// backend has one: x [S, B, I] -> h [S, B, H] for every step, from the zero
    /// state, gates i, f, g, o of x wx + h wh + b. `None` (the default): the
    /// caller runs the cell step by step, which computes the same.
    fn lstm_sequence(
        &mut self,
        _x: &Self::Tensor,
        _wx: &Self::Tensor,
        _wh: &Self::Tensor,
        _b: &Self::Tensor,
        _hidden: i64,
    ) -> Option<Self::Tensor> {
        None
    }

    /// Rows of `table` [V, E] picked by the int64 `ids` [B, L]: [B, L, E].
    fn embedding(&mut self, table: &Self::Tensor, ids: &Self::Tensor) -> Self::Tensor;
    /// 1.0 where the int64 `ids` differ from `pad_id`, else 0.0 (f32, same shape).
    fn token_mask(&mut self, ids: &Self::Tensor, pad_id: i64) -> Self::Tensor;

    /// a * s for a scalar s.
    fn scale(&mut self, a: &Self::Tensor, s: f32) -> Self::Tensor {
        let c = self.constant(&[s], &[]);
        self.mul(a, &c)
    }
    /// a + s for a scalar s.
    fn add_scalar(&mut self, a: &Self::Tensor, s: f32) -> Self::Tensor {
        let c = self.constant(&[s], &[]);
        self.add(a, &c)
    }
}
