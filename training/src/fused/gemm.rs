//! Products with a weight matrix that stays the same for a whole training
//! step, packed once per step into MKL's own layout (`cblas_sgemm_pack`) and
//! multiplied from it at every drawing step (`cblas_sgemm_compute`).
//!
//! An ordinary product packs its weights again at every call: for the
//! encoder's W_x (2,320 x 1,024) and a batch of 64 rows that packing
//! costs about as much as the product itself on one core (docs/benchmarks.md,
//! "The encoder's products from packed weights"). libtorch's MKL exports the
//! packed API; where it is not there (a libtorch without MKL) the products are
//! libtorch's own.
use std::ffi::{c_void, CStr};
use std::sync::OnceLock;
use tch::{Device, Kind, Tensor};

// cblas enums (mkl_cblas.h) and MKL's LP64 integer, as libtorch links it.
const ROW_MAJOR: i32 = 101;
const NO_TRANS: i32 = 111;
const TRANS: i32 = 112;
const PACKED: i32 = 151;
const B_MATRIX: i32 = 162;

type PackGetSize = unsafe extern "C" fn(identifier: i32, m: i32, n: i32, k: i32) -> usize;
type Pack = unsafe extern "C" fn(
    layout: i32,
    identifier: i32,
    trans: i32,
    m: i32,
    n: i32,
    k: i32,
    alpha: f32,
    src: *const f32,
    ld: i32,
    dest: *mut f32,
);
type Compute = unsafe extern "C" fn(
    layout: i32,
    transa: i32,
    transb: i32,
    m: i32,
    n: i32,
    k: i32,
    a: *const f32,
    lda: i32,
    b: *const f32,
    ldb: i32,
    beta: f32,
    c: *mut f32,
    ldc: i32,
);

#[derive(Clone, Copy)]
struct Api {
    get_size: PackGetSize,
    pack: Pack,
    compute: Compute,
}

fn lookup(name: &CStr) -> Option<*mut c_void> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: dlsym with RTLD_DEFAULT looks a name up among the loaded
        // libraries and returns null where none has it.
        let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        if !sym.is_null() {
            return Some(sym);
        }
    }
    let _ = name;
    None
}

/// MKL's packed-product API, where the loaded libtorch has it.
fn api() -> Option<Api> {
    static FOUND: OnceLock<Option<Api>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let get_size = lookup(c"cblas_sgemm_pack_get_size")?;
        let pack = lookup(c"cblas_sgemm_pack")?;
        let compute = lookup(c"cblas_sgemm_compute")?;
        // SAFETY: these names are MKL's cblas functions, whose C signatures
        // (mkl_cblas.h, LP64) are the types they are cast to.
        unsafe {
            Some(Api {
                get_size: std::mem::transmute::<*mut c_void, PackGetSize>(get_size),
                pack: std::mem::transmute::<*mut c_void, Pack>(pack),
                compute: std::mem::transmute::<*mut c_void, Compute>(compute),
            })
        }
    })
}

/// `a` [m, k] times a weight matrix W [k_w, n_w] or its transpose, for one m.
pub struct PackedWeights {
    m: i64,
    /// The product's n and k (W's n_w, k_w, swapped for W^T).
    n: i64,
    k: i64,
    form: Form,
}

enum Form {
    /// MKL's packed copy, and where in the buffer it starts (64-byte aligned).
    Packed { api: Api, buf: Vec<f32>, at: usize },
    /// libtorch's product, where MKL's packed API is not there.
    Plain(Tensor),
}

impl PackedWeights {
    /// Packs `w` ([k_w, n_w], f32 on the CPU; transposed when `transpose`) for
    /// products with `m` rows.
    pub fn new(w: &Tensor, m: i64, transpose: bool) -> Self {
        let w = w.detach().to_kind(Kind::Float).contiguous();
        let (rows, cols) = (w.size()[0], w.size()[1]);
        let (k, n) = if transpose {
            (cols, rows)
        } else {
            (rows, cols)
        };
        let form = match api() {
            Some(api) if m > 0 => {
                // SAFETY: get_size only reads its integer arguments.
                let bytes = unsafe { (api.get_size)(B_MATRIX, m as i32, n as i32, k as i32) };
                let mut buf = vec![0f32; bytes.div_ceil(4) + 16];
                let at = buf.as_ptr().align_offset(64).min(16);
                // SAFETY: `w` is a contiguous f32 [rows, cols] tensor in CPU
                // memory (leading dimension cols, read as op(B) of k x n);
                // `buf[at..]` holds the `bytes` get_size asked for.
                unsafe {
                    (api.pack)(
                        ROW_MAJOR,
                        B_MATRIX,
                        if transpose { TRANS } else { NO_TRANS },
                        m as i32,
                        n as i32,
                        k as i32,
                        1.0,
                        w.data_ptr() as *const f32,
                        cols as i32,
                        buf.as_mut_ptr().add(at),
                    )
                };
                Form::Packed { api, buf, at }
            }
            _ => Form::Plain(if transpose { w.tr() } else { w }),
        };
        Self { m, n, k, form }
    }

    /// `a` [m, k] times the packed matrix: [m, n].
    pub fn times(&self, a: &Tensor) -> Tensor {
        assert_eq!(
            a.size(),
            [self.m, self.k],
            "a product's left side has the rows and columns it was packed for"
        );
        match &self.form {
            Form::Plain(w) => a.matmul(w),
            Form::Packed { api, buf, at } => {
                let a = a.detach().to_kind(Kind::Float).contiguous();
                let out = Tensor::empty([self.m, self.n], (Kind::Float, Device::Cpu));
                // SAFETY: `a` is a contiguous f32 [m, k] CPU tensor, `buf[at..]`
                // the packed [k, n] matrix for m rows, `out` a fresh contiguous
                // f32 [m, n] CPU tensor that nothing else holds yet.
                unsafe {
                    (api.compute)(
                        ROW_MAJOR,
                        NO_TRANS,
                        PACKED,
                        self.m as i32,
                        self.n as i32,
                        self.k as i32,
                        a.data_ptr() as *const f32,
                        self.k as i32,
                        buf.as_ptr().add(*at),
                        self.n as i32,
                        0.0,
                        out.data_ptr() as *mut f32,
                        self.n as i32,
                    )
                };
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_products_match_libtorch() {
        // The test binary links libtorch, and with it MKL on x86-64.
        if cfg!(target_arch = "x86_64") {
            assert!(api().is_some(), "libtorch's MKL exports the packed API");
        }
        tch::manual_seed(3);
        let w = Tensor::randn([37, 19], (Kind::Float, Device::Cpu));
        for m in [1, 5, 32] {
            let a = Tensor::randn([m, 37], (Kind::Float, Device::Cpu));
            let d = (PackedWeights::new(&w, m, false).times(&a) - a.matmul(&w))
                .abs()
                .max();
            assert!(d.double_value(&[]) < 1e-4, "a W, m = {m}");
            let g = Tensor::randn([m, 19], (Kind::Float, Device::Cpu));
            let d = (PackedWeights::new(&w, m, true).times(&g) - g.matmul(&w.tr()))
                .abs()
                .max();
            assert!(d.double_value(&[]) < 1e-4, "g W^T, m = {m}");
        }
    }
}
