//! Data for Sync-DRAW: MNIST digits; captioned Bouncing MNIST, generated
//! deterministically and cached; captioned moving shapes; data sets imported from
//! a folder of video files (decoded with GStreamer); grey or binarised pixels,
//! and what overlapping digits hide of each other.
//! Also the two file kinds the other crates write: files replaced atomically
//! ([`atomic`]) and tensor files with a JSON description ([`tensors`]).
pub mod atomic;
pub mod binarize;
pub mod bouncing;
pub mod dataset;
pub mod folder;
pub mod mnist;
pub mod overlap;
pub mod shapes;
pub mod tensors;
pub mod video_io;

pub use binarize::Pixels;
pub use bouncing::{Content, Motion, Split, Track};
pub use dataset::{Dataset, DatasetConfig};
pub use mnist::{DigitSource, Digits};
