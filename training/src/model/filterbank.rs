//! Gaussian attention windows and filterbanks: the paper's eq. 1-4.
//!
//! A window is computed for `F` frame groups at once (F = N frames for Sync-DRAW,
//! F = 1 for the shared Global / Baseline window). Every parameter tensor has shape
//! [B, F, 1]; filterbanks have shape [B, F, K, A]. Colour frames are read and
//! written through the same filterbanks in each channel, as DRAW does for colour
//! images ([`over_channels`]).
use super::config::ModelConfig;
use super::layers::Linear;
use crate::backend::Backend;

/// Attention parameters after the scaling below eq. 2 (the paper's footnote 2:
/// sigma, delta and gamma come out of the linear layer as logarithms).
pub struct Window<T> {
    /// Grid centre (g_p, g_q): row and column, 1-based pixel coordinates.
    pub g_row: T,
    pub g_col: T,
    /// Variance sigma^2 of every filter.
    pub sigma2: T,
    /// Stride delta between grid points.
    pub delta: T,
    /// Intensity gamma (the paper's beta): read multiplies by it, write divides.
    pub gamma: T,
    /// Baseline only: the temporal part of the spatio-temporal cuboid.
    pub temporal: Option<TemporalWindow<T>>,
}

pub struct TemporalWindow<T> {
    pub g: T,
    pub sigma2: T,
    pub delta: T,
}

/// Raw parameters per frame group produced by the attention layer.
pub fn params_per_group(temporal: bool) -> i64 {
    if temporal {
        8
    } else {
        5
    }
}

/// Window sizes needed to scale the raw parameters.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    pub height: i64,
    pub width: i64,
    pub frames: i64,
    /// Grid size K.
    pub k: i64,
    /// The Baseline's temporal grid size K_t.
    pub temporal_k: i64,
    /// Frame groups F.
    pub groups: i64,
    /// Colour channels C (1 grey, 3 RGB).
    pub channels: i64,
    /// Squash the raw parameters into [`BOUNDS`] (see [`window`]).
    pub bounded: bool,
    /// Normalise filterbank rows stably (see [`filterbank`]).
    pub stable: bool,
}

impl Geometry {
    /// The geometry of a model's read (k = read_k) or write (k = write_k) window.
    pub fn of(c: &ModelConfig, k: i64) -> Self {
        Self {
            height: c.height,
            width: c.width,
            frames: c.frames,
            k,
            temporal_k: c.temporal_k(k),
            groups: c.attention_groups(),
            channels: c.channels,
            bounded: c.bounded_windows,
            stable: c.stable_filterbank,
        }
    }

    /// Whether frames have a channel axis. Colour videos are [B, N, C, A, B];
    /// grey ones are [B, N, A, B], without it, as every model before colour was,
    /// so a grey model's graph is exactly what it was.
    pub fn colour(&self) -> bool {
        self.channels > 1
    }

    /// The shape of `groups` frames (or temporal slices) per video:
    /// [-1, groups, A, B], or [-1, groups, C, A, B] in colour.
    pub fn frames_shape(&self, groups: i64) -> Vec<i64> {
        if self.colour() {
            vec![-1, groups, self.channels, self.height, self.width]
        } else {
            vec![-1, groups, self.height, self.width]
        }
    }
}

/// A tensor of one frame group, [B, F, x, y] (a filterbank, or gamma as
/// [B, F, 1, 1]), made to act on every channel of colour frames alike:
/// [B, F, 1, x, y], which broadcasts over the C planes. Grey frames have no
/// channel axis, and get `t` itself.
pub fn over_channels<B: Backend>(be: &mut B, t: B::Tensor, geo: Geometry) -> B::Tensor {
    if geo.colour() {
        be.unsqueeze(&t, 2)
    } else {
        t
    }
}

/// Bounds of the raw parameters of a bounded window: |g~| (centres), |log sigma^2|,
/// |log delta~|, |log gamma|. With |g~| < 1.2 a grid centre stays within 10 % of
/// the frame size outside the frame; the others keep variance, stride and
/// intensity within a factor e^3, e^1.5 and e^4 of their neutral values.
pub const BOUNDS: [f32; 4] = [1.2, 3.0, 1.5, 4.0];

/// Attention window from a decoder state: a linear layer gives, per frame group,
/// (g~_p, g~_q, log sigma^2, log delta~, log gamma[, g~_z, log sigma_z^2, log delta~_z]).
/// In a bounded window each raw value r becomes b tanh(r / b), b from [`BOUNDS`]:
/// the paper scales g = (A+1)/2 (g~+1) "to ensure that these parameters lie within
/// the frame dimensions", which holds only if g~ is bounded; unbounded windows
/// drift off the frame, read exact zeros and stop learning (docs/architecture.md).
/// Then, as under eq. 2:
///   g_p = (A+1)/2 (g~_p + 1),  g_q = (B+1)/2 (g~_q + 1),
///   delta = (max(A,B) - 1)/(K - 1) * delta~   (real division, K the grid size).
pub fn window<B: Backend>(
    be: &mut B,
    layer: &Linear<B::Tensor>,
    h: &B::Tensor,
    geo: Geometry,
    temporal: bool,
) -> Window<B::Tensor> {
    let p = params_per_group(temporal);
    let raw = layer.forward(be, h);
    let raw = be.reshape(&raw, &[-1, geo.groups, p]);
    // Squashed into the bounds all at once (three operations, not three per
    // parameter): centres, log sigma^2, log delta~, log gamma; the Baseline's
    // temporal g~_z, log sigma_z^2, log delta~_z like their spatial counterparts.
    let raw = if geo.bounded {
        let b: Vec<f32> = [0usize, 0, 1, 2, 3, 0, 1, 2][..p as usize]
            .iter()
            .map(|&i| BOUNDS[i])
            .collect();
        let inv: Vec<f32> = b.iter().map(|b| 1.0 / b).collect();
        let (b, inv) = (be.constant(&b, &[1, 1, p]), be.constant(&inv, &[1, 1, p]));
        let r = be.mul(&raw, &inv);
        let r = be.tanh(&r);
        be.mul(&r, &b)
    } else {
        raw
    };
    let take = |be: &mut B, i: i64| be.narrow(&raw, 2, i, 1);
    let (gr, gc, ls2, ld, lg) = (
        take(be, 0),
        take(be, 1),
        take(be, 2),
        take(be, 3),
        take(be, 4),
    );
    let k_den = (geo.k - 1).max(1) as f32;
    let g_row = centre(be, &gr, geo.height);
    let g_col = centre(be, &gc, geo.width);
    let sigma2 = be.exp(&ls2);
    let delta = be.exp(&ld);
    let delta = be.scale(&delta, (geo.height.max(geo.width) - 1) as f32 / k_den);
    let gamma = be.exp(&lg);
    let temporal = temporal.then(|| {
        let (gz, ls2z, ldz) = (take(be, 5), take(be, 6), take(be, 7));
        let g = centre(be, &gz, geo.frames);
        let sigma2 = be.exp(&ls2z);
        let delta = be.exp(&ldz);
        let kt_den = (geo.temporal_k - 1).max(1) as f32;
        let delta = be.scale(&delta, (geo.frames - 1) as f32 / kt_den);
        TemporalWindow { g, sigma2, delta }
    });
    Window {
        g_row,
        g_col,
        sigma2,
        delta,
        gamma,
        temporal,
    }
}

/// (size + 1)/2 * (g~ + 1)
fn centre<B: Backend>(be: &mut B, g: &B::Tensor, size: i64) -> B::Tensor {
    let g1 = be.add_scalar(g, 1.0);
    be.scale(&g1, (size + 1) as f32 / 2.0)
}

/// Filterbank F[u, a] for one axis (eq. 1-4), shape [B, F, K, size]:
///   mu_u = g + (u - K/2 - 0.5) delta,  u = 1..K                      (eq. 1, 2)
///   F[u, a] = exp(-(a - mu_u)^2 / (2 sigma^2)) / Z,  a = 1..size     (eq. 3, 4)
/// with Z normalising each row over a.
///
/// As the paper writes it, a row whose Gaussian lies far outside the frame has
/// weights that sum to almost nothing; under the floor of Z (1e-8) it reads
/// exact zeros and gets no gradient, for good. With `stable` the exponents of a
/// row are shifted by their maximum before exp() (the same F, since Z divides
/// the shift out): the pixel nearest to mu_u always has weight exp(0) = 1, so
/// Z >= 1 and no row dies; one off the frame reads the frame's edge and its
/// gradient pulls it back.
pub fn filterbank<B: Backend>(
    be: &mut B,
    g: &B::Tensor,
    delta: &B::Tensor,
    sigma2: &B::Tensor,
    k: i64,
    size: i64,
    stable: bool,
) -> B::Tensor {
    let mu = grid_centres(be, g, delta, k, 3); // [B, F, K]
    let mu = be.unsqueeze(&mu, 3); // [B, F, K, 1]
    let a = pixel_coords(be, size, 4, 3);
    let s2 = be.unsqueeze(sigma2, 3); // [B, F, 1, 1]
    gaussian_rows(be, &mu, &a, &s2, -1, stable) // the pixel axis, 3, is the last
}

/// mu_u = g + (u - K/2 - 0.5) delta, u = 1..K (eq. 1, 2), for `g` and `delta`
/// of rank `rank` whose last axis has size 1: [.., K].
fn grid_centres<B: Backend>(
    be: &mut B,
    g: &B::Tensor,
    delta: &B::Tensor,
    k: i64,
    rank: usize,
) -> B::Tensor {
    let offsets: Vec<f32> = (1..=k).map(|u| u as f32 - k as f32 / 2.0 - 0.5).collect();
    let mut shape = vec![1; rank - 1];
    shape.push(k);
    let offsets = be.constant(&offsets, &shape);
    let step = be.mul(&offsets, delta);
    be.add(g, &step)
}

/// Pixel coordinates 1..=size along `axis` of a tensor of rank `rank`.
fn pixel_coords<B: Backend>(be: &mut B, size: i64, rank: usize, axis: usize) -> B::Tensor {
    let coords: Vec<f32> = (1..=size).map(|a| a as f32).collect();
    let mut shape = vec![1; rank];
    shape[axis] = size;
    be.constant(&coords, &shape)
}

/// exp(-(a - mu)^2 / (2 sigma^2)) / Z (eq. 3, 4) for centres `mu`, pixel
/// coordinates `a` and variances `sigma2` broadcast against one another, with Z
/// the sum over the pixel axis `axis`, given as -1 where it is the last (see
/// [`filterbank`] for `stable`, `Backend::softmax` for why -1).
fn gaussian_rows<B: Backend>(
    be: &mut B,
    mu: &B::Tensor,
    a: &B::Tensor,
    sigma2: &B::Tensor,
    axis: i64,
    stable: bool,
) -> B::Tensor {
    let d = be.sub(a, mu);
    let d2 = be.mul(&d, &d);
    // The divisions are done once per window or row and the filter values
    // multiplied: cheaper than dividing each of them, forward and backward.
    let one = be.constant(&[1.0], &[1]);
    let two_s2 = be.scale(sigma2, -2.0);
    let inv = be.div(&one, &two_s2); // -1 / (2 sigma^2)
    let e = be.mul(&d2, &inv);
    if stable {
        // Shifting a row's exponents by their maximum and dividing by their sum
        // is a softmax over the pixel axis: one fused operation (and one in the
        // backward pass) in place of eight passes over the filter values. The
        // largest weight is exp(0) = 1, so Z >= 1 and no exponent needs a floor.
        return be.softmax(&e, axis);
    }
    // Exponents below -80 (weights under 2e-35, nothing next to a row's sum) are
    // held at -80: exp() then never underflows, which the CPU's vector exp handles
    // on a slow path (5 % of a training step's time in a profile).
    let e = be.clamp_min(&e, -80.0);
    let f = be.exp(&e);
    let z = be.sum_keepdim(&f, axis);
    let z = be.clamp_min(&z, 1e-8);
    let inv_z = be.div(&one, &z);
    be.mul(&f, &inv_z)
}

/// The spatial filterbanks of T steps' windows at once, laid out for summing the
/// steps' writes in one product (write.rs): `w` holds the windows of a batch of
/// B x T, video-major ([B T, F, 1] each). Returns F_p transposed, [B, F, A, T K]
/// (pixel rows, then every step's K grid points), and F_q, [B, F, T, K, B].
/// The same numbers as [`spatial_filterbanks`] per step, arranged by their
/// broadcast shapes rather than by moving the finished [B, F, K, A] values.
pub fn filterbanks_over_steps<B: Backend>(
    be: &mut B,
    w: &Window<B::Tensor>,
    geo: Geometry,
    steps: i64,
) -> (B::Tensor, B::Tensor) {
    let f = geo.groups;
    // [B T, F, 1] -> [B, F, T, 1]: small tensors, moved before the big ones exist.
    let per_step = |be: &mut B, x: &B::Tensor| {
        let x = be.reshape(x, &[-1, steps, f]);
        let x = be.transpose(&x, &[0, 2, 1]);
        be.unsqueeze(&x, 3)
    };
    let (g_row, g_col) = (per_step(be, &w.g_row), per_step(be, &w.g_col));
    let (delta, sigma2) = (per_step(be, &w.delta), per_step(be, &w.sigma2));
    let k = geo.k;
    // F_p^T: [B, F, A, T, K], normalised over A.
    let mu = grid_centres(be, &g_row, &delta, k, 4); // [B, F, T, K]
    let mu = be.unsqueeze(&mu, 2); // [B, F, 1, T, K]
    let a = pixel_coords(be, geo.height, 5, 2);
    let s2 = be.unsqueeze(&sigma2, 2); // [B, F, 1, T, 1]
    let f_row_t = gaussian_rows(be, &mu, &a, &s2, 2, geo.stable);
    let f_row_t = be.reshape(&f_row_t, &[-1, f, geo.height, steps * k]);
    // F_q: [B, F, T, K, B], normalised over B.
    let mu = grid_centres(be, &g_col, &delta, k, 4);
    let mu = be.unsqueeze(&mu, 4); // [B, F, T, K, 1]
    let b = pixel_coords(be, geo.width, 5, 4);
    let s2 = be.unsqueeze(&sigma2, 4); // [B, F, T, 1, 1]
    let f_col = gaussian_rows(be, &mu, &b, &s2, -1, geo.stable); // axis 4, the last
    (f_row_t, f_col)
}

/// The row (F_p, [B,F,K,A]) and column (F_q, [B,F,K,B]) filterbanks of a window.
pub fn spatial_filterbanks<B: Backend>(
    be: &mut B,
    w: &Window<B::Tensor>,
    geo: Geometry,
) -> (B::Tensor, B::Tensor) {
    let f_row = filterbank(
        be, &w.g_row, &w.delta, &w.sigma2, geo.k, geo.height, geo.stable,
    );
    let f_col = filterbank(
        be, &w.g_col, &w.delta, &w.sigma2, geo.k, geo.width, geo.stable,
    );
    (f_row, f_col)
}

/// The Baseline's temporal filterbank F_z, [B, 1, K_t, N].
pub fn temporal_filterbank<B: Backend>(
    be: &mut B,
    t: &TemporalWindow<B::Tensor>,
    geo: Geometry,
) -> B::Tensor {
    filterbank(
        be,
        &t.g,
        &t.delta,
        &t.sigma2,
        geo.temporal_k,
        geo.frames,
        geo.stable,
    )
}
