// Prefix tuning's per-layer key/value prefixes. The trained table (P, L * 2 * kv_dim) holds, per
// virtual token, [layer0 K | layer0 V | layer1 K | ...] as PEFT lays it out; with
// prefix_projection it is the output of PEFT's MLP (embedding (P, kv_dim) -> Linear -> tanh ->
// Linear). The forward gathers each layer's K and V into contiguous (P, Hkv, D) blocks for the
// attention op; the backward scatters their gradients back. Prefix keys are used as they are:
// never rotated, they live in post-RoPE key space.
#pragma once

#include "kernels/ops.h"
#include "models/peft/peft_spec.h"
#include "runtime/buffer.h"
#include "runtime/parameters.h"

namespace ft {

class PrefixEncoder {
 public:
  PrefixEncoder(const PeftSpec& spec, const ModelConfig& model, const ParameterStore& params);

  void bind_activations(Arena& arena);
  // Computes the table and every layer's blocks. Returns the table (P, L * 2 * kv_dim).
  Tensor forward(const OpContext& ctx);
  Tensor key(int64_t layer) const { return block(kv_, layer, 0); }    // (P, Hkv, D)
  Tensor value(int64_t layer) const { return block(kv_, layer, 1); }  // (P, Hkv, D)
  // Zeroes the per-layer gradient blocks the attention backward accumulates into.
  void begin_backward(const OpContext& ctx);
  Tensor key_grad(int64_t layer) const { return block(dkv_, layer, 0); }
  Tensor value_grad(int64_t layer) const { return block(dkv_, layer, 1); }
  // Carries the blocks' gradients into the trained table (and through the projection).
  void end_backward(const OpContext& ctx);

 private:
  struct Linear {
    Tensor weight, bias, dweight, dbias;
  };
  Tensor block(const Tensor& blocks, int64_t layer, int64_t which) const;

  bool projection_ = false;
  int64_t rows_ = 0, layers_count_ = 0, kv_heads_ = 0, head_dim_ = 0, hidden_ = 0;
  DType dtype_;
  Tensor table_, dtable_;          // the trained table or the projection's output
  Tensor embedding_, dembedding_;  // projection input
  Linear layers_[2];
  Tensor hidden_pre_, hidden_act_, dhidden_act_, dhidden_pre_, dembedding_rows_;
  Tensor kv_, dkv_;  // (L, 2, P, Hkv * D); dkv_ in the gradients' dtype (f32 under mixed precision)
  // Mixed precision (bf16 activations, f32 gradients): the projected table's gradient summed in
  // f32 before its bf16 copy feeds the projection's backward, and the embedding rows widened.
  bool mixed_ = false;
  Tensor dtable_f32_, dembedding_f32_;
};

}  // namespace ft
