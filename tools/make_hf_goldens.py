#!/usr/bin/env python3
"""Writes the Hugging Face checkpoint parity goldens: tests/data/hf_golden/.

Four tiny random models built with transformers, each saved with save_pretrained as a Hugging Face
model folder (config.json, model.safetensors in fp32, generation_config.json):

    llama    LlamaForCausalLM, GQA (4 query / 2 key-value heads), Llama 3 RoPE scaling, untied head
    qwen2    Qwen2ForCausalLM, q/k/v biases, tied embeddings
    mistral  MistralForCausalLM, GQA (4 / 1), rope_theta 1e6, sliding window >= the context
    gpt2     GPT2LMHeadModel (Conv1D weights stored (in, out)), tied embeddings

plus the same weights in other storage for ft_convert's round-trip tests:

    llama_bf16     the llama model in bf16 (config torch_dtype bfloat16)
    gpt2_fp16      the gpt2 model in fp16
    qwen2_sharded  the qwen2 model, fp32, sharded (model-0000k-of-0000n.safetensors + index)

The llama folder also holds a tokenizer_config.json and special_tokens_map.json (small hand-written
files; ft_convert copies them along, nothing tokenizes with them).

goldens.json records, per fp32 model: the input ids (2 x 9, random), the greedy continuations
(model.generate, 16 new tokens, KV cache, no EOS stop) of two prompts, with the gap between the two
largest logits at every step; logits.safetensors holds each model's fp32 logits (2, 9, vocab) for
those inputs, under the model's name. tests/test_hf_convert.cpp checks ft against both.

Usage (from the repository root; CPU only, a few seconds; the environment of
tools/make_peft_goldens.py):

    .venv-goldens/bin/python tools/make_hf_goldens.py [--out tests/data/hf_golden]

Each continuation is checked against a greedy loop without a cache that recomputes the whole
sequence each step, and each non-fp32 / sharded folder is reloaded with from_pretrained and
compared with its source model (an AssertionError stops the script).
"""

import argparse
import json
import pathlib
import platform
import re
import shutil

import torch
import transformers
from safetensors.torch import save_file

from greedy_reference import greedy_generate, recompute_greedy  # noqa: E402 (patches generate)

REPO = pathlib.Path(__file__).resolve().parent.parent
BATCH, SEQ_LEN = 2, 9
NEW_TOKENS = 16
PROMPT_LENGTHS = (5, 11)
SHARD_BYTES = "25KB"  # qwen2_sharded: a few shards

# initializer_range 0.2 (not HF's 0.02) so that every weight moves the logits visibly. llama's
# vocabulary is ft's byte-level one (259 ids), so ft_train can train it directly.
FAMILIES = {
    "llama": dict(
        cls=transformers.LlamaForCausalLM, config_cls=transformers.LlamaConfig, seed=11,
        config=dict(
            architectures=["LlamaForCausalLM"], vocab_size=259, hidden_size=32,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
            intermediate_size=48, max_position_embeddings=64, rms_norm_eps=1e-5,
            rope_theta=10000.0, hidden_act="silu", tie_word_embeddings=False,
            rope_scaling=dict(rope_type="llama3", factor=4.0, low_freq_factor=1.0,
                              high_freq_factor=4.0, original_max_position_embeddings=16),
            attention_bias=False, mlp_bias=False, initializer_range=0.2,
            torch_dtype="float32")),
    "qwen2": dict(
        cls=transformers.Qwen2ForCausalLM, config_cls=transformers.Qwen2Config, seed=22,
        config=dict(
            architectures=["Qwen2ForCausalLM"], vocab_size=96, hidden_size=32,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=48, max_position_embeddings=64, rms_norm_eps=1e-6,
            rope_theta=1000000.0, hidden_act="silu", tie_word_embeddings=True,
            use_sliding_window=False, initializer_range=0.2, torch_dtype="float32")),
    "mistral": dict(
        cls=transformers.MistralForCausalLM, config_cls=transformers.MistralConfig, seed=33,
        config=dict(
            architectures=["MistralForCausalLM"], vocab_size=96, hidden_size=32,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, head_dim=8,
            intermediate_size=48, max_position_embeddings=64, rms_norm_eps=1e-5,
            rope_theta=1000000.0, hidden_act="silu", tie_word_embeddings=False,
            sliding_window=64, initializer_range=0.2, torch_dtype="float32")),
    "gpt2": dict(
        cls=transformers.GPT2LMHeadModel, config_cls=transformers.GPT2Config, seed=44,
        config=dict(
            architectures=["GPT2LMHeadModel"], vocab_size=96, n_embd=32, n_head=4, n_layer=2,
            n_positions=64, activation_function="gelu_new", layer_norm_epsilon=1e-5,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=0.2,
            bos_token_id=0, eos_token_id=0, tie_word_embeddings=True, torch_dtype="float32")),
}

# (folder, source family, torch dtype, max_shard_size)
VARIANTS = [("llama_bf16", "llama", torch.bfloat16, None),
            ("gpt2_fp16", "gpt2", torch.float16, None),
            ("qwen2_sharded", "qwen2", torch.float32, SHARD_BYTES)]

TOKENIZER_FILES = {
    "tokenizer_config.json": {
        "bos_token": "<|endoftext|>", "eos_token": "<|im_end|>", "model_max_length": 64,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + "
                         "'\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"},
    "special_tokens_map.json": {"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>"},
}


def build(family):
    spec = FAMILIES[family]
    torch.manual_seed(spec["seed"])
    config = spec["config_cls"](**spec["config"])
    config._attn_implementation = "eager"
    model = spec["cls"](config).eval()
    # Norm weights and biases start at 1 and 0: draw them too, so that a swapped or dropped one
    # shows in the logits.
    generator = torch.Generator().manual_seed(spec["seed"] + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1:
                param.add_(0.2 * torch.randn(param.shape, generator=generator))
    return model


def record(family, model):
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(FAMILIES[family]["seed"] + 2)
    input_ids = torch.randint(0, vocab, (BATCH, SEQ_LEN), generator=generator)
    entry = {"family": family, "folder": family, "vocab_size": vocab,
             "input_ids": input_ids.tolist(), "prompts": [], "continuations": [], "top2_gaps": []}
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits.float().contiguous()
        for length in PROMPT_LENGTHS:
            prompt = torch.randint(0, vocab, (1, length), generator=generator)
            new, gaps = greedy_generate(model, prompt, NEW_TOKENS)
            assert recompute_greedy(model, prompt, NEW_TOKENS) == new, f"{family}: cache vs recompute"
            entry["prompts"].append(prompt[0].tolist())
            entry["continuations"].append(new)
            entry["top2_gaps"].append([round(g, 6) for g in gaps])
    print(f"{family}: smallest top-2 logit gap {min(min(g) for g in entry['top2_gaps']):.4g}")
    return entry, logits


def check_reload(family, folder, dtype, source):
    """The saved folder loads with from_pretrained into the source model's weights (cast)."""
    spec = FAMILIES[family]
    reloaded = spec["cls"].from_pretrained(folder, torch_dtype=dtype)
    expected = {k: v.to(dtype) for k, v in source.state_dict().items()}
    for name, value in reloaded.state_dict().items():
        assert torch.equal(value, expected[name]), f"{folder}: {name} differs after reload"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "tests/data/hf_golden")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    models, cases, logits = {}, {}, {}
    for family in FAMILIES:
        model = build(family)
        models[family] = model
        folder = out / family
        shutil.rmtree(folder, ignore_errors=True)
        model.save_pretrained(folder, safe_serialization=True)
        check_reload(family, folder, torch.float32, model)
        cases[family], logits[family] = record(family, model)
    for name, text in TOKENIZER_FILES.items():
        (out / "llama" / name).write_text(json.dumps(text, indent=2) + "\n")

    for folder_name, family, dtype, shard in VARIANTS:
        folder = out / folder_name
        shutil.rmtree(folder, ignore_errors=True)
        model = build(family).to(dtype)
        kwargs = {"max_shard_size": shard} if shard else {}
        model.save_pretrained(folder, safe_serialization=True, **kwargs)
        if shard:
            assert (folder / "model.safetensors.index.json").exists(), "expected shards"
        check_reload(family, folder, dtype, models[family])

    save_file(logits, str(out / "logits.safetensors"), metadata={"format": "pt"})
    document = {
        "batch": BATCH, "seq_len": SEQ_LEN, "new_tokens": NEW_TOKENS,
        "decoding": "greedy, KV cache, no EOS stop (model.generate)",
        "variants": {name: {"family": family, "dtype": str(dtype).replace("torch.", ""),
                            "max_shard_size": shard} for name, family, dtype, shard in VARIANTS},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__},
        "cases": cases,
    }
    text = json.dumps(document, indent=1)
    text = re.sub(r"\[[-0-9.e,\s]*\]", lambda m: " ".join(m.group(0).split()), text)  # one line
    (out / "goldens.json").write_text(text + "\n")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
