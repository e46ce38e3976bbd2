//! Statistics of the attention windows (eq. 1-4) during training, logged with the
//! metrics so that a stall is visible: per frame group, the grid centre, stride,
//! filter width and intensity, and the share of filterbank rows that are dead (a
//! row whose Gaussian weights sum under the normaliser floor reads exact zeros
//! and gets no gradient: the window has left the frame).
use super::filterbank::{Geometry, Window};
use serde::Serialize;
use tch::{Kind, Tensor};

/// The normaliser floor of [`super::filterbank::filterbank`]: rows whose weights
/// sum below it are dead.
pub const DEAD_ROW_SUM: f64 = 1e-8;

/// One attention's windows, each value per frame group (one for Global), averaged
/// over the batch and the T steps.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AttentionStats {
    /// Grid centre g_p, g_q in pixels (1-based; inside the frame: 1..=size).
    pub centre_row: Vec<f64>,
    pub centre_col: Vec<f64>,
    /// Stride delta between grid points, pixels.
    pub stride: Vec<f64>,
    /// Filter standard deviation sigma, pixels.
    pub sigma: Vec<f64>,
    /// Intensity gamma.
    pub gamma: Vec<f64>,
    /// Share of the rows of F_p and F_q under [`DEAD_ROW_SUM`] (always 0 for a
    /// stable filterbank, whose rows cannot die).
    pub dead_rows: Vec<f64>,
    #[serde(skip)]
    steps: usize,
}

/// Read and write windows of one batch.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WindowStats {
    pub read: AttentionStats,
    pub write: AttentionStats,
}

impl WindowStats {
    /// Sums to means over the steps added.
    pub fn finish(self) -> Self {
        WindowStats {
            read: self.read.finish(),
            write: self.write.finish(),
        }
    }
}

/// Per group mean over the batch, [B, F, 1] -> F values.
fn per_group(t: &Tensor) -> Vec<f64> {
    let m = t
        .detach()
        .to_kind(Kind::Double)
        .mean_dim([0i64, 2].as_slice(), false, Kind::Double);
    Vec::<f64>::try_from(&m).unwrap_or_default()
}

/// Share of the K rows of an axis' filterbank whose unnormalised weights sum
/// under the floor, per group: [B, F, 1] centre, stride, variance -> F values.
fn dead_share(g: &Tensor, delta: &Tensor, sigma2: &Tensor, k: i64, size: i64) -> Tensor {
    let dev = g.device();
    let offsets: Vec<f64> = (1..=k).map(|u| u as f64 - k as f64 / 2.0 - 0.5).collect();
    let offsets = Tensor::from_slice(&offsets)
        .to_device(dev)
        .reshape([1, 1, k]);
    let (g, delta, sigma2) = (
        g.detach().to_kind(Kind::Double),
        delta.detach().to_kind(Kind::Double),
        sigma2.detach().to_kind(Kind::Double),
    );
    let mu = (&g + offsets * &delta).unsqueeze(3); // [B, F, K, 1]
    let a = Tensor::arange_start(1, size + 1, (Kind::Double, dev)).reshape([1, 1, 1, size]);
    let e = -(a - mu).square() / (sigma2.unsqueeze(3) * 2.0);
    let sums = e
        .exp()
        .sum_dim_intlist([3i64].as_slice(), false, Kind::Double); // [B, F, K]
    sums.lt(DEAD_ROW_SUM)
        .to_kind(Kind::Double)
        .mean_dim([0i64, 2].as_slice(), false, Kind::Double)
}

impl AttentionStats {
    /// Adds one step's windows.
    pub fn add(&mut self, w: &Window<Tensor>, geo: Geometry) {
        // A stable filterbank's rows cannot die (filterbank.rs).
        let dead = if geo.stable {
            vec![0.0; geo.groups as usize]
        } else {
            let share = (dead_share(&w.g_row, &w.delta, &w.sigma2, geo.k, geo.height)
                + dead_share(&w.g_col, &w.delta, &w.sigma2, geo.k, geo.width))
                * 0.5;
            Vec::<f64>::try_from(&share).unwrap_or_default()
        };
        let values = [
            per_group(&w.g_row),
            per_group(&w.g_col),
            per_group(&w.delta),
            per_group(&w.sigma2.sqrt()),
            per_group(&w.gamma),
            dead,
        ];
        for (field, v) in self.fields_mut().into_iter().zip(values) {
            if field.is_empty() {
                *field = vec![0.0; v.len()];
            }
            for (a, b) in field.iter_mut().zip(v) {
                *a += b;
            }
        }
        self.steps += 1;
    }

    /// Every per-group field, in the order [`AttentionStats::add`] fills them.
    fn fields_mut(&mut self) -> [&mut Vec<f64>; 6] {
        [
            &mut self.centre_row,
            &mut self.centre_col,
            &mut self.stride,
            &mut self.sigma,
            &mut self.gamma,
            &mut self.dead_rows,
        ]
    }

    /// Sums to means over the steps added.
    pub fn finish(mut self) -> Self {
        let n = self.steps.max(1) as f64;
        for field in self.fields_mut() {
            for v in field.iter_mut() {
                *v /= n;
            }
        }
        self
    }

    /// The largest dead-row share of any frame group.
    pub fn worst_dead(&self) -> f64 {
        self.dead_rows.iter().copied().fold(0.0, f64::max)
    }
}
