#!/usr/bin/python3
"""The PyTorch peer of bench_step: the same GPT-2 style model and training step in PyTorch eager
on CPU, timed the same way (warm-up steps, then the median of the timed steps), with the same FLOP
formula, so the two tokens/s figures compare directly.

Run with Debian's PyTorch (apt-get install -y python3-torch), which lives in /usr/bin/python3's
dist-packages:  /usr/bin/python3 bench/pytorch_step.py --batch 8 --seq 256 --threads 2
"""
import argparse
import functools
import math
import os
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # The bench-gpt2 preset of models/model_config.cpp.
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--width", type=int, default=384)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--context", type=int, default=256, help="learned position table size")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--dtype", choices=["fp32", "fp64"], default="fp32")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--attention", choices=["auto", "sdpa", "manual"], default="auto",
                   help="auto: F.scaled_dot_product_attention when this PyTorch has it (>= 2.0)")
    return p.parse_args()


args = parse_args()
if args.seq > args.context:
    sys.exit(f"pytorch_step: --seq {args.seq} exceeds --context {args.context}")
# Before importing torch: OpenBLAS (torch's BLAS on Debian) reads these when it loads.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from blas_report import loaded_blas  # noqa: E402

torch.set_num_threads(args.threads)
have_sdpa = hasattr(F, "scaled_dot_product_attention")
if args.attention == "sdpa" and not have_sdpa:
    sys.exit(f"pytorch_step: --attention sdpa needs PyTorch >= 2.0 (this is {torch.__version__})")
use_sdpa = have_sdpa and args.attention != "manual"


@functools.lru_cache(maxsize=None)
def causal_mask(T):
    return torch.ones(T, T, dtype=torch.bool).triu(1)  # True above the diagonal: hidden


class Block(nn.Module):
    """GPT-2 block: pre-LayerNorm, fused qkv with bias, causal attention, GELU (tanh) MLP 4x."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width, eps=1e-5)
        self.c_attn = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)
        self.ln_2 = nn.LayerNorm(width, eps=1e-5)
        self.c_fc = nn.Linear(width, 4 * width)
        self.mlp_proj = nn.Linear(4 * width, width)

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        if use_sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
            mask = causal_mask(T)
            y = scores.masked_fill(mask, float("-inf")).softmax(dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.wte = nn.Embedding(a.vocab, a.width)
        self.wpe = nn.Embedding(a.context, a.width)
        self.blocks = nn.ModuleList(Block(a.width, a.heads) for _ in range(a.layers))
        self.ln_f = nn.LayerNorm(a.width, eps=1e-5)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, ids, targets):
        T = ids.size(1)
        x = self.wte(ids) + self.wpe(torch.arange(T))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied LM head
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    torch.manual_seed(args.seed)
    dtype = torch.float64 if args.dtype == "fp64" else torch.float32
    model = GPT(args).to(dtype)
    # Weight decay on matrices and embeddings, not on norms and biases (as ft's parameter table).
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=1e-4, betas=(0.9, 0.95), eps=1e-8)

    embedding = model.wte.weight.numel() + model.wpe.weight.numel()
    total = sum(p.numel() for p in model.parameters())
    non_embedding = total - embedding
    n = non_embedding + args.vocab * args.width  # the tied head is a matmul: counted
    head_dim = args.width // args.heads
    flops_per_token = 6 * n + 12 * args.layers * args.heads * head_dim * args.seq
    tokens = args.batch * args.seq

    # Ids and targets from [1, V), seeded: targets are the next token, the last one drawn anew.
    ids = torch.randint(1, args.vocab, (args.batch, args.seq))
    targets = torch.cat([ids[:, 1:], torch.randint(1, args.vocab, (args.batch, 1))], dim=1)

    print(f"pytorch_step: torch {torch.__version__}, {args.dtype} on cpu, "
          f"{torch.get_num_threads()} threads, attention "
          f"{'F.scaled_dot_product_attention' if use_sdpa else 'manual (matmul, mask, softmax)'}")
    print(f"pytorch_step: BLAS {loaded_blas()}")
    print(f"pytorch_step: GPT-2 style, {args.layers} layers, width {args.width}, {args.heads} heads, "
          f"vocab {args.vocab}, context {args.context}, tied embeddings")
    print(f"pytorch_step: parameters {total:,} ({non_embedding:,} non-embedding)")
    print(f"pytorch_step: batch {args.batch} x seq {args.seq} = {tokens} tokens per step; "
          f"{flops_per_token * 1e-6:.1f} MFLOP per token (6N + 12LHDT), "
          f"{flops_per_token * tokens * 1e-9:.1f} GFLOP per step")

    times, first_loss, loss = [], None, None
    for step in range(1, args.warmup + args.steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_tensor = model(ids, targets)
        loss_tensor.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        seconds = time.perf_counter() - start
        loss = loss_tensor.item()
        first_loss = loss if first_loss is None else first_loss
        warm = step > args.warmup
        print(f"  step {step:>3}{'  ' if warm else ' w'} {seconds * 1e3:8.1f} ms  loss {loss:.4f}")
        if warm:
            times.append(seconds)

    step_median = statistics.median(times)
    tokens_per_s = tokens / step_median
    print("\nResult")
    print(f"  step time       median {step_median * 1e3:.1f} ms, mean "
          f"{statistics.mean(times) * 1e3:.1f}, min {min(times) * 1e3:.1f}, max "
          f"{max(times) * 1e3:.1f} ({args.steps} steps after {args.warmup} warm-up)")
    print(f"  throughput      {tokens_per_s:.0f} tokens/s, "
          f"{tokens_per_s * flops_per_token * 1e-9:.1f} GFLOP/s")
    print(f"  loss            {first_loss:.4f} (step 1) -> {loss:.4f} (step {args.warmup + args.steps})")


if __name__ == "__main__":
    main()
