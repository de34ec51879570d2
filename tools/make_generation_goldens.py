#!/usr/bin/env python3
"""Writes tests/data/generation_golden/generations.json: greedy continuations by transformers and
PEFT for ft's generation parity test (tests/test_generation.cpp).

For each case of tests/data/peft_golden (README.md there: a tiny Llama-style or GPT-2-style base
in fp32 with one PEFT adapter, saved as PEFT saves it), the base is loaded with from_pretrained
and the adapter with PeftModel.from_pretrained, and PeftModel.generate continues a few fixed
prompts by 16 greedy tokens (KV cache on, no EOS stop). The bases alone are recorded too. With
each continuation the script stores, per step, the gap between the two largest logits: a small
gap is where an fp32 summation order could flip the argmax.

Usage (from the repository root; CPU, a few seconds; the environment of tools/make_peft_goldens.py):

    .venv-goldens/bin/python tools/make_generation_goldens.py [--out tests/data/generation_golden]

Before writing, each continuation is checked against a greedy loop without a cache that
recomputes the whole sequence each step (the semantics of peft.md: virtual tokens at positions
0..P-1, real tokens from P, prefix keys never rotated); an AssertionError stops the script.
"""

import argparse
import json
import pathlib
import platform
import re

import peft
import torch
import transformers

from greedy_reference import greedy_generate, recompute_greedy  # noqa: E402 (patches generate)

REPO = pathlib.Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests/data/peft_golden"
FAMILIES = {"llama": transformers.LlamaForCausalLM, "gpt2": transformers.GPT2LMHeadModel}
METHODS = ["prompt_tuning", "p_tuning", "prefix_tuning", "prefix_tuning_projection", "lora",
           "lora_all_linear_rslora"]
NEW_TOKENS = 16
PROMPT_LENGTHS = (5, 11)


def prompts(vocab):
    generator = torch.Generator().manual_seed(4321)
    return [torch.randint(0, vocab, (1, n), generator=generator) for n in PROMPT_LENGTHS]


def load_base(family, case_dir):
    return FAMILIES[family].from_pretrained(
        case_dir, torch_dtype=torch.float32, attn_implementation="eager").eval()


def record(name, family, method, model, adapter):
    entry = {"case": name, "family": family, "method": method,
             "model": f"peft_golden/{family}_lora" if adapter is None else f"peft_golden/{name}",
             "adapter": adapter, "prompts": [], "continuations": [], "top2_gaps": []}
    vocab = model.config.vocab_size
    with torch.no_grad():
        for input_ids in prompts(vocab):
            new, gaps = greedy_generate(model, input_ids, NEW_TOKENS)
            assert recompute_greedy(model, input_ids, NEW_TOKENS) == new, f"{name}: cache vs recompute"
            entry["prompts"].append(input_ids[0].tolist())
            entry["continuations"].append(new)
            entry["top2_gaps"].append([round(g, 6) for g in gaps])
    print(f"{name}: smallest top-2 logit gap {min(min(g) for g in entry['top2_gaps']):.4g}")
    return entry


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "tests/data/generation_golden")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()

    cases = []
    for family in FAMILIES:
        # The base alone: every case folder of a family holds the same base.
        cases.append(record(f"{family}_base", family, "base",
                            load_base(family, GOLDEN / f"{family}_lora"), None))
        for method in METHODS:
            name = f"{family}_{method}"
            case_dir = GOLDEN / name
            model = peft.PeftModel.from_pretrained(load_base(family, case_dir),
                                                   case_dir / "adapter").eval()
            cases.append(record(name, family, method, model, f"peft_golden/{name}/adapter"))

    args.out.mkdir(parents=True, exist_ok=True)
    document = {
        "new_tokens": NEW_TOKENS,
        "decoding": "greedy, KV cache, no EOS stop (PeftModel.generate / generate)",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "peft": peft.__version__},
        "cases": cases,
    }
    text = json.dumps(document, indent=1)
    text = re.sub(r"\[[-0-9.e,\s]*\]", lambda m: " ".join(m.group(0).split()), text)  # one line
    (args.out / "generations.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
