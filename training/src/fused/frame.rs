//! What the fused step does to one frame, on fixed sizes: a frame is
//! A x A = 64 x 64 pixels, a filterbank K x A = 10 x 64 (eq. 3-4's F_p or F_q,
//! one row per grid point). The products of read and write, the filterbanks
//! and their gradient, the sigmoid, the BCE. Each exists twice: an AVX2 + FMA
//! form, blocked so that its accumulators stay in registers (with exp and log
//! as polynomials), and a portable form that runs where the CPU lacks those
//! instructions. [`Kernels::detect`] picks one per process; tests run both
//! against each other.

/// Pixels along each side of a frame.
pub const A: usize = 64;
/// Grid points along each side of a window.
pub const K: usize = 10;

pub type Row = [f32; A];
/// One frame, row-major: `frame[a][b]`.
pub type Frame = [Row; A];
/// One filterbank, `bank[u][a]`, or any K rows of A values.
pub type Bank = [Row; K];
/// A K x K patch or glimpse, row-major.
pub type Patch = [f32; K * K];

/// The frame products the fused canvas step is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// AVX2 and FMA, checked at run time.
    Avx2,
    /// Plain loops, for any CPU.
    Portable,
}

impl Kernels {
    /// The fastest form this CPU runs.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Kernels::Avx2;
        }
        Kernels::Portable
    }

    /// out[u] = sum_a f[u][a] img[a]: a filterbank times a frame, F img.
    pub fn bank_frame(self, f: &Bank, img: &Frame, out: &mut Bank) {
        #[cfg(target_arch = "x86_64")]
        if self == Kernels::Avx2 {
            // SAFETY: Avx2 is only chosen where the CPU has AVX2 and FMA.
            return unsafe { avx2::bank_frame(f, img, out) };
        }
        portable::bank_frame(f, img, out)
    }

    /// out[a] += sum_u f[u][a] m[u]: a frame plus a filterbank's transpose
    /// times K rows, F^T m.
    pub fn frame_add_banks(self, out: &mut Frame, f: &Bank, m: &Bank) {
        #[cfg(target_arch = "x86_64")]
        if self == Kernels::Avx2 {
            // SAFETY: as in `bank_frame`.
            return unsafe { avx2::frame_add_banks(out, f, m) };
        }
        portable::frame_add_banks(out, f, m)
    }

    /// out[u][a] += scale sum_b p[u][b] img[a][b]: K rows times a frame's
    /// transpose, p img^T, for the entries where the filterbank `mask` is
    /// non-zero (the gradient of a filterbank, needed only there; elsewhere out
    /// may be left as it was).
    pub fn bank_frame_t(self, p: &Bank, img: &Frame, scale: f32, mask: &Bank, out: &mut Bank) {
        #[cfg(target_arch = "x86_64")]
        if self == Kernels::Avx2 {
            // SAFETY: as in `bank_frame`.
            return unsafe { avx2::bank_frame_t(p, img, scale, mask, out) };
        }
        let _ = mask;
        portable::bank_frame_t(p, img, scale, out)
    }

    /// out[u] = sum_v p[u][v] f[v]: a K x K patch times K rows, P F.
    pub fn patch_bank(self, p: &Patch, f: &Bank, out: &mut Bank) {
        #[cfg(target_arch = "x86_64")]
        if self == Kernels::Avx2 {
            // SAFETY: as in `bank_frame`.
            return unsafe { avx2::patch_bank(p, f, out) };
        }
        portable::patch_bank(p, f, out)
    }

    /// out[u][v] = scale sum_b r[u][b] f[v][b]: K rows times K rows
    /// transposed, R F^T (a glimpse from the rows F_p img).
    pub fn bank_bank_t(self, r: &Bank, f: &Bank, scale: f32, out: &mut Patch) {
        #[cfg(target_arch = "x86_64")]
        if self == Kernels::Avx2 {
            // SAFETY: as in `bank_frame`.
            return unsafe { avx2::bank_bank_t(r, f, scale, out) };
        }
        portable::bank_bank_t(r, f, scale, out)
    }

    /// d += (F^T m) s (1 - s), pixel by pixel: the gradient of the canvas c
    /// through s = sigmoid(c) of a read whose rows' gradient is m (F^T m the
    /// gradient of s), without F^T m stored anywhere.
    pub fn add_read_grad(self, d: &mut Frame, f: &Bank, m: &Bank, s: &Frame) {
        #[cfg(target_arch = "x86_64")]
        if self == Kernels::Avx2 {
            // SAFETY: as in `bank_frame`.
            return unsafe { avx2::add_read_grad(d, f, m, s) };
        }
        let mut g = [[0f32; A]; A];
        portable::frame_add_banks(&mut g, f, m);
        portable::add_sigmoid_grad(d, &g, s)
    }

    /// The filterbank of eq. 3-4 for grid centres `mu` (eq. 1-2) and variance
    /// sigma^2: F[u][a] = exp(-(a - mu_u)^2 / (2 sigma^2)) / Z_u, a = 1..A, each
    /// row's exponents shifted by their largest (the same F; Z_u >= 1).
    ///
    /// Weights under e^-16 (1.1e-7) of their row's largest are set to zero: a
    /// row's Gaussian then covers the pixels within sqrt(d^2 + 32 sigma^2) of
    /// its centre (d the distance from the centre to its nearest pixel), about
    /// 25 of 64 for the windows trained models use (sigma 2.2), and the
    /// products skip the rest. What is dropped is under float precision next
    /// to the row's largest weight.
    pub fn filterbank(self, mu: &[f32; K], sigma2: f32, out: &mut Bank) {
        match self {
            // SAFETY: as in `bank_frame`.
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2 => unsafe { avx2::filterbank(mu, sigma2, out) },
            _ => portable::filterbank(mu, sigma2, out),
        }
    }

    /// Back through [`Self::filterbank`]: for the gradient `df` of its values
    /// `f`, the gradient of each grid centre mu_u and of sigma^2.
    pub fn filterbank_grad(
        self,
        f: &Bank,
        df: &Bank,
        mu: &[f32; K],
        sigma2: f32,
    ) -> ([f32; K], f32) {
        #[cfg(target_arch = "x86_64")]
        if self == Kernels::Avx2 {
            // SAFETY: as in `bank_frame`.
            return unsafe { avx2::filterbank_grad(f, df, mu, sigma2) };
        }
        portable::filterbank_grad(f, df, mu, sigma2)
    }

    /// The binary cross-entropy of `x` under sigmoid(c), summed over the
    /// frame, and its gradient in the logits times `scale`, scale (sigmoid(c) - x),
    /// into `d`. Per pixel, with e = exp(-|c|): BCE = max(c, 0) - x c + log(1 + e),
    /// sigmoid(c) = 1 / (1 + e) for c >= 0 and e / (1 + e) below.
    pub fn bce(self, c: &Frame, x: &Frame, scale: f32, d: &mut Frame) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if self == Kernels::Avx2 {
            // SAFETY: as in `bank_frame`.
            return unsafe { avx2::bce(c, x, scale, d) };
        }
        portable::bce(c, x, scale, d)
    }

    /// s = sigmoid(c), pixel by pixel.
    pub fn sigmoid(self, c: &Frame, s: &mut Frame) {
        #[cfg(target_arch = "x86_64")]
        if self == Kernels::Avx2 {
            // SAFETY: as in `bank_frame`.
            return unsafe { avx2::sigmoid(c, s) };
        }
        portable::sigmoid(c, s)
    }
}

/// y += a x over a row (a multiply and an add, never a library call for fused
/// multiply-add on CPUs without it).
#[inline(always)]
pub fn axpy(y: &mut Row, a: f32, x: &Row) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// The dot product of two rows.
#[inline(always)]
pub fn dot(x: &Row, y: &Row) -> f32 {
    let mut acc = [0f32; 8];
    for (xs, ys) in x.chunks_exact(8).zip(y.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += xs[l] * ys[l];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// The pixels (0-based, [lo, hi)) a filterbank row centred at `mu` keeps:
/// those within sqrt(d^2 + 32 sigma^2) of the centre, d the distance from the
/// centre to the nearest pixel (coordinates 1..=A), where the weight is at
/// least e^-16 of the row's largest.
pub fn support(mu: f32, sigma2: f32) -> (usize, usize) {
    let d = if mu < 1.0 {
        1.0 - mu
    } else if mu > A as f32 {
        mu - A as f32
    } else {
        0.0
    };
    let r = (d * d + 32.0 * sigma2).sqrt();
    let lo = ((mu - r).ceil() - 1.0).clamp(0.0, A as f32 - 1.0) as usize;
    let hi = (mu + r).floor().clamp(lo as f32 + 1.0, A as f32) as usize;
    (lo, hi)
}

/// The first and one past the last non-zero entries of rows `u0` and `u0 + 1`
/// of a filterbank together (for a pair of rows, the span both cover).
#[inline]
fn span(f: &Bank, u0: usize) -> (usize, usize) {
    let first = |r: &Row| r.iter().position(|v| *v != 0.0).unwrap_or(A);
    let last = |r: &Row| r.iter().rposition(|v| *v != 0.0).map_or(0, |p| p + 1);
    let lo = first(&f[u0]).min(first(&f[u0 + 1]));
    let hi = last(&f[u0]).max(last(&f[u0 + 1]));
    (lo, hi.max(lo))
}

mod portable {
    use super::{axpy, dot, Bank, Frame, Patch, Row, A, K};

    pub fn patch_bank(p: &Patch, f: &Bank, out: &mut Bank) {
        for (u, o) in out.iter_mut().enumerate() {
            *o = [0.0; A];
            for (v, fv) in f.iter().enumerate() {
                axpy(o, p[u * K + v], fv);
            }
        }
    }

    pub fn bank_bank_t(r: &Bank, f: &Bank, scale: f32, out: &mut Patch) {
        for (u, ru) in r.iter().enumerate() {
            for (v, fv) in f.iter().enumerate() {
                out[u * K + v] = scale * dot(ru, fv);
            }
        }
    }

    pub fn filterbank(mu: &[f32; K], sigma2: f32, out: &mut Bank) {
        for (m, row) in mu.iter().zip(out.iter_mut()) {
            let e: Row = std::array::from_fn(|a| {
                let d = (a + 1) as f32 - m;
                -d * d / (2.0 * sigma2)
            });
            let top = e.iter().fold(f32::NEG_INFINITY, |t, v| t.max(*v));
            let (lo, hi) = super::support(*m, sigma2);
            let mut sum = 0.0;
            for (a, (r, e)) in row.iter_mut().zip(&e).enumerate() {
                *r = if (lo..hi).contains(&a) {
                    (e - top).exp()
                } else {
                    0.0
                };
                sum += *r;
            }
            row.iter_mut().for_each(|r| *r /= sum);
        }
    }

    pub fn filterbank_grad(f: &Bank, df: &Bank, mu: &[f32; K], sigma2: f32) -> ([f32; K], f32) {
        let mut dmu = [0f32; K];
        let mut ds2 = 0.0;
        for u in 0..K {
            let dot = dot(&f[u], &df[u]);
            for a in 0..A {
                let de = f[u][a] * (df[u][a] - dot);
                let d = (a + 1) as f32 - mu[u];
                dmu[u] += de * d / sigma2;
                ds2 += de * d * d / (2.0 * sigma2 * sigma2);
            }
        }
        (dmu, ds2)
    }

    pub fn add_sigmoid_grad(d: &mut Frame, g: &Frame, s: &Frame) {
        for ((dr, gr), sr) in d.iter_mut().zip(g).zip(s) {
            for ((d, g), s) in dr.iter_mut().zip(gr).zip(sr) {
                *d += g * (s * (1.0 - s));
            }
        }
    }

    pub fn bank_frame(f: &Bank, img: &Frame, out: &mut Bank) {
        for (fu, o) in f.iter().zip(out.iter_mut()) {
            let mut acc: Row = [0.0; A];
            for (w, row) in fu.iter().zip(img) {
                axpy(&mut acc, *w, row);
            }
            *o = acc;
        }
    }

    pub fn frame_add_banks(out: &mut Frame, f: &Bank, m: &Bank) {
        for (a, row) in out.iter_mut().enumerate() {
            for u in 0..K {
                axpy(row, f[u][a], &m[u]);
            }
        }
    }

    pub fn bank_frame_t(p: &Bank, img: &Frame, scale: f32, out: &mut Bank) {
        for (pu, o) in p.iter().zip(out.iter_mut()) {
            for (oa, row) in o.iter_mut().zip(img) {
                *oa += scale * dot(pu, row);
            }
        }
    }

    pub fn bce(c: &Frame, x: &Frame, scale: f32, d: &mut Frame) -> f32 {
        let mut total = 0f64;
        for ((cr, xr), dr) in c.iter().zip(x).zip(d.iter_mut()) {
            for ((c, x), d) in cr.iter().zip(xr).zip(dr.iter_mut()) {
                let e = (-c.abs()).exp();
                total += (c.max(0.0) - x * c + e.ln_1p()) as f64;
                let s = if *c >= 0.0 {
                    1.0 / (1.0 + e)
                } else {
                    e / (1.0 + e)
                };
                *d = scale * (s - x);
            }
        }
        total as f32
    }

    pub fn sigmoid(c: &Frame, s: &mut Frame) {
        for (cr, sr) in c.iter().zip(s.iter_mut()) {
            for (c, s) in cr.iter().zip(sr.iter_mut()) {
                *s = 1.0 / (1.0 + (-c).exp());
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! Register-blocked forms. Every function needs AVX2 and FMA: callers
    //! check the CPU first ([`super::Kernels::detect`]).
    use super::{Bank, Frame, Patch, Row, A, K};
    use std::arch::x86_64::*;

    /// P F, five rows of P by sixteen columns at a time.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn patch_bank(p: &Patch, f: &Bank, out: &mut Bank) {
        for u0 in [0, 5] {
            for j in (0..A).step_by(16) {
                let mut acc = [_mm256_setzero_ps(); 10];
                for (v, row) in f.iter().enumerate() {
                    let v0 = _mm256_loadu_ps(row.as_ptr().add(j));
                    let v1 = _mm256_loadu_ps(row.as_ptr().add(j + 8));
                    for i in 0..5 {
                        let w = _mm256_broadcast_ss(&p[(u0 + i) * K + v]);
                        acc[2 * i] = _mm256_fmadd_ps(w, v0, acc[2 * i]);
                        acc[2 * i + 1] = _mm256_fmadd_ps(w, v1, acc[2 * i + 1]);
                    }
                }
                for i in 0..5 {
                    _mm256_storeu_ps(out[u0 + i].as_mut_ptr().add(j), acc[2 * i]);
                    _mm256_storeu_ps(out[u0 + i].as_mut_ptr().add(j + 8), acc[2 * i + 1]);
                }
            }
        }
    }

    /// scale R F^T, one row of R against every row of F at a time.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn bank_bank_t(r: &Bank, f: &Bank, scale: f32, out: &mut Patch) {
        for (u, ru) in r.iter().enumerate() {
            let mut acc = [_mm256_setzero_ps(); K];
            for j in (0..A).step_by(8) {
                let x = _mm256_loadu_ps(ru.as_ptr().add(j));
                for v in 0..K {
                    let w = _mm256_loadu_ps(f[v].as_ptr().add(j));
                    acc[v] = _mm256_fmadd_ps(x, w, acc[v]);
                }
            }
            let s = sums8([
                acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7],
            ]);
            let s = _mm256_mul_ps(s, _mm256_set1_ps(scale));
            _mm256_storeu_ps(out.as_mut_ptr().add(u * K), s);
            out[u * K + 8] = scale * sum1(acc[8]);
            out[u * K + 9] = scale * sum1(acc[9]);
        }
    }

    /// d += (F^T m) s (1 - s): F^T m two frame rows by thirty-two columns at
    /// a time in registers (the filter rows zero on both skipped), then
    /// through the sigmoid's slope into d.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn add_read_grad(d: &mut Frame, f: &Bank, m: &Bank, s: &Frame) {
        let one = _mm256_set1_ps(1.0);
        for a in (0..A).step_by(2) {
            for o in [0, 32] {
                let mut acc = [_mm256_setzero_ps(); 8];
                for (fu, mu) in f.iter().zip(m) {
                    if fu[a] != 0.0 || fu[a + 1] != 0.0 {
                        fma_pair(&mut acc, &fu[a], &fu[a + 1], mu, o);
                    }
                }
                for (r, row) in [a, a + 1].into_iter().enumerate() {
                    for i in 0..4 {
                        let at = o + i * 8;
                        let sv = _mm256_loadu_ps(s[row].as_ptr().add(at));
                        let slope = _mm256_mul_ps(sv, _mm256_sub_ps(one, sv));
                        let dv = _mm256_loadu_ps(d[row].as_ptr().add(at));
                        let out = _mm256_fmadd_ps(acc[4 * r + i], slope, dv);
                        _mm256_storeu_ps(d[row].as_mut_ptr().add(at), out);
                    }
                }
            }
        }
    }

    /// Two rows of thirty-two columns from column `o`, as eight vectors.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load_pair(r0: &Row, r1: &Row, o: usize) -> [__m256; 8] {
        std::array::from_fn(|i| {
            let row = if i < 4 { r0 } else { r1 };
            _mm256_loadu_ps(row.as_ptr().add(o + (i % 4) * 8))
        })
    }

    /// acc += (w0 v, w1 v) for the thirty-two columns of `v` from `o`: one
    /// source row into two accumulated rows.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fma_pair(acc: &mut [__m256; 8], w0: &f32, w1: &f32, v: &Row, o: usize) {
        let (w0, w1) = (_mm256_broadcast_ss(w0), _mm256_broadcast_ss(w1));
        for i in 0..4 {
            let x = _mm256_loadu_ps(v.as_ptr().add(o + i * 8));
            acc[i] = _mm256_fmadd_ps(w0, x, acc[i]);
            acc[4 + i] = _mm256_fmadd_ps(w1, x, acc[4 + i]);
        }
    }

    /// Stores [`load_pair`]'s eight vectors back into rows `i` and `i + 1`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store_pair(acc: &[__m256; 8], rows: &mut [Row], i: usize, o: usize) {
        for (r, row) in rows[i..i + 2].iter_mut().enumerate() {
            for j in 0..4 {
                _mm256_storeu_ps(row.as_mut_ptr().add(o + j * 8), acc[4 * r + j]);
            }
        }
    }

    /// F img, two filter rows by thirty-two columns at a time (eight
    /// accumulators), over the pixels where either row is non-zero.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn bank_frame(f: &Bank, img: &Frame, out: &mut Bank) {
        for u0 in (0..K).step_by(2) {
            let (lo, hi) = super::span(f, u0);
            for o in [0, 32] {
                let mut acc = [_mm256_setzero_ps(); 8];
                for a in lo..hi {
                    fma_pair(&mut acc, &f[u0][a], &f[u0 + 1][a], &img[a], o);
                }
                store_pair(&acc, out, u0, o);
            }
        }
    }

    /// out += F^T m, two frame rows by thirty-two columns at a time, skipping
    /// the filter rows that are zero on both.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn frame_add_banks(out: &mut Frame, f: &Bank, m: &Bank) {
        for a in (0..A).step_by(2) {
            for o in [0, 32] {
                let mut acc = load_pair(&out[a], &out[a + 1], o);
                for (fu, mu) in f.iter().zip(m) {
                    if fu[a] != 0.0 || fu[a + 1] != 0.0 {
                        fma_pair(&mut acc, &fu[a], &fu[a + 1], mu, o);
                    }
                }
                store_pair(&acc, out, a, o);
            }
        }
    }

    /// The eight lane sums of eight vectors, as one vector.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sums8(v: [__m256; 8]) -> __m256 {
        let t0 = _mm256_hadd_ps(v[0], v[1]);
        let t1 = _mm256_hadd_ps(v[2], v[3]);
        let t2 = _mm256_hadd_ps(v[4], v[5]);
        let t3 = _mm256_hadd_ps(v[6], v[7]);
        let t0 = _mm256_hadd_ps(t0, t1);
        let t2 = _mm256_hadd_ps(t2, t3);
        let lo = _mm256_permute2f128_ps(t0, t2, 0x20);
        let hi = _mm256_permute2f128_ps(t0, t2, 0x31);
        _mm256_add_ps(lo, hi)
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum1(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// out[u][a] += scale (p img^T)[u][a] where mask[u][a] is non-zero: for
    /// each pair of frame rows, the rows u of p whose mask covers either, four
    /// at a time.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn bank_frame_t(p: &Bank, img: &Frame, scale: f32, mask: &Bank, out: &mut Bank) {
        for a in (0..A).step_by(2) {
            let mut active = [0usize; K];
            let mut n = 0;
            for (u, m) in mask.iter().enumerate() {
                if m[a] != 0.0 || m[a + 1] != 0.0 {
                    active[n] = u;
                    n += 1;
                }
            }
            for group in active[..n].chunks(4) {
                let mut acc = [_mm256_setzero_ps(); 8];
                for j in (0..A).step_by(8) {
                    let v0 = _mm256_loadu_ps(img[a].as_ptr().add(j));
                    let v1 = _mm256_loadu_ps(img[a + 1].as_ptr().add(j));
                    for (i, &u) in group.iter().enumerate() {
                        let w = _mm256_loadu_ps(p[u].as_ptr().add(j));
                        acc[i] = _mm256_fmadd_ps(w, v0, acc[i]);
                        acc[4 + i] = _mm256_fmadd_ps(w, v1, acc[4 + i]);
                    }
                }
                let s = sums8(acc);
                let mut lanes = [0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), s);
                for (i, &u) in group.iter().enumerate() {
                    out[u][a] += scale * lanes[i];
                    out[u][a + 1] += scale * lanes[4 + i];
                }
            }
        }
    }

    /// e^x for x held in [-87, 87] (where e^x stays a normal float): 2^n 2^f,
    /// n the nearest integer to x log2(e), f in [-1/2, 1/2], 2^f by its degree-6
    /// Taylor polynomial (relative error under 2e-7).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp8(x: __m256) -> __m256 {
        // 2^f = e^(f ln 2), Taylor coefficients (ln 2)^k / k!.
        const P: [f32; 6] = [
            1.540_353e-4,
            1.333_355_8e-3,
            9.618_129e-3,
            5.550_411e-2,
            2.402_265e-1,
            6.931_472e-1,
        ];
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-87.0)),
            _mm256_set1_ps(87.0),
        );
        let y = _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E));
        let n = _mm256_round_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        let f = _mm256_sub_ps(y, n);
        let mut p = _mm256_set1_ps(P[0]);
        for k in &P[1..] {
            p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(*k));
        }
        p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0));
        let bias = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
        _mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(bias, 23)), p)
    }

    /// ln(y) for y in [1, 2] (all the BCE needs): y = 2^k m with m in
    /// [sqrt(1/2), sqrt(2)), ln m = 2 atanh(r), r = (m - 1) / (m + 1), |r| < 0.172,
    /// by its series to r^9 (relative error under 1e-7).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn ln_1_to_2(y: __m256) -> __m256 {
        let big = _mm256_cmp_ps(y, _mm256_set1_ps(std::f32::consts::SQRT_2), _CMP_GE_OQ);
        let m = _mm256_blendv_ps(y, _mm256_mul_ps(y, _mm256_set1_ps(0.5)), big);
        let k = _mm256_and_ps(big, _mm256_set1_ps(std::f32::consts::LN_2));
        let r = _mm256_div_ps(
            _mm256_sub_ps(m, _mm256_set1_ps(1.0)),
            _mm256_add_ps(m, _mm256_set1_ps(1.0)),
        );
        let r2 = _mm256_mul_ps(r, r);
        let mut p = _mm256_set1_ps(1.0 / 9.0);
        for c in [1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0] {
            p = _mm256_fmadd_ps(p, r2, _mm256_set1_ps(c));
        }
        _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(2.0), r), p, k)
    }

    /// The BCE and its scaled gradient (see [`super::Kernels::bce`]).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn bce(c: &Frame, x: &Frame, scale: f32, d: &mut Frame) -> f32 {
        let (zero, one) = (_mm256_setzero_ps(), _mm256_set1_ps(1.0));
        let sign = _mm256_set1_ps(-0.0);
        let scale = _mm256_set1_ps(scale);
        let mut total = _mm256_setzero_ps();
        for ((cr, xr), dr) in c.iter().zip(x).zip(d.iter_mut()) {
            for j in (0..A).step_by(8) {
                let cv = _mm256_loadu_ps(cr.as_ptr().add(j));
                let xv = _mm256_loadu_ps(xr.as_ptr().add(j));
                let e = exp8(_mm256_or_ps(cv, sign)); // exp(-|c|)
                let one_e = _mm256_add_ps(one, e);
                let loss = _mm256_add_ps(
                    _mm256_sub_ps(_mm256_max_ps(cv, zero), _mm256_mul_ps(xv, cv)),
                    ln_1_to_2(one_e),
                );
                total = _mm256_add_ps(total, loss);
                let up = _mm256_cmp_ps(cv, zero, _CMP_GE_OQ);
                let s = _mm256_div_ps(_mm256_blendv_ps(e, one, up), one_e);
                let g = _mm256_mul_ps(scale, _mm256_sub_ps(s, xv));
                _mm256_storeu_ps(dr.as_mut_ptr().add(j), g);
            }
        }
        sum1(total)
    }

    /// 1 / (1 + e^-c).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn sigmoid(c: &Frame, s: &mut Frame) {
        let one = _mm256_set1_ps(1.0);
        for (cr, sr) in c.iter().zip(s.iter_mut()) {
            let cr: &Row = cr;
            for j in (0..A).step_by(8) {
                let x = _mm256_loadu_ps(cr.as_ptr().add(j));
                let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
                let r = _mm256_div_ps(one, _mm256_add_ps(one, e));
                _mm256_storeu_ps(sr.as_mut_ptr().add(j), r);
            }
        }
    }

    /// The pixel coordinates 1..=A, eight at a time.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn coords(j: usize) -> __m256 {
        let base = _mm256_setr_ps(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0);
        _mm256_add_ps(base, _mm256_set1_ps(j as f32))
    }

    /// The filterbank of eq. 3-4 for grid centres `mu`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn filterbank(mu: &[f32; K], sigma2: f32, out: &mut Bank) {
        let half_inv = 0.5 / sigma2;
        let scale = _mm256_set1_ps(-half_inv);
        for (m, row) in mu.iter().zip(out.iter_mut()) {
            // Only the blocks of eight pixels that meet the row's support; the
            // largest exponent is that of the pixel nearest the centre.
            let (lo, hi) = super::support(*m, sigma2);
            let nearest = m.round().clamp(1.0, A as f32) - m;
            let top = _mm256_set1_ps(-nearest * nearest * half_inv);
            let (first, last) = (lo / 8, hi.div_ceil(8));
            let (lo_v, hi_v) = (
                _mm256_set1_ps(lo as f32 + 0.5),
                _mm256_set1_ps(hi as f32 + 0.5),
            );
            let mv = _mm256_set1_ps(*m);
            let mut e = [_mm256_setzero_ps(); A / 8];
            let mut sum = _mm256_setzero_ps();
            for (i, ei) in e.iter_mut().enumerate().take(last).skip(first) {
                let c = coords(i * 8);
                let d = _mm256_sub_ps(c, mv);
                let x = _mm256_sub_ps(_mm256_mul_ps(_mm256_mul_ps(d, d), scale), top);
                // pixel coordinates lo + 1 ..= hi are kept
                let keep = _mm256_and_ps(
                    _mm256_cmp_ps(c, lo_v, _CMP_GT_OQ),
                    _mm256_cmp_ps(c, hi_v, _CMP_LT_OQ),
                );
                *ei = _mm256_and_ps(exp8(x), keep);
                sum = _mm256_add_ps(sum, *ei);
            }
            let inv = _mm256_set1_ps(1.0 / sum1(sum));
            for (i, ei) in e.iter().enumerate() {
                _mm256_storeu_ps(row.as_mut_ptr().add(i * 8), _mm256_mul_ps(*ei, inv));
            }
        }
    }

    /// For a filterbank `f` of grid centres `mu` and the gradient `df` of its
    /// values: the gradient of each centre and of sigma^2.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn filterbank_grad(
        f: &Bank,
        df: &Bank,
        mu: &[f32; K],
        sigma2: f32,
    ) -> ([f32; K], f32) {
        let inv = 1.0 / sigma2;
        let mut dmu = [0f32; K];
        let mut ds2 = _mm256_setzero_ps();
        for u in 0..K {
            let mut dot = _mm256_setzero_ps();
            for j in (0..A).step_by(8) {
                let fv = _mm256_loadu_ps(f[u].as_ptr().add(j));
                dot = _mm256_fmadd_ps(fv, _mm256_loadu_ps(df[u].as_ptr().add(j)), dot);
            }
            let dot = _mm256_set1_ps(sum1(dot));
            let m = _mm256_set1_ps(mu[u]);
            let mut acc = _mm256_setzero_ps();
            for j in (0..A).step_by(8) {
                let fv = _mm256_loadu_ps(f[u].as_ptr().add(j));
                let de = _mm256_mul_ps(
                    fv,
                    _mm256_sub_ps(_mm256_loadu_ps(df[u].as_ptr().add(j)), dot),
                );
                let d = _mm256_sub_ps(coords(j), m);
                let ded = _mm256_mul_ps(de, d);
                acc = _mm256_add_ps(acc, ded);
                ds2 = _mm256_fmadd_ps(ded, d, ds2);
            }
            dmu[u] = sum1(acc) * inv;
        }
        (dmu, sum1(ds2) * 0.5 * inv * inv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled<const R: usize>(seed: u64) -> [Row; R] {
        let mut state = seed;
        let mut out = [[0f32; A]; R];
        for row in out.iter_mut() {
            for v in row.iter_mut() {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *v = ((state >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0;
            }
        }
        out
    }

    fn close<const R: usize>(a: &[Row; R], b: &[Row; R], tol: f32) {
        for (ra, rb) in a.iter().zip(b) {
            for (x, y) in ra.iter().zip(rb) {
                assert!((x - y).abs() <= tol * (1.0 + x.abs()), "{x} against {y}");
            }
        }
    }

    /// Grid centres from outside the frame's top to its bottom half.
    const MU: [f32; K] = [-3.0, 4.5, 12.0, 19.5, 27.0, 34.5, 42.0, 49.5, 57.0, 64.5];

    /// A Gaussian filterbank (sigma^2 4), zero outside each row's support.
    fn gaussian() -> Bank {
        let mut g = [[0f32; A]; K];
        Kernels::Portable.filterbank(&MU, 4.0, &mut g);
        g
    }

    #[test]
    fn the_fast_products_match_the_portable_ones() {
        let fast = Kernels::detect();
        if fast == Kernels::Portable {
            eprintln!("this CPU has no AVX2 + FMA: the portable kernels are the only ones");
            return;
        }
        let (f, m, img) = (filled::<K>(1), filled::<K>(2), filled::<A>(3));
        // Dense rows, and a Gaussian filterbank, zero outside each row's
        // support: the fast forms skip the zeros (and leave the gradient of a
        // filterbank alone there), the portable ones run every entry.
        let g = gaussian();
        assert!(g
            .iter()
            .all(|r| r.contains(&0.0) && r.iter().any(|v| *v > 0.0)));
        for bank in [&f, &g] {
            let (mut a, mut b) = ([[0f32; A]; K], [[0f32; A]; K]);
            fast.bank_frame(bank, &img, &mut a);
            Kernels::Portable.bank_frame(bank, &img, &mut b);
            close(&a, &b, 1e-5);
            let (mut fa, mut fb) = (img, img);
            fast.frame_add_banks(&mut fa, bank, &m);
            Kernels::Portable.frame_add_banks(&mut fb, bank, &m);
            close(&fa, &fb, 1e-5);
        }
        let (mut a, mut b) = (m, m);
        fast.bank_frame_t(&f, &img, 0.5, &g, &mut a);
        Kernels::Portable.bank_frame_t(&f, &img, 0.5, &g, &mut b);
        for ((ra, rb), rg) in a.iter().zip(&b).zip(&g) {
            for ((x, y), w) in ra.iter().zip(rb).zip(rg) {
                if *w != 0.0 {
                    assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{x} against {y}");
                }
            }
        }
        let (mut fa, mut fb) = ([[0f32; A]; K], [[0f32; A]; K]);
        fast.filterbank(&MU, 4.0, &mut fa);
        Kernels::Portable.filterbank(&MU, 4.0, &mut fb);
        close(&fa, &fb, 1e-6);
        let mut p = [0f32; K * K];
        for (i, v) in p.iter_mut().enumerate() {
            *v = (i as f32 * 0.37).sin();
        }
        let (mut a, mut b) = ([[0f32; A]; K], [[0f32; A]; K]);
        fast.patch_bank(&p, &f, &mut a);
        Kernels::Portable.patch_bank(&p, &f, &mut b);
        close(&a, &b, 1e-5);
        let (mut pa, mut pb) = ([0f32; K * K], [0f32; K * K]);
        fast.bank_bank_t(&f, &m, 0.7, &mut pa);
        Kernels::Portable.bank_bank_t(&f, &m, 0.7, &mut pb);
        for (x, y) in pa.iter().zip(&pb) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{x} against {y}");
        }
        let s01 = img.map(|r| r.map(|v| (v + 4.0) / 8.0));
        for bank in [&f, &gaussian()] {
            let (mut da, mut db) = (img, img);
            fast.add_read_grad(&mut da, bank, &m, &s01);
            Kernels::Portable.add_read_grad(&mut db, bank, &m, &s01);
            close(&da, &db, 1e-5);
        }
        let logits = img.map(|r| r.map(|v| v * 6.0));
        let (mut da, mut db) = ([[0f32; A]; A], [[0f32; A]; A]);
        let (la, lb) = (
            fast.bce(&logits, &s01, 0.25, &mut da),
            Kernels::Portable.bce(&logits, &s01, 0.25, &mut db),
        );
        assert!((la - lb).abs() <= 1e-5 * lb.abs(), "{la} against {lb}");
        close(&da, &db, 1e-6);
        let mut c = img;
        for (a, row) in c.iter_mut().enumerate() {
            for (b, v) in row.iter_mut().enumerate() {
                // logits from -100 to 100, past both ends of the clamp
                *v = (a * A + b) as f32 / (A * A) as f32 * 200.0 - 100.0;
            }
        }
        let (mut sa, mut sb) = ([[0f32; A]; A], [[0f32; A]; A]);
        fast.sigmoid(&c, &mut sa);
        Kernels::Portable.sigmoid(&c, &mut sb);
        close(&sa, &sb, 1e-6);
    }
}
