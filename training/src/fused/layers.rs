//! Objects drawn on canvas layers of their own (`DrawOrder::Layers`) in the
//! fused step: the math of model/canvas.rs per pixel, with its derivatives.
//!
//! Each finished layer o leaves its mass softplus(c_o) in
//! done = sum_o softplus(c_o), and lets through D = exp(-done) =
//! prod_o (1 - sigmoid(c_o)) of the light. Over the layer being drawn, c, the
//! video shown is p = 1 - D (1 - sigmoid(c)) = 1 - exp(-(done + softplus(c))):
//!   dp/dc = D sigmoid(c) (1 - sigmoid(c)),   dp/d done = D (1 - sigmoid(c)).
//! A layer's end adds softplus(c) to done (d softplus(c)/dc = sigmoid(c)), and
//! the next layer starts from c^0. The loss is the BCE of x under p, with
//! s = done + softplus(c): -x log(1 - e^-s) + (1 - x) s, whose derivative in s
//! is (1 - x) - x / (e^s - 1).
//!
//! With layer targets (`train --layer-targets`, model/canvas.rs) each layer's
//! last canvas c_o is also scored alone against its object's video x_o,
//! w BCE(x_o, sigmoid(c_o)) = w (softplus(c_o) - x_o c_o), whose derivative
//! in c_o is w (sigmoid(c_o) - x_o).
use super::frame::{Frame, A};
use super::threads;
use super::PIXELS;

fn sigmoid(c: f32) -> f32 {
    1.0 / (1.0 + (-c).exp())
}

fn softplus(c: f64) -> f64 {
    c.max(0.0) + (-c.abs()).exp().ln_1p()
}

/// The video shown over finished layers that let through `dark` of the light:
/// 1 - D (1 - s) for s = sigmoid(c) of the layer being drawn.
pub fn composed(dark: &Frame, s: &Frame) -> Frame {
    std::array::from_fn(|a| std::array::from_fn(|b| 1.0 - dark[a][b] * (1.0 - s[a][b])))
}

/// Back through [`composed`] from the gradient `ds` of the video shown: adds
/// to the gradients of the canvas (`dc`) and of done (`d_done`).
pub fn read_grad(ds: &Frame, dark: &Frame, s: &Frame, dc: &mut Frame, d_done: &mut Frame) {
    for a in 0..A {
        for b in 0..A {
            let (g, d, s) = (ds[a][b], dark[a][b], s[a][b]);
            let through = g * d * (1.0 - s);
            dc[a][b] += through * s;
            d_done[a][b] += through;
        }
    }
}

/// Chunks of whole frames of each buffer, `per` frames each, zipped.
fn chunked<const N: usize>(per: usize, mut bufs: [&mut [f32]; N]) -> Vec<[&mut [f32]; N]> {
    let n = bufs[0].len() / PIXELS;
    let mut out = Vec::new();
    for first in (0..n).step_by(per.max(1)) {
        let take = per.min(n - first) * PIXELS;
        out.push(bufs.each_mut().map(|b| {
            let (head, tail) = std::mem::take(b).split_at_mut(take);
            *b = tail;
            head
        }));
    }
    out
}

/// [`chunked`]'s chunks with the offset of each one's first value.
fn with_offsets<const N: usize>(chunks: Vec<[&mut [f32]; N]>) -> Vec<(usize, [&mut [f32]; N])> {
    let mut at = 0;
    chunks
        .into_iter()
        .map(|c| {
            let first = at;
            at += c[0].len();
            (first, c)
        })
        .collect()
}

/// The end of a layer: adds softplus(c) of the finished canvas to `done`, sets
/// `dark` to the new exp(-done), keeps sigmoid(c) in `ends` (for the
/// backward) and starts the next layer's canvas at `c0`.
fn finish_layer(threads: usize, per: usize, c0: f32, [canvas, done, dark, ends]: [&mut [f32]; 4]) {
    let chunks = chunked(per, [canvas, done, dark, ends]);
    threads::for_each_chunk(threads, chunks, |[c, done, dark, ends]| {
        for i in 0..c.len() {
            let sum = done[i] as f64 + softplus(c[i] as f64);
            done[i] = sum as f32;
            dark[i] = (-sum).exp() as f32;
            ends[i] = sigmoid(c[i]);
            c[i] = c0;
        }
    });
}

/// Back through [`finish_layer`]: the finished canvas's gradient is that of
/// done times its sigmoid (`dcanvas` held the next layer's first canvas's
/// gradient: the caller takes it for c^0 first), plus its target's
/// w (sigmoid(c) - x_o) where it has one (`target`: x_o and w times the
/// objective's scale); done's gradient passes on.
fn finish_layer_grad(
    threads: usize,
    per: usize,
    [dcanvas, d_done, ends]: [&mut [f32]; 3],
    target: Option<(&[f32], f32)>,
) {
    let work = with_offsets(chunked(per, [dcanvas, d_done, ends]));
    threads::for_each_chunk(threads, work, |(first, [dc, dd, ends])| {
        for i in 0..dc.len() {
            dc[i] = dd[i] * ends[i];
            if let Some((x, w)) = target {
                dc[i] += w * (ends[i] - x[first + i]);
            }
        }
    });
}

/// BCE(x_o, sigmoid(c)) of a layer's last canvas `c` against its target
/// `x_o`, summed over each frame.
pub(super) fn target_bce(threads: usize, per: usize, canvas: &[f32], x: &[f32]) -> Vec<f32> {
    let n = canvas.len() / PIXELS;
    let mut sums = vec![0f32; n];
    let work: Vec<_> = sums
        .chunks_mut(per.max(1))
        .enumerate()
        .map(|(i, s)| (i * per, s))
        .collect();
    threads::for_each_chunk(threads, work, |(first, sums)| {
        for (f, sum) in sums.iter_mut().enumerate() {
            let at = (first + f) * PIXELS;
            let mut total = 0f64;
            for j in at..at + PIXELS {
                let (c, x) = (canvas[j] as f64, x[j] as f64);
                total += softplus(c) - x * c;
            }
            *sum = total as f32;
        }
    });
    sums
}

/// Adds w (sigmoid(c) - x_o) to the last layer's canvas gradient.
pub(super) fn add_target_grad(
    threads: usize,
    per: usize,
    canvas: &[f32],
    x: &[f32],
    w: f32,
    dcanvas: &mut [f32],
) {
    let work = with_offsets(chunked(per, [dcanvas]));
    threads::for_each_chunk(threads, work, |(first, [dc])| {
        for i in 0..dc.len() {
            dc[i] += w * (sigmoid(canvas[first + i]) - x[first + i]);
        }
    });
}

/// Sets every value of `out` (whole frames, `per` to a chunk of work) to
/// f(its index, its value).
fn each_value(threads: usize, per: usize, out: &mut [f32], f: impl Fn(usize, f32) -> f32 + Sync) {
    let work = with_offsets(chunked(per, [out]));
    threads::for_each_chunk(threads, work, |(first, [chunk])| {
        for (i, v) in chunk.iter_mut().enumerate() {
            *v = f(first + i, *v);
        }
    });
}

/// Layers taken in turn (`DrawOrder::LayersInterleaved`, two objects): the
/// light the other layer `other` lets through as it stands,
/// D = exp(-softplus(c)) = sigmoid(-c), into `dark`.
pub fn dark_of(threads: usize, per: usize, other: &[f32], dark: &mut [f32]) {
    each_value(threads, per, dark, |j, _| sigmoid(-other[j]));
}

/// Back through [`dark_of`]: done = softplus(c) of the other layer, so its
/// canvas gets done's gradient times sigmoid(c) = 1 - D (added to `d_other`).
pub fn dark_grad_to(threads: usize, per: usize, d_done: &[f32], dark: &[f32], d_other: &mut [f32]) {
    each_value(threads, per, d_other, |j, d| {
        d + d_done[j] * (1.0 - dark[j])
    });
}

/// The binary cross-entropy of `x` under the two layers `canvas` and `other`
/// composed, 1 - exp(-(softplus(c) + softplus(c_other))), summed over each
/// frame, with its gradient times `scale` in both canvases (written);
/// `done` is room for softplus(c_other) (its values are overwritten).
pub fn two_layers_bce(
    threads: usize,
    per: usize,
    scale: f32,
    [canvas, other, x]: [&[f32]; 3],
    [dcanvas, d_other, done]: [&mut [f32]; 3],
) -> Vec<f32> {
    each_value(threads, per, done, |j, _| softplus(other[j] as f64) as f32);
    let sums = bce(threads, per, scale, [canvas, x, done], [dcanvas, d_other]);
    // d_other held done's gradient: d softplus(c)/dc = sigmoid(c).
    each_value(threads, per, d_other, |j, d| d * sigmoid(other[j]));
    sums
}

/// The binary cross-entropy of `x` under 1 - exp(-(done + softplus(c))),
/// summed over each frame, with its gradient times `scale` in the canvas
/// (`dcanvas`, written) and in done (`d_done`, written). s = done + softplus(c)
/// is kept above 1e-12 as model/canvas.rs keeps it (no gradient there).
fn bce(
    threads: usize,
    per: usize,
    scale: f32,
    [canvas, x, done]: [&[f32]; 3],
    [dcanvas, d_done]: [&mut [f32]; 2],
) -> Vec<f32> {
    let n = canvas.len() / PIXELS;
    let mut sums = vec![0f32; n];
    let mut work = Vec::new();
    for ((first, [dc, dd]), sums) in chunked(per, [dcanvas, d_done])
        .into_iter()
        .enumerate()
        .map(|(i, c)| (i * per, c))
        .zip(sums.chunks_mut(per.max(1)))
    {
        work.push((first, dc, dd, sums));
    }
    threads::for_each_chunk(threads, work, |(first, dc, dd, sums)| {
        for (f, sum) in sums.iter_mut().enumerate() {
            let at = (first + f) * PIXELS;
            let mut total = 0f64;
            for j in 0..PIXELS {
                let (c, x) = (canvas[at + j] as f64, x[at + j] as f64);
                let s = done[at + j] as f64 + softplus(c);
                let (s, live) = if s > 1e-12 { (s, 1.0) } else { (1e-12, 0.0) };
                total += -x * (-(-s).exp_m1()).ln() + (1.0 - x) * s;
                let d_s = live * ((1.0 - x) - x / s.exp_m1()) * scale as f64;
                let i = f * PIXELS + j;
                dd[i] = d_s as f32;
                dc[i] = (d_s * sigmoid(c as f32) as f64) as f32;
            }
            *sum = total as f32;
        }
    });
    sums
}

/// What a step keeps of its layers: done and its gradient ([frames, A, A]),
/// and for every layer after the first the light the earlier ones let through
/// (its reads' D) and sigmoid of the canvas that ended before it. Empty for
/// a model drawn on one canvas.
pub struct Layers {
    threads: usize,
    /// Frames per chunk of work.
    per: usize,
    done: Vec<f32>,
    d_done: Vec<f32>,
    darks: Vec<Vec<f32>>,
    ends: Vec<Vec<f32>>,
    targets: Option<Targets>,
}

/// Layer targets: every layer's target video ([frames, A, A] each, in drawing
/// order), their weight, and their BCE per frame summed over the layers so far.
struct Targets {
    videos: Vec<Vec<f32>>,
    weight: f32,
    sums: Vec<f32>,
}

impl Layers {
    /// For `frames` frames (none where not `layered`), worked on `threads`
    /// threads in chunks of `per` frames.
    pub fn new(layered: bool, frames: usize, threads: usize, per: usize) -> Self {
        let len = if layered { frames * PIXELS } else { 0 };
        Self {
            threads,
            per,
            done: vec![0.0; len],
            d_done: vec![0.0; len],
            darks: Vec::new(),
            ends: Vec::new(),
            targets: None,
        }
    }

    /// Scores every layer's last canvas against its object's video as well:
    /// `targets` [frames, A, A] per layer, in drawing order, weighted by `weight`.
    pub fn with_targets(mut self, targets: Vec<Vec<f32>>, weight: f32) -> Self {
        self.targets = Some(Targets {
            videos: targets,
            weight,
            sums: vec![0.0; self.done.len() / PIXELS],
        });
        self
    }

    /// The targets' BCE per frame over every layer (after [`Layers::bce`]); none
    /// without targets.
    pub fn target_sums(&self) -> Option<&[f32]> {
        self.targets.as_ref().map(|t| t.sums.as_slice())
    }

    /// Adds the BCE of layer `o`'s last canvas against its target.
    fn score(&mut self, o: usize, canvas: &[f32]) {
        if let Some(t) = &mut self.targets {
            let sums = target_bce(self.threads, self.per, canvas, &t.videos[o]);
            for (s, v) in t.sums.iter_mut().zip(sums) {
                *s += v;
            }
        }
    }

    /// Layers finished so far.
    pub fn finished(&self) -> usize {
        self.darks.len()
    }

    /// D for the reads of layer `o` (0-based; none for the first).
    pub fn dark(&self, o: usize) -> Option<&[f32]> {
        o.checked_sub(1)
            .and_then(|k| self.darks.get(k))
            .map(Vec::as_slice)
    }

    /// D of layer `o` with done's gradient, for a read's backward.
    pub fn dark_grad(&mut self, o: usize) -> Option<(&[f32], &mut [f32])> {
        let dark = o.checked_sub(1).and_then(|k| self.darks.get(k))?;
        Some((dark.as_slice(), self.d_done.as_mut_slice()))
    }

    /// Ends the layer being drawn on `canvas` ([`finish_layer`]) and starts
    /// the next at `c0`.
    pub fn finish(&mut self, c0: f32, canvas: &mut [f32]) {
        self.score(self.finished(), canvas);
        let len = self.done.len();
        let (mut dark, mut end) = (vec![0.0; len], vec![0.0; len]);
        finish_layer(
            self.threads,
            self.per,
            c0,
            [canvas, &mut self.done, &mut dark, &mut end],
        );
        self.darks.push(dark);
        self.ends.push(end);
    }

    /// Back through the end of layer `o - 1` ([`finish_layer_grad`]), the
    /// objective scaled by `scale` (as in [`Layers::bce`]).
    pub fn finish_grad(&mut self, o: usize, scale: f32, dcanvas: &mut [f32]) {
        let end = &mut self.ends[o - 1];
        let target = self
            .targets
            .as_ref()
            .map(|t| (t.videos[o - 1].as_slice(), t.weight * scale));
        finish_layer_grad(
            self.threads,
            self.per,
            [dcanvas, &mut self.d_done, end],
            target,
        );
    }

    /// The BCE of `x` over every layer ([`bce`]), its gradient in the last
    /// canvas into `dcanvas` and in done kept; with targets, the last layer's
    /// target is scored and its gradient added too.
    pub fn bce(&mut self, scale: f32, canvas: &[f32], x: &[f32], dcanvas: &mut [f32]) -> Vec<f32> {
        let (threads, per) = (self.threads, self.per);
        let sums = bce(
            threads,
            per,
            scale,
            [canvas, x, &self.done],
            [dcanvas, &mut self.d_done],
        );
        // The last layer's target.
        let last = self.finished();
        self.score(last, canvas);
        if let Some(t) = &self.targets {
            let w = t.weight * scale;
            add_target_grad(threads, per, canvas, &t.videos[last], w, dcanvas);
        }
        sums
    }
}
