// The transformer for generation: one sequence at a time with a key/value cache. The prompt runs
// through the model in one forward over its tokens (the prefill), then each new token is one
// forward of one row whose queries see every cached row. Per layer the cache holds the rotated
// keys and the values of (position offset + capacity) rows; cache row r is the row at position r:
//   prefix tuning    rows 0..P-1 hold the trained prefix (never rotated), tokens start at row P;
//   prompt tuning,   rows 0..P-1 are the virtual tokens, run through the layers with the first
//   P-tuning         chunk at positions 0..P-1; tokens start at row P;
//   LoRA             merged into private copies of the weights it adapts (W + scale B A);
//   full / base      tokens start at row 0.
// Weights are read by their Hugging Face names from a ParameterStore (models/param_layout.h), so
// every family (Llama, Mistral, Qwen2, GPT-2) runs: norms, RoPE or learned positions, biases,
// tied embeddings. Memory (cache, activations, workspace) is planned once at construction.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kernels/ops.h"
#include "models/model_config.h"
#include "models/peft/peft_spec.h"
#include "runtime/buffer.h"
#include "runtime/parameters.h"

namespace ft {

struct KvCacheOptions {
  // Tokens of one sequence the cache holds (prompt and generated). 0: every position the model
  // has after the adapter's virtual tokens.
  int64_t capacity = 0;
  // Tokens one forward takes at most; a longer prompt is run in chunks. 0: the capacity.
  int64_t max_chunk = 0;
  int num_threads = 1;
};

class KvCacheModel {
 public:
  // `params` (host, f32 or f64) holds the base model and the adapter `peft` names; it must outlive
  // the model. LoRA weights are merged into the model's own copies: `params` is not changed, so
  // a base model can be built from the same store.
  KvCacheModel(const ModelConfig& config, const ParameterStore& params, const PeftSpec& peft,
               const KvCacheOptions& options = {});
  ~KvCacheModel();
  KvCacheModel(const KvCacheModel&) = delete;
  KvCacheModel& operator=(const KvCacheModel&) = delete;

  // Starts a new sequence: the cache keeps only the prefix-tuning rows.
  void reset();
  // Appends `tokens` (the sequence's next tokens, at least one) to the cache and returns the
  // logits (vocab_size) of the last one, valid until the next call. The first call after reset()
  // also runs prompt tuning's virtual rows in front of the tokens. Throws ft::Error naming the
  // capacity when the tokens do not fit, and for ids outside the vocabulary.
  Tensor forward(std::span<const int32_t> tokens);

  int64_t length() const { return length_; }  // tokens in the cache
  int64_t capacity() const { return capacity_; }
  const ModelConfig& config() const { return config_; }
  const PeftSpec& peft() const { return peft_; }
  DType dtype() const { return dtype_; }
  // Bytes held: the cache, the activations and the op workspace (merged LoRA weights apart).
  size_t cache_bytes() const { return cache_.bytes(); }
  size_t activation_bytes() const { return activations_.capacity() + workspace_.bytes(); }

 private:
  struct LayerWeights {
    Tensor attn_norm_weight, attn_norm_bias;
    Tensor q_weight, k_weight, v_weight, q_bias, k_bias, v_bias;
    Tensor o_weight, o_bias;
    Tensor mlp_norm_weight, mlp_norm_bias;
    Tensor gate_weight, up_weight, up_bias, down_weight, down_bias;
  };
  // One chunk of `rows` model rows starting at cache row `start` (its position); the residual
  // rows are already embedded.
  void run_chunk(int64_t start, int64_t rows);
  void layer_forward(int64_t layer, int64_t start, int64_t rows);
  void norm(Tensor out, Tensor x, const Tensor& weight, const Tensor& bias, int64_t rows);
  Tensor cache_rows(int64_t layer, int which, int64_t begin, int64_t end) const;
  Tensor rows_of(const Tensor& t, int64_t rows) const { return t.slice(0, rows); }

  ModelConfig config_;
  PeftSpec peft_;
  DType dtype_;
  OpContext ctx_;
  int64_t offset_ = 0;       // rows in front of the tokens (prefix or virtual tokens)
  int64_t capacity_ = 0;     // tokens
  int64_t max_chunk_ = 0;    // tokens per forward
  int64_t chunk_rows_ = 0;   // rows per forward (the first chunk adds the virtual rows)
  int64_t length_ = 0;       // tokens in the cache
  int64_t cached_rows_ = 0;  // rows in the cache (offset included once filled)

  Tensor token_embedding_, position_embedding_, final_norm_weight_, final_norm_bias_, lm_head_;
  std::vector<LayerWeights> layers_;
  std::unique_ptr<ParameterStore> merged_;  // LoRA: the adapted weights, merged

  Buffer adapter_rows_;  // prompt tuning: (P, C); prefix tuning: (P, L * 2 * kv_dim)
  Tensor adapter_table_;
  Buffer rope_tables_;
  Tensor rope_cos_, rope_sin_;
  Buffer cache_;  // (L, 2, offset + capacity, Hkv, D)
  Arena activations_ = Arena::measuring();
  Tensor residual_, normed_, norm_mean_, norm_rstd_, q_, attn_, lse_, scratch_;
  Tensor gate_, up_, act_, last_normed_, last_mean_, last_rstd_, logits_;
  Tensor ids_, positions_;  // i32 (chunk rows)
  Buffer workspace_;
};

}  // namespace ft
