//! The evaluator's network: a small fully convolutional digit detector that reads
//! one frame at a time. For every cell of a coarse grid over the frame it gives
//! the probabilities of "no digit is centred here" (class 0) and of each digit 0-9
//! (classes 1-10) being centred in that cell. [`super::reading`] turns the maps of
//! all frames into the video's digits and their motions.
use super::reading::{Grid, CLASSES};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluatorConfig {
    /// Frames per video.
    pub frames: i64,
    /// Frame height and width.
    pub size: i64,
    /// Conv layers, each followed by batch norm and ReLU, then a 1x1 conv to
    /// [`CLASSES`] logits per cell. Their strides (and 2x2 poolings) set the grid.
    pub layers: Vec<Layer>,
    /// Each cell of the last layer's grid is split into `subcells` x `subcells`
    /// finer cells: the 1x1 head gives logits for every one of them, rearranged
    /// into a grid `subcells` times finer (a pixel shuffle). 1: no split.
    #[serde(default = "one")]
    pub subcells: i64,
}

/// One conv layer: `out` channels, a `kernel` x `kernel` kernel (odd) with its taps
/// `dilation` pixels apart and padding dilation * (kernel / 2), a stride, and
/// optionally 2x2 max pooling after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub out: i64,
    pub kernel: i64,
    pub stride: i64,
    #[serde(default = "one")]
    pub dilation: i64,
    pub pool: bool,
}

fn one() -> i64 {
    1
}

/// The default layers (see [`parse_layers`]): a 16x16 grid of 4-pixel cells on
/// 64x64 frames; the two dilated layers let each cell see 49x49 pixels, more than
/// a 28x28 digit.
pub const DEFAULT_LAYERS: &str = "32k5s2,64k3s2,96k3,128k3d2,128k3d2";

/// The shipped evaluator does not split its cells ([`EvaluatorConfig::subcells`]):
/// 2-pixel cells read real two-digit videos better but generated ones very
/// differently (docs/evaluator.md).
pub const DEFAULT_SUBCELLS: i64 = 1;

/// Parses layers written like "32k5s2,64k3d2p": out channels, `k` kernel (odd),
/// optional `s` stride (default 1), optional `d` dilation (default 1), optional `p`
/// for 2x2 max pooling after the layer.
pub fn parse_layers(spec: &str) -> Result<Vec<Layer>, String> {
    let layers = spec
        .split(',')
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let l = l.trim();
            let bad = || format!("bad layer {l:?} (want e.g. 32k5s2, 64k3d2 or 64k3p, odd kernel)");
            let (l, pool) = l.strip_suffix('p').map_or((l, false), |l| (l, true));
            let (l, dilation) = l.split_once('d').unwrap_or((l, "1"));
            let (out, rest) = l.split_once('k').ok_or_else(bad)?;
            let (kernel, stride) = rest.split_once('s').unwrap_or((rest, "1"));
            let num = |s: &str| s.parse::<i64>().ok().filter(|&v| v > 0).ok_or_else(bad);
            let kernel = num(kernel)?;
            if kernel % 2 == 0 {
                return Err(bad());
            }
            Ok(Layer {
                out: num(out)?,
                kernel,
                stride: num(stride)?,
                dilation: num(dilation)?,
                pool,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if layers.is_empty() {
        return Err("the evaluator needs at least one layer".into());
    }
    Ok(layers)
}

impl EvaluatorConfig {
    /// The configuration used for the shipped evaluator.
    pub fn new(frames: i64, size: i64) -> Self {
        Self {
            frames,
            size,
            layers: parse_layers(DEFAULT_LAYERS).expect("default layers parse"),
            subcells: DEFAULT_SUBCELLS,
        }
    }

    /// The output grid: number of cells per side, and where each cell is centred.
    /// An odd kernel with padding dilation * (kernel / 2) and stride s centres
    /// output j on input s * j; a 2x2 pooling centres output j between inputs 2j
    /// and 2j + 1. Splitting a cell of width w centred on c into u subcells centres
    /// them on c - w / 2 + w / u * (k + 1/2), k = 0..u.
    pub fn grid(&self) -> Grid {
        let (mut cells, mut scale, mut offset) = (self.size, 1.0f32, 0.0f32);
        for l in &self.layers {
            cells = (cells - 1) / l.stride + 1;
            scale *= l.stride as f32;
            if l.pool {
                cells /= 2;
                offset += scale * 0.5;
                scale *= 2.0;
            }
        }
        let u = self.subcells.max(1);
        Grid {
            cells: (cells * u).max(0) as usize,
            scale: scale / u as f32,
            offset: offset - scale / 2.0 + scale / (2 * u) as f32,
        }
    }
}

#[derive(Debug)]
pub struct Net {
    convs: Vec<(nn::Conv2D, nn::BatchNorm, bool)>,
    head: nn::Conv2D,
    subcells: i64,
}

impl Net {
    pub fn new(p: &nn::Path, c: &EvaluatorConfig) -> Self {
        let mut convs = Vec::new();
        let mut inputs = 1;
        for (i, l) in c.layers.iter().enumerate() {
            let cfg = nn::ConvConfig {
                padding: l.dilation * (l.kernel / 2),
                stride: l.stride,
                dilation: l.dilation,
                bias: false,
                ..Default::default()
            };
            let conv = nn::conv2d(p / format!("conv{i}"), inputs, l.out, l.kernel, cfg);
            let bn = nn::batch_norm2d(p / format!("bn{i}"), l.out, Default::default());
            convs.push((conv, bn, l.pool));
            inputs = l.out;
        }
        let u = c.subcells.max(1);
        let head = nn::conv2d(
            p / "head",
            inputs,
            CLASSES as i64 * u * u,
            1,
            Default::default(),
        );
        Self {
            convs,
            head,
            subcells: u,
        }
    }

    /// Frames [B, 1, H, W] in [0, 1] to cell logits [B, CLASSES, cells, cells].
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self
            .convs
            .iter()
            .fold(x.shallow_clone(), |h, (conv, bn, pool)| {
                let h = bn.forward_t(&h.apply(conv), train).relu();
                if *pool {
                    h.max_pool2d_default(2)
                } else {
                    h
                }
            });
        let logits = h.apply(&self.head);
        if self.subcells > 1 {
            // [B, CLASSES * u * u, g, g] -> [B, CLASSES, g * u, g * u]
            logits.pixel_shuffle(self.subcells)
        } else {
            logits
        }
    }
}
