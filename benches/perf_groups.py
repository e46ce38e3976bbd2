"""Groups a `perf report` of a training run by kind of work (docs/benchmarks.md,
"Where a training step's time goes"):

    perf record -F 499 -g -o perf.data -- target/release/syncdraw-train --threads 1 \
        train --run-dir R --digits 1 --steps 30 --log-every 10 --eval-every 0
    perf report -i perf.data --no-children --sort symbol --stdio -g none | python3 benches/perf_groups.py

Prints the share of samples per group, largest first.
"""
import collections
import re
import sys

# First match wins: (group, test on the symbol, test on the kernel flag).
GROUPS = [
    ("GEMM (MKL sgemm, with its packing and copies)", lambda s: "gemm" in s.lower()),
    ("elementwise mul", lambda s: "mul_kernel" in s),
    ("elementwise add, sub", lambda s: "add_kernel" in s or "sub_" in s),
    ("exp", lambda s: "exp" in s.lower()),
    ("clamp, max and their backward (where, eq)",
     lambda s: "where_kernel" in s or "eq_kernel" in s or "clamp" in s or ("max" in s.lower() and "kernel" in s)),
    ("sigmoid, tanh", lambda s: "sigmoid" in s or "tanh" in s),
    ("sums, reductions", lambda s: "sum" in s or "reduce" in s.lower()),
    ("copies (cat, contiguous, memcpy)",
     lambda s: any(w in s for w in ("copy", "cat", "memcpy", "memset", "memmove"))),
    ("neg, div, pow", lambda s: any(w in s for w in ("neg", "div", "reciprocal", "pow"))),
    ("BCE, log", lambda s: "binary_cross" in s or "log" in s),
    ("allocator", lambda s: "malloc" in s or "free" in s or "alloc" in s.lower()),
]


def main():
    shares = collections.Counter()
    for line in sys.stdin:
        m = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(.*)", line)
        if not m:
            continue
        share, space, sym = float(m.group(1)), m.group(2), m.group(3)
        group = next((g for g, test in GROUPS if test(sym)), None)
        if group is None:
            group = "kernel (page faults, memory)" if space == "k" else "other"
        shares[group] += share
    for group, share in shares.most_common():
        print(f"{share:6.1f} %  {group}")


if __name__ == "__main__":
    main()
