#!/usr/bin/env python3
"""The PyTorch + Hugging Face PEFT peer of `bench_step --method`: transformers' GPT2LMHeadModel in
the bench-gpt2 shape, wrapped by PEFT for each fine-tuning method, trained on CPU with the same
batch, threads, optimizer and timing as ft (warm-up steps, then the median of the timed steps).

Needs torch, transformers and peft in one interpreter, e.g. the goldens venv:
  .venv-goldens/bin/python bench/pytorch_peft_step.py --method all
`--method all` runs each method in its own subprocess, so each method's peak RSS is its own;
`--in-process` runs them one after another in this process instead (peak RSS then cumulative).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

METHODS = ["full", "prompt_tuning", "prefix_tuning", "p_tuning", "lora"]
RESULT_TAG = "pytorch_peft_step-result: "  # a child's one JSON line for the parent


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # The bench-gpt2 preset of models/model_config.cpp.
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--width", type=int, default=384)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--context", type=int, default=256, help="learned position table size")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=236,
                   help="data tokens per sequence (virtual tokens + seq must fit --context)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--method", choices=METHODS + ["all"], default="all")
    p.add_argument("--virtual-tokens", type=int, default=20,
                   help="P for prompt tuning, prefix tuning and P-tuning")
    p.add_argument("--lora-r", type=int, default=8, help="LoRA rank (lora_alpha stays 8)")
    p.add_argument("--encoder-hidden", type=int, default=0,
                   help="P-tuning MLP encoder width (0: the model's hidden size)")
    p.add_argument("--attn-implementation", choices=["eager", "sdpa"], default=None,
                   help="transformers' attention (default: its own choice; "
                   "sdpa needs torch >= 2.1.1)")
    p.add_argument("--in-process", action="store_true",
                   help="--method all: run every method in this process (peak RSS cumulative)")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child of --method all
    return p.parse_args()


args = parse_args()
if args.steps < 1 or args.warmup < 0:
    sys.exit(f"pytorch_peft_step: --steps {args.steps} must be >= 1 and "
             f"--warmup {args.warmup} >= 0")
for method in ([args.method] if args.method != "all" else METHODS):
    if method not in ("full", "lora") and args.virtual_tokens + args.seq > args.context:
        sys.exit(f"pytorch_peft_step: --method {method}: {args.virtual_tokens} virtual tokens + "
                 f"--seq {args.seq} exceed --context {args.context} positions (use --seq "
                 f"{args.context - args.virtual_tokens} or less)")
    if method in ("full", "lora") and args.seq > args.context:
        sys.exit(f"pytorch_peft_step: --seq {args.seq} exceeds --context {args.context}")
# Before importing torch: the BLAS library reads these when it loads.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import peft  # noqa: E402
import torch  # noqa: E402

from blas_report import loaded_blas  # noqa: E402
import transformers  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

torch.set_num_threads(args.threads)
transformers.logging.set_verbosity_error()  # no "use_cache=True is incompatible" chatter


def current_rss_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def format_bytes(n):
    return f"{n / 2**20:.0f} MiB"


def short_count(n):
    if n >= 1e6:
        return f"{n / 1e6:.2f} M"
    if n >= 1e3:
        return f"{n / 1e3:.1f} K"
    return str(n)


def build_base_model():
    config = GPT2Config(vocab_size=args.vocab, n_positions=args.context, n_embd=args.width,
                        n_layer=args.layers, n_head=args.heads, activation_function="gelu_new",
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
                        tie_word_embeddings=True, use_cache=False)
    kwargs = {}
    if args.attn_implementation:
        kwargs["attn_implementation"] = args.attn_implementation
    torch.manual_seed(args.seed)  # the same base weights for every method
    return GPT2LMHeadModel(config, **kwargs).float().train()


def peft_config(method):
    """PEFT's config for a method with PEFT's defaults, as bench_step resolves them."""
    P = args.virtual_tokens
    if method == "prompt_tuning":
        return peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=P)
    if method == "prefix_tuning":
        return peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=P)
    if method == "p_tuning":
        return peft.PromptEncoderConfig(
            task_type="CAUSAL_LM", num_virtual_tokens=P, encoder_reparameterization_type="MLP",
            encoder_hidden_size=args.encoder_hidden or args.width)
    if method == "lora":
        return peft.LoraConfig(task_type="CAUSAL_LM", target_modules=["c_attn"], r=args.lora_r,
                               lora_alpha=8, lora_dropout=0.0, fan_in_fan_out=True)
    raise ValueError(method)


def method_summary(method):
    P = args.virtual_tokens
    if method == "full":
        return "full fine-tuning"
    if method == "prompt_tuning":
        return f"prompt tuning ({P} virtual tokens, random init)"
    if method == "prefix_tuning":
        return f"prefix tuning ({P} virtual tokens)"
    if method == "p_tuning":
        width = args.encoder_hidden or args.width
        return f"P-tuning ({P} virtual tokens, MLP encoder width {width})"
    return f"LoRA (r {args.lora_r}, alpha 8, scale {8 / args.lora_r:.4g}, dropout 0, c_attn)"


def model_rows(method):
    """Rows the model runs per step: prompt tuning and P-tuning prepend P rows to each sequence."""
    extra = args.virtual_tokens if method in ("prompt_tuning", "p_tuning") else 0
    return args.batch * (extra + args.seq)


def measure(method, echo=print):
    """Builds the model for `method`, times its steps and returns the figures as a dict."""
    model = build_base_model()
    if method != "full":
        model = peft.get_peft_model(model, peft_config(method))
        trainable, total = model.get_nb_trainable_parameters()
    else:
        total = sum(p.numel() for p in model.parameters())
        trainable = total
    params = [p for p in model.parameters() if p.requires_grad]
    # Weight decay on matrices and embeddings, not on norms and biases (as ft's parameter table).
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() == 2], "weight_decay": 0.1},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=1e-4, betas=(0.9, 0.95), eps=1e-8)

    # The same seeded ids for every method, from [1, V); labels = ids (the model shifts them).
    generator = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(1, args.vocab, (args.batch, args.seq), generator=generator)

    echo(f"\n{method}: {method_summary(method)}; {trainable:,} of {total:,} parameters train "
         f"({100.0 * trainable / total:.3g}%)")
    rss_before = current_rss_bytes()
    times, first_loss, loss = [], None, None
    for step in range(1, args.warmup + args.steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_tensor = model(input_ids=ids, labels=ids).loss
        loss_tensor.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        seconds = time.perf_counter() - start
        loss = loss_tensor.item()
        first_loss = loss if first_loss is None else first_loss
        warm = step > args.warmup
        echo(f"  step {step:>3}{'  ' if warm else ' w'} {seconds * 1e3:8.1f} ms  loss {loss:.4f}")
        if warm:
            times.append(seconds)
    return {"method": method, "summary": method_summary(method), "trainable": trainable,
            "total": total, "step_s": statistics.median(times), "min_s": min(times),
            "max_s": max(times), "rows": model_rows(method), "first_loss": first_loss,
            "last_loss": loss, "attention": model.config._attn_implementation,
            "rss_before_steps": rss_before, "peak_rss": peak_rss_bytes()}


def measure_in_child(method):
    """Runs this script for one method in a fresh interpreter, echoing its step lines; the
    child's own peak RSS then belongs to that method alone."""
    command = [sys.executable, os.path.abspath(__file__), "--one", "--method", method]
    for name in ("layers", "width", "heads", "vocab", "context", "batch", "seq", "threads",
                 "steps", "warmup", "seed", "virtual_tokens", "lora_r", "encoder_hidden"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if args.attn_implementation:
        command += ["--attn-implementation", args.attn_implementation]
    result = None
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        for line in child.stdout:
            if line.startswith(RESULT_TAG):
                result = json.loads(line[len(RESULT_TAG):])
            else:
                print(line, end="", flush=True)
    if child.returncode != 0 or result is None:
        sys.exit(f"pytorch_peft_step: the child for --method {method} failed "
                 f"(exit status {child.returncode})")
    return result


def print_table(results, per_process):
    full = next((r for r in results if r["method"] == "full"), None)
    print("\nMethod comparison (median step; tokens = batch x seq data tokens, virtual rows not "
          "counted)")
    print(f"  {'method':<14} {'trainable':>10} {'% model':>8} {'step ms':>9} {'tokens/s':>9} "
          f"{'speed-up':>8} {'min ms':>8} {'max ms':>8} {'RSS start':>10} {'peak RSS':>10}")
    for r in results:
        speed_up = f"{full['step_s'] / r['step_s']:.2f}x" if full else "-"
        print(f"  {r['method']:<14} {short_count(r['trainable']):>10} "
              f"{100.0 * r['trainable'] / r['total']:>7.3g}% {r['step_s'] * 1e3:>9.1f} "
              f"{args.batch * args.seq / r['step_s']:>9.0f} {speed_up:>8} "
              f"{r['min_s'] * 1e3:>8.1f} {r['max_s'] * 1e3:>8.1f} "
              f"{format_bytes(r['rss_before_steps']):>10} {format_bytes(r['peak_rss']):>10}")
    if per_process:
        print("  RSS start: resident set before the first step (interpreter, torch, model, "
              "optimizer); peak RSS:\n  getrusage ru_maxrss of the method's own process.")
    else:
        print("  RSS start: resident set before the method's first step; peak RSS: getrusage "
              "ru_maxrss of this one\n  process, the maximum over every method run so far, so "
              "it cannot tell the methods apart.")
    print(f"\nMethods (transformers attention: {results[0]['attention']})")
    for r in results:
        print(f"  {r['method']:<14} {r['summary']}; {r['rows']} model rows per step; "
              f"loss {r['first_loss']:.4f} -> {r['last_loss']:.4f}")


def main():
    if args.one:  # a child: one method, its step lines, then the result line for the parent
        result = measure(args.method, echo=lambda line: print(line, flush=True))
        print(RESULT_TAG + json.dumps(result), flush=True)
        return
    print(f"pytorch_peft_step: torch {torch.__version__}, transformers {transformers.__version__}, "
          f"peft {peft.__version__}; fp32 on cpu, {torch.get_num_threads()} threads")
    print(f"pytorch_peft_step: BLAS {loaded_blas()}")
    print(f"pytorch_peft_step: GPT2LMHeadModel, {args.layers} layers, width {args.width}, "
          f"{args.heads} heads, vocab {args.vocab}, context {args.context}, gelu_new, tied "
          f"embeddings, dropout 0")
    print(f"pytorch_peft_step: batch {args.batch} x seq {args.seq} = {args.batch * args.seq} data "
          f"tokens per step; {args.steps} timed steps after {args.warmup} warm-up per method; "
          f"AdamW (0.9, 0.95), weight decay 0.1, clip 1.0")
    methods = METHODS if args.method == "all" else [args.method]
    per_process = len(methods) > 1 and not args.in_process
    if per_process:
        results = [measure_in_child(method) for method in methods]
    else:
        results = [measure(method) for method in methods]
    print_table(results, per_process or len(methods) == 1)


if __name__ == "__main__":
    main()
