//! Data sets: captioned Bouncing MNIST, generated deterministically and cached.
pub mod binarize;
pub mod bouncing;
pub mod dataset;
pub mod mnist;

pub use binarize::Pixels;
pub use bouncing::{Content, Motion, Split, Track};
pub use dataset::{Dataset, DatasetConfig};
pub use mnist::{DigitSource, Digits};
