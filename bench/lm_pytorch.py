#!/usr/bin/python3
"""Training step time of the same GPT-style model in PyTorch, for bench/lm.sh: pre-LayerNorm blocks
(causal attention, tanh-GELU MLP), tied head, cross-entropy over 256 byte tokens, AdamW and
gradient clipping; random tokens (the step time does not depend on them). Prints the mean time per
step over all --steps steps (the first included, as distill's own figure).
    /usr/bin/python3 bench/lm_pytorch.py --layers 4 --dim 256 --heads 8 --ctx 128 --batch 16 --threads 1"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.fcproj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.NH = NH

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = [t.view(B, T, self.NH, C // self.NH).transpose(1, 2) for t in (q, k, v)]
        att = (q @ k.transpose(-1, -2)) / math.sqrt(C // self.NH)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        y = att.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, V, T, L, C, NH):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block(C, NH) for _ in range(L))
        self.lnf = nn.LayerNorm(C)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.blocks:
            x = b(x)
        return self.lnf(x) @ self.wte.weight.T


def main():
    p = argparse.ArgumentParser()
    for k, v in dict(layers=4, dim=256, heads=8, ctx=128, batch=16, steps=12, threads=1).items():
        p.add_argument("--" + k, type=int, default=v)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    m = GPT(256, a.ctx, a.layers, a.dim, a.heads)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    x = torch.randint(0, 256, (a.batch, a.ctx))
    y = torch.randint(0, 256, (a.batch, a.ctx))
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = F.cross_entropy(m(x).view(-1, 256), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
    print("%.1f ms/step (torch %s, %d thread%s)" % ((time.perf_counter() - t0) / a.steps * 1e3, torch.__version__,
                                                   a.threads, "s" if a.threads > 1 else ""))


if __name__ == "__main__":
    main()
