//! Sync-DRAW on tch (libtorch): the model, training, the NLL bound, caption
//! fidelity (scored by syncdraw-evaluator), sampling and ONNX export. The data
//! comes from syncdraw-data: generated Bouncing MNIST or an imported folder set
//! (source.rs).
pub mod adam;
pub mod average;
pub mod backend;
pub mod batch;
pub mod checkpoint;
pub mod export;
pub mod fidelity;
pub mod fused;
pub mod model;
pub mod nll;
pub mod sample;
pub mod source;
pub mod train;
pub mod warm_start;
