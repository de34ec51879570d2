// The parameter table: every parameter's Hugging Face name, shape, initialization and whether
// weight decay applies. The flat buffers, the checkpoint names and (later) the sharding rules are
// all derived from this one table.
//
// Orientation: every matrix is stored as a Linear weight, (out_features, in_features). For GPT-2
// this is the transpose of Hugging Face's Conv1D storage (c_attn, c_proj, c_fc); import and export
// transpose those four kinds of matrix.
#pragma once

#include <string>
#include <vector>

#include "models/model_config.h"
#include "runtime/tensor.h"

namespace ft {

// uniform draws from [-init_bound, init_bound) (PyTorch's kaiming-uniform Linear init, LoRA's A).
enum class InitKind { normal, ones, zeros, uniform };

struct ParamSpec {
  std::string name;  // Hugging Face name, e.g. model.layers.0.self_attn.q_proj.weight
  Shape shape;
  InitKind init = InitKind::normal;
  double init_std = 0.0;
  bool decay = true;        // AdamW weight decay applies (matrices, embeddings; not norms, biases)
  bool trainable = true;    // frozen parameters get no gradient, no optimizer state
  double init_bound = 0.0;  // InitKind::uniform
};

std::vector<ParamSpec> transformer_param_specs(const ModelConfig& config);

// The names of one layer's parameters, per family (GPT-2 names differ from Llama's).
struct LayerParamNames {
  std::string attn_norm_weight, attn_norm_bias;
  std::string q_weight, k_weight, v_weight, q_bias, k_bias, v_bias;  // GPT-2: all c_attn
  std::string o_weight, o_bias;
  std::string mlp_norm_weight, mlp_norm_bias;
  std::string gate_weight, up_weight;  // SwiGLU (gate_weight empty for GELU MLPs)
  std::string up_bias;                 // GELU MLP: c_fc bias
  std::string down_weight, down_bias;
};
LayerParamNames layer_param_names(const ModelConfig& config, int64_t layer);

struct ModelParamNames {
  std::string token_embedding, position_embedding;  // position: GPT-2 only
  std::string final_norm_weight, final_norm_bias;
  std::string lm_head;  // equals token_embedding when tied
};
ModelParamNames model_param_names(const ModelConfig& config);

}  // namespace ft
