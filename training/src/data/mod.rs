//! Data sets: captioned Bouncing MNIST, generated deterministically and cached;
//! captioned moving shapes; data sets imported from a folder of video files.
pub mod binarize;
pub mod bouncing;
pub mod dataset;
pub mod folder;
pub mod mnist;
pub mod shapes;
pub mod video_io;

pub use binarize::Pixels;
pub use bouncing::{Content, Motion, Split, Track};
pub use dataset::{Dataset, DatasetConfig};
pub use mnist::{DigitSource, Digits};
