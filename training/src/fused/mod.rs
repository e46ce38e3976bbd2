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
//! stay in the cache between them.
//!
//! The filterbanks come in as matrices (computed by libtorch from the window
//! parameters, eq. 1-4, so their gradients flow back through the usual
//! autograd); this module sees only the products:
//!   write:  c <- c + F_p^T P F_q,        P = w / gamma_w          (eq. 9, 10)
//!   read:   s = sigmoid(c),  G_x = gamma F_p' x F_q'^T,  G_s = gamma F_p' s F_q'^T
//!                                                                 (eq. 5, 6)
//! where one step of the encoder reads with the window of h_dec^{t-1} the canvas
//! its previous write left, so a call does a step's write and the next step's
//! read together. Sizes are fixed: grey 64 x 64 frames, grids of 10 (every
//! Bouncing MNIST model); [`FusedCanvas::supports`] says which models qualify.
pub mod frame;
pub mod step;
pub mod threads;

use frame::{dot, Bank, Frame, Kernels, Patch, A, K};

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
    /// qualifies ([`step::supported`]) and the step runs on the CPU with f32
    /// products; libtorch's operations otherwise.
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

/// One step's write window for every frame: filterbanks F_p and F_q
/// ([frames, K, A] each, row-major) and the patch divided by its intensity,
/// w / gamma ([frames, K, K]).
#[derive(Clone, Copy)]
pub struct Write<'a> {
    pub f_row: &'a [f32],
    pub f_col: &'a [f32],
    pub patch: &'a [f32],
}

/// One step's read window for every frame: filterbanks ([frames, K, A] each)
/// and intensity gamma ([frames]).
#[derive(Clone, Copy)]
pub struct Read<'a> {
    pub f_row: &'a [f32],
    pub f_col: &'a [f32],
    pub gamma: &'a [f32],
}

/// Gradients of a write window's inputs, shaped as [`Write`]'s.
pub struct WriteGrads {
    pub f_row: Vec<f32>,
    pub f_col: Vec<f32>,
    pub patch: Vec<f32>,
}

/// Gradients of a read window's inputs, shaped as [`Read`]'s.
pub struct ReadGrads {
    pub f_row: Vec<f32>,
    pub f_col: Vec<f32>,
    pub gamma: Vec<f32>,
}

/// What a read keeps for its backward, per frame: sigmoid(c) as it was read,
/// and the rows F_p' x and F_p' s.
#[derive(Default)]
struct Saved {
    shown: Vec<f32>,
    rows: Vec<f32>,
}

/// The fused canvas step over a batch of `frames` frames, with the buffers a
/// run of T steps keeps for its backward (reused from batch to batch).
pub struct FusedCanvas {
    kernels: Kernels,
    threads: usize,
    frames: usize,
    saved: Vec<Saved>,
}

impl FusedCanvas {
    /// Frames of A x A pixels, windows of K x K: the only sizes the kernels take.
    pub fn supports(height: i64, width: i64, read_k: i64, write_k: i64) -> bool {
        height == A as i64 && width == A as i64 && read_k == K as i64 && write_k == K as i64
    }

    /// Steps over `frames` frames (videos x frames per video), split among
    /// `threads` threads.
    pub fn new(frames: usize, threads: usize) -> Self {
        Self {
            kernels: Kernels::detect(),
            threads: threads.clamp(1, frames.max(1)),
            frames,
            saved: Vec::new(),
        }
    }

    /// The same, with the given kernels (tests compare the two forms).
    pub fn with_kernels(frames: usize, threads: usize, kernels: Kernels) -> Self {
        Self {
            kernels,
            ..Self::new(frames, threads)
        }
    }

    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Frames per chunk of work: four chunks per thread, so that a thread that
    /// finishes early takes over work of a slower one.
    fn frames_per_chunk(&self) -> usize {
        self.frames.div_ceil(4 * self.threads).max(1)
    }

    /// Steps over `frames` frames from now on (the kept buffers are reused).
    pub fn resize(&mut self, frames: usize) {
        if frames != self.frames {
            self.threads = self.threads.clamp(1, frames.max(1));
            self.frames = frames;
        }
    }

    fn check(&self, what: &str, v: &[f32], per_frame: usize) {
        assert_eq!(
            v.len(),
            self.frames * per_frame,
            "{what}: {} values for {} frames of {per_frame}",
            v.len(),
            self.frames
        );
    }

    /// Step `t`: adds `write` to `canvas` ([frames, A, A] logits), then, with
    /// `read`, reads the real frames `x` and sigmoid(canvas) into `glimpse_x`
    /// and `glimpse_shown` ([frames, K, K] each), keeping what the backward of
    /// step `t` needs.
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
    ) {
        self.check("canvas", canvas, PIXELS);
        self.check("video", x, PIXELS);
        if let Some(w) = &write {
            self.check("write F_p", w.f_row, BANK);
            self.check("write F_q", w.f_col, BANK);
            self.check("patch", w.patch, PATCH);
        }
        let n = self.frames;
        if self.saved.len() <= t {
            self.saved.resize_with(t + 1, Saved::default);
        }
        if let Some(r) = &read {
            self.check_read(r);
            self.check("glimpse", glimpse_x, PATCH);
            self.check("glimpse", glimpse_shown, PATCH);
        }
        let (per, threads) = (self.frames_per_chunk(), self.threads);
        let saved = &mut self.saved[t];
        if read.is_some() {
            saved.shown.resize(n * PIXELS, 0.0);
            saved.rows.resize(n * 2 * BANK, 0.0);
        }
        let kernels = self.kernels;
        let mut chunks = Vec::new();
        {
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
            |(first, canvas, mut shown, mut rows, mut gx, mut gs)| {
                for i in 0..canvas.len() / PIXELS {
                    let f = first + i;
                    let c = frame_mut(&mut canvas[i * PIXELS..(i + 1) * PIXELS]);
                    if let Some(w) = &write {
                        // c + F_p^T (P F_q)  (eq. 9, 10)
                        let mut m = [[0f32; A]; K];
                        kernels.patch_bank(patch(w.patch, f), bank(w.f_col, f), &mut m);
                        kernels.frame_add_banks(c, bank(w.f_row, f), &m);
                    }
                    if let (Some(r), Some(shown), Some(rows), Some(gx), Some(gs)) = (
                        &read,
                        shown.as_deref_mut(),
                        rows.as_deref_mut(),
                        gx.as_deref_mut(),
                        gs.as_deref_mut(),
                    ) {
                        // s = sigmoid(c); G = gamma (F_p img) F_q^T  (eq. 5, 6)
                        let s = frame_mut(&mut shown[i * PIXELS..(i + 1) * PIXELS]);
                        kernels.sigmoid(c, s);
                        let (rx, rs) = rows[i * 2 * BANK..(i + 1) * 2 * BANK].split_at_mut(BANK);
                        let (rx, rs) = (bank_mut(rx), bank_mut(rs));
                        let (f_row, f_col, gamma) =
                            (bank(r.f_row, f), bank(r.f_col, f), r.gamma[f]);
                        kernels.bank_frame(f_row, frame(x, f), rx);
                        kernels.bank_frame(f_row, s, rs);
                        kernels.bank_bank_t(rx, f_col, gamma, patch_mut(gx, i));
                        kernels.bank_bank_t(rs, f_col, gamma, patch_mut(gs, i));
                    }
                }
            },
        );
    }

    fn check_read(&self, r: &Read) {
        self.check("read F_p", r.f_row, BANK);
        self.check("read F_q", r.f_col, BANK);
        self.check("read gamma", r.gamma, 1);
    }

    /// The backward of [`Self::forward`]'s step `t`, with the same `x`, `write`
    /// and `read`. `dcanvas` holds the gradient of the canvas after the step
    /// and leaves the gradient of the canvas before it; `dglimpse_x`,
    /// `dglimpse_shown` are the gradients of the step's glimpses. Returns the
    /// gradients of the write's and the read's inputs.
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
    ) -> (Option<WriteGrads>, Option<ReadGrads>) {
        self.check("canvas gradient", dcanvas, PIXELS);
        let n = self.frames;
        let mut wg = write.map(|_| WriteGrads {
            f_row: vec![0.0; n * BANK],
            f_col: vec![0.0; n * BANK],
            patch: vec![0.0; n * PATCH],
        });
        let mut rg = read.map(|r| {
            self.check_read(&r);
            self.check("glimpse gradient", dglimpse_x, PATCH);
            self.check("glimpse gradient", dglimpse_shown, PATCH);
            ReadGrads {
                f_row: vec![0.0; n * BANK],
                f_col: vec![0.0; n * BANK],
                gamma: vec![0.0; n],
            }
        });
        let saved = self
            .saved
            .get(t)
            .filter(|s| read.is_none() || !s.shown.is_empty());
        let saved = saved.expect("the backward of a step that ran forward");
        let kernels = self.kernels;
        let per = self.frames_per_chunk();
        let mut chunks = Vec::new();
        {
            let mut dc = dcanvas.chunks_mut(per * PIXELS);
            let (mut w_row, mut w_col, mut w_patch) = match &mut wg {
                Some(g) => (
                    Some(g.f_row.chunks_mut(per * BANK)),
                    Some(g.f_col.chunks_mut(per * BANK)),
                    Some(g.patch.chunks_mut(per * PATCH)),
                ),
                None => (None, None, None),
            };
            let (mut r_row, mut r_col, mut r_gamma) = match &mut rg {
                Some(g) => (
                    Some(g.f_row.chunks_mut(per * BANK)),
                    Some(g.f_col.chunks_mut(per * BANK)),
                    Some(g.gamma.chunks_mut(per)),
                ),
                None => (None, None, None),
            };
            for first in (0..n).step_by(per) {
                let dc = dc.next().expect("a chunk of every buffer");
                let wgc = match (&mut w_row, &mut w_col, &mut w_patch) {
                    (Some(a), Some(b), Some(c)) => {
                        Some((a.next().unwrap(), b.next().unwrap(), c.next().unwrap()))
                    }
                    _ => None,
                };
                let rgc = match (&mut r_row, &mut r_col, &mut r_gamma) {
                    (Some(a), Some(b), Some(c)) => {
                        Some((a.next().unwrap(), b.next().unwrap(), c.next().unwrap()))
                    }
                    _ => None,
                };
                chunks.push((first, dc, wgc, rgc));
            }
        }
        threads::for_each_chunk(self.threads, chunks, |(first, dc, mut wgc, mut rgc)| {
            for i in 0..dc.len() / PIXELS {
                let f = first + i;
                let d = frame_mut(&mut dc[i * PIXELS..(i + 1) * PIXELS]);
                if let (Some(r), Some((g_row, g_col, g_gamma))) = (&read, &mut rgc) {
                    let s = frame(&saved.shown, f);
                    let rows = &saved.rows[f * 2 * BANK..(f + 1) * 2 * BANK];
                    let (rx, rs) = rows.split_at(BANK);
                    let (rx, rs) = (bank_ref(rx), bank_ref(rs));
                    let (f_row, f_col, gamma) = (bank(r.f_row, f), bank(r.f_col, f), r.gamma[f]);
                    // G = gamma R F_q^T with R = F_p img:
                    //   dR = gamma dG F_q, dF_q = gamma dG^T R,
                    //   dgamma = <dG, R F_q^T> = <dG F_q, R>
                    let (dgx, dgs) = (patch(dglimpse_x, f), patch(dglimpse_shown, f));
                    let (mut drx, mut drs) = ([[0f32; A]; K], [[0f32; A]; K]);
                    kernels.patch_bank(dgx, f_col, &mut drx);
                    kernels.patch_bank(dgs, f_col, &mut drs);
                    g_gamma[i] = (0..K)
                        .map(|u| dot(&drx[u], &rx[u]) + dot(&drs[u], &rs[u]))
                        .sum();
                    for row in drx.iter_mut().chain(drs.iter_mut()) {
                        row.iter_mut().for_each(|v| *v *= gamma);
                    }
                    let g_col = bank_mut(&mut g_col[i * BANK..(i + 1) * BANK]);
                    let mut part = [[0f32; A]; K];
                    kernels.patch_bank(&transposed(dgx, gamma), rx, g_col);
                    kernels.patch_bank(&transposed(dgs, gamma), rs, &mut part);
                    for (g, p) in g_col.iter_mut().zip(&part) {
                        frame::axpy(g, 1.0, p);
                    }
                    //   R = F_p img: dF_p = dR img^T, dimg = F_p^T dR
                    let g_row = bank_mut(&mut g_row[i * BANK..(i + 1) * BANK]);
                    kernels.bank_frame_t(&drx, frame(x, f), 1.0, g_row);
                    kernels.bank_frame_t(&drs, s, 1.0, g_row);
                    let mut ds = [[0f32; A]; A];
                    kernels.frame_add_banks(&mut ds, f_row, &drs);
                    //   s = sigmoid(c): dc += ds s (1 - s)
                    kernels.add_sigmoid_grad(d, &ds, s);
                }
                if let (Some(w), Some((g_row, g_col, g_patch))) = (&write, &mut wgc) {
                    // c + F_p^T P F_q: with M = P F_q and T = F_p dc,
                    //   dF_p = M dc^T, dP = T F_q^T, dF_q = P^T T; dc passes on.
                    let (f_row, f_col) = (bank(w.f_row, f), bank(w.f_col, f));
                    let p = patch(w.patch, f);
                    let mut m = [[0f32; A]; K];
                    kernels.patch_bank(p, f_col, &mut m);
                    let g_row = bank_mut(&mut g_row[i * BANK..(i + 1) * BANK]);
                    kernels.bank_frame_t(&m, d, 1.0, g_row);
                    let mut t_rows = [[0f32; A]; K];
                    kernels.bank_frame(f_row, d, &mut t_rows);
                    kernels.bank_bank_t(&t_rows, f_col, 1.0, patch_mut(g_patch, i));
                    let g_col = bank_mut(&mut g_col[i * BANK..(i + 1) * BANK]);
                    kernels.patch_bank(&transposed(p, 1.0), &t_rows, g_col);
                }
            }
        });
        (wg, rg)
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

fn bank(v: &[f32], f: usize) -> &Bank {
    bank_ref(&v[f * BANK..(f + 1) * BANK])
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
