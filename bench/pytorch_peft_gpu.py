#!/usr/bin/env python3
"""The PyTorch + Hugging Face PEFT peer of `bench_step --device cuda`: transformers'
LlamaForCausalLM from a Hugging Face config.json (random init; by default Llama-3.2-1B's shape),
attn_implementation="sdpa", trained on one GPU with ft's batch, optimizer and timing.

Precision, as ft runs it: trainable parameters are fp32 master weights with fp32 gradients and
AdamW state (torch.optim.AdamW(fused=True)); the forward and backward run under the
PyTorch-standard torch.autocast(device_type="cuda", dtype=torch.bfloat16). Full fine-tuning keeps
the whole model in fp32 (autocast casts the weights to bf16 for each matmul); the PEFT methods
hold the frozen base in bf16 and the adapter in fp32.

Step: zero grads (set_to_none), forward with labels, backward, clip_grad_norm_(1.0), AdamW
(betas 0.9/0.95, weight decay 0.1 on matrices and embeddings), then torch.cuda.synchronize();
warm-up steps, then the median of the timed steps. Labels are the ids (the model shifts them, so
it predicts seq - 1 tokens per sequence where ft predicts seq).

Reports tokens/s, MFU (model FLOPs per token as bench_step counts them, over the GPU's dense bf16
peak), torch.cuda.max_memory_allocated, and the device memory the run holds by cudaMemGetInfo
(comparable with bench_step's). --result-json ends with one JSON line for run_e2e_gpu.py.

  python3 bench/pytorch_peft_gpu.py --method lora --lora-r 16 --lora-targets all
  python3 bench/pytorch_peft_gpu.py --dry-run            # the plan and FLOP count; no torch
  python3 bench/pytorch_peft_gpu.py --write-config out/llama-3.2-1b.json
"""
import argparse
import contextlib
import json
import os
import statistics
import sys
import time

METHODS = ["full", "prompt_tuning", "prefix_tuning", "lora"]
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RESULT_TAG = "pytorch_peft_gpu-result: "

# meta-llama/Llama-3.2-1B's config.json (shapes only; the weights here are random).
LLAMA_3_2_1B = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "head_dim": 64,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 16,
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "use_cache": False,
    "vocab_size": 128256,
}


def lora_targets(spec):
    """Module names from a comma-separated list, or "all" (every linear but the LM head)."""
    return ALL_LINEAR if spec in ("all", "all-linear") else [t for t in spec.split(",") if t]


def model_flops_per_token(cfg, method, batch, seq, virtual_tokens, lora_r, targets):
    """Model FLOPs per data token, exactly as bench_step counts them (bench/peft_bench.cpp
    model_flops_per_token; reference/performance.md): per model row 6N (full) or 4N (PEFT, frozen
    base) + 12 L H D K (K = keys per query, not halved for the causal mask) + 6 r (in + out) per
    LoRA matrix; N = every matmul weight (non-embedding parameters, norms included, plus the LM
    head); prompt tuning runs P more rows per sequence."""
    C, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    L, H = cfg["num_hidden_layers"], cfg["num_attention_heads"]
    D = cfg.get("head_dim") or C // H
    Hkv = cfg.get("num_key_value_heads") or H
    q, kv = H * D, Hkv * D
    per_layer = C * q + 2 * C * kv + q * C + 3 * C * F + 2 * C  # attention, SwiGLU MLP, 2 norms
    N = L * per_layer + C + V * C  # + final norm + LM head (tied or not: it is a matmul)
    P = virtual_tokens if method in ("prompt_tuning", "prefix_tuning") else 0
    rows = seq + (P if method == "prompt_tuning" else 0)
    keys = rows + (P if method == "prefix_tuning" else 0)
    per_row = (6.0 if method == "full" else 4.0) * N + 12.0 * L * H * D * keys
    if method == "lora":
        shapes = {"q_proj": (C, q), "k_proj": (C, kv), "v_proj": (C, kv), "o_proj": (q, C),
                  "gate_proj": (C, F), "up_proj": (C, F), "down_proj": (F, C)}
        per_row += L * sum(6.0 * lora_r * sum(shapes[t]) for t in targets)
    return per_row * rows / seq


def dense_bf16_peak(name):
    """As bench/bench_util.cpp's dense_bf16_peak: (TFLOP/s, source); 0 when unknown."""
    if "H200" in name:
        return 989.0, "H200 dense bf16 (datasheet, as H100 SXM)"
    if "H100" in name and "PCIe" in name:
        return 756.0, "H100 PCIe dense bf16 (datasheet)"
    if "H100" in name and "NVL" not in name:
        return 989.0, "H100 SXM dense bf16 (datasheet)"
    return 0.0, f"no peak known for '{name}'"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--config", help="Hugging Face config.json (default: Llama-3.2-1B's shape)")
    p.add_argument("--write-config", metavar="PATH",
                   help="write the built-in Llama-3.2-1B config.json to PATH and exit")
    p.add_argument("--method", choices=METHODS, default="full")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=2048, help="data tokens per sequence")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--virtual-tokens", type=int, default=20,
                   help="P for prompt tuning and prefix tuning")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--lora-alpha", type=float, default=8.0)
    p.add_argument("--lora-targets", default="q_proj,v_proj",
                   help="comma-separated module names, or all (every linear but the LM head)")
    p.add_argument("--attn-implementation", default="sdpa", help="transformers' attention")
    p.add_argument("--peak-tflops", type=float, default=0.0,
                   help="dense bf16 peak for MFU (0: from the GPU's name)")
    p.add_argument("--device", default="cuda",
                   help="cuda; cpu only as a smoke test of this script (bf16 autocast on the CPU)")
    p.add_argument("--result-json", action="store_true",
                   help="end with one 'pytorch_peft_gpu-result: {...}' JSON line")
    p.add_argument("--dry-run", action="store_true",
                   help="print the configuration and FLOP count; import no torch, run nothing")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.batch < 1 or args.seq < 1:
        p.error("--steps, --batch and --seq must be positive and --warmup non-negative")
    return args


def load_config(args):
    if not args.config:
        return dict(LLAMA_3_2_1B)
    with open(args.config) as f:
        cfg = json.load(f)
    if cfg.get("model_type") != "llama":
        sys.exit(f"pytorch_peft_gpu: {args.config}: model_type {cfg.get('model_type')!r}; "
                 "this peer builds LlamaForCausalLM (model_type llama)")
    return cfg


def method_summary(args, targets):
    P = args.virtual_tokens
    return {"full": "full fine-tuning",
            "prompt_tuning": f"prompt tuning ({P} virtual tokens, random init)",
            "prefix_tuning": f"prefix tuning ({P} virtual tokens, no projection)",
            "lora": f"LoRA (r {args.lora_r}, alpha {args.lora_alpha:g}, dropout 0, "
                    f"{','.join(targets)})"}[args.method]


def peft_config(peft, args, targets):
    P = args.virtual_tokens
    if args.method == "prompt_tuning":
        return peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=P)
    if args.method == "prefix_tuning":
        return peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=P)
    return peft.LoraConfig(task_type="CAUSAL_LM", target_modules=targets, r=args.lora_r,
                           lora_alpha=args.lora_alpha, lora_dropout=0.0)


def build_model(cfg, args, torch, transformers):
    """LlamaForCausalLM with random weights on the device: fp32 for full fine-tuning, a bf16 base
    for PEFT. The config goes through LlamaConfig.from_dict, the path a config.json takes."""
    config_dict = dict(cfg, attn_implementation=args.attn_implementation)
    try:
        config = transformers.LlamaConfig.from_dict(config_dict)
    except (ValueError, KeyError, TypeError) as error:  # a rope_scaling this version rejects
        print(f"pytorch_peft_gpu: LlamaConfig refused the config ({error}); dropping rope_scaling "
              "(it changes no shape or cost)")
        config_dict.pop("rope_scaling", None)
        config = transformers.LlamaConfig.from_dict(config_dict)
    config.use_cache = False
    try:  # the constructor took attn_implementation already in the versions seen; make sure
        config._attn_implementation = args.attn_implementation
    except AttributeError:
        pass
    torch.manual_seed(args.seed)
    # Initialized where it trains (torch >= 2.0 has the device context; the CPU smoke test needs
    # none).
    with torch.device(args.device) if args.device != "cpu" else contextlib.nullcontext():
        model = transformers.LlamaForCausalLM(config)
    if args.method != "full":
        model = model.to(torch.bfloat16)
    return model.train()


def measure(args):
    import torch  # noqa: E402
    import peft  # noqa: E402
    import transformers  # noqa: E402

    transformers.logging.set_verbosity_error()
    cfg = load_config(args)
    targets = lora_targets(args.lora_targets)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("pytorch_peft_gpu: torch sees no CUDA device (use --device cpu for a smoke test)")
    gpu_name = torch.cuda.get_device_name() if cuda else "cpu"
    peak, peak_source = ((args.peak_tflops, "--peak-tflops") if args.peak_tflops > 0
                         else dense_bf16_peak(gpu_name))
    if cuda:  # the CUDA context first, so the baseline below excludes it as bench_step's does
        torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
        free, total = torch.cuda.mem_get_info()
        used_before = total - free

    model = build_model(cfg, args, torch, transformers)
    attention = getattr(model.config, "_attn_implementation", "unknown")
    if args.method != "full":
        model = peft.get_peft_model(model, peft_config(peft, args, targets))
        # fp32 masters for the adapter (PEFT's autocast_adapter_dtype does this already; make it
        # independent of the version).
        for p in model.parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
        trainable, total_params = model.get_nb_trainable_parameters()
    else:
        total_params = trainable = sum(p.numel() for p in model.parameters())
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    fused = {"fused": True} if cuda else {}  # fused AdamW is the CUDA kernel
    optimizer = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, **fused)

    generator = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(1, cfg["vocab_size"], (args.batch, args.seq), generator=generator)
    ids = ids.to(args.device)
    flops = model_flops_per_token(cfg, args.method, args.batch, args.seq, args.virtual_tokens,
                                  args.lora_r, targets)
    tokens = args.batch * args.seq
    print(f"pytorch_peft_gpu: torch {torch.__version__}, transformers {transformers.__version__}, "
          f"peft {peft.__version__}; {gpu_name}; attention {attention}")
    if attention != args.attn_implementation:
        print(f"pytorch_peft_gpu: WARNING: transformers chose attention {attention!r}, not the "
              f"{args.attn_implementation!r} asked for")
    print(f"pytorch_peft_gpu: {args.method}: {method_summary(args, targets)}; {trainable:,} of "
          f"{total_params:,} parameters train; batch {args.batch} x seq {args.seq} = {tokens} "
          f"tokens per step; {flops / 1e6:.1f} MFLOP of model FLOPs per token")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    times, first_loss, loss = [], None, None
    for step in range(1, args.warmup + args.steps + 1):
        sync()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=args.device, dtype=torch.bfloat16):
            loss_tensor = model(input_ids=ids, labels=ids).loss
        loss_tensor.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        sync()
        seconds = time.perf_counter() - start
        loss = loss_tensor.item()
        first_loss = loss if first_loss is None else first_loss
        warm = step > args.warmup
        print(f"  step {step:>3}{'  ' if warm else ' w'} {seconds * 1e3:8.1f} ms  loss {loss:.4f}",
              flush=True)
        if warm:
            times.append(seconds)

    step_s = statistics.median(times)
    tokens_per_s = tokens / step_s
    result = {"impl": "pytorch", "method": args.method, "summary": method_summary(args, targets),
              "device": args.device, "gpu": gpu_name, "attention": attention,
              "precision": "bf16 autocast, fp32 master weights", "batch": args.batch,
              "seq": args.seq, "tokens_per_step": tokens, "trainable_params": trainable,
              "total_params": total_params, "step_ms": step_s * 1e3, "min_ms": min(times) * 1e3,
              "max_ms": max(times) * 1e3, "tokens_per_s": tokens_per_s,
              "model_flops_per_token": flops, "peak_tflops": peak, "peak_source": peak_source,
              "mfu": tokens_per_s * flops / (peak * 1e12) if peak > 0 else None,
              "first_loss": first_loss, "last_loss": loss, "steps": args.steps,
              "warmup": args.warmup,
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                           "peft": peft.__version__}}
    if cuda:
        free, total = torch.cuda.mem_get_info()
        result["device_memory_bytes"] = total - free - used_before
        result["max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated()
        result["max_memory_reserved_bytes"] = torch.cuda.max_memory_reserved()
    print("\nResult")
    print(f"  step time       median {step_s * 1e3:.1f} ms, min {min(times) * 1e3:.1f}, "
          f"max {max(times) * 1e3:.1f} ({args.steps} steps after {args.warmup} warm-up)")
    print(f"  throughput      {tokens_per_s:.0f} tokens/s, "
          f"{tokens_per_s * flops * 1e-12:.1f} TFLOP/s of model FLOPs")
    if result["mfu"] is not None:
        print(f"  MFU             {result['mfu'] * 100:.1f}% of {peak:.0f} TFLOP/s ({peak_source})")
    else:
        print(f"  MFU             not computed: {peak_source} (give --peak-tflops)")
    if cuda:
        gib = 2.0 ** 30
        print(f"  device memory   {result['device_memory_bytes'] / gib:.2f} GiB held by the run "
              f"(cudaMemGetInfo after the steps minus after the CUDA context); "
              f"max_memory_allocated {result['max_memory_allocated_bytes'] / gib:.2f} GiB, "
              f"max_memory_reserved {result['max_memory_reserved_bytes'] / gib:.2f} GiB")
    print(f"  loss            {first_loss:.4f} (step 1) -> {loss:.4f} (step {args.warmup + args.steps})")
    return result


def main(argv=None):
    args = parse_args(argv)
    if args.write_config:
        os.makedirs(os.path.dirname(os.path.abspath(args.write_config)), exist_ok=True)
        with open(args.write_config, "w") as f:
            json.dump(LLAMA_3_2_1B, f, indent=2)
        print(f"pytorch_peft_gpu: wrote {args.write_config}")
        return
    if args.dry_run:
        cfg = load_config(args)
        targets = lora_targets(args.lora_targets)
        flops = model_flops_per_token(cfg, args.method, args.batch, args.seq, args.virtual_tokens,
                                      args.lora_r, targets)
        print(f"pytorch_peft_gpu: dry run: {args.method}: {method_summary(args, targets)}; "
              f"batch {args.batch} x seq {args.seq}; {flops:.1f} FLOP of model FLOPs per "
              f"token; device {args.device}, attention {args.attn_implementation}")
        return
    result = measure(args)
    if args.result_json:
        print(RESULT_TAG + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
