"""Eager-PyTorch reference implementation of the syncdraw Sync-DRAW model.

This is what a user would write without syncdraw: the same model as
training/src/model/*.rs (same equations, same parameter layout, same weights), in
plain eager PyTorch. It exists for the benchmark (benches/bench.py) and is checked
there against the ONNX export before anything is timed.

Layout it follows (training/src/model/):
  * layers.rs: Linear y = x W + b with W stored [in, out]; LSTM cell with
    wx [in, 4H], wh [H, 4H], one bias b [4H], gates in the order i, f, g, o; the
    first step starts from the zero state (no h W_h term, c = i * g).
  * caption.rs: slots (format 2): one embedding table per slot kind
    (`decoder.caption.slot_<name>`, row 0 an absent object), S = the embeddings of
    every slot of every object concatenated in caption order, and per role the
    where (motion) and what (digit) slots alone; words (format 1): embedding ->
    LSTM over L tokens, padded positions (id 0) keep the previous state, S = the
    last hidden state.
  * decoder.rs: joint: one LSTM `decoder.dec` reads [z, S]; what-where: LSTM
    `decoder.dec_where` reads [z, S_where] and gives the write window, LSTM
    `decoder.dec_what` reads [z, S_what] and gives the write patch; h_dec =
    [h_where, h_what].
  * filterbank.rs: window = linear(h) reshaped [B, F, 5] -> (g~_p, g~_q, log s^2,
    log d~, log gamma), each raw value r squashed to b tanh(r / b) when the model
    has bounded windows (b = 1.2, 1.2, 3, 1.5, 4); g = (size+1)/2 (g~+1);
    delta = (max(A,B)-1)/(K-1) exp(d~);
    F[u, a] = exp(max((a - mu_u)^2 / (-2 s^2), -80)) / max(sum_a, 1e-8), the
    exponents of each row first shifted by their maximum when the model has a
    stable filterbank (written out as a user would: amax, subtract, exp, sum).
  * write.rs: write = F_p^T (w / gamma) F_q per frame; decoder.rs: canvas += write
    from c^0 (zero, or the learned `decoder.canvas0` logit), video = sigmoid(canvas).
  * read.rs / encoder.rs / syncdraw.rs: read = gamma F_p x F_q^T; encoder input
    [read(x), read(x_hat), h_dec^{t-1}, S]; posterior (mu, log sigma); loss = BCE
    (from logits, summed over pixels) + KL summed over steps; Adam with global
    gradient-norm clipping (adam.rs: lr 1e-3, betas (0.5, 0.999), clip 10).

Only the `syncdraw` and `global` variants are implemented (the shipped models are
`syncdraw`); `baseline` raises.

Checkpoints are safetensors files read by hand (8-byte little-endian header length,
JSON header, raw little-endian data), so the `safetensors` package is not needed.
"""
import json
import struct

import numpy as np
import torch
import torch.nn.functional as F

_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U8": np.uint8,
           "I32": np.int32, "F16": np.float16}


def read_safetensors(path):
    """{name: numpy array} for every tensor in a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        arr = np.frombuffer(data[base + start:base + end], dtype=_DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).copy()
    return out


def load_checkpoint(path):
    """(meta dict, {name: numpy array}) of a syncdraw-train checkpoint."""
    tensors = read_safetensors(path)
    meta = json.loads(bytes(tensors.pop("meta.json").tobytes()).decode())
    weights = {k: v for k, v in tensors.items() if not k.startswith("adam.")}
    return meta, weights


class SyncDrawRef:
    """The Sync-DRAW model in eager PyTorch, parameters from a checkpoint."""

    def __init__(self, checkpoint, device="cpu", requires_grad=False):
        meta, weights = load_checkpoint(checkpoint)
        self.meta = meta
        c = meta["model"]
        if c["variant"] not in ("syncdraw", "global"):
            raise NotImplementedError(f"variant {c['variant']} is not in the reference")
        if c.get("draw_order", "together") != "together":
            raise NotImplementedError("objects drawn on layers are not in the reference")
        self.c = c
        self.N, self.A, self.B = c["frames"], c["height"], c["width"]
        self.T, self.z_dim = c["timesteps"], c["z_dim"]
        self.groups = self.N if c["variant"] == "syncdraw" else 1
        self.cap = c["caption"]
        self.what_where = c.get("decoder", "joint") == "what-where"
        self.bounded = c.get("bounded_windows", False)
        self.stable = c.get("stable_filterbank", False)
        self.p = {k: torch.tensor(v, device=device, requires_grad=requires_grad)
                  for k, v in weights.items()}
        self.device = device
        # Constants of the filterbanks, made once.
        self._consts = {}

    # --- building blocks (layers.rs) -------------------------------------------
    def linear(self, x, name):
        return x @ self.p[name + ".w"] + self.p[name + ".b"]

    def lstm(self, x, name, prev):
        gates = x @ self.p[name + ".wx"] + self.p[name + ".b"]
        if prev is not None:
            gates = gates + prev[0] @ self.p[name + ".wh"]
        i, f, g, o = gates.chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = i * g if prev is None else f * prev[1] + i * g
        h = o * torch.tanh(c)
        return h, c

    # --- caption.rs ------------------------------------------------------------
    def caption_embedding(self, ids):
        """S, and (S_where, S_what) for a what-where decoder; None if unconditional."""
        if self.cap is None or ids is None:
            return None
        if "slots" in self.cap:
            slots = self.cap["slots"]
            parts, where, what = [], [], []
            for o in range(self.cap["objects"]):
                for i, kind in enumerate(slots):
                    v = F.embedding(ids[:, o * len(slots) + i],
                                    self.p["decoder.caption.slot_" + kind["name"]])
                    (where if kind["role"] == "where" else what).append(v)
                    parts.append(v)
            s = torch.cat(parts, dim=1)
            if self.what_where:
                return s, torch.cat(where, dim=1), torch.cat(what, dim=1)
            return s, s, s
        s = self._words(ids)
        return s, s, s

    def _words(self, ids):
        words = F.embedding(ids, self.p["decoder.caption.embedding"])  # [B, L, E]
        mask = (ids != 0).to(words.dtype)
        state = None
        for l in range(self.cap["length"]):
            m = mask[:, l:l + 1]
            h, c = self.lstm(words[:, l], "decoder.caption.lstm", state)
            if state is None:
                state = (m * h, m * c)
            else:
                state = (state[0] + m * (h - state[0]), state[1] + m * (c - state[1]))
        return state[0]

    # --- filterbank.rs ---------------------------------------------------------
    def _const(self, key, values, shape):
        if key not in self._consts:
            self._consts[key] = torch.tensor(values, dtype=torch.float32,
                                             device=self.device).reshape(shape)
        return self._consts[key]

    def window(self, name, h, k):
        raw = self.linear(h, name).reshape(-1, self.groups, 5)
        if self.bounded:
            b = torch.tensor([1.2, 1.2, 3.0, 1.5, 4.0], device=raw.device)
            raw = torch.tanh(raw / b) * b
        gr, gc, ls2, ld, lg = (raw[:, :, i:i + 1] for i in range(5))
        k_den = float(max(k - 1, 1))
        g_row = (gr + 1.0) * ((self.A + 1) / 2.0)
        g_col = (gc + 1.0) * ((self.B + 1) / 2.0)
        sigma2 = torch.exp(ls2)
        delta = torch.exp(ld) * ((max(self.A, self.B) - 1) / k_den)
        gamma = torch.exp(lg)
        return g_row, g_col, sigma2, delta, gamma

    def filterbank(self, g, delta, sigma2, k, size):
        offsets = self._const(("off", k), [u - k / 2.0 - 0.5 for u in range(1, k + 1)], (1, 1, k))
        mu = (g + offsets * delta).unsqueeze(3)  # [B, F, K, 1]
        a = self._const(("coords", size), [float(x) for x in range(1, size + 1)], (1, 1, 1, size))
        d = a - mu
        e = (d * d) * (1.0 / (sigma2.unsqueeze(3) * -2.0))
        if self.stable:  # each row's exponents shifted by their maximum
            e = e - e.amax(dim=3, keepdim=True)
        f = torch.exp(e.clamp_min(-80.0))
        z = f.sum(dim=3, keepdim=True).clamp_min(1e-8)
        return f * (1.0 / z)  # [B, F, K, size]

    def filterbanks(self, win, k):
        g_row, g_col, sigma2, delta, _ = win
        return (self.filterbank(g_row, delta, sigma2, k, self.A),
                self.filterbank(g_col, delta, sigma2, k, self.B))

    # --- write.rs / read.rs ----------------------------------------------------
    def write(self, h_where, h_what):
        k = self.c["write_k"]
        win = self.window("decoder.write_window", h_where, k)
        f_row, f_col = self.filterbanks(win, k)
        patch = self.linear(h_what, "decoder.write_patch").reshape(-1, self.N, k, k)
        patch = patch / win[4].unsqueeze(3)  # w / gamma
        rows = f_row.transpose(2, 3) @ patch  # [B, N, A, K]
        return rows @ f_col  # [B, N, A, B]

    def read(self, win, video, k):
        f_row, f_col = self.filterbanks(win, k)
        rows = f_row @ video  # [B, N, K, B]
        glimpse = rows @ f_col.transpose(2, 3)  # [B, N, K, K]
        return glimpse * win[4].unsqueeze(3)

    # --- decoder.rs ------------------------------------------------------------
    def dec_step(self, z_t, s, prev):
        """The decoder LSTM states after a step: [dec] or [where, what]."""
        if not self.what_where:
            x = z_t if s is None else torch.cat([z_t, s[0]], dim=1)
            return [self.lstm(x, "decoder.dec", prev[0] if prev else None)]
        states = []
        for i, (name, part) in enumerate((("decoder.dec_where", 1), ("decoder.dec_what", 2))):
            x = z_t if s is None else torch.cat([z_t, s[part]], dim=1)
            states.append(self.lstm(x, name, prev[i] if prev else None))
        return states

    @staticmethod
    def h_dec(states):
        return states[0][0] if len(states) == 1 else torch.cat([h for h, _ in states], dim=1)

    def dec_write(self, states):
        return self.write(states[0][0], states[-1][0])

    def generate(self, z, caption=None):
        """Video sigmoid(c_T) [B, N, 1, A, B] for z [B, T, z_dim] and ids [B, L]."""
        s = self.caption_embedding(caption)
        state, canvas = None, None
        for t in range(self.T):
            state = self.dec_step(z[:, t], s, state)
            w = self.dec_write(state)
            canvas = self.canvas0(w) + w if canvas is None else canvas + w
        return torch.sigmoid(canvas).reshape(-1, self.N, 1, self.A, self.B)

    def canvas0(self, like):
        """c^0: zeros, or the learned initial logit (canvas_init) everywhere."""
        c0 = torch.zeros_like(like)
        return c0 + self.p["decoder.canvas0"] if "decoder.canvas0" in self.p else c0

    # --- syncdraw.rs -----------------------------------------------------------
    def loss(self, x, caption, eps):
        """Mean negative ELBO (BCE + KL) of videos x [B, N, A, B] in [0, 1]."""
        c = self.c
        k = c["read_k"]
        batch = x.shape[0]
        s = self.caption_embedding(caption)
        h_dec_prev = torch.zeros(batch, c["dec_size"], device=x.device)
        dec_state = enc_state = None
        canvas = self.canvas0(x)
        kl = torch.zeros(batch, device=x.device)
        for t in range(self.T):
            x_hat = x - torch.sigmoid(canvas)
            win = self.window("encoder.read_window", h_dec_prev, k)
            r_x = self.read(win, x, k).reshape(batch, -1)
            r_hat = self.read(win, x_hat, k).reshape(batch, -1)
            parts = [r_x, r_hat, h_dec_prev] + ([s[0]] if s is not None else [])
            enc_state = self.lstm(torch.cat(parts, dim=1), "encoder.enc", enc_state)
            q = self.linear(enc_state[0], "encoder.posterior")
            mu, log_sigma = q[:, :self.z_dim], q[:, self.z_dim:]
            sigma = torch.exp(log_sigma)
            z = mu + sigma * eps[:, t]
            kl = kl + 0.5 * (mu.square() + sigma.square() - 2.0 * log_sigma - 1.0).sum(dim=1)
            dec_state = self.dec_step(z, s, dec_state)
            canvas = canvas + self.dec_write(dec_state)
            h_dec_prev = self.h_dec(dec_state)
        rec = F.binary_cross_entropy_with_logits(canvas, x, reduction="none").reshape(batch, -1).sum(1)
        return (rec + kl).mean()


class Trainer:
    """One optimizer step as eager PyTorch does it: loss, backward, clip, Adam.
    bf16=True runs the loss under CPU autocast to bfloat16 (PyTorch's own mixed
    precision: matrix products in bf16, parameters and optimizer in f32)."""

    def __init__(self, model, lr=1e-3, betas=(0.5, 0.999), clip=10.0, bf16=False):
        self.model = model
        self.bf16 = bf16
        self.params = [model.p[k] for k in sorted(model.p)]
        self.opt = torch.optim.Adam(self.params, lr=lr, betas=betas, eps=1e-8)
        self.clip = clip

    def step(self, x, caption, eps):
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.model.loss(x, caption, eps)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.opt.step()
        return loss.detach()


if __name__ == "__main__":
    import argparse
    import time

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    m = SyncDrawRef(args.checkpoint)
    z = torch.randn(args.batch, m.T, m.z_dim)
    length = (m.cap["objects"] * len(m.cap["slots"]) if m.cap and "slots" in m.cap
              else m.cap["length"] if m.cap else 0)
    ids = torch.ones(args.batch, length, dtype=torch.int64) if m.cap else None
    with torch.no_grad():
        t0 = time.perf_counter()
        v = m.generate(z, ids)
        dt = time.perf_counter() - t0
    print(f"video {tuple(v.shape)} in {dt * 1e3:.1f} ms")
