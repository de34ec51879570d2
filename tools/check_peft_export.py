#!/usr/bin/env python3
"""Checks that adapters ft exports load in Hugging Face PEFT and give ft's outputs.

Usage (from the repository root; CPU, a few seconds):

    mkdir -p /tmp/ft_export_check
    FT_EXPORT_CHECK_DIR=/tmp/ft_export_check build/tests/test_peft_interchange \\
        --gtest_filter='*ExportWritesWhatPeftWrites*'
    .venv-goldens/bin/python tools/check_peft_export.py /tmp/ft_export_check

(.venv-goldens: see tests/data/peft_golden/README.md; torch 1.13, transformers 4.49, peft 0.21.2.)

With FT_EXPORT_CHECK_DIR set, the test takes each golden case of tests/data/peft_golden, sets the
adapter to the golden's trainable values, exports it with ft's exporter (export_peft_adapter, what
ft_train and ft_convert export-adapter call) and writes, per case, <dir>/<case>/:

    adapter/                 adapter_config.json + adapter_model.safetensors, as ft writes them
    ft_logits.safetensors    input_ids (B, L) and ft's logits (B, T, V) for them (T = L + P for
                             prompt tuning and P-tuning, whose virtual rows PEFT returns too)

For each such folder this script loads the base model that adapter_config.json's
base_model_name_or_path names (the golden case folder: config.json + model.safetensors; --base
overrides it) with transformers, puts the adapter on it with peft.PeftModel.from_pretrained, runs
the same input ids and compares PEFT's logits with ft's. It also checks that PEFT holds exactly the
file's tensors (get_peft_model_state_dict equals adapter_model.safetensors) and, where the base
folder has the golden tensors.safetensors for the same inputs, reports PEFT's distance to the
golden logits too. Exit status 1 when a case's relative L2 difference exceeds --tolerance.

The argument may be one case folder (holding adapter/ and ft_logits.safetensors) or a folder of
them.
"""

import argparse
import json
import pathlib
import sys

import peft
import torch
import transformers
from safetensors import safe_open
from safetensors.torch import load_file


def relative_l2(actual, expected):
    return (torch.linalg.norm((actual - expected).double()) /
            torch.linalg.norm(expected.double())).item()


def case_folders(root):
    if (root / "adapter").is_dir():
        return [root]
    folders = sorted(p for p in root.iterdir() if (p / "adapter").is_dir())
    if not folders:
        sys.exit(f"{root}: no adapter/ folder in it or in its subfolders")
    return folders


def check_case(case_dir, base_override):
    adapter = case_dir / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    base = base_override or config.get("base_model_name_or_path")
    if not base:
        sys.exit(f"{adapter}/adapter_config.json names no base model: pass --base")
    with safe_open(adapter / "adapter_model.safetensors", framework="pt") as weights:
        metadata = weights.metadata() or {}
    if metadata.get("format") != "pt":
        sys.exit(f"{adapter}/adapter_model.safetensors: metadata format is "
                 f"{metadata.get('format')!r}, PEFT expects 'pt'")
    ft = load_file(case_dir / "ft_logits.safetensors")
    input_ids = ft["input_ids"].long()
    ft_logits = ft["logits"]

    model = transformers.AutoModelForCausalLM.from_pretrained(
        base, torch_dtype=torch.float32, attn_implementation="eager").eval()
    model = peft.PeftModel.from_pretrained(model, adapter).eval()
    held = peft.get_peft_model_state_dict(model)
    saved = load_file(adapter / "adapter_model.safetensors")
    if sorted(held) != sorted(saved):
        sys.exit(f"{adapter}: PEFT holds {sorted(held)}, the file {sorted(saved)}")
    for name, value in saved.items():
        if not torch.equal(held[name].float(), value.float()):
            sys.exit(f"{adapter}: PEFT's {name} differs from the file's")
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits
    if logits.shape != ft_logits.shape:
        sys.exit(f"{case_dir}: PEFT's logits are {tuple(logits.shape)}, ft's "
                 f"{tuple(ft_logits.shape)}")
    result = {
        "case": case_dir.name,
        "peft_type": config["peft_type"],
        "relative_l2": relative_l2(ft_logits, logits),
        "max_abs": (ft_logits - logits).abs().max().item(),
        "max_logit": logits.abs().max().item(),
    }
    golden = pathlib.Path(base) / "tensors.safetensors"
    if golden.is_file():
        tensors = load_file(golden)
        if torch.equal(tensors["input_ids"].long(), input_ids):
            result["peft_vs_golden"] = relative_l2(logits, tensors["logits"])
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=pathlib.Path,
                        help="a case folder (adapter/ + ft_logits.safetensors) or a folder of them")
    parser.add_argument("--base", help="Hugging Face model folder or name (default: each adapter's "
                        "base_model_name_or_path)")
    parser.add_argument("--tolerance", type=float, default=1e-5,
                        help="largest relative L2 difference of the logits accepted")
    args = parser.parse_args()

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    failed = 0
    for case_dir in case_folders(args.folder):
        r = check_case(case_dir, args.base)
        ok = r["relative_l2"] <= args.tolerance
        failed += not ok
        golden = (f", PEFT vs golden {r['peft_vs_golden']:.2e}" if "peft_vs_golden" in r else "")
        print(f"{'ok  ' if ok else 'FAIL'} {r['case']:<32} {r['peft_type']:<14} ft vs PEFT: "
              f"max |diff| {r['max_abs']:.2e} (largest logit {r['max_logit']:.2f}), relative L2 "
              f"{r['relative_l2']:.2e}{golden}")
    print(f"{failed} of {len(case_folders(args.folder))} cases above relative L2 {args.tolerance:g}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
