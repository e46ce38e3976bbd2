//! The read mechanism: eq. 5.
use super::filterbank::{
    over_channels, spatial_filterbanks, temporal_filterbank, Geometry, Window,
};
use crate::backend::Backend;

/// read(x_i) = beta F_p x_i F_q^T for every frame (eq. 5): each video is
/// [B, N, A, B], its glimpse [B, G, K, K] (G = N, or K_t temporal rows for the
/// Baseline, which first reads K_t temporal slices through its temporal
/// filterbank: F_z [K_t, N] x video).
///
/// Colour video, [B, N, C, A, B], is read as DRAW reads colour images: the same
/// F_p, F_q and beta for each of the C planes, giving [B, G, C, K, K] (a K x K
/// glimpse per frame and channel).
///
/// All `videos` are read through the same window (the encoder reads x and x_hat at
/// every step): its filterbanks are computed once for all of them.
pub fn read<B: Backend>(
    be: &mut B,
    window: &Window<B::Tensor>,
    videos: &[&B::Tensor],
    geo: Geometry,
) -> Vec<B::Tensor> {
    let f_z = window.temporal.as_ref().map(|t| {
        let f_z = temporal_filterbank(be, t, geo);
        be.reshape(&f_z, &[-1, geo.temporal_k, geo.frames])
    });
    let (f_row, f_col) = spatial_filterbanks(be, window, geo);
    let f_row = over_channels(be, f_row, geo); // [B, F, (1,) K, A]
    let f_col_t = be.transpose(&f_col, &[0, 1, 3, 2]); // [B, F, B, K]
    let f_col_t = over_channels(be, f_col_t, geo);
    let gamma = be.unsqueeze(&window.gamma, 3);
    let gamma = over_channels(be, gamma, geo);
    videos
        .iter()
        .map(|video| {
            let slices = match &f_z {
                None => be.reshape(video, &geo.frames_shape(geo.frames)),
                Some(f_z) => {
                    let plane = geo.channels * geo.height * geo.width;
                    let flat = be.reshape(video, &[-1, geo.frames, plane]);
                    let s = be.matmul(f_z, &flat); // [B, K, C*A*B]
                    be.reshape(&s, &geo.frames_shape(geo.temporal_k))
                }
            };
            let rows = be.matmul(&f_row, &slices); // [B, G, (C,) K, B]
            let glimpse = be.matmul(&rows, &f_col_t); // [B, G, (C,) K, K]
            be.mul(&glimpse, &gamma)
        })
        .collect()
}
