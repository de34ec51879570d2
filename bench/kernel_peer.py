#!/usr/bin/env python3
"""PyTorch on the shapes of bench_kernels (bench/bench_kernels.cpp), one JSON object per line
{"kernel", "shape", "impl", "ms", "tflops", "flops"[, "note"]} with the same kernel names, shape
keys and FLOP counts, so bench/run_kernel_bench.py can join the two by (kernel, shape).

  attention: F.scaled_dot_product_attention on (B, H, T, D) views of (B, T, H, D) tensors (the
    layout a model has), bf16, causal, under sdpa_kernel(FLASH_ATTENTION) ("torch_flash") and
    sdpa_kernel(CUDNN_ATTENTION) ("torch_cudnn"); a backend this torch or GPU lacks is skipped
    with the reason printed. Forward timed alone; backward = forward + backward (autograd.grad)
    minus forward. GQA uses enable_gqa (repeat_interleave of K/V where a backend refuses it,
    noted). Prefix rows: K/V concatenated with the prefix and a lower-right causal mask
    (torch.nn.attention.bias.causal_lower_right), whichever backend torch picks ("torch_sdpa").
  linear: F.linear (forward) and torch.matmul(dout, W) (dX), bf16 ("torch").
  epilogues: F.linear plus separate ops ("torch_separate"): bias inside F.linear; GELU-tanh;
    silu(gate) * up; residual + F.linear; LoRA F.linear(x, W) + scale * B(A(x)) as PEFT runs it.
Each is timed with CUDA events: warm-up, then the median of --reps calls.

  python3 bench/kernel_peer.py [--only attention,linear,epilogue] [--reps 20]
  python3 bench/kernel_peer.py --dry-run      # the shape keys; needs no torch
"""
import argparse
import json
import statistics
import sys
import time

HIDDEN, TOKENS = 2048, 16384
PROJECTIONS = [("llama-3.2-1b", "q", 2048, 2048), ("llama-3.2-1b", "kv", 512, 2048),
               ("llama-3.2-1b", "o", 2048, 2048), ("llama-3.2-1b", "gate/up", 8192, 2048),
               ("llama-3.2-1b", "down", 2048, 8192), ("llama-3.1-8b", "q", 4096, 4096),
               ("llama-3.1-8b", "kv", 1024, 4096), ("llama-3.1-8b", "o", 4096, 4096),
               ("llama-3.1-8b", "gate/up", 14336, 4096), ("llama-3.1-8b", "down", 4096, 14336)]
EPILOGUE_TOKENS, LORA_R, LORA_SCALE = 8192, 16, 2.0


def attention_shapes():
    """(B, T, H, Hkv, D, P) as bench_kernels' attention_shapes()."""
    shapes = [(TOKENS // t, t, HIDDEN // d, HIDDEN // d, d, 0)
              for d in (64, 128) for t in (512, 1024, 2048, 4096, 8192, 16384)]
    for d in (64, 128):
        shapes.append((TOKENS // 2048, 2048, HIDDEN // d, HIDDEN // d, d, 20))
        shapes.append((TOKENS // 2048, 2048, HIDDEN // d, HIDDEN // d // 4, d, 0))
    return shapes


def attention_key(B, T, H, Hkv, D, P):
    return f"B={B} T={T} H={H} Hkv={Hkv} D={D} causal P={P}"


def attention_forward_flops(B, T, H, Hkv, D, P):
    return 4.0 * B * H * D * T * (T / 2.0 + P)


def linear_key(model, name, n, out, inp):
    return f"{model} {name} N={n} Out={out} In={inp}"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--only", default="attention,linear,epilogue",
                   help="comma-separated: attention, linear, epilogue")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--dry-run", action="store_true", help="print the shape keys and exit")
    p.add_argument("--device", default="cuda",
                   help="cuda; cpu only as a smoke test of this script (wall clock, tiny reps)")
    args = p.parse_args(argv)
    args.parts = [x for x in args.only.split(",") if x]
    bad = [x for x in args.parts if x not in ("attention", "linear", "epilogue")]
    if bad or args.reps < 1 or args.warmup < 0:
        p.error(f"--only {args.only}: expected attention, linear, epilogue; --reps >= 1")
    return args


class Peer:
    def __init__(self, args):
        import torch
        self.torch = torch
        self.args = args
        self.device = args.device
        self.generator = torch.Generator(device=args.device).manual_seed(args.seed)

    def rand(self, *shape, low=-1.0, high=1.0):
        t = self.torch.empty(*shape, device=self.device, dtype=self.torch.bfloat16)
        return t.uniform_(low, high, generator=self.generator)

    def time_seconds(self, fn):
        torch = self.torch
        for _ in range(self.args.warmup + 1):
            fn()
        if self.device == "cpu":  # the smoke test: wall clock
            samples = []
            for _ in range(self.args.reps):
                start = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - start)
            return statistics.median(samples)
        torch.cuda.synchronize()
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(self.args.reps)]
        for start, end in events:
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize()
        return statistics.median(start.elapsed_time(end) for start, end in events) * 1e-3

    @staticmethod
    def emit(kernel, shape, impl, seconds, flops, note=None):
        row = {"kernel": kernel, "shape": shape, "impl": impl, "ms": seconds * 1e3,
               "tflops": flops / seconds * 1e-12 if seconds > 0 else 0.0, "flops": flops}
        if note:
            row["note"] = note
        print(json.dumps(row), flush=True)

    # ---- attention ----
    def attention(self):
        torch = self.torch
        F = torch.nn.functional
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel
        except ImportError as error:
            print(f"kernel_peer: attention skipped: torch {torch.__version__} has no "
                  f"torch.nn.attention ({error})", flush=True)
            return
        backends = [("torch_flash", "FLASH_ATTENTION"), ("torch_cudnn", "CUDNN_ATTENTION")]
        for B, T, H, Hkv, D, P in attention_shapes():
            key = attention_key(B, T, H, Hkv, D, P)
            fwd_flops = attention_forward_flops(B, T, H, Hkv, D, P)
            q = self.rand(B, T, H, D).requires_grad_()
            k = self.rand(B, T, Hkv, D).requires_grad_()
            v = self.rand(B, T, Hkv, D).requires_grad_()
            dout = self.rand(B, H, T, D)
            if P > 0:
                from torch.nn.attention.bias import causal_lower_right
                pk = self.rand(P, Hkv, D).requires_grad_()
                pv = self.rand(P, Hkv, D).requires_grad_()
                mask = causal_lower_right(T, T + P)

                def prefix_forward():
                    kf = torch.cat([pk.expand(B, P, Hkv, D), k], dim=1).transpose(1, 2)
                    vf = torch.cat([pv.expand(B, P, Hkv, D), v], dim=1).transpose(1, 2)
                    return F.scaled_dot_product_attention(q.transpose(1, 2), kf, vf,
                                                          attn_mask=mask)
                try:
                    self.forward_backward("torch_sdpa", key, fwd_flops, prefix_forward,
                                          (q, k, v, pk, pv), dout,
                                          "prefix: cat(prefix, K/V) + causal_lower_right mask; "
                                          "backend chosen by torch")
                except (RuntimeError, TypeError) as error:
                    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                    print(f"kernel_peer: torch_sdpa {key} unavailable: {reason[:200]}", flush=True)
                continue
            for impl, backend_name in backends:
                backend = getattr(SDPBackend, backend_name, None)
                if backend is None:
                    print(f"kernel_peer: {impl} skipped: torch {torch.__version__} has no "
                          f"SDPBackend.{backend_name}", flush=True)
                    continue
                variants = [("enable_gqa", True)] if Hkv < H else [(None, False)]
                if Hkv < H:
                    variants.append(("repeat_interleave of K/V", False))
                for note, gqa in variants:
                    def forward(gqa=gqa, note=note):
                        kk, vv = k.transpose(1, 2), v.transpose(1, 2)
                        if note == "repeat_interleave of K/V":
                            kk = kk.repeat_interleave(H // Hkv, dim=1)
                            vv = vv.repeat_interleave(H // Hkv, dim=1)
                        extra = {"enable_gqa": True} if gqa else {}
                        with sdpa_kernel(backend):
                            return F.scaled_dot_product_attention(q.transpose(1, 2), kk, vv,
                                                                  is_causal=True, **extra)
                    try:
                        self.forward_backward(impl, key, fwd_flops, forward, (q, k, v), dout,
                                              note)
                        break
                    except (RuntimeError, TypeError) as error:
                        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                        print(f"kernel_peer: {impl} {key}"
                              f"{' (' + note + ')' if note else ''} unavailable: {reason[:200]}",
                              flush=True)

    def forward_backward(self, impl, key, fwd_flops, forward, inputs, dout, note):
        torch = self.torch
        fwd = self.time_seconds(forward)

        def both():
            torch.autograd.grad(forward(), inputs, dout)
        total = self.time_seconds(both)
        self.emit("attention_forward", key, impl, fwd, fwd_flops, note)
        self.emit("attention_backward", key, impl, max(total - fwd, 1e-9), 2.5 * fwd_flops,
                  (note + "; " if note else "") + "backward = (forward + backward) - forward")

    # ---- linear ----
    def linear(self):
        torch = self.torch
        F = torch.nn.functional
        with torch.no_grad():
            for model, name, out, inp in PROJECTIONS:
                for n in (4096, 8192, 16384):
                    key = linear_key(model, name, n, out, inp)
                    flops = 2.0 * n * out * inp
                    x, w = self.rand(n, inp), self.rand(out, inp, low=-0.05, high=0.05)
                    dout = self.rand(n, out)
                    self.emit("linear_forward", key, "torch",
                              self.time_seconds(lambda: F.linear(x, w)), flops)
                    self.emit("linear_dx", key, "torch",
                              self.time_seconds(lambda: torch.matmul(dout, w)), flops)
                    del x, w, dout

    # ---- epilogues ----
    def epilogues(self):
        torch = self.torch
        F = torch.nn.functional
        n, r = EPILOGUE_TOKENS, LORA_R
        with torch.no_grad():
            for model, C, Fd in (("llama-3.2-1b", 2048, 8192), ("llama-3.1-8b", 4096, 14336)):
                x = self.rand(n, C)
                w_cc, w_fc, w_up = (self.rand(C, C, low=-0.05, high=0.05),
                                    self.rand(Fd, C, low=-0.05, high=0.05),
                                    self.rand(Fd, C, low=-0.05, high=0.05))
                bias_c, bias_f, residual = self.rand(C), self.rand(Fd), self.rand(n, C)
                lora_a = self.rand(r, C, low=-0.05, high=0.05)
                lora_b = self.rand(C, r, low=-0.05, high=0.05)
                cc, fc = 2.0 * n * C * C, 2.0 * n * Fd * C

                def key(what, out, inp):
                    return linear_key(model, what, n, out, inp)
                rows = [
                    ("epilogue_bias", key("bias", C, C), cc, lambda: F.linear(x, w_cc, bias_c)),
                    ("epilogue_gelu", key("gelu", Fd, C), fc,
                     lambda: F.gelu(F.linear(x, w_fc, bias_f), approximate="tanh")),
                    ("epilogue_swiglu", key("swiglu", Fd, C), 2.0 * fc,
                     lambda: F.silu(F.linear(x, w_fc)) * F.linear(x, w_up)),
                    ("epilogue_residual", key("residual", C, C), cc,
                     lambda: residual + F.linear(x, w_cc)),
                    ("epilogue_lora", key("lora_r16", C, C), cc + 2.0 * n * r * 2 * C,
                     lambda: F.linear(x, w_cc) + F.linear(F.linear(x, lora_a), lora_b) * LORA_SCALE),
                ]
                for kernel, shape, flops, fn in rows:
                    self.emit(kernel, shape, "torch_separate", self.time_seconds(fn), flops)


def main(argv=None):
    args = parse_args(argv)
    if args.dry_run:
        if "attention" in args.parts:
            for s in attention_shapes():
                print(f"attention_forward/backward {attention_key(*s)}")
        if "linear" in args.parts:
            for model, name, out, inp in PROJECTIONS:
                for n in (4096, 8192, 16384):
                    print(f"linear_forward/dx {linear_key(model, name, n, out, inp)}")
        if "epilogue" in args.parts:
            print(f"epilogues: bias, gelu, swiglu, residual, lora_r16 at N={EPILOGUE_TOKENS}")
        return
    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("kernel_peer: torch sees no CUDA device")
    where = torch.cuda.get_device_name() if args.device == "cuda" else "cpu (smoke test)"
    print(f"kernel_peer: torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN "
          f"{torch.backends.cudnn.version()}), {where}", flush=True)
    peer = Peer(args)
    if "attention" in args.parts:
        peer.attention()
    if "linear" in args.parts:
        peer.linear()
    if "epilogue" in args.parts:
        peer.epilogues()


if __name__ == "__main__":
    main()
