//! Turning a split's videos and captions into tensors.
use crate::source::Videos;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use syncdraw_data::Digits;
use syncdraw_format::{CaptionCodec, CaptionError};
use tch::{Device, Kind, Tensor};

/// A split with its captions already tokenized.
pub struct Batcher<'a> {
    pub data: &'a Videos,
    /// Token ids, `caption_length` per video; empty for unconditional models.
    ids: Vec<i64>,
    caption_length: usize,
    device: Device,
}

impl<'a> Batcher<'a> {
    pub fn new(
        data: &'a Videos,
        captions: Option<&CaptionCodec>,
        device: Device,
    ) -> Result<Self, CaptionError> {
        let mut ids = Vec::new();
        let caption_length = captions.map_or(0, |c| c.length());
        if let Some(codec) = captions {
            ids.reserve(data.len() * caption_length);
            for i in 0..data.len() {
                ids.extend(codec.encode(data.caption(i))?);
            }
        }
        Ok(Self {
            data,
            ids,
            caption_length,
            device,
        })
    }

    /// Videos in [0, 1] and caption ids [B, L] for the given indices: grey videos
    /// as [B, N, A, B], colour ones as [B, N, C, A, B] (the model's layout,
    /// model/filterbank.rs).
    pub fn batch(&self, indices: &[usize]) -> (Tensor, Option<Tensor>) {
        let mut pixels = Vec::with_capacity(indices.len() * self.data.video_len());
        for &i in indices {
            pixels.extend_from_slice(self.data.video(i));
        }
        (self.videos(&pixels, indices.len()), self.ids(indices))
    }

    /// As [`Batcher::batch`], with every video's digits binarised afresh from
    /// `digits` (one sample per digit image, in every frame; data/binarize.rs),
    /// deterministic in `seed`. None for a folder set, which has no digits.
    pub fn binarized_batch(
        &self,
        indices: &[usize],
        digits: &Digits,
        seed: u64,
    ) -> Option<(Tensor, Option<Tensor>)> {
        let data = self.data.generated()?;
        let pixels = data.binarized_videos(digits, indices.iter().copied(), seed);
        Some((self.videos(&pixels, indices.len()), self.ids(indices)))
    }

    /// Every object of the videos of [`Batcher::binarized_batch`] (same
    /// `seed`) alone, in caption order: [B, objects, N, A, B] in {0, 1}. None
    /// for a folder set.
    pub fn binarized_objects(
        &self,
        indices: &[usize],
        digits: &Digits,
        seed: u64,
    ) -> Option<Tensor> {
        let data = self.data.generated()?;
        let pixels = data.binarized_object_videos(digits, indices.iter().copied(), seed);
        Some(self.objects(&pixels, indices.len()))
    }

    /// Every object alone of the videos `indices` of a binarised split's fixed
    /// sample (the batcher's videos are that sample: `Videos::binarized`), as
    /// [`Batcher::binarized_objects`] gives them. None for a folder set.
    pub fn fixed_objects(&self, indices: &[usize], digits: &Digits) -> Option<Tensor> {
        let data = self.data.generated()?;
        let pixels = data.fixed_object_videos(digits, indices);
        Some(self.objects(&pixels, indices.len()))
    }

    fn objects(&self, pixels: &[u8], count: usize) -> Tensor {
        let objects = (pixels.len() / (count * self.data.video_len()).max(1)) as i64;
        let v = self.data.shape();
        let shape = [
            count as i64,
            objects,
            v.frames as i64,
            v.height as i64,
            v.width as i64,
        ];
        Tensor::from_slice(pixels)
            .reshape(shape)
            .to_device(self.device)
            .to_kind(Kind::Float)
            / 255.0
    }

    fn videos(&self, pixels: &[u8], count: usize) -> Tensor {
        let v = self.data.shape();
        let (n, c, h, w) = (
            v.frames as i64,
            v.channels as i64,
            v.height as i64,
            v.width as i64,
        );
        let shape: Vec<i64> = if c > 1 {
            vec![count as i64, n, c, h, w]
        } else {
            vec![count as i64, n, h, w]
        };
        Tensor::from_slice(pixels)
            .reshape(shape)
            .to_device(self.device)
            .to_kind(Kind::Float)
            / 255.0
    }

    fn ids(&self, indices: &[usize]) -> Option<Tensor> {
        (!self.ids.is_empty()).then(|| {
            let l = self.caption_length;
            let mut sel = Vec::with_capacity(indices.len() * l);
            for &i in indices {
                sel.extend_from_slice(&self.ids[i * l..(i + 1) * l]);
            }
            Tensor::from_slice(&sel)
                .reshape([indices.len() as i64, l as i64])
                .to_device(self.device)
        })
    }
}

/// Indices of the batch used at `step` (1-based): epochs are seeded permutations.
pub fn batch_indices(n: usize, batch: usize, seed: u64, step: u64) -> Vec<usize> {
    let per_epoch = (n / batch).max(1) as u64;
    let epoch = (step - 1) / per_epoch;
    let j = ((step - 1) % per_epoch) as usize;
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(
        seed.wrapping_mul(1_000_003).wrapping_add(epoch),
    ));
    order
        .into_iter()
        .cycle()
        .skip(j * batch)
        .take(batch)
        .collect()
}
