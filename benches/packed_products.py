"""The encoder's products in a training step, libtorch's against MKL's packed
weights (docs/benchmarks.md, "The encoder's products from packed weights").

The fused training step multiplies the encoder LSTM's input weights W_x
(2,320 x 1,024 for the default one-digit captioned model) by a batch of 64 rows
at each of the T = 10 drawing steps, forward (x W_x) and backward (dP W_x^T).
An ordinary product packs W_x into MKL's internal layout at every call;
training/src/fused/gemm.rs packs it once per training step
(cblas_sgemm_pack) and multiplies from the packed copy (cblas_sgemm_compute).
This times both ways, and the packing itself, through libtorch's own MKL
(ctypes on libtorch_cpu.so), with MKL's AVX2 kernels on AMD as syncdraw-train
has them:

    printf 'int mkl_serv_intel_cpu_true(void) { return 1; }\\n' > /tmp/shim.c
    cc -shared -fPIC -o /tmp/shim.so /tmp/shim.c
    source build-env.sh
    LD_PRELOAD=/tmp/shim.so python benches/packed_products.py [--threads 2] [--rounds 5]

Prints milliseconds per product (median of --rounds rounds of 40 calls).
"""
import argparse
import ctypes
import os
import statistics
import time

import torch

ROW_MAJOR, NO_TRANS, TRANS, PACKED, B_MATRIX = 101, 111, 112, 151, 162


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
    lib.cblas_sgemm_pack_get_size.restype = ctypes.c_size_t
    ptr = lambda t: ctypes.c_void_p(t.data_ptr())
    m, k, n = args.batch, 2320, 1024
    w = torch.randn(k, n)
    x, dp = torch.randn(m, k), torch.randn(m, n)
    out, dx = torch.empty(m, n), torch.empty(m, k)

    def packed(trans, rows, cols, inner):
        size = lib.cblas_sgemm_pack_get_size(B_MATRIX, rows, cols, inner)
        buf = torch.empty(size // 4 + 16)
        pack = lambda: lib.cblas_sgemm_pack(ROW_MAJOR, B_MATRIX, trans, rows, cols, inner,
                                            ctypes.c_float(1.0), ptr(w), n, ptr(buf))
        pack()
        return buf, pack

    fwd_buf, pack_fwd = packed(NO_TRANS, m, n, k)
    bwd_buf, _ = packed(TRANS, m, k, n)
    fwd_packed = lambda: lib.cblas_sgemm_compute(ROW_MAJOR, NO_TRANS, PACKED, m, n, k, ptr(x), k,
                                                 ptr(fwd_buf), n, ctypes.c_float(0.0), ptr(out), n)
    bwd_packed = lambda: lib.cblas_sgemm_compute(ROW_MAJOR, NO_TRANS, PACKED, m, k, n, ptr(dp), n,
                                                 ptr(bwd_buf), k, ctypes.c_float(0.0), ptr(dx), k)
    fwd_packed()
    bwd_packed()
    assert (out - x @ w).abs().max() < 1e-3 and (dx - dp @ w.t()).abs().max() < 1e-3, "packed products differ"

    def timed(f, calls=40):
        rounds = []
        for _ in range(args.rounds):
            f()
            t0 = time.perf_counter()
            for _ in range(calls):
                f()
            rounds.append((time.perf_counter() - t0) / calls * 1e3)
        return statistics.median(rounds)

    gflop = 2 * m * k * n / 1e9
    rows = [
        ("x W_x, libtorch (torch.mm)", timed(lambda: torch.mm(x, w, out=out))),
        ("x W_x, packed W_x", timed(fwd_packed)),
        ("dP W_x^T, libtorch (torch.mm)", timed(lambda: torch.mm(dp, w.t(), out=dx))),
        ("dP W_x^T, packed W_x^T", timed(bwd_packed)),
    ]
    print(f"batch {m}, W_x {k} x {n}, {args.threads} thread(s), median of {args.rounds} rounds")
    for name, ms in rows:
        print(f"  {name:32s} {ms:6.2f} ms  {gflop / ms * 1e3:5.0f} GFLOP/s")
    print(f"  {'packing W_x once':32s} {timed(pack_fwd, 10):6.2f} ms")


if __name__ == "__main__":
    main()
