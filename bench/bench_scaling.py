#!/usr/bin/env python3
"""CPU scaling benchmark for ft's distributed training: ft_train under mpirun at 1 and 2 ranks.

Every layout trains the same model on the same global batch with the same total core count
(OMP_NUM_THREADS = cores / ranks), so a layout that scaled perfectly would match the one-rank
step time. Step and communication times come from the run's metrics.jsonl (rank 0's view:
step_seconds, and comm_seconds = time inside collectives, which on the CPU includes waiting for
the other rank). Prints a table; asserts nothing.

    python3 bench/bench_scaling.py [build/bin/ft_train] [--steps 6] [--warmup 1] [--rounds 1]

Layouts (names for --layouts): 1rank (1 rank x all cores), dp2 (data parallel 2), tp2 (tensor
parallel 2), dp2-zero1 (data parallel 2 with ZeRO-1), 1rank-1thread (1 rank x 1 core; shows how
far the BLAS threads themselves scale).
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: (ranks, tensor parallel, zero1, threads per rank as a fraction of the cores; None: 1)
LAYOUTS = {
    "1rank": (1, 1, False, 1.0),
    "dp2": (2, 1, False, 0.5),
    "tp2": (2, 2, False, 0.5),
    "dp2-zero1": (2, 1, True, 0.5),
    "1rank-1thread": (1, 1, False, None),
}
DEFAULT_LAYOUTS = ["1rank", "dp2", "tp2", "dp2-zero1", "1rank-1thread"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("ft_train", nargs="?", default=os.path.join(REPO, "build/bin/ft_train"))
    p.add_argument("--preset", default="bench-gpt2", help="model preset (default bench-gpt2)")
    p.add_argument("--seq", type=int, default=256, help="tokens per sequence")
    p.add_argument("--global-batch", type=int, default=16, help="sequences per optimizer step")
    p.add_argument("--steps", type=int, default=6, help="timed steps after the warm-up")
    p.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat every layout this many times (interleaved); median over rounds")
    p.add_argument("--cores", type=int, default=os.cpu_count(), help="total cores to use")
    p.add_argument("--layouts", default=",".join(DEFAULT_LAYOUTS),
                   help="comma-separated, from: " + ", ".join(LAYOUTS))
    p.add_argument("--bucket-mb", type=int, default=25, help="parallel.bucket_mb")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp64"])
    p.add_argument("--train-file", default=os.path.join(REPO, "examples/quickstart/train.jsonl"))
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="before each run, wait up to this long for the other processes to use "
                        "under 0.2 cores (3-second samples of /proc/stat)")
    p.add_argument("--combine", choices=["median", "quietest"], default="median",
                   help="over rounds: the median, or the round in which other processes used "
                        "the least CPU (for a shared machine)")
    p.add_argument("--json", metavar="PATH", help="also write every round's figures here")
    p.add_argument("--from-json", metavar="PATH", nargs="+",
                   help="print the table of --json files again, their rounds merged (no runs)")
    p.add_argument("--keep", action="store_true", help="keep the run directories")
    p.add_argument("--verbose", action="store_true", help="print ft_train's output")
    return p.parse_args()


def write_config(path, args, layout, out_dir):
    ranks, tp, zero1, _ = LAYOUTS[layout]
    dp = ranks // tp
    if args.global_batch % dp:
        sys.exit(f"--global-batch {args.global_batch} is not divisible by dp={dp} ({layout})")
    # Packed rows: every sequence is full, so all layouts run the same tokens.
    config = {
        "model": {"preset": args.preset},
        "data": {"train_file": args.train_file, "seq_len": args.seq, "packing": True},
        "optim": {"lr": 1e-3, "schedule": "constant"},
        "train": {"micro_batch_size": args.global_batch // dp, "grad_accum_steps": 1,
                  "max_steps": args.warmup + args.steps, "log_every": 1, "eval_at_start": False},
        "checkpoint": {"save_final": False},
        "parallel": {"tp": tp, "zero1": zero1, "bucket_mb": args.bucket_mb},
        "output_dir": out_dir,
        "dtype": args.dtype,
        "seed": 1234,
    }
    with open(path, "w") as f:
        json.dump(config, f, indent=1)  # JSON is YAML


def busy_and_total_ticks():
    """CPU ticks (busy, all) of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def other_cores_busy(sample_seconds=3.0):
    """Cores the machine kept busy over a short sample (this script sleeps meanwhile)."""
    busy0, _ = busy_and_total_ticks()
    time.sleep(sample_seconds)
    busy1, _ = busy_and_total_ticks()
    return (busy1 - busy0) / os.sysconf("SC_CLK_TCK") / sample_seconds


def wait_idle(limit_seconds):
    deadline = time.time() + limit_seconds
    while True:
        busy = other_cores_busy()
        if busy < 0.2 or time.time() >= deadline:
            return busy


def run_layout(args, layout, work):
    ranks, _, _, share = LAYOUTS[layout]
    threads = 1 if share is None else max(1, int(args.cores * share))
    run_dir = tempfile.mkdtemp(prefix=layout + "-", dir=work)
    config = os.path.join(run_dir, "run.yaml")
    out_dir = os.path.join(run_dir, "out")
    write_config(config, args, layout, out_dir)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    # --bind-to none: Open MPI binds each rank to one core when ranks <= 2, which would put a
    # one-rank run's threads on a single core.
    cmd = [args.mpirun, "--oversubscribe", "--allow-run-as-root", "--bind-to", "none",
           "-x", "OMP_NUM_THREADS", "-np", str(ranks), args.ft_train, "--config", config]
    idle_before = wait_idle(args.wait_idle) if args.wait_idle > 0 else None
    busy0, _ = busy_and_total_ticks()
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.time() - started
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, _ = busy_and_total_ticks()
    ours = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    # Cores other processes used on average during the run (the machine's busy time minus ours).
    others = max(0.0, (busy1 - busy0) / os.sysconf("SC_CLK_TCK") - ours) / wall
    if args.verbose or proc.returncode != 0:
        print(f"$ OMP_NUM_THREADS={threads} " + " ".join(cmd), file=sys.stderr)
        print(proc.stdout, file=sys.stderr)
    if proc.returncode != 0:
        sys.exit(f"{layout}: ft_train exited with {proc.returncode}")
    rows = []
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if "step_seconds" in row:
                rows.append(row)
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    if len(rows) != args.warmup + args.steps:
        sys.exit(f"{layout}: metrics.jsonl has {len(rows)} step rows, expected "
                 f"{args.warmup + args.steps}")
    timed = rows[args.warmup:]  # the first steps warm caches, allocators and MPI connections
    step = statistics.median(r["step_seconds"] for r in timed)
    comm = statistics.median(r["comm_seconds"] for r in timed)
    tokens_per_step = args.global_batch * args.seq
    return {"threads": threads, "step": step, "comm": comm, "tokens_per_s": tokens_per_step / step,
            "min": min(r["step_seconds"] for r in timed),
            "max": max(r["step_seconds"] for r in timed), "wall": wall, "others": others,
            "idle_before": idle_before}


def load_average():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main():
    args = parse_args()
    if args.from_json:  # the rounds of every file, merged
        layouts, results = [], {}
        for path in args.from_json:
            with open(path) as f:
                saved = json.load(f)
            for name in saved.get("layouts") or list(saved["results"]):
                if name not in results:
                    layouts.append(name)
                    results[name] = []
                results[name] += saved["results"][name]
        print_table(layouts, results, args.combine)
        return
    layouts = [name.strip() for name in args.layouts.split(",") if name.strip()]
    for name in layouts:
        if name not in LAYOUTS:
            sys.exit(f"unknown layout {name!r}; expected one of {', '.join(LAYOUTS)}")
    if not os.access(args.ft_train, os.X_OK):
        sys.exit(f"{args.ft_train}: not an executable (build it: ninja -C build ft_train)")
    print(f"ft_train: {args.ft_train}")
    print(f"model {args.preset}, {args.dtype}, global batch {args.global_batch} x {args.seq} = "
          f"{args.global_batch * args.seq} tokens per step, {args.cores} cores in total, "
          f"{args.steps} timed steps after {args.warmup} warm-up, {args.rounds} round(s)")
    print(f"load average before: {load_average()}")
    results = {name: [] for name in layouts}
    with tempfile.TemporaryDirectory(prefix="ft_bench_scaling-") as work:
        for round_index in range(args.rounds):
            for name in layouts:
                result = run_layout(args, name, work)
                results[name].append(result)
                print(f"  round {round_index + 1} {name}: step {result['step']:.3f} s (min "
                      f"{result['min']:.3f}, max {result['max']:.3f}), comm {result['comm']:.3f} s,"
                      f" other processes {result['others']:.2f} cores", flush=True)
    print(f"load average after: {load_average()}")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"layouts": layouts, "results": results}, f, indent=1)
    print_table(layouts, results, args.combine)


def print_table(layouts, results, combine):
    def combined(name, key):
        if combine == "quietest":
            return min(results[name], key=lambda r: r["others"])[key]
        return statistics.median(r[key] for r in results[name])

    base = combined("1rank", "step") if "1rank" in results else None
    header = ("| layout | ranks x threads | step s (median of steps) | comm s / step | "
              "comm share | tokens/s | efficiency vs 1 rank | fastest step s | "
              "other load (cores) |")
    print()
    print(header)
    print("|" + "---|" * 9)
    for name in layouts:
        ranks = LAYOUTS[name][0]
        step, comm = combined(name, "step"), combined(name, "comm")
        tokens = combined(name, "tokens_per_s")
        threads = results[name][0]["threads"]
        if not base:
            efficiency = "-"
        elif ranks * threads < results["1rank"][0]["threads"]:  # fewer cores than the baseline
            efficiency = f"({100 * base / step:.0f}%: {ranks * threads} core(s))"
        else:
            efficiency = f"{100 * base / step:.0f}%"
        print(f"| {name} | {ranks} x {threads} | {step:.3f} | {comm:.3f} | "
              f"{100 * comm / step:.1f}% | {tokens:,.0f} | {efficiency} | "
              f"{min(r['min'] for r in results[name]):.3f} | {combined(name, 'others'):.2f} |")
    print()
    print("efficiency = 1-rank step time / this layout's step time (same global batch, same "
          "total cores);\ncomm = rank 0's time inside collectives per step (includes waiting for "
          "the other rank);\nfastest step = the fastest timed step of any round (the least "
          "disturbed);\nother load = cores used by other processes during the run; "
          f"rounds combined: {combine}.")
    if base and "1rank-1thread" in results:
        print(f"one rank, {results['1rank'][0]['threads']} threads vs 1 thread: "
              f"{combined('1rank-1thread', 'step') / base:.2f}x speed-up")


if __name__ == "__main__":
    main()
