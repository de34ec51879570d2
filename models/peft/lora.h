// LoRA: y = W x + scale * B (A (dropout(x))) on the targeted linear modules. A (r, in) and
// B (out, r) train; W stays frozen. GPT-2's c_attn is one module whose B row blocks add to q, k
// and v. Per module the forward saves t = scale * A dropout(x) (N, r); dropout's mask is a pure
// function of (seed, element), so the backward recomputes dropout(x) instead of storing it.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "kernels/ops.h"
#include "models/peft/peft_spec.h"
#include "runtime/buffer.h"
#include "runtime/parameters.h"

namespace ft {

class LoraAdapters {
 public:
  LoraAdapters(const PeftSpec& spec, const ModelConfig& model, const ParameterStore& params,
               int64_t tokens);

  void bind_activations(Arena& arena);
  bool empty() const { return modules_.empty(); }
  bool has(int64_t layer, LinearSlot slot) const { return find(layer, slot) != nullptr; }
  // The lowest layer holding a LoRA module (num_layers when none).
  int64_t lowest_layer() const { return lowest_layer_; }
  // Tensor parallelism: the inputs of `slot` are columns [col_offset, col_offset + in) of
  // full_cols (row-parallel layers), so dropout draws the whole layer's mask.
  void set_input_shard(LinearSlot slot, int64_t col_offset, int64_t full_cols);

  // Adds the module's update to `outs` (the outputs its B row blocks feed, in order).
  // dropout_seed == 0 disables dropout (evaluation).
  void forward(const OpContext& ctx, int64_t layer, LinearSlot slot, Tensor x,
               std::initializer_list<Tensor> outs, uint64_t dropout_seed);
  // Accumulates dA, dB, and (when dx is not empty) adds the update's input gradient to dx.
  // The same x and dropout_seed as the forward.
  void backward(const OpContext& ctx, int64_t layer, LinearSlot slot, Tensor dx,
                std::initializer_list<Tensor> douts, Tensor x, uint64_t dropout_seed);

 private:
  struct Module {
    int64_t layer = 0;
    LinearSlot slot = LinearSlot::q;
    int64_t index = 0;  // position in the spec's target list (dropout stream)
    Tensor a, da, b, db;
    Tensor t;  // (N, r): scale * A dropout(x), saved by the forward
  };
  const Module* find(int64_t layer, LinearSlot slot) const;
  Module* find(int64_t layer, LinearSlot slot);
  // dropout(x) into the shared scratch, or x itself without dropout.
  Tensor dropped_input(const OpContext& ctx, const Module& module, Tensor x, uint64_t dropout_seed);

  std::vector<Module> modules_;
  static constexpr int kSlots = static_cast<int>(LinearSlot::down) + 1;
  // (layer, slot) -> position in modules_, or -1: the model asks for every slot of every layer.
  std::vector<int> slot_index_;
  struct InputShard {
    int64_t col_offset = 0, full_cols = 0;
  };
  InputShard input_shard_[kSlots];
  int64_t tokens_, rank_, lowest_layer_;
  double scale_, dropout_;
  int64_t max_in_ = 0, max_out_ = 0;
  DType dtype_;
  Tensor dropped_, update_, dt_, dt_part_, dx_;  // shared scratch
};

}  // namespace ft
