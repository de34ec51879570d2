// The decoder-only transformer's hyperparameters, read from a Hugging Face config.json
// (model_type llama, mistral, qwen2, gpt2) or taken from a named preset for tiny models.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ops.h"

namespace ft {

enum class NormKind { rmsnorm, layernorm };
enum class PositionKind { rope, learned };
enum class MlpKind { swiglu, gelu };

struct ModelConfig {
  std::string name;        // preset name or the config.json path
  std::string model_type;  // llama | mistral | qwen2 | gpt2
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;
  int64_t max_position_embeddings = 0;
  NormKind norm = NormKind::rmsnorm;
  double norm_eps = 1e-5;
  PositionKind positions = PositionKind::rope;
  double rope_theta = 10000.0;
  ops::RopeScaling rope_scaling;  // factor 0: none
  MlpKind mlp = MlpKind::swiglu;
  bool qkv_bias = false;         // Qwen2, GPT-2
  bool linear_bias = false;      // GPT-2: every linear (attention output, MLP) has a bias
  bool tied_embeddings = false;  // the LM head reuses the token embedding
  // Mistral/Qwen2 sliding-window attention (0: none). ft attends to the full causal past, which
  // equals the window only for sequences no longer than it; longer ones are refused.
  int64_t sliding_window = 0;
  double init_std = 0.02;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  // Parameters excluding the token and position embeddings (the N of 6N FLOPs per token).
  int64_t non_embedding_parameters() const;
  // Training FLOPs per token at context `seq_len`: 6N + 12 * L * Hq * D * T (PaLM appendix B);
  // the LM head counts in N when untied (it is a matmul either way, so it is added when tied).
  double training_flops_per_token(int64_t seq_len) const;
  std::string summary() const;  // one line: type, layers, width, heads, vocab
};

// Throws ft::Error naming the field when the configuration is inconsistent.
void validate_model_config(const ModelConfig& config);

// Parses a Hugging Face config.json; unsupported model_type or architecture → error naming it.
ModelConfig model_config_from_hf(const std::string& config_json_path);
// Named presets: tiny-llama, tiny-mistral, tiny-qwen2, tiny-gpt2 (tests), quickstart, bench-gpt2.
ModelConfig model_config_preset(const std::string& name);
std::vector<std::string> model_preset_names();

}  // namespace ft
