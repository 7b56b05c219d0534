#!/usr/bin/env python3
"""PyTorch-on-CPU baseline for Sputnik's training step (bench/RESULTS.md, "Training throughput").

The same llama-style decoder as Sputnik's TrainConfig presets (pre-RMSNorm, GQA with adjacent-pair RoPE, SwiGLU,
untied output, no biases), the same batch shape (B sequences x T tokens, loss on every position after the first 20,
as bench/Sputnik.Bench `train` does), AdamW, gradient clipping at 1.0, and the same thread count.

usage: python3 bench/train-pytorch.py [preset] [threads] [B] [T] [steps]
"""
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {  # dim, layers, heads, kv_heads, ffn, max_seq  (TrainConfig.Preset)
    "tiny-r1": (128, 4, 4, 2, 384, 256),
    "small-r1": (256, 6, 8, 4, 704, 256),
    "micro": (64, 2, 4, 2, 128, 96),
}
VOCAB = 103


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.w


def rope(x, cos, sin):
    # x [B, H, T, hd]; adjacent pairs (x0, x1) rotated, as llama.cpp's "normal" rope and TrainOps.RopeForward
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, d, h, hk, ffn):
        super().__init__()
        self.h, self.hk, self.hd = h, hk, d // h
        self.n1, self.n2 = RMSNorm(d), RMSNorm(d)
        self.wq = nn.Linear(d, h * self.hd, bias=False)
        self.wk = nn.Linear(d, hk * self.hd, bias=False)
        self.wv = nn.Linear(d, hk * self.hd, bias=False)
        self.wo = nn.Linear(h * self.hd, d, bias=False)
        self.gate = nn.Linear(d, ffn, bias=False)
        self.up = nn.Linear(d, ffn, bias=False)
        self.down = nn.Linear(ffn, d, bias=False)

    def forward(self, x, cos, sin, mask):
        bsz, t, _ = x.shape
        y = self.n1(x)
        q = self.wq(y).view(bsz, t, self.h, self.hd).transpose(1, 2)
        k = self.wk(y).view(bsz, t, self.hk, self.hd).transpose(1, 2)
        v = self.wv(y).view(bsz, t, self.hk, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        rep = self.h // self.hk
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask
        o = (att.softmax(-1) @ v).transpose(1, 2).reshape(bsz, t, -1)
        x = x + self.wo(o)
        y = self.n2(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y))


class Model(nn.Module):
    def __init__(self, d, layers, h, hk, ffn, max_seq):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, d)
        self.blocks = nn.ModuleList(Block(d, h, hk, ffn) for _ in range(layers))
        self.norm = RMSNorm(d)
        self.out = nn.Linear(d, VOCAB, bias=False)
        hd = d // h
        inv = 10000.0 ** (-torch.arange(0, hd, 2).float() / hd)
        ang = torch.arange(max_seq).float()[:, None] * inv[None, :]
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())

    def forward(self, tokens):
        t = tokens.shape[1]
        cos, sin = self.cos[:t], self.sin[:t]
        mask = torch.full((t, t), float("-inf")).triu(1)
        x = self.emb(tokens)
        for blk in self.blocks:
            x = blk(x, cos, sin, mask)
        return self.out(self.norm(x))


def main():
    preset = sys.argv[1] if len(sys.argv) > 1 else "tiny-r1"
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    bsz = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    t = int(sys.argv[4]) if len(sys.argv) > 4 else 160
    steps = int(sys.argv[5]) if len(sys.argv) > 5 else 20
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model = Model(*PRESETS[preset])
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    tokens = torch.randint(0, VOCAB, (bsz, t))
    targets = torch.roll(tokens.flatten(), -1).view(bsz, t).clone()
    targets[:, :20] = -1  # prompt positions carry no loss, as in the C# bench
    total = 0.0
    for s in range(-3, steps):
        t0 = time.perf_counter()
        logits = model(tokens)
        loss = F.cross_entropy(logits.view(-1, VOCAB), targets.view(-1), ignore_index=-1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if s >= 0:
            total += time.perf_counter() - t0
    print(f"pytorch {torch.__version__} {preset} params {params:,} B {bsz} T {t} threads {threads}: "
          f"{bsz * t * steps / total:.0f} tokens/s ({total / steps * 1e3:.1f} ms/step)")


if __name__ == "__main__":
    main()
