#!/usr/bin/env python3
"""End-to-end training steps on one GPU, ft against PyTorch + PEFT: for each method runs
`bench_step --device cuda` and bench/pytorch_peft_gpu.py on the same model (a Hugging Face
config.json, by default Llama-3.2-1B's shape with random weights), batch, sequence length and
adapter settings, each method of each side in its own process, then prints a markdown table:
tokens/s, MFU, step time, device memory held (cudaMemGetInfo, both sides alike) and the ratios
ft / PyTorch. Figures to read; nothing passes or fails.

  python3 bench/run_e2e_gpu.py --bench-step /tmp/ft/bin/bench_step --out $OUT/e2e
  python3 bench/run_e2e_gpu.py --dry-run          # the commands, nothing run

Defaults: batch 4 x seq 2048 (8192 tokens per step), 10 timed steps after 3 warm-up, methods
full, prompt_tuning, prefix_tuning and lora; 20 virtual tokens; LoRA r 16, alpha 8 (ft's schema
default), dropout 0, on q, k, v, o, gate, up and down projections (both sides get these values
explicitly).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pytorch_peft_gpu import ALL_LINEAR, LLAMA_3_2_1B, METHODS, RESULT_TAG  # noqa: E402
from gpu_bench_common import (  # noqa: E402
    Deadline, add_runner_arguments, default_binary, environment, run_logged, runner_parser)

FT_TAG = "bench_step-result: "
GIB = 2.0 ** 30


def parse_args(argv=None):
    p = runner_parser(__doc__)
    p.add_argument("--bench-step", default=default_binary("bench_step"),
                   help="ft's bench_step (CUDA build)")
    p.add_argument("--python", default=sys.executable, help="the Python with torch and peft")
    p.add_argument("--config", help="Hugging Face config.json (default: Llama-3.2-1B's, written "
                   "to OUT/llama-3.2-1b.json)")
    p.add_argument("--methods", default=",".join(METHODS),
                   help="comma-separated, from " + ", ".join(METHODS))
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--virtual-tokens", type=int, default=20)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=float, default=8.0)
    p.add_argument("--lora-targets", default=",".join(ALL_LINEAR))
    p.add_argument("--threads", type=int, default=8, help="bench_step's host threads")
    p.add_argument("--peak-tflops", type=float, default=0.0,
                   help="MFU's denominator for both sides (0: from the GPU's name)")
    p.add_argument("--timeout", type=int, default=240, help="seconds per process")
    p.add_argument("--out", default="e2e_out", help="folder for the logs and the table")
    add_runner_arguments(p)
    args = p.parse_args(argv)
    args.method_list = [m for m in args.methods.split(",") if m]
    bad = [m for m in args.method_list if m not in METHODS]
    if bad:
        p.error(f"--methods: unknown {bad}; expected some of {METHODS}")
    return args


def commands(args, config, method):
    shared = ["--method", method, "--batch", str(args.batch), "--seq", str(args.seq),
              "--steps", str(args.steps), "--warmup", str(args.warmup), "--seed", str(args.seed),
              "--virtual-tokens", str(args.virtual_tokens), "--lora-r", str(args.lora_r),
              "--lora-alpha", f"{args.lora_alpha:g}", "--lora-targets", args.lora_targets,
              "--peak-tflops", f"{args.peak_tflops:g}", "--result-json"]
    ft = [args.bench_step, "--device", "cuda", "--hf-config", config, "--threads",
          str(args.threads)] + shared
    peer = [args.python, os.path.join(HERE, "pytorch_peft_gpu.py"), "--config", config] + shared
    return ft, peer


def run_command(command, tag, log_path, timeout):
    """Runs `command`, echoing and logging its output; returns (exit status, result dict)."""
    result = {}

    def read_line(line):
        if line.startswith(tag):
            result["value"] = json.loads(line[len(tag):])
        return True

    status = run_logged(command, log_path, timeout, "run_e2e_gpu", read_line)
    return status, result.get("value")


def cell(value, fmt):
    return fmt.format(value) if value is not None else "-"


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"


def table(results, args):
    lines = ["| method | ft tokens/s | PyTorch tokens/s | ft / PyTorch | ft MFU | PyTorch MFU | "
             "ft step ms | PyTorch step ms | ft GiB held | PyTorch GiB held | PyTorch GiB "
             "max_allocated | memory ft / PyTorch | loss ft (first -> last) | loss PyTorch |",
             "|---|" + "---:|" * 11 + "---|---|"]
    notes = []
    for method in args.method_list:
        ft, peer = results.get((method, "ft")), results.get((method, "pytorch"))
        get = lambda r, k: r.get(k) if r else None  # noqa: E731
        ft_mem = get(ft, "device_memory_bytes")
        peer_mem = get(peer, "device_memory_bytes")
        peer_alloc = get(peer, "max_memory_allocated_bytes")
        losses = [f"{r['first_loss']:.3f} -> {r['last_loss']:.3f}" if r else "failed"
                  for r in (ft, peer)]
        lines.append("| " + " | ".join([
            method, cell(get(ft, "tokens_per_s"), "{:,.0f}"),
            cell(get(peer, "tokens_per_s"), "{:,.0f}"),
            ratio(get(ft, "tokens_per_s"), get(peer, "tokens_per_s")),
            cell(get(ft, "mfu") and 100 * ft["mfu"], "{:.1f}%"),
            cell(get(peer, "mfu") and 100 * peer["mfu"], "{:.1f}%"),
            cell(get(ft, "step_ms"), "{:.1f}"), cell(get(peer, "step_ms"), "{:.1f}"),
            cell(ft_mem and ft_mem / GIB, "{:.2f}"), cell(peer_mem and peer_mem / GIB, "{:.2f}"),
            cell(peer_alloc and peer_alloc / GIB, "{:.2f}"), ratio(ft_mem, peer_mem),
            losses[0], losses[1]]) + " |")
        if ft and peer:
            a, b = ft["model_flops_per_token"], peer["model_flops_per_token"]
            if abs(a - b) > 1e-6 * max(a, b):
                notes.append(f"{method}: the two sides count different model FLOPs per token "
                             f"({a:.6g} vs {b:.6g}); MFU columns do not compare")
            if peer.get("attention") != "sdpa":
                notes.append(f"{method}: PyTorch ran attention {peer.get('attention')!r}, not sdpa")
            if ft["trainable_params"] != peer["trainable_params"]:
                notes.append(f"{method}: trainable parameters differ: ft "
                             f"{ft['trainable_params']:,}, PyTorch {peer['trainable_params']:,}")
    first = next((r for r in results.values() if r), None)
    lines.append("")
    if first and first.get("peak_tflops"):
        lines.append(f"- MFU: model FLOPs per token (bench/peft_bench.h model_flops_per_token) "
                     f"x tokens/s over {first['peak_tflops']:g} TFLOP/s "
                     f"({first.get('peak_source', '?')}).")
    elif first:
        lines.append(f"- MFU not computed: {first.get('peak_source', 'no GPU')} "
                     "(give --peak-tflops).")
    lines.append("- GiB held: cudaMemGetInfo after the timed steps minus before the model was "
                 "built (CUDA context excluded; cuBLAS workspaces and loaded kernels included). "
                 "PyTorch's max_memory_allocated counts its allocator's live tensors only.")
    lines.append("- ft: bf16 compute, fp32 master weights, gradients and AdamW (frozen PEFT base "
                 "bf16 only); PyTorch: fp32 masters under torch.autocast(bf16), AdamW(fused=True), "
                 "frozen PEFT base bf16, adapters fp32. ft predicts seq tokens per sequence, "
                 "transformers seq - 1.")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    config = args.config or os.path.join(args.out, "llama-3.2-1b.json")
    if args.dry_run:
        for method in args.method_list:
            for command in commands(args, config, method):
                print("$ " + " ".join(command))
        return 0
    os.makedirs(args.out, exist_ok=True)
    if not args.config:
        with open(config, "w") as f:
            json.dump(LLAMA_3_2_1B, f, indent=2)
    results, status = {}, {}
    deadline = Deadline(args.budget, args.timeout)
    for method in args.method_list:
        ft, peer = commands(args, config, method)
        for side, command, tag, skip in (("ft", ft, FT_TAG, args.skip_ft),
                                         ("pytorch", peer, RESULT_TAG, args.skip_peer)):
            if skip:
                continue
            timeout = deadline.next_timeout()
            if timeout is None:
                print(f"run_e2e_gpu: {side} {method} skipped: --budget {args.budget:g} s spent",
                      flush=True)
                status[(method, side)], results[(method, side)] = "skipped (budget)", None
                continue
            log = os.path.join(args.out, f"{side}_{method}.log")
            status[(method, side)], results[(method, side)] = run_command(command, tag, log,
                                                                           timeout)
    with open(os.path.join(args.out, "e2e_results.json"), "w") as f:
        json.dump([{"method": m, "side": s, "exit_status": status[(m, s)], "result": r}
                   for (m, s), r in results.items()], f, indent=1)
    header = ["## End-to-end training step on one GPU: ft against PyTorch + PEFT", ""]
    header += [f"- {line}" for line in environment(args.python)]
    if args.ft_commit:
        header.append(f"- ft commit: {args.ft_commit}")
    with open(config) as f:
        shape = json.load(f)
    header.append(f"- model: {config} ({shape.get('num_hidden_layers')} layers, hidden "
                  f"{shape.get('hidden_size')}, vocab {shape.get('vocab_size')}; random weights); "
                  f"batch {args.batch} x seq {args.seq}; {args.steps} timed steps after "
                  f"{args.warmup} warm-up (median); P = {args.virtual_tokens}; LoRA r "
                  f"{args.lora_r}, alpha {args.lora_alpha:g}, {args.lora_targets}")
    failed = [f"{m} {s} (exit {v})" for (m, s), v in status.items() if v != 0]
    if failed:
        header.append("- failed: " + ", ".join(failed) + " (logs beside this table)")
    report = "\n".join(header) + "\n\n" + table(results, args) + "\n"
    with open(os.path.join(args.out, "e2e.md"), "w") as f:
        f.write(report)
    print("\n" + report, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
