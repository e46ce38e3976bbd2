//! How MKL chooses its matrix kernels on CPUs not made by Intel.
//!
//! libtorch carries Intel MKL, linked into `libtorch_cpu.so`, for its float
//! matrix products. Before it picks a kernel for the instruction set the CPU
//! reports, MKL asks `mkl_serv_intel_cpu_true` whether the CPU's vendor is Intel
//! (a CPUID vendor check); on any other CPU (the AMD EPYC machines we train on)
//! it answers no and MKL keeps to generic code, slowest on the attention's
//! batched small products (eq. 5 and eq. 9: 640 products of [10 x 64] by
//! [64 x 64] and their transposes per step). What the answer is worth:
//! docs/benchmarks.md, "MKL's kernels on AMD".
//!
//! This binary defines the function itself, in its dynamic symbol table
//! (build.rs), where the dynamic linker looks before it
//! looks in libtorch; MKL's own lookup then finds this answer. It says yes, so
//! MKL chooses kernels by instruction set alone: the kernels are the same
//! AVX2 code an Intel CPU with these instructions runs. Set
//! `SYNCDRAW_MKL_VENDOR_CHECK=1` to get MKL's own answer back (the comparison
//! in the benchmarks, or a CPU where the choice misbehaves).

/// The variable that restores MKL's vendor check.
pub const VENDOR_CHECK_VAR: &str = "SYNCDRAW_MKL_VENDOR_CHECK";

/// MKL's question: may it use the kernels it tuned for Intel CPUs?
///
/// Called by MKL (inside libtorch) through the dynamic linker, never from Rust.
#[cfg(target_arch = "x86_64")]
#[no_mangle]
pub extern "C" fn mkl_serv_intel_cpu_true() -> std::os::raw::c_int {
    // Decided once, as MKL's own function caches its answer: MKL may ask often.
    static ANSWER: std::sync::OnceLock<std::os::raw::c_int> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        let keep_vendor_check = std::env::var_os(VENDOR_CHECK_VAR).is_some_and(|v| v == "1");
        if keep_vendor_check {
            std::os::raw::c_int::from(vendor_is_intel())
        } else {
            1
        }
    })
}

/// CPUID leaf 0's vendor string is "GenuineIntel", as MKL's own check asks.
#[cfg(target_arch = "x86_64")]
fn vendor_is_intel() -> bool {
    let id = std::arch::x86_64::__cpuid(0);
    let mut vendor = [0u8; 12];
    vendor[0..4].copy_from_slice(&id.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&id.edx.to_le_bytes());
    vendor[8..12].copy_from_slice(&id.ecx.to_le_bytes());
    &vendor == b"GenuineIntel"
}
