#!/usr/bin/env python3
"""Writes the Hugging Face PEFT parity goldens: tests/data/peft_golden/<case>/.

Each case is a tiny random model (Llama-style with GQA and RoPE, or GPT-2-style) in fp32 with one
PEFT method attached (prompt tuning, prefix tuning with and without projection, P-tuning, LoRA on
the default targets, LoRA all-linear with rsLoRA). Every trainable parameter is overwritten with
seeded non-zero values; then one forward/backward and three AdamW steps on a fixed batch are
recorded. ft's tests load these files and must reproduce logits, loss, gradients and the updated
values. tests/data/peft_golden/README.md describes the files.

Usage (from the repository root; CPU only, a few seconds):

    /usr/bin/python3 -m venv --system-site-packages .venv-goldens
    .venv-goldens/bin/pip install --no-deps -r tools/requirements-goldens.txt
    .venv-goldens/bin/python tools/make_peft_goldens.py [--out tests/data/peft_golden] [--cases ...]

torch 1.13 comes from the system python (Debian's python3-torch); --no-deps stops pip from
replacing it (peft declares torch>=1.13.0, which pip does not consider met by 1.13.0a0).

Each case is checked (an AssertionError stops the script): logits, loss and gradients against a
PEFT-free recomputation from the base model and the ft-named tensors alone; the step-3 values
against AdamW's formula; config.json against ft's model_config_from_hf rules; the written base
reloaded with from_pretrained (same logits) and adapter/ reloaded with PeftModel.from_pretrained
(same logits for every method, also where adapter/ holds an encoder's output, not its weights).
"""

import argparse
import copy
import json
import math
import pathlib
import platform
import re
import shutil

import peft
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file, save_file

REPO = pathlib.Path(__file__).resolve().parent.parent
BATCH, SEQ_LEN = 2, 7
ADAMW = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}
ADAMW_STEPS = 3

# Base configs: initializer_range 0.2 (not HF's 0.02) so that every path moves the logits.
FAMILIES = {
    "llama": dict(
        cls=transformers.LlamaForCausalLM,
        seed=1234,
        config=dict(
            architectures=["LlamaForCausalLM"], vocab_size=64, hidden_size=32,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
            intermediate_size=48, max_position_embeddings=64, rms_norm_eps=1e-5,
            rope_theta=10000.0, hidden_act="silu", tie_word_embeddings=False,
            attention_bias=False, mlp_bias=False, attention_dropout=0.0,
            initializer_range=0.2, torch_dtype="float32"),
        config_cls=transformers.LlamaConfig),
    "gpt2": dict(
        cls=transformers.GPT2LMHeadModel,
        seed=2345,
        config=dict(
            architectures=["GPT2LMHeadModel"], vocab_size=64, n_embd=32, n_head=4, n_layer=2,
            n_positions=64, activation_function="gelu_new", layer_norm_epsilon=1e-5,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=0.2,
            bos_token_id=0, eos_token_id=0, tie_word_embeddings=True, torch_dtype="float32"),
        config_cls=transformers.GPT2Config),
}

# method name -> (ft peft config keys, PEFT config factory taking the family)
METHODS = {
    "prompt_tuning": (
        dict(method="prompt_tuning", num_virtual_tokens=4, prompt_tuning_init="RANDOM"),
        lambda family: peft.PromptTuningConfig(
            task_type="CAUSAL_LM", num_virtual_tokens=4, prompt_tuning_init="RANDOM")),
    "prefix_tuning": (
        dict(method="prefix_tuning", num_virtual_tokens=3, prefix_projection=False),
        lambda family: peft.PrefixTuningConfig(
            task_type="CAUSAL_LM", num_virtual_tokens=3, prefix_projection=False)),
    "prefix_tuning_projection": (
        dict(method="prefix_tuning", num_virtual_tokens=3, prefix_projection=True,
             encoder_hidden_size=16),
        lambda family: peft.PrefixTuningConfig(
            task_type="CAUSAL_LM", num_virtual_tokens=3, prefix_projection=True,
            encoder_hidden_size=16)),
    "p_tuning": (
        dict(method="p_tuning", num_virtual_tokens=4, encoder_hidden_size=16),
        lambda family: peft.PromptEncoderConfig(
            task_type="CAUSAL_LM", num_virtual_tokens=4, encoder_reparameterization_type="MLP",
            encoder_hidden_size=16, encoder_dropout=0.0)),
    "lora": (
        dict(method="lora", lora_r=4, lora_alpha=8.0, lora_dropout=0.0, target_modules=None,
             use_rslora=False),
        lambda family: peft.LoraConfig(
            task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0,
            fan_in_fan_out=family == "gpt2")),
    "lora_all_linear_rslora": (
        dict(method="lora", lora_r=4, lora_alpha=8.0, lora_dropout=0.0,
             target_modules="all-linear", use_rslora=True),
        lambda family: peft.LoraConfig(
            task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0,
            target_modules="all-linear", use_rslora=True, fan_in_fan_out=family == "gpt2")),
}
DEFAULT_LORA_TARGETS = {"llama": "q_proj,v_proj", "gpt2": "c_attn"}

# What the saved adapter/ holds compared with trainable.safetensors.
LORA_NOTE = "adapter tensors == trainable tensors, as base_model.model.<module>.lora_{A,B}.weight"
ADAPTER_NOTES = {
    "prompt_tuning": "adapter prompt_embeddings == trainable prompt_embeddings",
    "prefix_tuning": "adapter prompt_embeddings == trainable prompt_embeddings",
    "prefix_tuning_projection": (
        "by design the adapter holds the projected prefix transform(embedding) as "
        "prompt_embeddings (P, L*2*kv_dim); the embedding and MLP are not saved"),
    "p_tuning": (
        "by design the adapter holds the MLP encoder's output mlp_head(embedding) as "
        "prompt_embeddings (P, hidden); the embedding and MLP are not saved"),
    "lora": LORA_NOTE,
    "lora_all_linear_rslora": LORA_NOTE,
}


def close(a, b, what, rtol=1e-5, atol=1e-6):
    if a.shape != b.shape or not torch.allclose(a, b, rtol=rtol, atol=atol):
        diff = (a - b).abs().max().item() if a.shape == b.shape else "shape"
        raise AssertionError(f"{what}: mismatch (max abs diff {diff})")


def build_base(family):
    """The tiny random base model; norm weights and biases perturbed so that no path is trivial."""
    spec = FAMILIES[family]
    torch.manual_seed(spec["seed"])
    config = spec["config_cls"](**spec["config"], attn_implementation="eager")
    model = spec["cls"](config).float().eval()
    generator = torch.Generator().manual_seed(spec["seed"] + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
            elif param.dim() == 1:  # RMSNorm / LayerNorm scales
                param.copy_(1.0 + 0.1 * torch.randn(param.shape, generator=generator))
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def make_batch(family):
    generator = torch.Generator().manual_seed(FAMILIES[family]["seed"] + 2)
    vocab = FAMILIES[family]["config"]["vocab_size"]
    input_ids = torch.randint(0, vocab, (BATCH, SEQ_LEN), generator=generator, dtype=torch.int64)
    labels = input_ids.clone()
    labels[:, 0] = -100
    labels[0, 3] = -100
    labels[1, 5] = -100
    attention_mask = torch.ones(BATCH, SEQ_LEN, dtype=torch.int64)
    return input_ids, attention_mask, labels


def ft_name(peft_name, method):
    """PEFT parameter name -> ft adapter name (models/peft/peft_spec.h)."""
    if peft_name.startswith("prompt_encoder.default."):
        rest = peft_name[len("prompt_encoder.default."):]
        if method in ("prompt_tuning", "prefix_tuning"):
            assert rest == "embedding.weight", peft_name
            return "prompt_embeddings"
        return "prompt_encoder." + rest
    assert peft_name.startswith("base_model.model.") and ".default." in peft_name, peft_name
    return peft_name[len("base_model.model."):].replace(".default.", ".")


def fill_trainable(peft_model, method, seed):
    """Overwrites each trainable parameter with seeded non-zero values; returns ft name -> param."""
    generator = torch.Generator().manual_seed(seed)
    params = {}
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if not param.requires_grad:
                continue
            if name.endswith("bias"):
                scale = 0.1
            elif "embedding" in name:  # prompt / prefix tables: N(0, 1) as PEFT's RANDOM init
                scale = 1.0
            else:  # Linear / LoRA matrices (out, in)
                scale = 1.0 / math.sqrt(param.shape[1])
            param.copy_(scale * torch.randn(param.shape, generator=generator))
            params[ft_name(name, method)] = param
    assert all(bool((p != 0).all()) for p in params.values())
    return params


def causal_lm_loss(logits, labels):
    """transformers' ForCausalLMLoss: shift by one, mean over labels that are not -100."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                           labels[:, 1:].reshape(-1), ignore_index=-100)


def reference_forward(family, method, base, t, input_ids, labels):
    """Logits and loss from the base model and the ft-named tensors `t`, without PEFT."""
    cfg = base.config
    B, L = input_ids.shape
    P = METHODS[method][0].get("num_virtual_tokens", 0)
    if method in ("prompt_tuning", "p_tuning"):
        prompts = t["prompt_embeddings"] if method == "prompt_tuning" else p_tuning_output(t)
        embeds = base.get_input_embeddings()(input_ids)
        inputs = torch.cat([prompts.unsqueeze(0).expand(B, -1, -1), embeds], dim=1)
        # Virtual tokens take positions 0..P-1 (the default positions), labels get P ignores.
        logits = base(inputs_embeds=inputs, attention_mask=torch.ones(B, P + L)).logits
        labels = torch.cat([torch.full((B, P), -100), labels], dim=1)
    elif method.startswith("prefix_tuning"):
        rows = t["prompt_embeddings"] if method == "prefix_tuning" else prefix_projection_output(t)
        kv_heads = getattr(cfg, "num_key_value_heads", cfg.num_attention_heads)
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        # Row layout [layer0 K | layer0 V | layer1 K | ...], each block (kv_heads, head_dim).
        kv = rows.view(P, cfg.num_hidden_layers, 2, kv_heads, head_dim).permute(1, 2, 3, 0, 4)
        past = tuple((kv[i, 0].expand(B, -1, -1, -1), kv[i, 1].expand(B, -1, -1, -1))
                     for i in range(cfg.num_hidden_layers))
        if family == "llama":
            past = transformers.DynamicCache.from_legacy_cache(past)
        # Real tokens at positions P..P+L-1; prefix keys are used as given (never rotated).
        positions = torch.arange(P, P + L).unsqueeze(0).expand(B, -1)
        logits = base(input_ids=input_ids, attention_mask=torch.ones(B, P + L),
                      past_key_values=past, position_ids=positions).logits
    else:
        spec = METHODS[method][0]
        r, alpha = spec["lora_r"], spec["lora_alpha"]
        scale = alpha / math.sqrt(r) if spec["use_rslora"] else alpha / r
        # y = W x + scale * B (A x) on each target (GPT-2's Conv1D too: it computes x W + b).
        hooks = []
        for name in t:
            if name.endswith(".lora_A.weight"):
                module = name[: -len(".lora_A.weight")]
                a, b = t[name], t[module + ".lora_B.weight"]
                hooks.append(base.get_submodule(module).register_forward_hook(
                    lambda _, inputs, y, a=a, b=b: y + scale * F.linear(F.linear(inputs[0], a), b)))
        try:
            logits = base(input_ids=input_ids).logits
        finally:
            for hook in hooks:
                hook.remove()
    return logits, causal_lm_loss(logits, labels)


def p_tuning_output(t):
    h = t["prompt_encoder.embedding.weight"]
    for i, last in ((0, False), (2, False), (4, True)):
        h = F.linear(h, t[f"prompt_encoder.mlp_head.{i}.weight"],
                     t[f"prompt_encoder.mlp_head.{i}.bias"])
        h = h if last else F.relu(h)
    return h


def prefix_projection_output(t):
    h = t["prompt_encoder.embedding.weight"]
    h = torch.tanh(F.linear(h, t["prompt_encoder.transform.0.weight"],
                            t["prompt_encoder.transform.0.bias"]))
    return F.linear(h, t["prompt_encoder.transform.2.weight"], t["prompt_encoder.transform.2.bias"])


def adamw_by_formula(values, grads_per_step):
    """torch.optim.AdamW (decoupled decay, bias-corrected moments, no amsgrad) written out."""
    lr, (b1, b2), eps, wd = ADAMW["lr"], ADAMW["betas"], ADAMW["eps"], ADAMW["weight_decay"]
    values = {n: v.clone().double() for n, v in values.items()}
    m = {n: torch.zeros_like(v) for n, v in values.items()}
    v2 = {n: torch.zeros_like(v) for n, v in values.items()}
    for step, grads in enumerate(grads_per_step, start=1):
        for n, g in grads.items():
            g = g.double()
            if not n.endswith("bias"):
                values[n] *= 1 - lr * wd
            m[n] = b1 * m[n] + (1 - b1) * g
            v2[n] = b2 * v2[n] + (1 - b2) * g * g
            denom = (v2[n] / (1 - b2**step)).sqrt() + eps
            values[n] -= lr / (1 - b1**step) * m[n] / denom
    return values


def check_ft_accepts(config_path, hf_config):
    """Resolves config.json as models/model_config.cpp model_config_from_hf does (same defaults,
    same refusals) and checks that ft would build the architecture transformers built."""
    j = json.loads(config_path.read_text())
    get = lambda key, default: default if j.get(key) is None else j[key]  # noqa: E731
    kind = j["model_type"]
    arch = {"llama": "LlamaForCausalLM", "gpt2": "GPT2LMHeadModel"}[kind]
    assert arch in j.get("architectures", [arch]), config_path
    if kind == "llama":
        heads = j["num_attention_heads"]
        ft = dict(vocab=j["vocab_size"], hidden=j["hidden_size"], layers=j["num_hidden_layers"],
                  heads=heads, kv_heads=get("num_key_value_heads", heads),
                  head_dim=get("head_dim", j["hidden_size"] // heads),
                  intermediate=j["intermediate_size"],
                  positions=get("max_position_embeddings", 2048), eps=get("rms_norm_eps", 1e-6),
                  theta=get("rope_theta", 10000.0), tied=get("tie_word_embeddings", False))
        assert get("hidden_act", "silu") == "silu", config_path
        assert not get("attention_bias", False) and not get("mlp_bias", False), config_path
        assert j.get("rope_scaling") is None, config_path
        hf = dict(vocab=hf_config.vocab_size, hidden=hf_config.hidden_size,
                  layers=hf_config.num_hidden_layers, heads=hf_config.num_attention_heads,
                  kv_heads=hf_config.num_key_value_heads, head_dim=hf_config.head_dim,
                  intermediate=hf_config.intermediate_size,
                  positions=hf_config.max_position_embeddings, eps=hf_config.rms_norm_eps,
                  theta=hf_config.rope_theta, tied=hf_config.tie_word_embeddings)
    else:
        hidden, heads = j["n_embd"], j["n_head"]
        assert hidden % heads == 0, config_path
        ft = dict(vocab=j["vocab_size"], hidden=hidden, layers=j["n_layer"], heads=heads,
                  intermediate=get("n_inner", 4 * hidden), positions=j["n_positions"],
                  eps=get("layer_norm_epsilon", 1e-5), tied=get("tie_word_embeddings", True))
        assert get("scale_attn_weights", True), config_path
        assert not get("scale_attn_by_inverse_layer_idx", False), config_path
        assert get("activation_function", "gelu_new") in ("gelu_new", "gelu_pytorch_tanh")
        hf = dict(vocab=hf_config.vocab_size, hidden=hf_config.n_embd, layers=hf_config.n_layer,
                  heads=hf_config.n_head, intermediate=hf_config.n_inner or 4 * hf_config.n_embd,
                  positions=hf_config.n_positions, eps=hf_config.layer_norm_epsilon,
                  tied=hf_config.tie_word_embeddings)
    assert ft == hf, (config_path, ft, hf)
    assert ft["heads"] % ft.get("kv_heads", ft["heads"]) == 0, config_path


def base_state_dict(model, family):
    """HF names, fp32, parameters only; the tied GPT-2 lm_head is left out as HF saves it."""
    state = {}
    for name, tensor in model.state_dict().items():
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        if family == "gpt2" and name == "lm_head.weight":
            continue
        state[name] = tensor.detach().clone().contiguous().float()
    return state


def run_case(family, method, seed, out_dir):
    ft_peft, make_config = METHODS[method]
    ft_peft = dict(ft_peft)
    if ft_peft.get("method") == "lora" and ft_peft["target_modules"] is None:
        ft_peft["target_modules"] = DEFAULT_LORA_TARGETS[family]
    base = build_base(family)
    input_ids, attention_mask, labels = make_batch(family)

    torch.manual_seed(seed)
    model = peft.get_peft_model(copy.deepcopy(base), make_config(family)).eval()
    params = fill_trainable(model, method, seed)
    names = list(params)
    initial = {n: p.detach().clone() for n, p in params.items()}

    # Forward and backward at the initial values.
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    logits, loss = out.logits.detach().clone(), out.loss
    loss.backward()
    grads = {n: params[n].grad.detach().clone() for n in names}

    # PEFT-free recomputation from the ft-named tensors: logits, loss and gradients.
    ref_t = {n: v.clone().requires_grad_(True) for n, v in initial.items()}
    ref_logits, ref_loss = reference_forward(family, method, base, ref_t, input_ids, labels)
    close(ref_logits, logits, f"{family}/{method} reference logits")
    close(ref_loss, loss.detach(), f"{family}/{method} reference loss")
    assert math.isclose(causal_lm_loss(logits, torch.cat(
        [torch.full((BATCH, logits.shape[1] - SEQ_LEN), -100), labels], 1)).item(), loss.item(),
        rel_tol=1e-6), f"{family}/{method} loss is not the shifted mean cross-entropy"
    ref_loss.backward()
    for n in names:
        close(ref_t[n].grad, grads[n], f"{family}/{method} reference grad {n}", rtol=1e-4)

    # Three AdamW steps on the same batch; weight decay on names not ending in "bias".
    for p in params.values():
        p.grad = None
    decay = [params[n] for n in names if not n.endswith("bias")]
    no_decay = [params[n] for n in names if n.endswith("bias")]
    groups = [{"params": decay, "weight_decay": ADAMW["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=ADAMW["lr"],
                                  betas=ADAMW["betas"], eps=ADAMW["eps"])
    losses, step_grads = [], []
    for _ in range(ADAMW_STEPS):
        optimizer.zero_grad(set_to_none=True)
        step_loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        step_loss.backward()
        losses.append(step_loss.item())
        step_grads.append({n: params[n].grad.detach().clone() for n in names})
        optimizer.step()
    step3 = {n: params[n].detach().clone() for n in names}
    assert losses[0] == loss.item()
    by_formula = adamw_by_formula(initial, step_grads)
    for n in names:
        close(by_formula[n].float(), step3[n], f"{family}/{method} AdamW formula {n}")

    # Back to the initial values for the saved adapter.
    with torch.no_grad():
        for n in names:
            params[n].copy_(initial[n])

    case_dir = out_dir / f"{family}_{method}"
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    base.config.to_json_file(case_dir / "config.json")  # as save_pretrained writes it
    check_ft_accepts(case_dir / "config.json", base.config)
    save_file(base_state_dict(base, family), case_dir / "model.safetensors",
              metadata={"format": "pt"})
    # PEFT keeps target_modules as a set and saves it in iteration order; sorted, reruns match.
    adapter_config = model.peft_config["default"]
    if isinstance(getattr(adapter_config, "target_modules", None), (set, list)):
        adapter_config.target_modules = sorted(adapter_config.target_modules)
    model.save_pretrained(case_dir / "adapter")
    model_card = case_dir / "adapter" / "README.md"  # PEFT's boilerplate model card
    if model_card.exists():
        model_card.unlink()
    trainable = dict(initial)
    trainable.update({f"grad.{n}": g for n, g in grads.items()})
    trainable.update({f"step3.{n}": v for n, v in step3.items()})
    save_file({n: v.contiguous() for n, v in trainable.items()},
              case_dir / "trainable.safetensors", metadata={"format": "pt"})
    save_file({"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
               "logits": logits.contiguous()},
              case_dir / "tensors.safetensors", metadata={"format": "pt"})

    check_written(family, method, case_dir, initial, logits)

    record = {
        "case": case_dir.name,
        "family": family,
        "method": ft_peft["method"],
        "peft": ft_peft,
        "peft_type": model.peft_config["default"].peft_type.value,
        "batch_size": BATCH,
        "seq_len": SEQ_LEN,
        "logits_shape": list(logits.shape),
        "loss": loss.item(),
        "losses": losses,
        "adamw": {"lr": ADAMW["lr"], "betas": list(ADAMW["betas"]), "eps": ADAMW["eps"],
                  "weight_decay": ADAMW["weight_decay"],
                  "weight_decay_applies_to": "names not ending in 'bias'",
                  "amsgrad": False, "grad_clip": None, "steps": ADAMW_STEPS,
                  "batch": "the same batch every step"},
        "trainable": {n: list(v.shape) for n, v in initial.items()},
        "adapter": ADAPTER_NOTES[method],
        "seed": seed,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "peft": peft.__version__},
    }
    text = json.dumps(record, indent=2)
    text = re.sub(r"\[[-0-9.e,\s]*\]", lambda m: " ".join(m.group(0).split()), text)  # [2, 7]
    (case_dir / "case.json").write_text(text + "\n")
    return record


def check_written(family, method, case_dir, initial, logits):
    """Reloads what was written: the base with transformers, the adapter with PEFT."""
    input_ids = load_file(case_dir / "tensors.safetensors")["input_ids"]
    base = FAMILIES[family]["cls"].from_pretrained(
        case_dir, torch_dtype=torch.float32, attn_implementation="eager").eval()
    reference = build_base(family)
    with torch.no_grad():
        close(base(input_ids).logits, reference(input_ids).logits, f"{case_dir} base reload",
              rtol=0, atol=0)
        reloaded = peft.PeftModel.from_pretrained(base, case_dir / "adapter").eval()
        close(reloaded(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits,
              logits, f"{case_dir} adapter reload")
    saved = load_file(case_dir / "adapter" / "adapter_model.safetensors")
    with torch.no_grad():
        if method == "p_tuning":
            expected = {"prompt_embeddings": p_tuning_output(initial)}
        elif method == "prefix_tuning_projection":
            expected = {"prompt_embeddings": prefix_projection_output(initial)}
        elif method.startswith("lora"):
            expected = {f"base_model.model.{n}": v for n, v in initial.items()}
        else:
            expected = initial
    assert sorted(saved) == sorted(expected), (case_dir, sorted(saved))
    for n in saved:
        close(saved[n], expected[n], f"{case_dir} adapter tensor {n}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "tests/data/peft_golden")
    parser.add_argument("--cases", nargs="*", help="case names (family_method); default: all")
    args = parser.parse_args()

    torch.set_num_threads(1)  # one summation order, so reruns write identical files
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    args.out.mkdir(parents=True, exist_ok=True)
    seed = 100
    for family in FAMILIES:
        for method in METHODS:
            seed += 1
            name = f"{family}_{method}"
            if args.cases and name not in args.cases:
                continue
            record = run_case(family, method, seed, args.out)
            print(f"{name}: loss {record['loss']:.6f}, losses "
                  f"{', '.join(f'{x:.6f}' for x in record['losses'])}, "
                  f"{len(record['trainable'])} trainable tensors")


if __name__ == "__main__":
    main()
