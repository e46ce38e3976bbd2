//! The read mechanism: eq. 5.
use super::filterbank::{
    over_channels, spatial_filterbanks, temporal_filterbank, Geometry, Window,
};
use crate::backend::Backend;

/// read(x_i) = beta F_p x_i F_q^T for every frame (eq. 5): `video` is [B, N, A, B],
/// the result [B, G, K, K] (G = N, or K_t temporal rows for the Baseline, which first
/// reads K_t temporal slices through its temporal filterbank: F_z [K_t, N] x video).
///
/// Colour video, [B, N, C, A, B], is read as DRAW reads colour images: the same
/// F_p, F_q and beta for each of the C planes, giving [B, G, C, K, K] (a K x K
/// glimpse per frame and channel).
pub fn read<B: Backend>(
    be: &mut B,
    window: &Window<B::Tensor>,
    video: &B::Tensor,
    geo: Geometry,
) -> B::Tensor {
    let slices = match &window.temporal {
        None => be.reshape(video, &geo.frames_shape(geo.frames)),
        Some(t) => {
            let f_z = temporal_filterbank(be, t, geo);
            let f_z = be.reshape(&f_z, &[-1, geo.temporal_k, geo.frames]);
            let plane = geo.channels * geo.height * geo.width;
            let flat = be.reshape(video, &[-1, geo.frames, plane]);
            let s = be.matmul(&f_z, &flat); // [B, K, C*A*B]
            be.reshape(&s, &geo.frames_shape(geo.temporal_k))
        }
    };
    let (f_row, f_col) = spatial_filterbanks(be, window, geo);
    let f_row = over_channels(be, f_row, geo); // [B, F, (1,) K, A]
    let rows = be.matmul(&f_row, &slices); // [B, G, (C,) K, B]
    let f_col_t = be.transpose(&f_col, &[0, 1, 3, 2]); // [B, F, B, K]
    let f_col_t = over_channels(be, f_col_t, geo);
    let glimpse = be.matmul(&rows, &f_col_t); // [B, G, (C,) K, K]
    let gamma = be.unsqueeze(&window.gamma, 3);
    let gamma = over_channels(be, gamma, geo);
    be.mul(&glimpse, &gamma)
}
