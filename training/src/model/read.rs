//! The read mechanism: eq. 5.
use super::filterbank::{spatial_filterbanks, temporal_filterbank, Geometry, Window};
use crate::backend::Backend;

/// read(x_i) = beta F_p x_i F_q^T for every frame (eq. 5): `video` is [B, N, A, B],
/// the result [B, G, K, K] (G = N, or K_t temporal rows for the Baseline, which first
/// reads K_t temporal slices through its temporal filterbank: F_z [K_t, N] x video).
pub fn read<B: Backend>(
    be: &mut B,
    window: &Window<B::Tensor>,
    video: &B::Tensor,
    geo: Geometry,
) -> B::Tensor {
    let slices = match &window.temporal {
        None => be.reshape(video, &[-1, geo.frames, geo.height, geo.width]),
        Some(t) => {
            let f_z = temporal_filterbank(be, t, geo);
            let f_z = be.reshape(&f_z, &[-1, geo.temporal_k, geo.frames]);
            let flat = be.reshape(video, &[-1, geo.frames, geo.height * geo.width]);
            let s = be.matmul(&f_z, &flat); // [B, K, A*B]
            be.reshape(&s, &[-1, geo.temporal_k, geo.height, geo.width])
        }
    };
    let (f_row, f_col) = spatial_filterbanks(be, window, geo);
    let rows = be.matmul(&f_row, &slices); // [B, G, K, B]
    let f_col_t = be.transpose(&f_col, &[0, 1, 3, 2]); // [B, F, B, K]
    let glimpse = be.matmul(&rows, &f_col_t); // [B, G, K, K]
    let gamma = be.unsqueeze(&window.gamma, 3);
    be.mul(&glimpse, &gamma)
}
