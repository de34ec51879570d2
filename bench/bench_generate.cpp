// Generation speed on the CPU with the KV cache: prompt processing (the prefill, one forward over
// the prompt) and decoding (one forward per new token), reported separately, for models with
// random weights:
//
//   build/bin/bench_generate [--models tiny,gpt2-124m,llama-110m] [--prompt-tokens 128]
//                            [--new-tokens 64] [--repeats 3] [--threads N] [--dtype fp32]
//
//   tiny        the quickstart preset (Llama-style, 4 x 128, byte vocabulary)
//   gpt2-124m   GPT-2 small's shape (12 x 768, 12 heads, vocabulary 50257, learned positions)
//   llama-110m  a Llama-style model of ~110M parameters (12 x 768, 12 heads / 4 KV heads,
//               SwiGLU 2048, vocabulary 32000, RoPE)
//
// Each run generates greedily (no EOS) from a random prompt; the figures are the median over
// --repeats runs after one untimed warm-up. Decoding counts the tokens after the first (the first
// comes with the prefill). Prints figures; asserts nothing.
#include <cblas.h>
#include <omp.h>
#include <CLI/CLI.hpp>

#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "models/generation/generator.h"
#include "models/generation/kv_cache_model.h"
#include "runtime/blas.h"
#include "runtime/error.h"
#include "runtime/random.h"

namespace {

ft::ModelConfig bench_model(const std::string& name) {
  if (name == "tiny") return ft::model_config_preset("quickstart");
  ft::ModelConfig c;
  if (name == "gpt2-124m") {
    c = ft::model_config_preset("tiny-gpt2");  // the GPT-2 family's settings
    c.name = name;
    c.vocab_size = 50257;
    c.hidden_size = 768;
    c.num_layers = 12;
    c.num_heads = c.num_kv_heads = 12;
    c.head_dim = 64;
    c.intermediate_size = 3072;
    c.max_position_embeddings = 1024;
  } else if (name == "llama-110m") {
    c = ft::model_config_preset("tiny-llama");
    c.name = name;
    c.rope_scaling = {};
    c.vocab_size = 32000;
    c.hidden_size = 768;
    c.num_layers = 12;
    c.num_heads = 12;
    c.num_kv_heads = 4;
    c.head_dim = 64;
    c.intermediate_size = 2048;
    c.max_position_embeddings = 2048;
  } else {
    ft::fail("--models: unknown model '{}' (expected tiny, gpt2-124m, llama-110m)", name);
  }
  c.init_std = 0.02;
  ft::validate_model_config(c);
  return c;
}

int64_t parameter_count(const ft::ParameterStore& params) {
  return params.trainable_count() + params.frozen_count();
}

void bench(const std::string& name, int64_t prompt_tokens, int64_t new_tokens, int repeats,
           int threads, ft::DType dtype) {
  const ft::ModelConfig config = bench_model(name);
  ft::ParameterStore params(ft::transformer_param_specs(config), dtype, ft::Device::cpu,
                            ft::ParameterStoreOptions{.gradients = false, .moments = false});
  params.initialize(1234);
  ft::KvCacheOptions cache;
  cache.capacity = prompt_tokens + new_tokens;
  cache.num_threads = threads;
  ft::KvCacheModel model(config, params, ft::PeftSpec{}, cache);
  ft::Random random(99);
  std::vector<int32_t> prompt;
  for (int64_t i = 0; i < prompt_tokens; ++i)
    prompt.push_back(static_cast<int32_t>(random.below(config.vocab_size)));
  ft::GenerationOptions options;
  options.max_new_tokens = new_tokens;

  ft::generate(model, prompt, options, nullptr);  // warm-up: first touch, BLAS buffers
  std::vector<double> prefill, decode;
  int64_t decoded = 0;
  for (int r = 0; r < repeats; ++r) {
    const ft::Generation g = ft::generate(model, prompt, options, nullptr);
    decoded = static_cast<int64_t>(g.tokens.size()) - 1;
    prefill.push_back(static_cast<double>(prompt_tokens) / g.prefill_seconds);
    decode.push_back(static_cast<double>(decoded) / g.decode_seconds);
  }
  const double prefill_rate = ft::bench::median(prefill), decode_rate = ft::bench::median(decode);
  std::cout << fmt::format(
      "{:<11} {:>7.1f}M params  prompt {:>4} tok: {:>9.1f} tok/s | decode {:>3} tok: {:>8.1f} "
      "tok/s ({:.2f} ms/token) | cache {:.1f} MiB, activations {:.1f} MiB\n",
      name, parameter_count(params) / 1e6, prompt_tokens, prefill_rate, decoded, decode_rate,
      1e3 / decode_rate, model.cache_bytes() / 1048576.0, model.activation_bytes() / 1048576.0);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Generation speed with the KV cache: prompt processing and decoding tokens/s"};
  std::string models = "tiny,gpt2-124m,llama-110m", dtype = "fp32";
  int64_t prompt_tokens = 128, new_tokens = 64;
  int repeats = 3, threads = 0;
  app.add_option("--models", models, "comma-separated: tiny, gpt2-124m, llama-110m")
      ->capture_default_str();
  app.add_option("--prompt-tokens", prompt_tokens, "prompt length")->capture_default_str();
  app.add_option("--new-tokens", new_tokens, "tokens to generate")->capture_default_str();
  app.add_option("--repeats", repeats, "timed runs (median)")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (default: all cores)");
  app.add_option("--dtype", dtype, "fp32 | fp64")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    if (prompt_tokens < 1 || new_tokens < 2 || repeats < 1)
      ft::fail("--prompt-tokens >= 1, --new-tokens >= 2 and --repeats >= 1 expected");
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    std::cout << fmt::format("bench_generate: {} threads, {}, BLAS {}\n", threads, dtype,
                             ft::blas_description());
    std::stringstream list(models);
    for (std::string name; std::getline(list, name, ',');)
      bench(name, prompt_tokens, new_tokens, repeats, threads,
            dtype == "fp64" ? ft::DType::f64 : ft::DType::f32);
  } catch (const ft::Error& error) {
    std::cerr << "bench_generate: error: " << error.what() << std::endl;
    return 1;
  }
  return 0;
}
