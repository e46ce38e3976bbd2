//! Binarised pixels, and the entropy floor of grey ones.
//!
//! DRAW (Gregor et al. 2015) and Sync-DRAW report NLL on binary pixels: each
//! pixel is a Bernoulli variable. Grey pixels x/255 under the same Bernoulli
//! likelihood cannot reach zero nats: the best any model can do is
//! sum H(x/255), the binary entropy of every pixel. We binarise the usual way:
//! a Bernoulli sample per pixel with probability x/255, drawn afresh for every
//! training batch (dynamic binarisation, so the model sees the grey image's
//! distribution rather than one arbitrary sample of it) and drawn once, with a
//! fixed seed, for the test split (so test NLL is the same number every time).
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How pixels are modelled: grey values in [0, 1] or Bernoulli samples of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pixels {
    /// Grey values x/255 as Bernoulli means (the reconstruction cannot reach 0 nats).
    #[default]
    Grey,
    /// Pixels sampled to 0 or 1 with probability x/255.
    Binarized,
}

impl Pixels {
    pub fn name(self) -> &'static str {
        match self {
            Pixels::Grey => "grey",
            Pixels::Binarized => "binarized",
        }
    }
}

/// One Bernoulli sample of every pixel (0 or 255 with P(255) = x/255),
/// deterministic in `seed`.
pub fn sample(pixels: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    pixels
        .iter()
        .map(|&x| match x {
            0 => 0,
            255 => 255,
            _ => {
                if rng.random_range(0..255u32) < u32::from(x) {
                    255
                } else {
                    0
                }
            }
        })
        .collect()
}

/// Binary entropy of x/255 in nats, for every byte value.
fn entropy_table() -> [f64; 256] {
    let mut t = [0.0; 256];
    for (x, h) in t.iter_mut().enumerate().take(255).skip(1) {
        let p = x as f64 / 255.0;
        *h = -(p * p.ln() + (1.0 - p) * (1.0 - p).ln());
    }
    t
}

/// The lowest reconstruction NLL any model can reach on these grey pixels under
/// a Bernoulli likelihood, in nats per video of `video_len` pixels: the sum of
/// the binary entropy of x/255 over a video's pixels, averaged over videos.
pub fn entropy_floor(pixels: &[u8], video_len: usize) -> f64 {
    let videos = pixels.len().checked_div(video_len).unwrap_or(0);
    if videos == 0 {
        return 0.0;
    }
    let table = entropy_table();
    let total: f64 = pixels.iter().map(|&x| table[x as usize]).sum();
    total / videos as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_binary_deterministic_and_match_the_grey_mean() {
        let grey: Vec<u8> = (0..200_000).map(|i| (i % 256) as u8).collect();
        let a = sample(&grey, 7);
        assert!(a.iter().all(|&v| v == 0 || v == 255));
        assert_eq!(a, sample(&grey, 7));
        assert_ne!(a, sample(&grey, 8));
        let mean = |v: &[u8]| v.iter().map(|&x| x as f64 / 255.0).sum::<f64>() / v.len() as f64;
        assert!((mean(&a) - mean(&grey)).abs() < 0.005);
        // Black and white pixels stay as they are.
        assert_eq!(sample(&[0, 255, 0], 1), vec![0, 255, 0]);
    }

    #[test]
    fn entropy_floor_matches_a_hand_computation() {
        // Two videos of two pixels: {0, 255} has no entropy; {51, 204} (p = 0.2, 0.8)
        // has 2 * H(0.2) = 2 * 0.500402 nats. Mean over the two videos: 0.500402.
        let floor = entropy_floor(&[0, 255, 51, 204], 2);
        assert!((floor - 0.500_402_4).abs() < 1e-6, "{floor}");
        assert_eq!(entropy_floor(&[], 2), 0.0);
        // A half-grey pixel carries ln 2 nats.
        assert!((entropy_floor(&[0, 0, 0, 0], 4)).abs() < 1e-12);
        let p = 128.0 / 255.0f64;
        let h = -(p * p.ln() + (1.0 - p) * (1.0 - p).ln());
        assert!((entropy_floor(&[128], 1) - h).abs() < 1e-12);
    }
}
