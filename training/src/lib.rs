//! Sync-DRAW training: captioned Bouncing MNIST data, the model, training,
//! evaluation, sampling and ONNX export, on tch (libtorch).
pub mod adam;
pub mod atomic;
pub mod backend;
pub mod batch;
pub mod checkpoint;
pub mod data;
pub mod eval;
pub mod evaluator;
pub mod export;
pub mod model;
pub mod sample;
pub mod train;
pub mod warm_start;
