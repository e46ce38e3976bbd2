//! The write mechanism: eq. 9 (and eq. 10's canvas update in `decoder`).
use super::filterbank::{
    filterbanks_over_steps, over_channels, spatial_filterbanks, temporal_filterbank, Geometry,
    Window,
};
use crate::backend::Backend;

/// write(h_dec) = (1/gamma) F_p^T w F_q for every frame (eq. 9), where `patch` is
/// w^t, [B, G, K, K] (G = N frames, or K_t temporal rows for the Baseline), and the
/// window holds the write filterbank parameters. Returns [B, N, A, B]. The 1/gamma
/// is applied to the K x K patch rather than to the A x B result (the same product,
/// on K^2 instead of A B values).
///
/// Colour: the patch is [B, G, C, K, K], one K x K patch per frame and channel,
/// each written through the same F_p, F_q and gamma (as DRAW writes colour
/// images); the result is [B, N, C, A, B].
///
/// Baseline: the cuboid patch is first written spatially, giving K_t temporal slices,
/// then spread over the N frames by the temporal filterbank: F_z^T [N, K_t] x slices.
pub fn write<B: Backend>(
    be: &mut B,
    window: &Window<B::Tensor>,
    patch: &B::Tensor,
    geo: Geometry,
) -> B::Tensor {
    let (rows, f_col) = spatial_factors(be, window, patch, geo);
    let slices = be.matmul(&rows, &f_col); // [B, G, (C,) A, B]
    match &window.temporal {
        None => slices,
        Some(t) => {
            let f_z = temporal_filterbank(be, t, geo); // [B, 1, K_t, N]
            let f_z = be.reshape(&f_z, &[-1, geo.temporal_k, geo.frames]);
            let f_z_t = be.transpose(&f_z, &[0, 2, 1]); // [B, N, K_t]
            let plane = geo.channels * geo.height * geo.width;
            let flat = be.reshape(&slices, &[-1, geo.temporal_k, plane]);
            let frames = be.matmul(&f_z_t, &flat); // [B, N, C*A*B]
            be.reshape(&frames, &geo.frames_shape(geo.frames))
        }
    }
}

/// The sum of T steps' writes, sum_t write(h_dec^t) (eq. 9 summed as in eq. 10),
/// as one product: with the steps' F_p^T side by side, [A, T K], and the steps'
/// (w^t / gamma^t) F_q^t stacked, [T K, B],
///   sum_t F_p^t^T (w^t / gamma^t) F_q^t = [F_p^1^T .. F_p^T^T] x [(w^1/gamma^1) F_q^1; ..]
/// per frame (and channel). `window` and `patch` ([B T, N, (C,) K, K]) hold a batch of B x T,
/// video-major. Returns [B, N, (C,) A, B]; None for the Baseline, whose temporal
/// filterbank acts after the spatial product.
pub fn summed_writes<B: Backend>(
    be: &mut B,
    window: &Window<B::Tensor>,
    patch: &B::Tensor,
    geo: Geometry,
    steps: i64,
) -> Option<B::Tensor> {
    if window.temporal.is_some() {
        return None;
    }
    let (f, n, k) = (geo.groups, geo.frames, geo.k);
    let (f_row_t, f_col) = filterbanks_over_steps(be, window, geo, steps);
    // Colour: every channel's patch goes through the same filterbanks and gamma.
    let ch: &[i64] = if geo.colour() { &[geo.channels] } else { &[] };
    let with_ch = |head: &[i64], tail: &[i64]| [head, ch, tail].concat();
    let gamma = be.reshape(&window.gamma, &[-1, steps, f]);
    let gamma = be.transpose(&gamma, &[0, 2, 1]);
    let gamma = be.reshape(&gamma, &[-1, f, steps, 1, 1]);
    let gamma = over_channels(be, gamma, geo); // [B, F, (1,) T, 1, 1]
    let w = be.reshape(patch, &with_ch(&[-1, steps, n], &[k, k]));
    let perm: &[i64] = if geo.colour() {
        &[0, 2, 3, 1, 4, 5]
    } else {
        &[0, 2, 1, 3, 4]
    };
    let w = be.transpose(&w, perm); // [B, N, (C,) T, K, K]
    let w = be.div(&w, &gamma);
    let f_col = over_channels(be, f_col, geo); // [B, F, (1,) T, K, B]
    let right = be.matmul(&w, &f_col); // [B, N, (C,) T, K, B]
    let right = be.reshape(&right, &with_ch(&[-1, n], &[steps * k, geo.width]));
    let f_row_t = over_channels(be, f_row_t, geo); // [B, F, (1,) A, T K]
    Some(be.matmul(&f_row_t, &right))
}

/// write (eq. 9) as two factors: rows = F_p^T (w / gamma), [B, G, A, K], and
/// F_q, [B, F, K, B].
fn spatial_factors<B: Backend>(
    be: &mut B,
    window: &Window<B::Tensor>,
    patch: &B::Tensor,
    geo: Geometry,
) -> (B::Tensor, B::Tensor) {
    let (f_row, f_col) = spatial_filterbanks(be, window, geo);
    let gamma = be.unsqueeze(&window.gamma, 3); // [B, F, 1, 1]
    let gamma = over_channels(be, gamma, geo);
    let patch = be.div(patch, &gamma); // w / gamma
    let f_row_t = be.transpose(&f_row, &[0, 1, 3, 2]); // [B, F, A, K]
    let f_row_t = over_channels(be, f_row_t, geo);
    let rows = be.matmul(&f_row_t, &patch); // [B, G, (C,) A, K]
    let f_col = over_channels(be, f_col, geo); // [B, F, (1,) K, B]
    (rows, f_col)
}
