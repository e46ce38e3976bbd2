//! The write mechanism: eq. 9 (and eq. 10's canvas update in `decoder`).
use super::filterbank::{spatial_filterbanks, temporal_filterbank, Geometry, Window};
use crate::backend::Backend;

/// write(h_dec) = (1/gamma) F_p^T w F_q for every frame (eq. 9), where `patch` is
/// w^t, [B, G, K, K] (G = N frames, or K temporal rows for the Baseline), and the
/// window holds the write filterbank parameters. Returns [B, N, A, B]. The 1/gamma
/// is applied to the K x K patch rather than to the A x B result (the same product,
/// on K^2 instead of A B values).
///
/// Baseline: the cuboid patch is first written spatially, giving K temporal slices,
/// then spread over the N frames by the temporal filterbank: F_z^T [N, K] x slices.
pub fn write<B: Backend>(
    be: &mut B,
    window: &Window<B::Tensor>,
    patch: &B::Tensor,
    geo: Geometry,
) -> B::Tensor {
    let (f_row, f_col) = spatial_filterbanks(be, window, geo);
    let gamma = be.unsqueeze(&window.gamma, 3); // [B, F, 1, 1]
    let patch = be.div(patch, &gamma); // w / gamma
    let f_row_t = be.transpose(&f_row, &[0, 1, 3, 2]); // [B, F, A, K]
    let rows = be.matmul(&f_row_t, &patch); // [B, G, A, K]
    let slices = be.matmul(&rows, &f_col); // [B, G, A, B]
    match &window.temporal {
        None => slices,
        Some(t) => {
            let f_z = temporal_filterbank(be, t, geo); // [B, 1, K, N]
            let f_z = be.reshape(&f_z, &[-1, geo.k, geo.frames]);
            let f_z_t = be.transpose(&f_z, &[0, 2, 1]); // [B, N, K]
            let flat = be.reshape(&slices, &[-1, geo.k, geo.height * geo.width]);
            let frames = be.matmul(&f_z_t, &flat); // [B, N, A*B]
            be.reshape(&frames, &[-1, geo.frames, geo.height, geo.width])
        }
    }
}
