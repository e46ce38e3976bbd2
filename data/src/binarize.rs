//! Binarised pixels, and the entropy floor of grey ones.
//!
//! DRAW (Gregor et al. 2015) and Sync-DRAW report NLL on binary pixels: each
//! pixel is a Bernoulli variable. Grey pixels x/255 under the same Bernoulli
//! likelihood cannot reach zero nats: the best any model can do is
//! sum H(x/255), the binary entropy of every pixel.
//!
//! We binarise the *digit*, not the frame: every source digit image of a video
//! is replaced by one Bernoulli sample of it (P(on) = x/255), drawn once per
//! video and drawn into every frame, so a digit keeps its strokes as it moves,
//! as a binarised digit would. (Sampling every pixel of every frame afresh would
//! add independent noise to each frame that no model can predict: its floor is
//! the grey floor, about 462 nats per one-digit video, above the paper's 327.)
//! Training batches are a fresh sample every step (dynamic binarisation, so the
//! model sees the grey image's distribution rather than one arbitrary sample of
//! it); the test split is sampled once, with a fixed seed, so test NLL is the
//! same number every time.
use super::bouncing::{render_images, Track, VideoSpec};
#[cfg(test)]
use super::mnist::DIGIT_SIZE;
use super::mnist::{Digits, PIXELS};
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
    pixels.iter().map(|&x| bit(&mut rng, x)).collect()
}

fn bit(rng: &mut impl Rng, x: u8) -> u8 {
    match x {
        0 => 0,
        255 => 255,
        _ if rng.random_range(0..255u32) < u32::from(x) => 255,
        _ => 0,
    }
}

/// One Bernoulli sample of every digit image of a video's tracks, each drawn
/// once and rendered into every frame (data/bouncing.rs): the video's pixels are
/// 0 or 255. Deterministic in `seed`; track k's image uses its own stream.
pub fn video(spec: &VideoSpec, digits: &Digits, tracks: &[Track], seed: u64) -> Vec<u8> {
    let images = digit_samples(digits, tracks, seed);
    render_images(spec, tracks, |k, _| &images[k])
}

/// Each track of [`video`] alone, in the video's order (track k is the k-th
/// object of its caption): the same binarised digit images, one video of N
/// frames per track, concatenated. Their union (pixel-wise maximum) is
/// [`video`]'s pixels.
pub fn object_videos(spec: &VideoSpec, digits: &Digits, tracks: &[Track], seed: u64) -> Vec<u8> {
    let images = digit_samples(digits, tracks, seed);
    (0..tracks.len())
        .flat_map(|k| render_images(spec, &tracks[k..=k], |_, _| &images[k]))
        .collect()
}

/// The binarised digit images [`video`] draws for these tracks with `seed`, one
/// per track (0 or 255), before they are placed in the frames.
pub fn digit_samples(digits: &Digits, tracks: &[Track], seed: u64) -> Vec<[u8; PIXELS]> {
    tracks
        .iter()
        .enumerate()
        .map(|(k, t)| {
            let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, k as u64));
            digits.images[t.image].map(|x| bit(&mut rng, x))
        })
        .collect()
}

/// A seed for stream `b` of seed `a` (SplitMix64's finaliser).
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b
        .wrapping_add(0x9e37_79b9_7f4a_7c15)
        .wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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

/// The entropy of [`video`]'s sampling, in nats, averaged over videos: the sum of
/// the binary entropy of x/255 over the pixels of every digit image of a video
/// (once per digit, not once per frame). Given the grey video, the binarised one
/// carries this much noise, so no model's NLL on binarised videos goes below it.
pub fn sample_entropy<'a>(digits: &Digits, videos: impl IntoIterator<Item = &'a [Track]>) -> f64 {
    let table = entropy_table();
    let (mut total, mut n) = (0.0, 0usize);
    for tracks in videos {
        n += 1;
        total += tracks
            .iter()
            .flat_map(|t| digits.images[t.image].iter())
            .map(|&x| table[x as usize])
            .sum::<f64>();
    }
    if n == 0 {
        0.0
    } else {
        total / n as f64
    }
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

    fn one_digit() -> (VideoSpec, Digits, Vec<Track>) {
        let img: [u8; PIXELS] = std::array::from_fn(|i| (i * 7 % 256) as u8);
        let digits = Digits {
            images: vec![[0; PIXELS], img],
            labels: vec![0, 1],
        };
        let spec = VideoSpec {
            frames: 4,
            size: 40,
            speed: 0.2,
        };
        let track = Track {
            digit: 1,
            motion: crate::Motion::LeftRight,
            image: 1,
            positions: vec![(3, 0), (3, 5), (3, 12), (3, 9)],
        };
        (spec, digits, vec![track])
    }

    #[test]
    fn a_binarised_digit_keeps_its_strokes_in_every_frame() {
        let (spec, digits, tracks) = one_digit();
        let v = video(&spec, &digits, &tracks, 11);
        assert!(v.iter().all(|&x| x == 0 || x == 255));
        assert_eq!(v, video(&spec, &digits, &tracks, 11));
        assert_ne!(v, video(&spec, &digits, &tracks, 12));
        let s = spec.size;
        let patch = |f: usize| -> Vec<u8> {
            let (r0, c0) = tracks[0].positions[f];
            let frame = &v[f * s * s..(f + 1) * s * s];
            (0..DIGIT_SIZE * DIGIT_SIZE)
                .map(|i| frame[(r0 as usize + i / DIGIT_SIZE) * s + c0 as usize + i % DIGIT_SIZE])
                .collect()
        };
        // The same sample in every frame, moved with the digit.
        for f in 1..spec.frames {
            assert_eq!(patch(f), patch(0), "frame {f}");
        }
        // Nothing outside the digit; the rate of ones follows the grey image.
        assert_eq!(
            v.iter().filter(|&&x| x == 255).count(),
            4 * patch(0).iter().filter(|&&x| x == 255).count()
        );
        let mut on = 0.0;
        for seed in 0..200 {
            on += video(&spec, &digits, &tracks, seed)[..s * s]
                .iter()
                .filter(|&&x| x == 255)
                .count() as f64;
        }
        let grey: f64 = digits.images[1].iter().map(|&x| x as f64 / 255.0).sum();
        assert!(
            (on / 200.0 - grey).abs() < 0.01 * grey,
            "{} against {grey}",
            on / 200.0
        );
    }

    #[test]
    fn the_binarisation_entropy_counts_every_digit_once() {
        let (_, mut digits, tracks) = one_digit();
        digits.images[1] = [0; PIXELS];
        digits.images[1][0] = 51; // p = 0.2
        digits.images[1][1] = 128;
        let p = 128.0 / 255.0f64;
        let h = 0.500_402_4 - (p * p.ln() + (1.0 - p) * (1.0 - p).ln());
        let e = sample_entropy(&digits, [tracks.as_slice(), tracks.as_slice()]);
        assert!((e - h).abs() < 1e-6, "{e} against {h}");
        // Two digits in a video: both count.
        let two = [tracks[0].clone(), tracks[0].clone()];
        assert!((sample_entropy(&digits, [two.as_slice()]) - 2.0 * h).abs() < 1e-6);
    }
}
