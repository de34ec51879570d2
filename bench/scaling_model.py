#!/usr/bin/env python3
"""Analytic model of multi-GPU step time, scaling efficiency and memory per GPU for ft's layouts.

Predicts, for Llama-shaped models, full fine-tuning (FFT) and LoRA, and layouts of --gpus GPUs
(data parallel, ZeRO-1, Megatron tensor parallel x data parallel):

  step = compute + optimizer + exposed data-parallel communication + tensor-parallel communication

* compute: a measured single-GPU step for the per-GPU batch (--measured; less the modelled AdamW
  time), or,
  by default, an ASSUMED MFU (--mfu, 45% of the bf16 dense peak --peak-tflops 989) applied to the
  FLOP count of ../shared/reference/performance.md: 6N + 12 L H Q T per token for FFT (N counts
  every matmul weight, the LM head included, not the input embedding lookup), 4N + 12 L H Q T
  + 6 r (d_in + d_out) per adapted matrix for LoRA (frozen weights get no weight gradient).
  Every layout gives each GPU the same FLOPs: with tensor parallelism T, a replica of T GPUs takes
  T times the per-GPU tokens and each GPU runs 1/T of every matmul (same MFU assumed).
* optimizer: AdamW is memory-bound: bytes touched per trainable parameter it updates (bf16 weight,
  fp32 master, moments, gradient: --adam-bytes) over HBM bandwidth (--hbm-tbs). ZeRO-1 updates
  1/dp of them.
* data parallel (bucketed, overlapped with backward): a ring all-reduce moves 2(n-1)/n x the
  gradient bytes at the NCCL bus bandwidth (--busbw, 370 GB/s: 8xH100 NVLink ring), plus a latency
  per bucket. With gradient accumulation it runs after the last micro-batch's backward started,
  so only --overlap of that backward hides it; the last bucket is always exposed. ZeRO-1:
  reduce-scatter of the gradients ((n-1)/n x bytes, overlapped the same way) plus an all-gather
  of the updated bf16 weights ((n-1)/n x bytes) after the step, exposed unless --gather-overlap.
  Only trainable parameters are communicated (LoRA: the adapters).
* tensor parallel (not overlapped): per micro-batch, 2 all-reduces per layer forward (attention
  output, MLP down projection) and 2 backward (their column-parallel inputs), plus the
  vocabulary-parallel embedding (forward) and LM head input gradient (backward), each of
  micro-batch tokens x hidden bf16 values, and the loss statistics' all-gather (3 fp32 per token).

Prints two tables (time, memory) and the assumptions; asserts nothing.

    python3 bench/scaling_model.py
    python3 bench/scaling_model.py --measured llama-3.2-1b:full=0.33 --grad-dtype bf16
    python3 bench/scaling_model.py --hf-config path/to/config.json
"""
import argparse
import json
import os

GB = 1e9
GIB = 2**30


class Shape:
    def __init__(self, name, layers, hidden, heads, kv_heads, head_dim, intermediate, vocab, tied):
        self.name, self.layers, self.hidden = name, layers, hidden
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.intermediate, self.vocab, self.tied = intermediate, vocab, tied

    def linears(self):
        """(d_in, d_out) of each linear of one layer: q, k, v, o, gate, up, down."""
        h, q, kv, f = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, \
            self.intermediate
        return [(h, q), (h, kv), (h, kv), (q, h), (h, f), (h, f), (f, h)]

    def layer_matmul_params(self):
        return sum(i * o for i, o in self.linears())

    def matmul_params(self):
        """N of the FLOP formula: every matmul weight, the LM head included (tied or not)."""
        return self.layers * self.layer_matmul_params() + self.vocab * self.hidden

    def total_params(self):
        norms = (2 * self.layers + 1) * self.hidden
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.layers * self.layer_matmul_params() + norms + embeddings

    def lora_params(self, rank):
        """LoRA on every linear of every layer (all-linear, as PEFT: not the LM head)."""
        return self.layers * sum(rank * (i + o) for i, o in self.linears())

    def describe(self):
        return (f"{self.name}: {self.layers} layers, hidden {self.hidden}, {self.heads} heads "
                f"({self.kv_heads} kv) of {self.head_dim}, intermediate {self.intermediate} "
                f"(SwiGLU), vocab {self.vocab}, {'tied' if self.tied else 'untied'} embeddings; "
                f"{self.total_params() / 1e9:.2f} B parameters")


MODELS = {
    # meta-llama/Llama-3.2-1B config.json
    "llama-3.2-1b": Shape("llama-3.2-1b", 16, 2048, 32, 8, 64, 8192, 128256, True),
    # meta-llama/Llama-3.1-8B config.json
    "llama-3.1-8b": Shape("llama-3.1-8b", 32, 4096, 32, 8, 128, 14336, 128256, False),
}


def shape_from_hf_config(path):
    with open(path) as f:
        c = json.load(f)
    heads = c["num_attention_heads"]
    return Shape(os.path.basename(os.path.dirname(os.path.abspath(path))) or path,
                 c["num_hidden_layers"], c["hidden_size"], heads,
                 c.get("num_key_value_heads", heads),
                 c.get("head_dim") or c["hidden_size"] // heads, c["intermediate_size"],
                 c["vocab_size"], bool(c.get("tie_word_embeddings", False)))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated: " +
                   ", ".join(MODELS))
    p.add_argument("--hf-config", action="append", default=[],
                   help="add a model from a Hugging Face config.json (repeatable)")
    p.add_argument("--methods", default="full,lora", help="full, lora")
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--tp", default="1,2", help="tensor-parallel sizes to report (dp = gpus / tp)")
    p.add_argument("--seq", type=int, default=2048, help="tokens per sequence")
    p.add_argument("--micro-batch", type=int, default=1, help="sequences per micro-batch")
    p.add_argument("--accum", type=int, default=8,
                   help="micro-batches per GPU per step at tp=1 (tokens per GPU per step = "
                        "micro-batch x seq x accum; a tensor-parallel replica runs tp x accum)")
    p.add_argument("--measured", action="append", default=[], metavar="MODEL:METHOD=SECONDS",
                   help="measured single-GPU step seconds (forward, backward, AdamW) for the "
                        "per-GPU batch, e.g. llama-3.2-1b:full=0.33; replaces the assumed MFU for "
                        "that model and method (the modelled AdamW time is taken out of it)")
    p.add_argument("--mfu", type=float, default=0.45,
                   help="ASSUMED single-GPU model FLOPs utilization when not --measured")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="H100 SXM bf16 dense")
    p.add_argument("--busbw", type=float, default=370.0, help="NCCL bus bandwidth, GB/s")
    p.add_argument("--latency-us", type=float, default=20.0, help="per collective")
    p.add_argument("--grad-dtype", choices=["fp32", "bf16"], default="fp32",
                   help="gradient dtype of the data-parallel reduction (Megatron reduces bf16 "
                        "training's gradients in fp32)")
    p.add_argument("--bucket-mb", type=float, default=25.0, help="data-parallel bucket (MB)")
    p.add_argument("--overlap", type=float, default=0.7,
                   help="fraction of the last micro-batch's backward that gradient "
                        "communication can hide under")
    p.add_argument("--gather-overlap", type=float, default=0.0,
                   help="ZeRO-1: fraction of the weight all-gather hidden (behind the next "
                        "forward)")
    p.add_argument("--hbm-tbs", type=float, default=3.0, help="HBM bandwidth for AdamW, TB/s")
    p.add_argument("--adam-bytes", type=float, default=30.0,
                   help="HBM bytes AdamW moves per parameter (read grad 4, master 4, m 4, v 4; "
                        "write master, m, v, bf16 weight)")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--gpu-memory-gib", type=float, default=80.0, help="H100 SXM: 80 GiB")
    return p.parse_args()


def flops_per_token(shape, method, seq, lora_r):
    """(total, backward) training FLOPs per token."""
    n = shape.matmul_params()
    attention_forward = 4 * shape.layers * shape.heads * shape.head_dim * seq  # 12LHQT / 3
    attention_backward = 2 * attention_forward
    if method == "full":
        return 6 * n + attention_forward + attention_backward, 4 * n + attention_backward
    adapters = 6 * shape.lora_params(lora_r)  # forward 2, backward input and weight gradients 4
    return (4 * n + attention_forward + attention_backward + adapters,
            2 * n + attention_backward + adapters * 2 / 3)


def ring_seconds(bytes_, ranks, factor, args, collectives=1):
    """`collectives` collectives over `ranks` GPUs of `bytes_` in all: factor x bytes_ at the bus
    bandwidth plus a latency each (which also stands for small messages' lower bandwidth)."""
    if ranks <= 1 or bytes_ <= 0:
        return 0.0
    return collectives * args.latency_us * 1e-6 + factor * bytes_ / (args.busbw * GB)


def trainable_of(shape, method, args):
    return shape.total_params() if method == "full" else shape.lora_params(args.lora_r)


def predict(shape, method, tp, args, measured):
    dp = args.gpus // tp
    tokens_per_micro = args.micro_batch * args.seq
    tokens_per_gpu = tokens_per_micro * args.accum
    accum = args.accum * tp  # micro-batches a replica runs; each GPU does 1/tp of each
    total, backward = flops_per_token(shape, method, args.seq, args.lora_r)
    key = f"{shape.name}:{method}"
    adam_all = trainable_of(shape, method, args) * args.adam_bytes / (args.hbm_tbs * 1e12)
    if key in measured:  # a whole single-GPU step: forward, backward and AdamW
        compute, source = measured[key] - adam_all, "measured"
        if compute <= 0:
            raise SystemExit(f"--measured {key}={measured[key]}: shorter than the modelled AdamW "
                             f"time alone ({adam_all:.3f} s)")
    else:
        compute = total * tokens_per_gpu / (args.mfu * args.peak_tflops * 1e12)
        source = "assumed"
    backward_share = backward / total
    trainable = trainable_of(shape, method, args)
    trainable_gpu = trainable / tp  # tensor-parallel shards (replicated norms ignored)
    adam = trainable_gpu * args.adam_bytes / (args.hbm_tbs * 1e12)
    grad_bytes = trainable_gpu * (4 if args.grad_dtype == "fp32" else 2)
    bucket = args.bucket_mb * 1e6
    buckets = max(1, -(-grad_bytes // bucket))
    window = args.overlap * compute * backward_share / accum  # the last micro-batch's backward
    if args.zero1:
        adam /= dp
        comm = ring_seconds(grad_bytes, dp, (dp - 1) / dp, args, buckets)  # reduce-scatter
        last = ring_seconds(min(bucket, grad_bytes), dp, (dp - 1) / dp, args)
        gather = ring_seconds(trainable_gpu * 2, dp, (dp - 1) / dp, args, buckets)
        dp_exposed = max(comm - window, last) + gather * (1 - args.gather_overlap)
        dp_total = comm + gather
    else:
        comm = ring_seconds(grad_bytes, dp, 2 * (dp - 1) / dp, args, buckets)
        last = ring_seconds(min(bucket, grad_bytes), dp, 2 * (dp - 1) / dp, args)
        dp_exposed, dp_total = (max(comm - window, last) if dp > 1 else 0.0), comm
    dp_exposed = min(dp_exposed, dp_total)
    activation_bytes = tokens_per_micro * shape.hidden * 2
    tp_collectives = 4 * shape.layers + 2
    tp_per_micro = ring_seconds(activation_bytes * tp_collectives, tp, 2 * (tp - 1) / tp, args,
                                tp_collectives)
    tp_per_micro += ring_seconds(tokens_per_micro * 3 * 4, tp, (tp - 1) / tp, args)
    tp_comm = tp_per_micro * accum
    step = compute + adam + dp_exposed + tp_comm
    single = compute + adam_all  # the same per-GPU batch on one GPU (hypothetical if it won't fit)
    return {"compute": compute, "source": source, "adam": adam, "dp_total": dp_total,
            "dp_exposed": dp_exposed, "tp": tp_comm, "step": step, "efficiency": single / step,
            "tokens_per_s_gpu": tokens_per_gpu / step, "dp": dp, "trainable": trainable,
            "grad_gb": grad_bytes / GB}


def memory(shape, method, tp, zero1, args):
    """Bytes per GPU: weights, gradients, optimizer state, activations of one micro-batch."""
    dp = args.gpus // tp
    params = shape.total_params() / tp
    grad_size = 4 if args.grad_dtype == "fp32" else 2
    if method == "full":
        weights, trainable = 2 * params, params
    else:
        trainable = shape.lora_params(args.lora_r) / tp
        weights = 2 * params + 2 * trainable
    grads = grad_size * trainable
    optimizer = 12 * trainable / (dp if zero1 else 1)  # fp32 master weights, m, v
    # Activations kept for backward, bf16, no recompute, fused attention (no s x s matrix): per
    # layer the residual and the two norm outputs and inputs (4 h, replicated), q/k/v and the
    # attention output ((2 q + 2 kv) / tp) and gate/up/activation (3 f / tp); the logits and their
    # fp32 softmax (6 bytes per vocabulary entry / tp).
    h, q, kv = shape.hidden, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    per_token_layer = 2 * (4 * h + (2 * q + 2 * kv + 3 * shape.intermediate) / tp)
    tokens = args.micro_batch * args.seq
    activations = tokens * (shape.layers * per_token_layer + 6 * shape.vocab / tp)
    return weights, grads, optimizer, activations


def main():
    args = parse_args()
    models = [MODELS[name.strip()] for name in args.models.split(",") if name.strip()]
    models += [shape_from_hf_config(path) for path in args.hf_config]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    measured = {}
    for item in args.measured:
        key, _, seconds = item.partition("=")
        measured[key] = float(seconds)
    tps = [int(t) for t in args.tp.split(",")]
    for tp in tps:
        if args.gpus % tp:
            raise SystemExit(f"--tp {tp} does not divide --gpus {args.gpus}")

    tokens_per_gpu = args.micro_batch * args.seq * args.accum
    print("Assumptions:")
    for shape in models:
        print(f"  {shape.describe()}")
    compute_note = ("ASSUMED, NOT MEASURED: " if len(measured) < len(models) * len(methods)
                    else "")
    print(f"  compute: {compute_note}MFU {args.mfu:.0%} of {args.peak_tflops:.0f} TFLOP/s bf16 "
          f"dense unless --measured ({', '.join(args.measured) or 'none given'})")
    print(f"  {args.gpus} GPUs, {tokens_per_gpu} tokens per GPU per step ({args.accum} x "
          f"{args.micro_batch} x {args.seq} at tp=1; a tp=T replica runs {args.accum} T "
          f"micro-batches), global batch {tokens_per_gpu * args.gpus} tokens")
    print(f"  NCCL bus bandwidth {args.busbw:.0f} GB/s for every group (one NVLink node), "
          f"{args.latency_us:.0f} us per collective; gradients reduced in {args.grad_dtype}, "
          f"{args.bucket_mb:.0f} MB buckets, overlap {args.overlap:.0%} of the last "
          f"micro-batch's backward; ZeRO-1 all-gather overlap {args.gather_overlap:.0%}")
    print(f"  AdamW {args.adam_bytes:.0f} B per parameter at {args.hbm_tbs:.1f} TB/s; LoRA r "
          f"{args.lora_r} on all linear layers (q,k,v,o,gate,up,down)")
    print()
    print("| model | method | layout | compute s | AdamW s | DP comm s (exposed / total) | "
          "TP comm s | predicted step s | efficiency | tokens/s/GPU | memory/GPU GiB |")
    print("|" + "---|" * 11)
    layouts = [(tp, zero1) for tp in tps for zero1 in (False, True)]
    memory_rows = []
    for shape in models:
        for method in methods:
            for tp, zero1 in layouts:
                args.zero1 = zero1
                r = predict(shape, method, tp, args, measured)
                name = (f"TP-{tp} x DP-{r['dp']}" if tp > 1 else f"DP-{r['dp']}") + \
                    (" ZeRO-1" if zero1 else "")
                mem = memory(shape, method, tp, zero1, args)
                total = sum(mem)
                flag = "" if total < args.gpu_memory_gib * GIB else " (does not fit)"
                print(f"| {shape.name} | {method} | {name} | {r['compute']:.3f} ({r['source']}) | "
                      f"{r['adam'] * 1e3:.1f} ms | {r['dp_exposed'] * 1e3:.1f} / "
                      f"{r['dp_total'] * 1e3:.1f} ms | {r['tp'] * 1e3:.1f} ms | {r['step']:.3f} | "
                      f"{r['efficiency']:.1%} | {r['tokens_per_s_gpu']:,.0f} | "
                      f"{total / GIB:.1f}{flag} |")
                memory_rows.append((shape, method, name, mem))
    print()
    print("efficiency = the same per-GPU batch's step on one GPU (compute + whole-model AdamW) / "
          "predicted step;\nfor models that do not fit one GPU that reference is hypothetical.")
    print()
    print(f"Memory per GPU (GiB; bf16 weights, {args.grad_dtype} gradients, fp32 master weights "
          f"and moments; activations of one micro-batch of {args.micro_batch} x {args.seq} tokens,"
          f" no recompute; fits: total under 85% of {args.gpu_memory_gib:.0f} GiB, tight: under "
          f"100%, leaving nothing for the CUDA context, workspaces and fragmentation)")
    print()
    print("| model | method | layout | weights | gradients | optimizer | activations | total | "
          "fits |")
    print("|" + "---|" * 9)
    for shape in models:
        for method in methods:
            weights, grads, optimizer, activations = memory(shape, method, 1, False,
                                                            argparse.Namespace(**{
                                                                **vars(args), "gpus": 1}))
            memory_rows_for = [("1 GPU", (weights, grads, optimizer, activations))]
            memory_rows_for += [(name, m) for s, me, name, m in memory_rows
                                if s is shape and me == method]
            for name, (weights, grads, optimizer, activations) in memory_rows_for:
                total = weights + grads + optimizer + activations
                capacity = args.gpu_memory_gib * GIB
                fits = "yes" if total < 0.85 * capacity else "tight" if total < capacity else \
                    "**no**"
                print(f"| {shape.name} | {method} | {name} | {weights / GIB:.1f} | "
                      f"{grads / GIB:.1f} | {optimizer / GIB:.1f} | {activations / GIB:.1f} | "
                      f"{total / GIB:.1f} | {fits} |")


if __name__ == "__main__":
    main()
