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

// Fills one layer's weight views `w` (a struct with LayerParamNames' fields) with
// find(name) (an empty name: an empty view); GPT-2's fused c_attn is cut into its q, k and v row
// blocks by row_block(view, begin_row, end_row).
template <typename Layer, typename Find, typename RowBlock>
void bind_layer_weights(Layer& w, const LayerParamNames& n, const ModelConfig& config, Find&& find,
                        RowBlock&& row_block) {
  w.attn_norm_weight = find(n.attn_norm_weight);
  w.attn_norm_bias = find(n.attn_norm_bias);
  if (config.model_type == "gpt2") {
    const int64_t q = config.q_dim(), kv = config.kv_dim();
    const auto qkv = find(n.q_weight), qkv_bias = find(n.q_bias);
    w.q_weight = row_block(qkv, 0, q);
    w.k_weight = row_block(qkv, q, q + kv);
    w.v_weight = row_block(qkv, q + kv, q + 2 * kv);
    w.q_bias = row_block(qkv_bias, 0, q);
    w.k_bias = row_block(qkv_bias, q, q + kv);
    w.v_bias = row_block(qkv_bias, q + kv, q + 2 * kv);
  } else {
    w.q_weight = find(n.q_weight);
    w.k_weight = find(n.k_weight);
    w.v_weight = find(n.v_weight);
    w.q_bias = find(n.q_bias);
    w.k_bias = find(n.k_bias);
    w.v_bias = find(n.v_bias);
  }
  w.o_weight = find(n.o_weight);
  w.o_bias = find(n.o_bias);
  w.mlp_norm_weight = find(n.mlp_norm_weight);
  w.mlp_norm_bias = find(n.mlp_norm_bias);
  w.gate_weight = find(n.gate_weight);
  w.up_weight = find(n.up_weight);
  w.up_bias = find(n.up_bias);
  w.down_weight = find(n.down_weight);
  w.down_bias = find(n.down_bias);
}

struct ModelParamNames {
  std::string token_embedding, position_embedding;  // position: GPT-2 only
  std::string final_norm_weight, final_norm_bias;
  std::string lm_head;  // equals token_embedding when tied
};
ModelParamNames model_param_names(const ModelConfig& config);

}  // namespace ft
