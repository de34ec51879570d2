// A fine-tuning method resolved against a model: which adapter parameters exist (names, shapes,
// initialization), which base parameters stay frozen, and how the inputs are laid out. The
// semantics follow Hugging Face PEFT (shared/reference/peft.md) so adapters move both ways.
//
// Adapter parameter names (the keys under /adapter in ft checkpoints):
//   prompt_tuning                  prompt_embeddings (P, C)
//   p_tuning                       prompt_encoder.embedding.weight (P, C),
//                                  prompt_encoder.mlp_head.{0,2,4}.{weight,bias}: C->H->H->C, ReLU
//   prefix_tuning                  prompt_embeddings (P, L * 2 * kv_dim), per row
//                                  [layer0 K | layer0 V | layer1 K | ...], each block (Hkv, D)
//   prefix_tuning + projection     prompt_encoder.embedding.weight (P, kv_dim),
//                                  prompt_encoder.transform.{0,2}.{weight,bias}: kv->H, tanh,
//                                  H->L*2*kv
//   lora                           <module>.lora_A.weight (r, in), <module>.lora_B.weight (out, r)
//                                  e.g. model.layers.0.self_attn.q_proj.lora_A.weight
// PEFT's saved files prefix LoRA names with "base_model.model." and hold only the projected
// prefix / the encoder's output for prefix tuning with projection and P-tuning.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/model_config.h"
#include "models/param_layout.h"
#include "runtime/config/ft_config.pb.h"

namespace ft {

enum class PeftMethod { full, prompt_tuning, prefix_tuning, p_tuning, lora };
enum class PromptInit { random, sample_vocab, text };

// The linear layers of one transformer layer that LoRA can attach to. GPT-2's c_attn is one module
// holding q, k and v as row blocks (qkv).
enum class LinearSlot { q, k, v, qkv, o, gate, up, down };

struct LoraTarget {
  std::string module;  // Hugging Face module path, e.g. model.layers.0.self_attn.q_proj
  int64_t layer = 0;
  LinearSlot slot = LinearSlot::q;
  int64_t in_features = 0, out_features = 0;
  std::string a_name() const { return module + ".lora_A.weight"; }
  std::string b_name() const { return module + ".lora_B.weight"; }
};

struct PeftSpec {
  PeftMethod method = PeftMethod::full;
  int64_t num_virtual_tokens = 0;  // P (prompt methods and prefix tuning), else 0
  PromptInit prompt_init = PromptInit::random;
  std::string prompt_init_text;
  bool prefix_projection = false;
  int64_t encoder_hidden_size = 0;  // resolved (never 0 when an encoder exists)
  int64_t lora_r = 0;
  double lora_alpha = 0.0;
  double lora_dropout = 0.0;
  bool use_rslora = false;
  std::vector<std::string> target_modules;  // as configured (after defaults), e.g. {q_proj, v_proj}
  std::vector<LoraTarget> lora_targets;     // resolved, in layer order

  bool is_peft() const { return method != PeftMethod::full; }
  // Rows prepended to every sequence (prompt tuning, P-tuning).
  int64_t virtual_rows() const {
    return method == PeftMethod::prompt_tuning || method == PeftMethod::p_tuning
               ? num_virtual_tokens
               : 0;
  }
  // Where the real tokens' positions start: P for every virtual-token method.
  int64_t position_offset() const { return num_virtual_tokens; }
  // Model rows per sequence for data sequences of `seq_len` tokens.
  int64_t model_seq_len(int64_t seq_len) const { return seq_len + virtual_rows(); }
  double lora_scale() const;
  // "lora (r 8, alpha 16, q_proj,v_proj)" and the like, for the start-up report.
  std::string summary() const;
};

const char* peft_method_name(PeftMethod method);
// PEFT's peft_type: PROMPT_TUNING, PREFIX_TUNING, P_TUNING, LORA.
const char* peft_type_name(PeftMethod method);

// Validates the config against the model (unknown method or target module, virtual tokens that do
// not fit next to seq_len, rank < 1, dropout outside [0, 1), ...) with errors naming the field.
PeftSpec resolve_peft_spec(const config::PeftConfig& peft, const ModelConfig& model,
                           int64_t seq_len);

// Refuses an adapter trained as `saved` in a run configured as `now` unless both compute the same
// function: method, virtual tokens, projection and encoder width, LoRA rank, scale and modules.
// The error names `source` (the file) and the first field that differs.
void check_same_adapter(const PeftSpec& saved, const PeftSpec& now, const std::string& source);

// The adapter's parameters (all trainable), in a fixed order.
std::vector<ParamSpec> peft_param_specs(const PeftSpec& spec, const ModelConfig& model);

// Every parameter of a run: the base model (frozen unless method is full) and the adapter.
std::vector<ParamSpec> run_param_specs(const ModelConfig& model, const PeftSpec& spec);

}  // namespace ft
