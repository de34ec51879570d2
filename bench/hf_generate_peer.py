"""The PyTorch peer of bench_generate: transformers' generate() on the same shapes (random
weights), greedy, with its KV cache, fp32 on the CPU at a given thread count.

    .venv-goldens/bin/python bench/hf_generate_peer.py [--models tiny,gpt2-124m,llama-110m]
        [--prompt-tokens 128] [--new-tokens 64] [--repeats 3] [--threads N]

Prompt processing: generate(max_new_tokens=1) (one forward over the prompt and the first token's
choice). Decoding: generate(max_new_tokens=N) less that, over N - 1 tokens. Both are medians over
--repeats runs after one untimed warm-up, as bench_generate reports them. Prints figures; asserts
nothing.
"""
import argparse
import statistics
import time

import torch
import transformers
import transformers.generation.utils

# generate() asks whether the model is FSDP-managed by importing torch.distributed.fsdp, which
# fails with Debian's torch 1.13 on Python 3.11; these single-process runs never are.
transformers.generation.utils.is_fsdp_managed_module = lambda module: False


def model_config(name):
    if name == "tiny":  # ft's quickstart preset
        return transformers.LlamaConfig(
            vocab_size=259, hidden_size=128, intermediate_size=352, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
            rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True)
    if name == "gpt2-124m":
        return transformers.GPT2Config(
            vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024,
            layer_norm_epsilon=1e-5, activation_function="gelu_new")
    if name == "llama-110m":
        return transformers.LlamaConfig(
            vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
            num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=2048,
            rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
    raise SystemExit(f"--models: unknown model '{name}' (expected tiny, gpt2-124m, llama-110m)")


def timed_generate(model, prompt, new_tokens):
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             pad_token_id=0, use_cache=True)
    seconds = time.perf_counter() - start
    assert out.shape[1] == prompt.shape[1] + new_tokens
    return seconds


def bench(name, prompt_tokens, new_tokens, repeats):
    config = model_config(name)
    torch.manual_seed(1234)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    model.generation_config.eos_token_id = None
    params = sum(p.numel() for p in model.parameters())
    prompt = torch.randint(0, config.vocab_size, (1, prompt_tokens), generator=torch.Generator().manual_seed(99))
    timed_generate(model, prompt, new_tokens)  # warm-up
    prefill, decode = [], []
    for _ in range(repeats):
        first = timed_generate(model, prompt, 1)
        whole = timed_generate(model, prompt, new_tokens)
        prefill.append(prompt_tokens / first)
        decode.append((new_tokens - 1) / max(whole - first, 1e-9))
    prefill_rate, decode_rate = statistics.median(prefill), statistics.median(decode)
    print(f"{name:<11} {params / 1e6:>7.1f}M params  prompt {prompt_tokens:>4} tok: "
          f"{prefill_rate:>9.1f} tok/s | decode {new_tokens - 1:>3} tok: {decode_rate:>8.1f} tok/s "
          f"({1e3 / decode_rate:.2f} ms/token)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="tiny,gpt2-124m,llama-110m")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(f"hf_generate_peer: {torch.get_num_threads()} threads, fp32, torch {torch.__version__}, "
          f"transformers {transformers.__version__}", flush=True)
    for name in args.models.split(","):
        bench(name, args.prompt_tokens, args.new_tokens, args.repeats)


if __name__ == "__main__":
    main()
