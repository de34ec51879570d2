"""Pieces shared by the GPU benchmark runners (bench/run_kernel_bench.py, bench/run_e2e_gpu.py):
their common options, the --budget deadline, running one benchmark process with its output echoed
and logged, and the environment lines (GPU, driver, date, versions) on top of each report."""
import argparse
import datetime
import os
import subprocess
import sys
import time


def default_binary(name):
    """ft's `name` binary: the GPU session's build (/tmp/ft), else this checkout's build/, else
    whatever PATH finds."""
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (f"/tmp/ft/bin/{name}", os.path.join(here, "..", "build", "bin", name)):
        if os.path.exists(path):
            return os.path.normpath(path)
    return name


def runner_parser(doc):
    """An argument parser whose description is the first paragraph of the runner's `doc` and
    whose epilog is the rest."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=doc.split("\n\n", 1)[1])


def add_runner_arguments(p):
    """The options both runners end with: the header's commit, which sides run, --budget and
    --dry-run."""
    p.add_argument("--ft-commit", default="", help="ft's commit, for the header")
    p.add_argument("--skip-ft", action="store_true")
    p.add_argument("--skip-peer", action="store_true")
    p.add_argument("--budget", type=float, default=0,
                   help="seconds for the whole run (0: none): a process that would start with "
                   "under 30 s left is skipped, and each gets at most what is left")
    p.add_argument("--dry-run", action="store_true", help="print the commands; run nothing")


class Deadline:
    """What is left of --budget: the timeout of the next process, or None to skip it."""

    def __init__(self, budget, timeout):
        self.end = time.monotonic() + budget if budget > 0 else None
        self.timeout = timeout

    def next_timeout(self):
        if self.end is None:
            return self.timeout
        left = self.end - time.monotonic()
        return min(self.timeout, int(left)) if left >= 30 else None


def run_logged(command, log_path, timeout, runner, read_line):
    """Runs `command`, logging every output line to `log_path` and passing it to
    read_line(line), which returns True to echo it too; returns the exit status (127: could not
    start, 124: passed `timeout` seconds and stopped). `runner` names the calling script in its
    messages."""
    print("$ " + " ".join(command), flush=True)
    with open(log_path, "w") as log:
        try:
            child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        except OSError as error:
            print(f"{runner}: cannot start {command[0]}: {error}", flush=True)
            return 127
        try:
            for line in child.stdout:
                log.write(line)
                if read_line(line):
                    print(line, end="", flush=True)
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            print(f"{runner}: {command[0]} passed {timeout} s; stopped it", flush=True)
            return 124
    return child.returncode


def environment(python=sys.executable):
    """Lines naming the GPU, driver, date and software versions (for both runner scripts)."""
    lines = [f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}"]
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,"
                              "clocks.max.sm,power.limit", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        lines.append("GPU (nvidia-smi name, driver, memory, max SM clock, power limit): " +
                     (smi.stdout.strip() or smi.stderr.strip()))
    except (OSError, subprocess.TimeoutExpired) as error:
        lines.append(f"GPU: nvidia-smi unavailable ({error})")
    probe = ("import importlib\n"
             "for m in ('torch', 'transformers', 'peft'):\n"
             "    try:\n"
             "        mod = importlib.import_module(m)\n"
             "        extra = ''\n"
             "        if m == 'torch':\n"
             "            extra = f' (CUDA {mod.version.cuda}, cuDNN {mod.backends.cudnn.version()})'\n"
             "        print(f'{m} {mod.__version__}{extra}')\n"
             "    except Exception as e:\n"
             "        print(f'{m}: not importable ({type(e).__name__})')\n")
    try:
        out = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=120)
        lines.append("python: " + "; ".join(out.stdout.split("\n")[:-1]))
    except (OSError, subprocess.TimeoutExpired) as error:
        lines.append(f"python: {python} failed ({error})")
    return lines
