//! The canvas half of a training step as fused kernels of our own: for every
//! frame of a batch, the write added to the canvas (eq. 9-10), the video drawn
//! so far, sigmoid(c), and the reads of it and of the real frame (eq. 5-6), done
//! in one pass while the frame is in the core's cache, with a backward written
//! by hand.
//!
//! libtorch runs the same math as a dozen operations over the whole
//! [B, N, 64, 64] canvas per step, each a pass through memory
//! (docs/benchmarks.md, "The training step's two halves"). Here each of a
//! frame's products is one register-blocked kernel ([`frame`]) on 16 KB that
//! stay in the cache between them, and the products skip the filterbanks'
//! zero tails.
//!
//! The windows come in as their parameters per frame (centres, stride,
//! variance; the read's intensity gamma, the write's patch already divided by
//! its gamma), computed by libtorch from h_dec (eq. 1-2's scaling, so their
//! gradients flow back through the usual autograd). Here, per frame:
//!   filterbanks F_p, F_q from the parameters                      (eq. 1-4)
//!   write:  c <- c + F_p^T P F_q,        P = w / gamma_w          (eq. 9, 10)
//!   read:   s = sigmoid(c),  G_x = gamma F_p' x F_q'^T,  G_s = gamma F_p' s F_q'^T
//!                                                                 (eq. 5, 6)
//! where one step of the encoder reads with the window of h_dec^{t-1} the canvas
//! its previous write left, so a call does a step's write and the next step's
//! read together. The filterbanks are the ones `model::filterbank` builds with
//! `stable` rows (each row's exponents shifted by their largest), less the
//! weights under e^-16 of their row's largest ([`frame::Kernels::filterbank`]),
//! kept for the backward. Sizes are fixed: grey 64 x 64 frames, grids of 10
//! (every Bouncing MNIST model); [`FusedCanvas::supports`] says which models
//! qualify.
pub mod frame;
pub mod gemm;
mod in_turn;
pub mod layers;
pub mod recurrent;
pub mod step;
pub mod threads;

use frame::{dot, Bank, Frame, Kernels, Patch, A, K};
use std::mem::MaybeUninit;

/// How a training step runs its canvas half.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum CanvasStep {
    /// The fused kernels with their own backward ([`step`]), where the model
    /// qualifies ([`step::supported`]) and the step runs on a CPU with AVX2 and
    /// FMA with f32 products (`train::uses_fused_step`); libtorch's operations
    /// otherwise. The run records which it took (`Meta::canvas_step`).
    #[default]
    Fused,
    /// libtorch's operations and autograd throughout, as before the kernels
    /// (the same numbers to float rounding: training/tests/fused.rs).
    Plain,
}

/// Values of one frame, one filterbank, one K x K patch or glimpse.
const PIXELS: usize = A * A;
const BANK: usize = K * A;
const PATCH: usize = K * K;

/// A window's spatial parameters for every frame ([frames] each), as
/// `model::filterbank::Window` holds them after eq. 2's scaling: grid centres
/// (1-based pixel coordinates), stride delta and variance sigma^2.
#[derive(Clone, Copy)]
pub struct Grid<'a> {
    pub g_row: &'a [f32],
    pub g_col: &'a [f32],
    pub delta: &'a [f32],
    pub sigma2: &'a [f32],
}

/// One step's write window for every frame: its grid and the patch divided by
/// the window's intensity, w / gamma ([frames, K, K]).
#[derive(Clone, Copy)]
pub struct Write<'a> {
    pub grid: Grid<'a>,
    pub patch: &'a [f32],
}

/// One step's read window for every frame: its grid and intensity gamma ([frames]).
#[derive(Clone, Copy)]
pub struct Read<'a> {
    pub grid: Grid<'a>,
    pub gamma: &'a [f32],
}

/// Gradients of a grid's parameters, shaped as [`Grid`]'s.
pub struct GridGrads {
    pub g_row: Vec<f32>,
    pub g_col: Vec<f32>,
    pub delta: Vec<f32>,
    pub sigma2: Vec<f32>,
}

impl GridGrads {
    fn zeros(n: usize) -> Self {
        Self {
            g_row: vec![0.0; n],
            g_col: vec![0.0; n],
            delta: vec![0.0; n],
            sigma2: vec![0.0; n],
        }
    }
}

/// Gradients of a write window's inputs.
pub struct WriteGrads {
    pub grid: GridGrads,
    pub patch: Vec<f32>,
}

/// Gradients of a read window's inputs.
pub struct ReadGrads {
    pub grid: GridGrads,
    pub gamma: Vec<f32>,
}

/// mu_u = g + (u - K/2 - 0.5) delta, u = 1..K (eq. 1, 2), and each offset.
fn centres(g: f32, delta: f32) -> [f32; K] {
    std::array::from_fn(|u| g + offset(u) * delta)
}

fn offset(u: usize) -> f32 {
    (u + 1) as f32 - K as f32 / 2.0 - 0.5
}

/// A frame's two filterbanks, F_p and F_q (in the step's kept buffers), and
/// their grid centres.
struct Banks<'a> {
    rows: &'a Bank,
    cols: &'a Bank,
    mu_rows: [f32; K],
    mu_cols: [f32; K],
    sigma2: f32,
}

impl<'a> Banks<'a> {
    /// Builds frame `f`'s filterbanks into `out` (F_p then F_q), where the
    /// backward finds them.
    fn build(kernels: Kernels, g: &Grid, f: usize, out: &'a mut [f32]) -> Self {
        let (rows, cols) = out.split_at_mut(BANK);
        let (mu_rows, mu_cols) = (
            centres(g.g_row[f], g.delta[f]),
            centres(g.g_col[f], g.delta[f]),
        );
        let sigma2 = g.sigma2[f];
        kernels.filterbank(&mu_rows, sigma2, bank_mut(rows));
        kernels.filterbank(&mu_cols, sigma2, bank_mut(cols));
        Self {
            rows: bank_ref(rows),
            cols: bank_ref(cols),
            mu_rows,
            mu_cols,
            sigma2,
        }
    }

    /// The filterbanks [`Self::build`] left in `kept`.
    fn kept(g: &Grid, f: usize, kept: &'a [f32]) -> Self {
        let (rows, cols) = kept.split_at(BANK);
        Self {
            rows: bank_ref(rows),
            cols: bank_ref(cols),
            mu_rows: centres(g.g_row[f], g.delta[f]),
            mu_cols: centres(g.g_col[f], g.delta[f]),
            sigma2: g.sigma2[f],
        }
    }

    /// Back from the gradients of F_p and F_q to the grid's parameters of frame `i`.
    fn backward(
        &self,
        kernels: Kernels,
        d_rows: &Bank,
        d_cols: &Bank,
        out: &mut GridSlices,
        i: usize,
    ) {
        let (dmu_r, ds_r) = kernels.filterbank_grad(self.rows, d_rows, &self.mu_rows, self.sigma2);
        let (dmu_c, ds_c) = kernels.filterbank_grad(self.cols, d_cols, &self.mu_cols, self.sigma2);
        out.g_row[i] = dmu_r.iter().sum();
        out.g_col[i] = dmu_c.iter().sum();
        out.delta[i] = (0..K).map(|u| offset(u) * (dmu_r[u] + dmu_c[u])).sum();
        out.sigma2[i] = ds_r + ds_c;
    }
}

/// One chunk's part of a [`GridGrads`].
struct GridSlices<'a> {
    g_row: &'a mut [f32],
    g_col: &'a mut [f32],
    delta: &'a mut [f32],
    sigma2: &'a mut [f32],
}

fn grid_chunks(g: &mut GridGrads, per: usize) -> impl Iterator<Item = GridSlices<'_>> {
    g.g_row
        .chunks_mut(per)
        .zip(g.g_col.chunks_mut(per))
        .zip(g.delta.chunks_mut(per))
        .zip(g.sigma2.chunks_mut(per))
        .map(|(((g_row, g_col), delta), sigma2)| GridSlices {
            g_row,
            g_col,
            delta,
            sigma2,
        })
}

/// What a step keeps for its backward, per frame: sigmoid(c) as it was read,
/// the rows F_p' x and F_p' s, and the filterbanks (the write's F_p and F_q,
/// then the read's).
#[derive(Default)]
struct Saved {
    shown: Vec<f32>,
    rows: Vec<f32>,
    banks: Vec<f32>,
}

/// Values kept per frame in [`Saved::banks`].
const BANKS: usize = 4 * BANK;

/// The fused canvas step over a batch of frames (as many as its canvas holds),
/// with the buffers a run of T steps keeps for its backward (reused from batch
/// to batch).
pub struct FusedCanvas {
    kernels: Kernels,
    threads: usize,
    saved: Vec<Saved>,
    /// The canvas and its gradient, lent to a step ([`Self::take_canvases`])
    /// and kept between steps, so that no step allocates or zeroes them.
    canvases: Option<Canvases>,
    /// Other buffers of whole frames a step borrows ([`Self::take_buffers`]).
    spare: Vec<Vec<f32>>,
}

/// A batch's canvas c of logits and its gradient dL/dc ([frames, A, A] each).
pub struct Canvases {
    pub canvas: Vec<f32>,
    pub dcanvas: Vec<f32>,
}

impl FusedCanvas {
    /// Frames of A x A pixels, windows of K x K: the only sizes the kernels take.
    pub fn supports(height: i64, width: i64, read_k: i64, write_k: i64) -> bool {
        height == A as i64 && width == A as i64 && read_k == K as i64 && write_k == K as i64
    }

    /// Steps on up to `threads` threads, with the fastest kernels this CPU runs.
    pub fn new(threads: usize) -> Self {
        Self::with_kernels(threads, Kernels::detect())
    }

    /// The same, with the given kernels (tests compare the two forms).
    pub fn with_kernels(threads: usize, kernels: Kernels) -> Self {
        Self {
            kernels,
            threads: threads.max(1),
            saved: Vec::new(),
            canvases: None,
            spare: Vec::new(),
        }
    }

    /// A canvas of `frames` frames with every logit at `c0`, and a gradient
    /// buffer of the same size (its values left as they are: [`Self::bce`]
    /// writes every one), from the buffers of the previous step where they fit.
    /// Give them back with [`Self::return_canvases`].
    pub fn take_canvases(&mut self, frames: usize, c0: f32) -> Canvases {
        let len = frames * PIXELS;
        let mut c = self.canvases.take().unwrap_or(Canvases {
            canvas: Vec::new(),
            dcanvas: Vec::new(),
        });
        c.canvas.resize(len, 0.0);
        c.dcanvas.resize(len, 0.0);
        let per = self.frames_per_chunk(frames) * PIXELS;
        threads::for_each_chunk(self.threads, c.canvas.chunks_mut(per).collect(), |chunk| {
            chunk.fill(c0)
        });
        c
    }

    /// Keeps a step's canvases for the next.
    pub fn return_canvases(&mut self, canvases: Canvases) {
        self.canvases = Some(canvases);
    }

    /// `count` buffers of `frames` frames each, from those of the previous
    /// step where there are any: their values are left as they are (the
    /// borrower writes every one before it reads it). Give them back with
    /// [`Self::return_buffers`].
    pub fn take_buffers(&mut self, count: usize, frames: usize) -> Vec<Vec<f32>> {
        let len = frames * PIXELS;
        let mut out: Vec<Vec<f32>> = self.spare.drain(..count.min(self.spare.len())).collect();
        out.resize_with(count, Vec::new);
        for b in &mut out {
            b.resize(len, 0.0);
        }
        out
    }

    /// Keeps a step's borrowed buffers for the next.
    pub fn return_buffers(&mut self, buffers: Vec<Vec<f32>>) {
        self.spare.extend(buffers);
    }

    /// Sets every value of `values` (whole frames) to `v`, on the kernels'
    /// threads.
    pub fn fill(&self, values: &mut [f32], v: f32) {
        let per = self.frames_per_chunk(frames_in("values", values)) * PIXELS;
        threads::for_each_chunk(self.threads, values.chunks_mut(per).collect(), |chunk| {
            chunk.fill(v)
        });
    }

    /// The sum of `values` (whole frames), on the kernels' threads.
    pub fn sum(&self, values: &[f32]) -> f64 {
        let n = frames_in("values", values);
        let per = self.frames_per_chunk(n) * PIXELS;
        let chunks: Vec<&[f32]> = values.chunks(per).collect();
        let mut sums = vec![0f64; chunks.len()];
        let work: Vec<(&[f32], &mut f64)> = chunks.into_iter().zip(sums.iter_mut()).collect();
        threads::for_each_chunk(self.threads, work, |(values, sum)| {
            // Eight running sums in f32 per frame row, added up in f64.
            *sum = values
                .chunks(A)
                .map(|row| {
                    let mut lanes = [0f32; 8];
                    for eight in row.chunks_exact(8) {
                        for (l, v) in lanes.iter_mut().zip(eight) {
                            *l += v;
                        }
                    }
                    lanes.iter().map(|&l| l as f64).sum::<f64>()
                })
                .sum();
        });
        sums.iter().sum()
    }

    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Frames per chunk of work for `n` frames: four chunks per thread, so
    /// that a thread that finishes early takes over work of a slower one.
    fn frames_per_chunk(&self, n: usize) -> usize {
        n.div_ceil(4 * self.threads).max(1)
    }

    /// The binary cross-entropy of the videos `x` under sigmoid(canvas),
    /// summed over each frame ([frames]), and its gradient in the logits times
    /// `scale` into `dcanvas`, scale (sigmoid(c) - x).
    pub fn bce(&self, canvas: &[f32], x: &[f32], scale: f32, dcanvas: &mut [f32]) -> Vec<f32> {
        let n = frames_in("canvas", canvas);
        check("video", x, n, PIXELS);
        check("canvas gradient", dcanvas, n, PIXELS);
        let (per, kernels) = (self.frames_per_chunk(n), self.kernels);
        let mut sums = vec![0f32; n];
        let chunks: Vec<(usize, &mut [f32], &mut [f32])> = dcanvas
            .chunks_mut(per * PIXELS)
            .zip(sums.chunks_mut(per))
            .enumerate()
            .map(|(i, (d, s))| (i * per, d, s))
            .collect();
        threads::for_each_chunk(self.threads, chunks, |(first, out, sums)| {
            for (i, sum) in sums.iter_mut().enumerate() {
                let f = first + i;
                let d = frame_mut(&mut out[i * PIXELS..(i + 1) * PIXELS]);
                *sum = kernels.bce(frame(canvas, f), frame(x, f), scale, d);
            }
        });
        sums
    }

    /// Step `t`: adds `write` to `canvas` ([frames, A, A] logits), then, with
    /// `read`, reads the real frames `x` and the video drawn so far into
    /// `glimpse_x` and `glimpse_shown` ([frames, K, K] each), keeping what the
    /// backward of step `t` needs. The video drawn so far is sigmoid(canvas),
    /// or, for objects on layers with finished layers whose light leaves
    /// `dark` = D = exp(-done) per pixel ([`layers`]), 1 - D (1 - sigmoid(canvas)).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &mut self,
        t: usize,
        canvas: &mut [f32],
        x: &[f32],
        write: Option<Write>,
        read: Option<Read>,
        glimpse_x: &mut [f32],
        glimpse_shown: &mut [f32],
        dark: Option<&[f32]>,
    ) {
        let n = frames_in("canvas", canvas);
        check("video", x, n, PIXELS);
        check_inputs(n, write.as_ref(), read.as_ref());
        if let Some(d) = dark {
            check("layers' dark", d, n, PIXELS);
        }
        if read.is_some() {
            check("glimpse", glimpse_x, n, PATCH);
            check("glimpse", glimpse_shown, n, PATCH);
        }
        if self.saved.len() <= t {
            self.saved.resize_with(t + 1, Saved::default);
        }
        let (per, threads, kernels) = (self.frames_per_chunk(n), self.threads, self.kernels);
        let saved = &mut self.saved[t];
        if read.is_some() {
            saved.shown.resize(n * PIXELS, 0.0);
            saved.rows.resize(n * 2 * BANK, 0.0);
        }
        saved.banks.resize(n * BANKS, 0.0);
        let mut chunks = Vec::new();
        {
            let mut banks = saved.banks.chunks_mut(per * BANKS);
            let mut canvas = canvas.chunks_mut(per * PIXELS);
            let mut shown = saved.shown.chunks_mut(per * PIXELS);
            let mut rows = saved.rows.chunks_mut(per * 2 * BANK);
            let mut gx = glimpse_x.chunks_mut(per * PATCH);
            let mut gs = glimpse_shown.chunks_mut(per * PATCH);
            for first in (0..n).step_by(per) {
                let canvas = canvas.next().expect("a chunk of every buffer");
                chunks.push((
                    first,
                    canvas,
                    banks.next().expect("a chunk of every buffer"),
                    shown.next(),
                    rows.next(),
                    gx.next(),
                    gs.next(),
                ));
            }
        }
        threads::for_each_chunk(
            threads,
            chunks,
            |(first, canvas, banks, mut shown, mut rows, mut gx, mut gs)| {
                for i in 0..canvas.len() / PIXELS {
                    let f = first + i;
                    let c = frame_mut(&mut canvas[i * PIXELS..(i + 1) * PIXELS]);
                    if let Some(w) = &write {
                        // c + F_p^T (P F_q)  (eq. 9, 10)
                        let kept = &mut banks[i * BANKS..i * BANKS + 2 * BANK];
                        let b = Banks::build(kernels, &w.grid, f, kept);
                        let mut m = [[0f32; A]; K];
                        kernels.patch_bank(patch(w.patch, f), b.cols, &mut m);
                        kernels.frame_add_banks(c, b.rows, &m);
                    }
                    let (Some(r), Some(shown), Some(rows), Some(gx), Some(gs)) = (
                        &read,
                        shown.as_deref_mut(),
                        rows.as_deref_mut(),
                        gx.as_deref_mut(),
                        gs.as_deref_mut(),
                    ) else {
                        continue;
                    };
                    // s = sigmoid(c); G = gamma (F_p img) F_q^T  (eq. 5, 6)
                    let s = frame_mut(&mut shown[i * PIXELS..(i + 1) * PIXELS]);
                    kernels.sigmoid(c, s);
                    let mut over_layers = MaybeUninit::uninit();
                    let s = seen(dark, f, s, &mut over_layers);
                    let (rx, rs) = rows[i * 2 * BANK..(i + 1) * 2 * BANK].split_at_mut(BANK);
                    let (rx, rs) = (bank_mut(rx), bank_mut(rs));
                    let kept = &mut banks[i * BANKS + 2 * BANK..(i + 1) * BANKS];
                    let b = Banks::build(kernels, &r.grid, f, kept);
                    kernels.bank_frame(b.rows, frame(x, f), rx);
                    kernels.bank_frame(b.rows, s, rs);
                    kernels.bank_bank_t(rx, b.cols, r.gamma[f], patch_mut(gx, i));
                    kernels.bank_bank_t(rs, b.cols, r.gamma[f], patch_mut(gs, i));
                }
            },
        );
    }

    /// The backward of [`Self::forward`]'s step `t`, with the same `x`, `write`
    /// and `read`. `dcanvas` holds the gradient of the canvas after the step
    /// and leaves the gradient of the canvas before it; `dglimpse_x`,
    /// `dglimpse_shown` are the gradients of the step's glimpses. Returns the
    /// gradients of the write's and the read's inputs.
    /// With `dark` (the forward's, and the gradient of the finished layers'
    /// summed mass `done`, [frames, A, A] each), the read's gradient in `done`
    /// is added to the latter.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        t: usize,
        dcanvas: &mut [f32],
        x: &[f32],
        write: Option<Write>,
        read: Option<Read>,
        dglimpse_x: &[f32],
        dglimpse_shown: &[f32],
        dark: Option<(&[f32], &mut [f32])>,
    ) -> (Option<WriteGrads>, Option<ReadGrads>) {
        let n = frames_in("canvas gradient", dcanvas);
        check("video", x, n, PIXELS);
        check_inputs(n, write.as_ref(), read.as_ref());
        let (dark, mut d_done) = match dark {
            Some((d, dd)) => {
                check("layers' dark", d, n, PIXELS);
                check("layers' gradient", dd, n, PIXELS);
                (
                    Some(d),
                    Some(dd.chunks_mut(self.frames_per_chunk(n) * PIXELS)),
                )
            }
            None => (None, None),
        };
        if read.is_some() {
            check("glimpse gradient", dglimpse_x, n, PATCH);
            check("glimpse gradient", dglimpse_shown, n, PATCH);
        }
        let saved = self.saved.get(t).filter(|s| {
            s.banks.len() == n * BANKS && (read.is_none() || s.shown.len() == n * PIXELS)
        });
        let saved = saved.expect("the backward of a step that ran forward");
        let mut wg = write.map(|_| WriteGrads {
            grid: GridGrads::zeros(n),
            patch: vec![0.0; n * PATCH],
        });
        let mut rg = read.map(|_| ReadGrads {
            grid: GridGrads::zeros(n),
            gamma: vec![0.0; n],
        });
        let (per, kernels) = (self.frames_per_chunk(n), self.kernels);
        let mut chunks = Vec::new();
        {
            let mut dc = dcanvas.chunks_mut(per * PIXELS);
            let (mut w_grid, mut w_patch) = match wg.as_mut() {
                Some(g) => (
                    Some(grid_chunks(&mut g.grid, per)),
                    Some(g.patch.chunks_mut(per * PATCH)),
                ),
                None => (None, None),
            };
            let (mut r_grid, mut r_gamma) = match rg.as_mut() {
                Some(g) => (
                    Some(grid_chunks(&mut g.grid, per)),
                    Some(g.gamma.chunks_mut(per)),
                ),
                None => (None, None),
            };
            for first in (0..n).step_by(per) {
                let dc = dc.next().expect("a chunk of every buffer");
                let dd = d_done.as_mut().map(|d| d.next().expect("a chunk"));
                let w = w_grid
                    .as_mut()
                    .zip(w_patch.as_mut())
                    .map(|(g, p)| (g.next().expect("a chunk"), p.next().expect("a chunk")));
                let r = r_grid
                    .as_mut()
                    .zip(r_gamma.as_mut())
                    .map(|(g, p)| (g.next().expect("a chunk"), p.next().expect("a chunk")));
                chunks.push((first, dc, dd, w, r));
            }
        }
        threads::for_each_chunk(
            self.threads,
            chunks,
            |(first, dc, mut dd, mut wgc, mut rgc)| {
                for i in 0..dc.len() / PIXELS {
                    let f = first + i;
                    let d = frame_mut(&mut dc[i * PIXELS..(i + 1) * PIXELS]);
                    if let (Some(r), Some((g_grid, g_gamma))) = (&read, &mut rgc) {
                        // sigmoid(c) as the forward read it, and the video it read.
                        let sig = frame(&saved.shown, f);
                        let mut over_layers = MaybeUninit::uninit();
                        let s = seen(dark, f, sig, &mut over_layers);
                        let rows = &saved.rows[f * 2 * BANK..(f + 1) * 2 * BANK];
                        let (rx, rs) = rows.split_at(BANK);
                        let (rx, rs) = (bank_ref(rx), bank_ref(rs));
                        let b = Banks::kept(
                            &r.grid,
                            f,
                            &saved.banks[f * BANKS + 2 * BANK..(f + 1) * BANKS],
                        );
                        let gamma = r.gamma[f];
                        // G = gamma R F_q^T with R = F_p img:
                        //   dR = gamma dG F_q, dF_q = gamma dG^T R,
                        //   dgamma = <dG, R F_q^T> = <dG F_q, R>
                        let (dgx, dgs) = (patch(dglimpse_x, f), patch(dglimpse_shown, f));
                        let (mut drx, mut drs) = ([[0f32; A]; K], [[0f32; A]; K]);
                        kernels.patch_bank(dgx, b.cols, &mut drx);
                        kernels.patch_bank(dgs, b.cols, &mut drs);
                        g_gamma[i] = (0..K)
                            .map(|u| dot(&drx[u], &rx[u]) + dot(&drs[u], &rs[u]))
                            .sum();
                        for row in drx.iter_mut().chain(drs.iter_mut()) {
                            row.iter_mut().for_each(|v| *v *= gamma);
                        }
                        let (mut d_cols, mut part) = ([[0f32; A]; K], [[0f32; A]; K]);
                        kernels.patch_bank(&transposed(dgx, gamma), rx, &mut d_cols);
                        kernels.patch_bank(&transposed(dgs, gamma), rs, &mut part);
                        for (g, p) in d_cols.iter_mut().zip(&part) {
                            frame::axpy(g, 1.0, p);
                        }
                        //   R = F_p img: dF_p = dR img^T, dimg = F_p^T dR
                        let mut d_rows = [[0f32; A]; K];
                        kernels.bank_frame_t(&drx, frame(x, f), 1.0, b.rows, &mut d_rows);
                        kernels.bank_frame_t(&drs, s, 1.0, b.rows, &mut d_rows);
                        b.backward(kernels, &d_rows, &d_cols, g_grid, i);
                        //   s = sigmoid(c): dc += ds s (1 - s), ds = F_p^T dR_s
                        match (dark, dd.as_deref_mut()) {
                            (Some(dk), Some(dd)) => {
                                let mut ds = [[0f32; A]; A];
                                kernels.frame_add_banks(&mut ds, b.rows, &drs);
                                let dd = frame_mut(&mut dd[i * PIXELS..(i + 1) * PIXELS]);
                                layers::read_grad(&ds, frame(dk, f), sig, d, dd);
                            }
                            _ => kernels.add_read_grad(d, b.rows, &drs, s),
                        }
                    }
                    if let (Some(w), Some((g_grid, g_patch))) = (&write, &mut wgc) {
                        // c + F_p^T P F_q: with M = P F_q and T = F_p dc,
                        //   dF_p = M dc^T, dP = T F_q^T, dF_q = P^T T; dc passes on.
                        let b =
                            Banks::kept(&w.grid, f, &saved.banks[f * BANKS..f * BANKS + 2 * BANK]);
                        let p = patch(w.patch, f);
                        let mut m = [[0f32; A]; K];
                        kernels.patch_bank(p, b.cols, &mut m);
                        let mut d_rows = [[0f32; A]; K];
                        kernels.bank_frame_t(&m, d, 1.0, b.rows, &mut d_rows);
                        let mut t_rows = [[0f32; A]; K];
                        kernels.bank_frame(b.rows, d, &mut t_rows);
                        kernels.bank_bank_t(&t_rows, b.cols, 1.0, patch_mut(g_patch, i));
                        let mut d_cols = [[0f32; A]; K];
                        kernels.patch_bank(&transposed(p, 1.0), &t_rows, &mut d_cols);
                        b.backward(kernels, &d_rows, &d_cols, g_grid, i);
                    }
                }
            },
        );
        (wg, rg)
    }
}

/// The frames a buffer of whole A x A frames holds.
fn frames_in(what: &str, v: &[f32]) -> usize {
    assert!(
        v.len().is_multiple_of(PIXELS),
        "{what}: {} values, not whole frames of {PIXELS}",
        v.len()
    );
    v.len() / PIXELS
}

/// `v` holds `per_frame` values for each of `n` frames.
fn check(what: &str, v: &[f32], n: usize, per_frame: usize) {
    assert_eq!(
        v.len(),
        n * per_frame,
        "{what}: {} values for {n} frames of {per_frame}",
        v.len()
    );
}

fn check_inputs(n: usize, write: Option<&Write>, read: Option<&Read>) {
    let grid = |what, g: &Grid| {
        for v in [g.g_row, g.g_col, g.delta, g.sigma2] {
            check(what, v, n, 1);
        }
    };
    if let Some(w) = write {
        grid("write window", &w.grid);
        check("patch", w.patch, n, PATCH);
    }
    if let Some(r) = read {
        grid("read window", &r.grid);
        check("read gamma", r.gamma, n, 1);
    }
}

fn frame(v: &[f32], f: usize) -> &Frame {
    let rows = v[f * PIXELS..(f + 1) * PIXELS].as_chunks::<A>().0;
    &rows.as_chunks::<A>().0[0]
}

fn frame_mut(v: &mut [f32]) -> &mut Frame {
    let rows = v.as_chunks_mut::<A>().0;
    &mut rows.as_chunks_mut::<A>().0[0]
}

fn bank_ref(v: &[f32]) -> &Bank {
    &v.as_chunks::<A>().0.as_chunks::<K>().0[0]
}

fn bank_mut(v: &mut [f32]) -> &mut Bank {
    &mut v.as_chunks_mut::<A>().0.as_chunks_mut::<K>().0[0]
}

fn patch(v: &[f32], f: usize) -> &Patch {
    &v[f * PATCH..(f + 1) * PATCH].as_chunks::<PATCH>().0[0]
}

fn patch_mut(v: &mut [f32], i: usize) -> &mut Patch {
    &mut v[i * PATCH..(i + 1) * PATCH].as_chunks_mut::<PATCH>().0[0]
}

/// The video frame `f`'s read sees, from s = sigmoid(c): s itself, or over
/// finished layers that let through `dark` of the light, 1 - D (1 - s)
/// (layers.rs), made in `buf` (a frame's buffer only where there are layers).
fn seen<'a>(
    dark: Option<&[f32]>,
    f: usize,
    s: &'a Frame,
    buf: &'a mut MaybeUninit<Frame>,
) -> &'a Frame {
    match dark {
        Some(d) => buf.write(layers::composed(frame(d, f), s)),
        None => s,
    }
}

/// scale p^T of a K x K patch.
fn transposed(p: &Patch, scale: f32) -> Patch {
    let mut t = [0f32; PATCH];
    for u in 0..K {
        for v in 0..K {
            t[v * K + u] = scale * p[u * K + v];
        }
    }
    t
}
