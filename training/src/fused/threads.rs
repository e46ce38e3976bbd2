//! Where the kernels run: on libtorch's own OpenMP threads where there are
//! some, on threads of our own otherwise.
//!
//! libtorch's CPU operations run on a GNU OpenMP team whose threads, after
//! each operation, wait for the next one by spinning for a while (libgomp's
//! GOMP_SPINCOUNT, milliseconds) before they sleep. Threads of our own started
//! between two libtorch operations compete with those spinning threads for the
//! cores: on the 2-core machine the fused step ran at 137-149 videos/s that
//! way, against 183-189 with the spinning cut short (docs/benchmarks.md). Run
//! on the same team, the kernels take the cores from nobody.
use std::ffi::c_void;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};

/// libgomp's entry point for a parallel region: runs `f(data)` on `threads`
/// threads of the team (the caller is one of them) and returns when all have.
type GompParallel = unsafe extern "C" fn(
    f: unsafe extern "C" fn(*mut c_void),
    data: *mut c_void,
    threads: u32,
    flags: u32,
);

/// GOMP_parallel of the OpenMP runtime libtorch loaded, if it is libgomp.
fn gomp_parallel() -> Option<GompParallel> {
    static FOUND: OnceLock<Option<GompParallel>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: dlsym with RTLD_DEFAULT looks a name up among the loaded
            // libraries; a non-null result for this name is libgomp's
            // GOMP_parallel, whose C signature is `GompParallel`.
            let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"GOMP_parallel".as_ptr()) };
            if !sym.is_null() {
                return Some(unsafe { std::mem::transmute::<*mut c_void, GompParallel>(sym) });
            }
        }
        None
    })
}

/// Whether the kernels run on libtorch's OpenMP team.
pub fn on_openmp_team() -> bool {
    gomp_parallel().is_some()
}

/// Runs `work` on every chunk, on up to `threads` threads, each taking the
/// next chunk left until none is. A panic in `work` is raised again here.
pub fn for_each_chunk<C: Send>(threads: usize, chunks: Vec<C>, work: impl Fn(C) + Sync) {
    run_chunks(gomp_parallel(), threads, chunks, work)
}

/// [`for_each_chunk`] on libgomp's team (`parallel`) or, without it, on
/// threads of our own.
fn run_chunks<C: Send>(
    parallel: Option<GompParallel>,
    threads: usize,
    chunks: Vec<C>,
    work: impl Fn(C) + Sync,
) {
    let queue = Mutex::new(chunks);
    let panicked: Mutex<Option<Box<dyn std::any::Any + Send>>> = Mutex::new(None);
    let body = || loop {
        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let Some(chunk) = next else { break };
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| work(chunk))) {
            panicked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(p);
            break;
        }
    };
    let threads = threads.max(1);
    match parallel {
        Some(parallel) if threads > 1 => {
            unsafe extern "C" fn trampoline<F: Fn()>(data: *mut c_void) {
                // SAFETY: `data` is the `&F` passed below, alive until
                // GOMP_parallel returns; F catches its own panics.
                let f = unsafe { &*(data as *const F) };
                f();
            }
            fn call<F: Fn() + Sync>(parallel: GompParallel, f: &F, threads: usize) {
                // SAFETY: the trampoline matches GOMP_parallel's callback, and
                // `f` outlives the call, which returns when every thread is done.
                unsafe {
                    parallel(
                        trampoline::<F>,
                        f as *const F as *mut c_void,
                        threads as u32,
                        0,
                    )
                };
            }
            call(parallel, &body, threads);
        }
        _ => std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(body);
            }
            body();
        }),
    }
    if let Some(p) = panicked.into_inner().unwrap_or_else(|e| e.into_inner()) {
        resume_unwind(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Both ways of running: libtorch's team (found here: the test binary
    /// loads libtorch, and with it libgomp) and threads of our own.
    fn runners() -> [Option<GompParallel>; 2] {
        assert!(on_openmp_team(), "libgomp is loaded with libtorch");
        [gomp_parallel(), None]
    }

    #[test]
    fn every_chunk_runs_once() {
        for parallel in runners() {
            let seen = Mutex::new(Vec::new());
            let calls = AtomicUsize::new(0);
            run_chunks(parallel, 2, (0..100).collect(), |c: usize| {
                calls.fetch_add(1, Ordering::Relaxed);
                seen.lock().unwrap().push(c);
            });
            let mut seen = seen.into_inner().unwrap();
            seen.sort();
            assert_eq!(seen, (0..100).collect::<Vec<_>>());
            assert_eq!(calls.into_inner(), 100);
        }
    }

    #[test]
    fn a_panic_in_a_chunk_is_raised_again() {
        for parallel in runners() {
            let caught = std::panic::catch_unwind(|| {
                run_chunks(parallel, 2, vec![1, 2, 3], |c: i32| {
                    if c == 2 {
                        panic!("chunk {c} failed");
                    }
                })
            });
            let payload = caught.expect_err("the panic comes back");
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default();
            assert_eq!(msg, "chunk 2 failed");
        }
    }
}
