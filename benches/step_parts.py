"""Where a training step of the default one-digit captioned model goes, and what
the remaining elementwise work would cost written other ways (docs/benchmarks.md,
"The training step's two halves").

Run with the project's venv (`source build-env.sh`), nothing else running, with
MKL's AVX2 kernels and freed memory kept in the process as syncdraw-train has
them (its mkl_dispatch.rs and mallopt; bench.py's shim, and glibc's tunables):

    printf 'int mkl_serv_intel_cpu_true(void) { return 1; }\n' > /tmp/shim.c
    cc -shared -fPIC -o /tmp/shim.so /tmp/shim.c
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967295 \
        LD_PRELOAD=/tmp/shim.so python benches/step_parts.py [--threads 2] [--rounds 8]

Both halves are written in eager PyTorch with the model's shapes (batch 64,
10 frames of 64 x 64, T = 10, K = 10; encoder LSTM 256 reading 2 x 1,000 glimpse
values, h_dec and the 64 caption features; what-where decoder LSTMs of 128;
z 100) and timed forward and backward, a batch at a time:

  * the canvas half: per step, the read and write filterbanks (softmax rows,
    eq. 1-4), read(x) and read(sigmoid(c)) (eq. 5), the write (eq. 9) added to
    the canvas (eq. 10), and the BCE of the last canvas: the work that touches
    [64, 10, 64, 64] tensors;
  * the recurrent half: the encoder and decoder LSTMs and the linear layers
    (read window, posterior, write window, patch), with the glimpses stood in
    by a tensor of their size that depends on the read window.

Then pairs of ways to compute one piece, forward and backward, the first the
form training/src/model uses. Prints milliseconds (median of --rounds).
Eager PyTorch runs the same libtorch kernels as `syncdraw-train`; the Python
calls add a little to each half.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

B, N, K, A, T = 64, 10, 10, 64, 10


def timed(fn, rounds):
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def filterbank(p, size):
    """Softmax rows of eq. 1-4 from raw (g~, log delta~, log sigma^2), [B, N, 3]."""
    g = (p[..., 0:1].tanh() + 1) * (size + 1) / 2
    delta = p[..., 1:2].exp() * (size - 1) / (K - 1)
    s2 = p[..., 2:3].exp()
    offsets = torch.arange(1, K + 1, dtype=torch.float32) - K / 2 - 0.5
    mu = (g + offsets * delta).unsqueeze(3)
    a = torch.arange(1, size + 1, dtype=torch.float32)
    return ((a - mu) ** 2 * (-1 / (2 * s2.unsqueeze(3)))).softmax(-1)


def canvas_half():
    x = (torch.rand(B, N, A, A) > 0.9).float()
    p_read = torch.randn(T, B, N, 3, requires_grad=True)
    p_write = torch.randn(T, B, N, 3, requires_grad=True)
    patch = torch.randn(T, B, N, K, K, requires_grad=True)
    gamma = torch.rand(T, B, N, 1, 1, requires_grad=True)

    def step():
        canvas = torch.zeros(B, N, A, A) - 3.65
        glimpses = 0
        for t in range(T):
            f_row, f_col = filterbank(p_read[t], A), filterbank(p_read[t] * 0.9, A)
            shown = canvas.sigmoid()
            r_x = f_row @ x @ f_col.transpose(-1, -2) * gamma[t]
            r_s = f_row @ shown @ f_col.transpose(-1, -2) * gamma[t]
            glimpses = glimpses + (r_x - r_s).square().sum()
            w_row, w_col = filterbank(p_write[t], A), filterbank(p_write[t] * 0.9, A)
            canvas = canvas + w_row.transpose(-1, -2) @ (patch[t] / gamma[t]) @ w_col
        bce = F.binary_cross_entropy_with_logits(canvas, x, reduction="none").sum()
        (bce + glimpses).backward()

    return step


def recurrent_half():
    def param(*shape):
        return (torch.randn(*shape) * 0.05).requires_grad_()

    enc = (param(2320, 1024), param(256, 1024), param(1024))
    where = (param(132, 512), param(128, 512), param(512))
    what = (param(132, 512), param(128, 512), param(512))
    read_w, post, write_w, patch_w = param(256, 50), param(256, 200), param(128, 50), param(128, 1000)

    def lstm(x, weights, prev):
        wx, wh, b = weights
        gates = x @ wx + b
        if prev is not None:
            gates = gates + prev[0] @ wh
        i, f, g, o = gates.chunk(4, 1)
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        c = i * g if prev is None else f * prev[1] + i * g
        return o * c.tanh(), c

    glimpse_noise = torch.randn(T, B, 2000)

    def step():
        s, eps = torch.randn(B, 64), torch.randn(B, T, 100)
        h_dec = torch.zeros(B, 256)
        e_state = w_state = h_state = None
        total = 0
        for t in range(T):
            window = h_dec @ read_w
            r = glimpse_noise[t] * window.sum(1, keepdim=True) * 1e-3
            e_state = lstm(torch.cat([r, h_dec, s], 1), enc, e_state)
            q = e_state[0] @ post
            mu, log_sigma = q[:, :100], q[:, 100:]
            z = mu + log_sigma.exp() * eps[:, t]
            total = total + (mu.square() + (2 * log_sigma).exp() - 2 * log_sigma).sum()
            w_state = lstm(torch.cat([z, s[:, :32]], 1), where, w_state)
            h_state = lstm(torch.cat([z, s[:, 32:]], 1), what, h_state)
            total = total + (w_state[0] @ write_w).square().sum() + (h_state[0] @ patch_w).square().sum() * 1e-3
            h_dec = torch.cat([w_state[0], h_state[0]], 1)
        total.backward()

    return step


def pairs():
    """(piece, [(form, fn)]): the first form is the one training uses."""
    mu = (torch.rand(B, N, K, 1) * 80 - 8).requires_grad_()
    s2 = (torch.rand(B, N, 1, 1) * 3 + 0.2).requires_grad_()
    a = torch.arange(1, A + 1, dtype=torch.float32)
    g_fb = torch.randn(B, N, K, A)

    def fb_softmax():
        ((a - mu) ** 2 * (-1 / (2 * s2))).softmax(-1).mul(g_fb).sum().backward()

    def fb_exp():
        e = (a - mu) ** 2 * (-1 / (2 * s2))
        with torch.no_grad():  # a row's largest exponent, from its nearest pixel
            top = (mu.clamp(1, A).round() - mu) ** 2 * (-1 / (2 * s2))
        f = (e - top).exp()
        (f / f.sum(-1, keepdim=True)).mul(g_fb).sum().backward()

    c = (torch.randn(B, N, A, A) * 3).requires_grad_()
    x = (torch.rand(B, N, A, A) > 0.9).float()
    g_c = torch.randn(B, N, A, A)

    def sig():
        c.sigmoid().backward(g_c)

    def sig_exp():
        (1 / (1 + (-c).exp())).backward(g_c)

    def sig_tanh():
        ((c * 0.5).tanh() * 0.5 + 0.5).backward(g_c)

    def bce():
        F.binary_cross_entropy_with_logits(c, x, reduction="none").sum().backward()

    def bce_softplus():
        (F.softplus(c) - x * c).sum().backward()

    rows = torch.randn(B * N, A, K, requires_grad=True)
    w_col = torch.randn(B * N, K, A, requires_grad=True)
    canvas = torch.randn(B * N, A, A, requires_grad=True)

    def write_add():
        (canvas + rows @ w_col).backward(g_c.view(B * N, A, A))

    def write_baddbmm():
        torch.baddbmm(canvas, rows, w_col).backward(g_c.view(B * N, A, A))

    ins = [torch.randn(B, 2320) for _ in range(T)]
    outs = [torch.randn(B, 1024) for _ in range(T)]

    def grad_per_step():  # what autograd does for a weight used at every step
        acc = None
        for i, o in zip(ins, outs):
            d = i.t() @ o
            acc = d if acc is None else acc + d
        return acc

    def grad_batched():
        return torch.cat(ins).t() @ torch.cat(outs)

    return [
        ("filterbank rows [64, 10, 10, 64]", [("softmax", fb_softmax), ("exp with the row maximum found analytically", fb_exp)]),
        ("sigmoid of the canvas", [("sigmoid", sig), ("1 / (1 + exp(-c))", sig_exp), ("tanh form", sig_tanh)]),
        ("BCE of the canvas", [("binary_cross_entropy_with_logits", bce), ("softplus(c) - x c", bce_softplus)]),
        ("write added to the canvas", [("add", write_add), ("baddbmm", write_baddbmm)]),
        ("encoder weight gradient over T steps", [("one product per step, summed", grad_per_step),
                                                   ("one product over all steps", grad_batched)]),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.rounds} rounds, ms")
    canvas, recurrent = timed(canvas_half(), args.rounds), timed(recurrent_half(), args.rounds)
    print(f"canvas half, forward and backward, a batch of {B}: {canvas:.1f}")
    print(f"recurrent half, forward and backward, a batch of {B}: {recurrent:.1f}")
    print(f"canvas share of the two: {canvas / (canvas + recurrent):.0%}")
    for piece, forms in pairs():
        print(piece)
        for name, fn in forms:
            print(f"  {name:48s} {timed(fn, args.rounds * 3):8.2f}")


if __name__ == "__main__":
    main()
