//! Sync-DRAW training: captioned Bouncing MNIST data, the model, training,
//! evaluation, sampling and ONNX export, on tch (libtorch).
pub mod backend;
pub mod checkpoint;
pub mod data;
pub mod export;
pub mod model;
pub mod vocab;
pub mod adam;
pub mod batch;
pub mod eval;
pub mod evaluator;
pub mod train;
pub mod sample;
