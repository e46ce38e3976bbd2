//! The write mechanism: eq. 9 (and eq. 10's canvas update in `decoder`).
use super::filterbank::{
    over_channels, spatial_filterbanks, temporal_filterbank, Geometry, Window,
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
    let f = spatial_factors(be, window, patch, geo);
    let slices = be.matmul(&f.rows, &f.f_col); // [B, G, (C,) A, B]
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

/// A per-frame write (eq. 9) as the two factors whose product it is:
/// rows = F_p^T (w / gamma) [B, N, A, K] and f_col = F_q [B, N, K, B] (in colour
/// [B, N, C, A, K] and [B, N, 1, K, B]). A sum of writes over steps is then one
/// product of the factors concatenated along K (decoder.rs).
pub struct WriteFactors<T> {
    pub rows: T,
    pub f_col: T,
}

/// The factors of a per-frame write; None for the Baseline, whose temporal
/// filterbank acts after the spatial product.
pub fn write_factors<B: Backend>(
    be: &mut B,
    window: &Window<B::Tensor>,
    patch: &B::Tensor,
    geo: Geometry,
) -> Option<WriteFactors<B::Tensor>> {
    match window.temporal {
        None => Some(spatial_factors(be, window, patch, geo)),
        Some(_) => None,
    }
}

fn spatial_factors<B: Backend>(
    be: &mut B,
    window: &Window<B::Tensor>,
    patch: &B::Tensor,
    geo: Geometry,
) -> WriteFactors<B::Tensor> {
    let (f_row, f_col) = spatial_filterbanks(be, window, geo);
    let gamma = be.unsqueeze(&window.gamma, 3); // [B, F, 1, 1]
    let gamma = over_channels(be, gamma, geo);
    let patch = be.div(patch, &gamma); // w / gamma
    let f_row_t = be.transpose(&f_row, &[0, 1, 3, 2]); // [B, F, A, K]
    let f_row_t = over_channels(be, f_row_t, geo);
    let rows = be.matmul(&f_row_t, &patch); // [B, G, (C,) A, K]
    let f_col = over_channels(be, f_col, geo); // [B, F, (1,) K, B]
    WriteFactors { rows, f_col }
}
