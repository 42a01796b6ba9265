#!/usr/bin/python3
"""Golden values from PyTorch for the language model of include/distill/lm.h: a tiny GPT-style
decoder (token + position embeddings, pre-LayerNorm blocks with causal multi-head attention and a
tanh-GELU MLP, final LayerNorm, tied output head) with random parameters, its logits, mean
cross-entropy and the gradient of that loss with respect to every parameter. Read by
tests/unit/test_lm_ops.c. Run by hand from the repo root after changing a case:
    /usr/bin/python3 tests/golden/gen_lm.py
and commit tests/golden/lm/*.kdgf. Deterministic (fixed seed).

Parameters travel as one flat array in the order of the C size table (lm.h): wte (V,C), wpe
(ctx,C), per layer ln1.w, ln1.b, qkv.w (3C,C), qkv.b, proj.w (C,C), proj.b, ln2.w, ln2.b,
fc.w (4C,C), fc.b, fcproj.w (C,4C), fcproj.b, then lnf.w, lnf.b. Inputs are float32 values;
PyTorch computes in float64 and the results are rounded once to float32.

File format: the KDGF container of tests/golden/gen_ops.py (magic "KDGF", version 1, count, then
named float32 arrays: u32 name_len, name, u32 ndim, i32 dims[ndim], f32 data)."""
import math
import os
import struct

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lm")
DT = torch.float64


def write(path, arrays):
    parts = [b"KDGF", struct.pack("<II", 1, len(arrays))]
    for k, v in arrays.items():
        t = (v if torch.is_tensor(v) else torch.tensor(float(v))).detach().to(torch.float32).contiguous()
        parts.append(struct.pack("<I", len(k)) + k.encode())
        parts.append(struct.pack("<I", t.dim()) + struct.pack("<%di" % t.dim(), *t.shape))
        parts.append(t.numpy().astype("<f4").tobytes())
    with open(path, "wb") as f:
        f.write(b"".join(parts))


def shapes(V, ctx, L, C):
    s = [(V, C), (ctx, C)]
    for _ in range(L):
        s += [(C,), (C,), (3 * C, C), (3 * C,), (C, C), (C,), (C,), (C,), (4 * C, C), (4 * C,), (C, 4 * C), (C,)]
    return s + [(C,), (C,)]


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def model(flat, tok, V, ctx, L, C, NH):
    views, off = [], 0
    for s in shapes(V, ctx, L, C):
        n = 1
        for d in s:
            n *= d
        views.append(flat[off:off + n].view(*s))
        off += n
    B, T = tok.shape
    ln = lambda x, w, b: torch.nn.functional.layer_norm(x, (C,), w, b, 1e-5)
    wte, wpe = views[0], views[1]
    x = wte[tok] + wpe[:T]
    hs = C // NH
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(L):
        p = views[2 + 12 * l: 14 + 12 * l]
        h = ln(x, p[0], p[1])
        qkv = h @ p[2].T + p[3]
        q, k, v = qkv.split(C, dim=2)
        q, k, v = [t.view(B, T, NH, hs).transpose(1, 2) for t in (q, k, v)]
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ p[4].T + p[5]
        h = ln(x, p[6], p[7])
        x = x + gelu_tanh(h @ p[8].T + p[9]) @ p[10].T + p[11]
    x = ln(x, views[-2], views[-1])
    return x @ wte.T


def case(name, V, ctx, L, C, NH, B, T, seed):
    torch.manual_seed(seed)
    n = sum(math.prod(s) for s in shapes(V, ctx, L, C))
    flat32 = torch.randn(n, dtype=torch.float32) * 0.3
    # LayerNorm weights around 1 so the case resembles a real model
    sh, off, ln_w = shapes(V, ctx, L, C), 0, {2 + 12 * l for l in range(L)} | {8 + 12 * l for l in range(L)}
    for i, s in enumerate(sh):
        k = math.prod(s)
        if i in ln_w or i == len(sh) - 2:
            flat32[off:off + k] += 1.0
        off += k
    flat = flat32.to(DT).requires_grad_(True)
    tok = torch.randint(0, V, (B, T))
    tgt = torch.randint(0, V, (B, T))
    logits = model(flat, tok, V, ctx, L, C, NH)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1))
    loss.backward()
    write(os.path.join(OUT, name + ".kdgf"), {
        "config": torch.tensor([V, ctx, L, C, NH], dtype=DT), "B": B, "T": T,
        "params": flat, "tokens": tok.to(DT), "targets": tgt.to(DT),
        "logits": logits, "loss": loss, "dparams": flat.grad})
    print(name, "loss", float(loss))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    case("tiny", V=32, ctx=8, L=2, C=16, NH=2, B=2, T=6, seed=1)
    case("one_head", V=20, ctx=5, L=1, C=8, NH=1, B=3, T=5, seed=2)
