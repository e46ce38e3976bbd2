//! The write mechanism: eq. 9 (and eq. 10's canvas update in `decoder`).
use super::filterbank::{
    filterbanks_over_steps, spatial_filterbanks, temporal_filterbank, Geometry, Window,
};
use crate::backend::Backend;

/// write(h_dec) = (1/gamma) F_p^T w F_q for every frame (eq. 9), where `patch` is
/// w^t, [B, G, K, K] (G = N frames, or K_t temporal rows for the Baseline), and the
/// window holds the write filterbank parameters. Returns [B, N, A, B]. The 1/gamma
/// is applied to the K x K patch rather than to the A x B result (the same product,
/// on K^2 instead of A B values).
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
    let slices = be.matmul(&rows, &f_col); // [B, G, A, B]
    match &window.temporal {
        None => slices,
        Some(t) => {
            let f_z = temporal_filterbank(be, t, geo); // [B, 1, K_t, N]
            let f_z = be.reshape(&f_z, &[-1, geo.temporal_k, geo.frames]);
            let f_z_t = be.transpose(&f_z, &[0, 2, 1]); // [B, N, K_t]
            let flat = be.reshape(&slices, &[-1, geo.temporal_k, geo.height * geo.width]);
            let frames = be.matmul(&f_z_t, &flat); // [B, N, A*B]
            be.reshape(&frames, &[-1, geo.frames, geo.height, geo.width])
        }
    }
}

/// The sum of T steps' writes, sum_t write(h_dec^t) (eq. 9 summed as in eq. 10),
/// as one product: with the steps' F_p^T side by side, [A, T K], and the steps'
/// (w^t / gamma^t) F_q^t stacked, [T K, B],
///   sum_t F_p^t^T (w^t / gamma^t) F_q^t = [F_p^1^T .. F_p^T^T] x [(w^1/gamma^1) F_q^1; ..]
/// per frame. `window` and `patch` ([B T, N, K, K]) hold a batch of B x T,
/// video-major. Returns [B, N, A, B]; None for the Baseline, whose temporal
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
    let gamma = be.reshape(&window.gamma, &[-1, steps, f]);
    let gamma = be.transpose(&gamma, &[0, 2, 1]);
    let gamma = be.reshape(&gamma, &[-1, f, steps, 1, 1]);
    let w = be.reshape(patch, &[-1, steps, n, k, k]);
    let w = be.transpose(&w, &[0, 2, 1, 3, 4]); // [B, N, T, K, K]
    let w = be.div(&w, &gamma);
    let right = be.matmul(&w, &f_col); // [B, N, T, K, B]
    let right = be.reshape(&right, &[-1, n, steps * k, geo.width]);
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
    let patch = be.div(patch, &gamma); // w / gamma
    let f_row_t = be.transpose(&f_row, &[0, 1, 3, 2]); // [B, F, A, K]
    let rows = be.matmul(&f_row_t, &patch); // [B, G, A, K]
    (rows, f_col)
}
