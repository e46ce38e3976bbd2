//! The evaluator's network: a small CNN that takes a whole video with its frames as
//! input channels (so a moving digit's displacement between frames is visible to
//! the first layer) and outputs, for each (digit, motion) pair, logits over 0, 1
//! or 2 copies.
use super::labels::{COUNT_CLASSES, HEADS};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluatorConfig {
    /// Frames per video (input channels).
    pub frames: i64,
    /// Frame height and width.
    pub size: i64,
    /// Conv layers applied to every frame alone (shared weights, one input channel),
    /// each followed by batch norm and ReLU. Their outputs of all frames are then
    /// stacked as channels for `layers`. Empty: `layers` read the frames directly
    /// as input channels.
    #[serde(default)]
    pub frame_layers: Vec<Layer>,
    /// Conv layers over the stacked frames, each followed by batch norm and ReLU.
    pub layers: Vec<Layer>,
    /// Size of the hidden fully connected layer.
    pub hidden: i64,
    /// Side of the adaptive average and max pooling (concatenated) before the fully
    /// connected layers; 1 is global pooling, which makes the reading independent
    /// of where the digits are.
    pub pool: i64,
    /// Dropout before the output layer (training only).
    pub dropout: f64,
}

/// One conv layer: `out` channels, a `kernel` x `kernel` kernel with padding
/// kernel / 2, a stride, and optionally 2x2 max pooling after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub out: i64,
    pub kernel: i64,
    pub stride: i64,
    pub pool: bool,
}

/// The default per-frame layers (see [`parse_layers`]).
pub const DEFAULT_FRAME_LAYERS: &str = "16k5s2,32k3s2";
/// The default layers over the stacked frames (see [`parse_layers`]).
pub const DEFAULT_LAYERS: &str = "96k1p,128k3,128k3p,128k3";

/// Parses layers written like "32k5s2,64k3p": out channels, `k` kernel, optional `s`
/// stride (default 1), optional `p` for 2x2 max pooling after the layer. An empty
/// string is no layers.
pub fn parse_layers(spec: &str) -> Result<Vec<Layer>, String> {
    spec.split(',')
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let l = l.trim();
            let bad = || format!("bad layer {l:?} (want e.g. 32k5s2 or 64k3p)");
            let (l, pool) = l.strip_suffix('p').map_or((l, false), |l| (l, true));
            let (out, rest) = l.split_once('k').ok_or_else(bad)?;
            let (kernel, stride) = rest.split_once('s').unwrap_or((rest, "1"));
            let num = |s: &str| s.parse::<i64>().ok().filter(|&v| v > 0).ok_or_else(bad);
            Ok(Layer {
                out: num(out)?,
                kernel: num(kernel)?,
                stride: num(stride)?,
                pool,
            })
        })
        .collect()
}

impl EvaluatorConfig {
    /// The configuration used for the shipped evaluator.
    pub fn new(frames: i64, size: i64) -> Self {
        let frame_layers = parse_layers(DEFAULT_FRAME_LAYERS).expect("default layers parse");
        let layers = parse_layers(DEFAULT_LAYERS).expect("default layers parse");
        Self {
            frames,
            size,
            frame_layers,
            layers,
            hidden: 256,
            pool: 1,
            dropout: 0.3,
        }
    }
}

#[derive(Debug)]
pub struct Net {
    frame_convs: Vec<(nn::Conv2D, nn::BatchNorm, bool)>,
    frames: i64,
    convs: Vec<(nn::Conv2D, nn::BatchNorm, bool)>,
    fc1: nn::Linear,
    fc2: nn::Linear,
    pool: i64,
    dropout: f64,
}

impl Net {
    pub fn new(p: &nn::Path, c: &EvaluatorConfig) -> Self {
        let stack = |prefix: &str, layers: &[Layer], mut inputs: i64| {
            let mut convs = Vec::new();
            for (i, l) in layers.iter().enumerate() {
                let cfg = nn::ConvConfig {
                    padding: l.kernel / 2,
                    stride: l.stride,
                    bias: false,
                    ..Default::default()
                };
                let conv = nn::conv2d(p / format!("{prefix}conv{i}"), inputs, l.out, l.kernel, cfg);
                let bn = nn::batch_norm2d(p / format!("{prefix}bn{i}"), l.out, Default::default());
                convs.push((conv, bn, l.pool));
                inputs = l.out;
            }
            (convs, inputs)
        };
        let (frame_convs, per_frame) = stack("frame_", &c.frame_layers, 1);
        let stacked = if c.frame_layers.is_empty() {
            c.frames
        } else {
            c.frames * per_frame
        };
        let (convs, inputs) = stack("", &c.layers, stacked);
        let fc1 = nn::linear(
            p / "fc1",
            2 * inputs * c.pool * c.pool,
            c.hidden,
            Default::default(),
        );
        let fc2 = nn::linear(
            p / "fc2",
            c.hidden,
            HEADS as i64 * COUNT_CLASSES,
            Default::default(),
        );
        Self {
            frame_convs,
            frames: c.frames,
            convs,
            fc1,
            fc2,
            pool: c.pool,
            dropout: c.dropout,
        }
    }

    /// Videos [B, N, H, W] in [0, 1] to count logits [B, 20, 3].
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let layer = |h: Tensor, (conv, bn, pool): &(nn::Conv2D, nn::BatchNorm, bool)| {
            let h = bn.forward_t(&h.apply(conv), train).relu();
            if *pool {
                h.max_pool2d_default(2)
            } else {
                h
            }
        };
        let mut h = x.shallow_clone();
        if !self.frame_convs.is_empty() {
            let s = x.size();
            h = self
                .frame_convs
                .iter()
                .fold(h.reshape([s[0] * s[1], 1, s[2], s[3]]), layer);
            let f = h.size();
            h = h.reshape([s[0], self.frames * f[1], f[2], f[3]]);
        }
        let h = self.convs.iter().fold(h, layer);
        let size = [self.pool, self.pool];
        let h = Tensor::cat(
            &[h.adaptive_avg_pool2d(size), h.adaptive_max_pool2d(size).0],
            1,
        )
        .flatten(1, -1);
        let h = h.apply(&self.fc1).relu().dropout(self.dropout, train);
        h.apply(&self.fc2)
            .reshape([-1, HEADS as i64, COUNT_CLASSES])
    }
}
