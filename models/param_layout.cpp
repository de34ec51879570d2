#include "models/param_layout.h"

#include <cmath>

#include <fmt/format.h>

namespace ft {

LayerParamNames layer_param_names(const ModelConfig& c, int64_t layer) {
  LayerParamNames n;
  if (c.model_type == "gpt2") {
    std::string p = fmt::format("transformer.h.{}.", layer);
    n.attn_norm_weight = p + "ln_1.weight";
    n.attn_norm_bias = p + "ln_1.bias";
    // q, k, v are row blocks of the one c_attn matrix.
    n.q_weight = n.k_weight = n.v_weight = p + "attn.c_attn.weight";
    n.q_bias = n.k_bias = n.v_bias = p + "attn.c_attn.bias";
    n.o_weight = p + "attn.c_proj.weight";
    n.o_bias = p + "attn.c_proj.bias";
    n.mlp_norm_weight = p + "ln_2.weight";
    n.mlp_norm_bias = p + "ln_2.bias";
    n.up_weight = p + "mlp.c_fc.weight";
    n.up_bias = p + "mlp.c_fc.bias";
    n.down_weight = p + "mlp.c_proj.weight";
    n.down_bias = p + "mlp.c_proj.bias";
    return n;
  }
  std::string p = fmt::format("model.layers.{}.", layer);
  n.attn_norm_weight = p + "input_layernorm.weight";
  n.q_weight = p + "self_attn.q_proj.weight";
  n.k_weight = p + "self_attn.k_proj.weight";
  n.v_weight = p + "self_attn.v_proj.weight";
  if (c.qkv_bias) {
    n.q_bias = p + "self_attn.q_proj.bias";
    n.k_bias = p + "self_attn.k_proj.bias";
    n.v_bias = p + "self_attn.v_proj.bias";
  }
  n.o_weight = p + "self_attn.o_proj.weight";
  n.mlp_norm_weight = p + "post_attention_layernorm.weight";
  n.gate_weight = p + "mlp.gate_proj.weight";
  n.up_weight = p + "mlp.up_proj.weight";
  n.down_weight = p + "mlp.down_proj.weight";
  return n;
}

ModelParamNames model_param_names(const ModelConfig& c) {
  ModelParamNames n;
  if (c.model_type == "gpt2") {
    n.token_embedding = "transformer.wte.weight";
    n.position_embedding = "transformer.wpe.weight";
    n.final_norm_weight = "transformer.ln_f.weight";
    n.final_norm_bias = "transformer.ln_f.bias";
  } else {
    n.token_embedding = "model.embed_tokens.weight";
    n.final_norm_weight = "model.norm.weight";
  }
  n.lm_head = c.tied_embeddings ? n.token_embedding : "lm_head.weight";
  return n;
}

std::vector<ParamSpec> transformer_param_specs(const ModelConfig& c) {
  const int64_t C = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const double std = c.init_std;
  // GPT-2 scales its residual projections by 1/sqrt(2L); Llama-family models initialize every
  // matrix with the same std (Hugging Face's initializer_range).
  const double residual_std = c.model_type == "gpt2" ? std / std::sqrt(2.0 * c.num_layers) : std;
  std::vector<ParamSpec> specs;
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, double init_std) {
    specs.push_back({name, Shape{rows, cols}, InitKind::normal, init_std, true, true});
  };
  auto vector = [&](const std::string& name, int64_t size, InitKind init) {
    specs.push_back({name, Shape{size}, init, 0.0, false, true});
  };
  const bool layernorm = c.norm == NormKind::layernorm;
  ModelParamNames model = model_param_names(c);
  matrix(model.token_embedding, V, C, std);
  if (c.positions == PositionKind::learned)
    matrix(model.position_embedding, c.max_position_embeddings, C, std);
  for (int64_t layer = 0; layer < c.num_layers; ++layer) {
    LayerParamNames n = layer_param_names(c, layer);
    vector(n.attn_norm_weight, C, InitKind::ones);
    if (layernorm) vector(n.attn_norm_bias, C, InitKind::zeros);
    if (c.model_type == "gpt2") {
      matrix(n.q_weight, c.q_dim() + 2 * c.kv_dim(), C, std);
      vector(n.q_bias, c.q_dim() + 2 * c.kv_dim(), InitKind::zeros);
    } else {
      matrix(n.q_weight, c.q_dim(), C, std);
      if (c.qkv_bias) vector(n.q_bias, c.q_dim(), InitKind::zeros);
      matrix(n.k_weight, c.kv_dim(), C, std);
      if (c.qkv_bias) vector(n.k_bias, c.kv_dim(), InitKind::zeros);
      matrix(n.v_weight, c.kv_dim(), C, std);
      if (c.qkv_bias) vector(n.v_bias, c.kv_dim(), InitKind::zeros);
    }
    matrix(n.o_weight, C, c.q_dim(), residual_std);
    if (c.linear_bias) vector(n.o_bias, C, InitKind::zeros);
    vector(n.mlp_norm_weight, C, InitKind::ones);
    if (layernorm) vector(n.mlp_norm_bias, C, InitKind::zeros);
    if (c.mlp == MlpKind::swiglu) {
      matrix(n.gate_weight, F, C, std);
      matrix(n.up_weight, F, C, std);
    } else {
      matrix(n.up_weight, F, C, std);
      if (c.linear_bias) vector(n.up_bias, F, InitKind::zeros);
    }
    matrix(n.down_weight, C, F, residual_std);
    if (c.linear_bias) vector(n.down_bias, C, InitKind::zeros);
  }
  vector(model.final_norm_weight, C, InitKind::ones);
  if (layernorm) vector(model.final_norm_bias, C, InitKind::zeros);
  if (!c.tied_embeddings) matrix(model.lm_head, V, C, std);
  return specs;
}

}  // namespace ft
