//! Sync-DRAW training: captioned Bouncing MNIST data, the model, training,
//! evaluation, sampling and ONNX export, on tch (libtorch).
pub mod adam;
pub mod backend;
pub mod batch;
pub mod checkpoint;
pub mod eval;
pub mod export;
pub mod fidelity;
pub mod model;
pub mod sample;
pub mod train;
pub mod warm_start;
