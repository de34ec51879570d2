#!/usr/bin/env python3
"""Runs ft's kernel benchmark (bench_kernels) and its PyTorch peer (bench/kernel_peer.py) one after
the other on this GPU, joins their rows by (kernel, shape) and prints markdown tables: TFLOP/s of
each implementation and the speed ratios (the other's time / ft's: above 1, ft is faster), with
the GPU, driver, date and versions on top. Figures to read; nothing passes or fails.

  python3 bench/run_kernel_bench.py --bench-kernels /tmp/ft/bin/bench_kernels --out $OUT/kernels
  python3 bench/run_kernel_bench.py --dry-run     # the two commands, nothing run
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_bench_common import (  # noqa: E402
    Deadline, add_runner_arguments, default_binary, environment, run_logged, runner_parser)

# Per table: which kernels it holds, and the ratios it shows (numerator impl, denominator impl):
# speed of the first over the second = time of the second / time of the first.
TABLES = [
    ("Attention forward (bf16, causal)", ["attention_forward"],
     [("ft", "torch_flash"), ("ft", "torch_cudnn"), ("ft", "torch_sdpa")]),
    ("Attention backward (bf16, causal)", ["attention_backward"],
     [("ft", "torch_flash"), ("ft", "torch_cudnn"), ("ft", "torch_sdpa")]),
    ("Linear forward Y = X W^T (bf16 activations)", ["linear_forward"],
     [("ft_cublaslt", "torch"), ("ft_frozen_bf16", "torch"), ("ft_frozen_i8", "torch"),
      ("ft_frozen_f8e4m3", "torch"), ("ft_frozen_bf16", "ft_cublaslt")]),
    ("Linear input gradient dX = dY W", ["linear_dx"],
     [("ft_cublaslt", "torch"), ("ft_frozen_bf16", "torch"), ("ft_frozen_i8", "torch"),
      ("ft_frozen_f8e4m3", "torch"), ("ft_frozen_bf16", "ft_cublaslt")]),
    ("Fused epilogues (N = 8192)", ["epilogue_bias", "epilogue_gelu", "epilogue_swiglu",
                                     "epilogue_residual", "epilogue_lora"],
     [("ft_frozen_fused", "torch_separate"), ("ft_cublaslt_separate", "torch_separate"),
      ("ft_frozen_fused", "ft_cublaslt_separate")]),
]


def run_command(command, log_path, timeout):
    """Runs `command`, echoing and logging its output; returns (exit status, JSON rows)."""
    rows = []

    def read_line(line):
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
                return False  # the rows go to the tables; the log keeps them
            except json.JSONDecodeError:
                pass
        return True

    return run_logged(command, log_path, timeout, "run_kernel_bench", read_line), rows


def join(rows):
    """{(kernel, shape): {impl: row}}, in the order the rows came."""
    joined = {}
    for row in rows:
        joined.setdefault((row["kernel"], row["shape"]), {})[row["impl"]] = row
    return joined


def tables(joined):
    out = []
    for title, kernels, ratios in TABLES:
        keys = [k for k in joined if k[0] in kernels]
        if not keys:
            continue
        impls = []
        for key in keys:
            for impl in joined[key]:
                if impl not in impls:
                    impls.append(impl)
        order = list(impls)  # ft's first, each side in the order its rows came
        impls = sorted(impls, key=lambda i: (not i.startswith("ft"), order.index(i)))
        shown = [(a, b) for a, b in ratios if a in impls and b in impls]
        out.append(f"\n### {title}\n")
        out.append("TFLOP/s per implementation; ratios are speed (time of the second / time of "
                   "the first).\n")
        head = ["kernel", "shape"] + [f"{i} TFLOP/s" for i in impls] + [f"{a} / {b}"
                                                                       for a, b in shown]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * 2 + "---:|" * (len(impls) + len(shown)))
        notes = []
        for key in keys:
            cells = [key[0], key[1]]
            by_impl = joined[key]
            for impl in impls:
                cells.append(f"{by_impl[impl]['tflops']:.1f}" if impl in by_impl else "-")
            for a, b in shown:
                if a in by_impl and b in by_impl and by_impl[a]["ms"] > 0:
                    cells.append(f"{by_impl[b]['ms'] / by_impl[a]['ms']:.2f}x")
                else:
                    cells.append("-")
            flops = {round(r["flops"]) for r in by_impl.values()}
            if len(flops) > 1:
                notes.append(f"{key[0]} {key[1]}: FLOP counts differ between implementations "
                             f"({sorted(flops)}); compare times, not TFLOP/s")
            for impl, r in by_impl.items():
                if r.get("note"):
                    notes.append(f"{impl} on {key[1]}: {r['note']}")
            out.append("| " + " | ".join(cells) + " |")
        if notes:
            out.append("")
        for note in dict.fromkeys(notes):
            out.append(f"- {note}")
    return "\n".join(out)


def parse_args(argv=None):
    p = runner_parser(__doc__)
    p.add_argument("--bench-kernels", default=default_binary("bench_kernels"),
                   help="ft's bench_kernels binary")
    p.add_argument("--python", default=sys.executable, help="the Python with torch (the peer)")
    p.add_argument("--only", default="attention,linear,epilogue",
                   help="comma-separated: attention, linear, epilogue (both sides)")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", default="kernel_bench_out", help="folder for the logs and tables")
    p.add_argument("--timeout", type=int, default=300, help="seconds per side")
    add_runner_arguments(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    common = ["--only", args.only, "--reps", str(args.reps), "--warmup", str(args.warmup)]
    ft_command = [args.bench_kernels] + common
    peer_command = [args.python, os.path.join(HERE, "kernel_peer.py")] + common
    if args.dry_run:
        print("$ " + " ".join(ft_command))
        print("$ " + " ".join(peer_command))
        return 0
    os.makedirs(args.out, exist_ok=True)
    rows, status = [], {}
    deadline = Deadline(args.budget, args.timeout)
    for side, command, log, skip in (("ft", ft_command, "ft.log", args.skip_ft),
                                     ("pytorch", peer_command, "peer.log", args.skip_peer)):
        if skip:
            continue
        timeout = deadline.next_timeout()
        if timeout is None:
            print(f"run_kernel_bench: {side} skipped: --budget {args.budget:g} s spent", flush=True)
            status[side] = "skipped (budget)"
            continue
        status[side], side_rows = run_command(command, os.path.join(args.out, log), timeout)
        rows += side_rows
    with open(os.path.join(args.out, "kernel_rows.jsonl"), "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    header = ["## Kernel benchmark: ft against PyTorch on one GPU", ""]
    header += [f"- {line}" for line in environment(args.python)]
    if args.ft_commit:
        header.append(f"- ft commit: {args.ft_commit}")
    header.append(f"- {args.reps} timed calls (median, CUDA events) after {args.warmup} warm-up; "
                  "exit status " + ", ".join(f"{k} {v}" for k, v in status.items()))
    report = "\n".join(header) + "\n" + tables(join(rows)) + "\n"
    with open(os.path.join(args.out, "kernel_bench.md"), "w") as f:
        f.write(report)
    print("\n" + report, flush=True)
    return 0 if all(v == 0 for v in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
