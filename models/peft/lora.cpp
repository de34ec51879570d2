#include "models/peft/lora.h"

#include <algorithm>

namespace ft {

LoraAdapters::LoraAdapters(const PeftSpec& spec, const ModelConfig& model,
                           const ParameterStore& params, int64_t tokens)
    : tokens_(tokens),
      rank_(spec.lora_r),
      lowest_layer_(model.num_layers),
      scale_(spec.method == PeftMethod::lora ? spec.lora_scale() : 0.0),
      dropout_(spec.lora_dropout),
      dtype_(params.compute_dtype()) {
  slot_index_.assign(model.num_layers * kSlots, -1);
  if (spec.method != PeftMethod::lora) return;
  for (size_t i = 0; i < spec.lora_targets.size(); ++i) {
    const LoraTarget& target = spec.lora_targets[i];
    const Parameter& a = params.at(target.a_name());
    const Parameter& b = params.at(target.b_name());
    Module module;
    module.layer = target.layer;
    module.slot = target.slot;
    module.index = static_cast<int64_t>(i);
    module.a = a.compute;
    module.da = a.grad;
    module.b = b.compute;
    module.db = b.grad;
    slot_index_[target.layer * kSlots + static_cast<int>(target.slot)] =
        static_cast<int>(modules_.size());
    modules_.push_back(module);
    lowest_layer_ = std::min(lowest_layer_, target.layer);
    max_in_ = std::max(max_in_, target.in_features);
    max_out_ = std::max(max_out_, target.out_features);
  }
}

void LoraAdapters::bind_activations(Arena& arena) {
  if (modules_.empty()) return;
  for (Module& module : modules_) module.t = arena.take(dtype_, {tokens_, rank_}, "lora t");
  if (dropout_ > 0) dropped_ = arena.take(dtype_, {tokens_, max_in_}, "lora dropout input");
  update_ = arena.take(dtype_, {tokens_, max_out_}, "lora update");
  dt_ = arena.take(dtype_, {tokens_, rank_}, "lora t gradient");
  dt_part_ = arena.take(dtype_, {tokens_, rank_}, "lora t gradient");
  dx_ = arena.take(dtype_, {tokens_, max_in_}, "lora input gradient");
}

const LoraAdapters::Module* LoraAdapters::find(int64_t layer, LinearSlot slot) const {
  const int index = slot_index_[layer * kSlots + static_cast<int>(slot)];
  return index < 0 ? nullptr : &modules_[index];
}

LoraAdapters::Module* LoraAdapters::find(int64_t layer, LinearSlot slot) {
  return const_cast<Module*>(std::as_const(*this).find(layer, slot));
}

// Each module's mask comes from its own seed so two modules reading the same x drop differently.
static uint64_t module_seed(uint64_t seed, int64_t index) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(index + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (z ^ (z >> 31)) | 1;  // never 0
}

Tensor LoraAdapters::dropped_input(const OpContext& ctx, const Module& module, Tensor x,
                                   uint64_t dropout_seed) {
  if (dropout_ <= 0 || dropout_seed == 0) return x;
  Tensor dropped = dropped_.flat().slice(0, x.numel()).reshape(x.shape);
  const InputShard& shard = input_shard_[static_cast<int>(module.slot)];
  ops::dropout_forward(ctx, dropped, x, dropout_, module_seed(dropout_seed, module.index),
                       shard.col_offset, shard.full_cols);
  return dropped;
}

void LoraAdapters::set_input_shard(LinearSlot slot, int64_t col_offset, int64_t full_cols) {
  input_shard_[static_cast<int>(slot)] = {col_offset, full_cols};
}

void LoraAdapters::forward(const OpContext& ctx, int64_t layer, LinearSlot slot, Tensor x,
                           std::initializer_list<Tensor> outs, uint64_t dropout_seed) {
  Module* module = find(layer, slot);
  if (!module) return;
  Tensor input = dropped_input(ctx, *module, x, dropout_seed);
  ops::linear_forward(ctx, module->t, input, module->a, Tensor());
  ops::scale(ctx, module->t, scale_);
  int64_t row = 0;
  for (const Tensor& out : outs) {
    const int64_t width = out.dim(-1);
    Tensor update = update_.flat().slice(0, tokens_ * width).reshape({tokens_, width});
    ops::linear_forward(ctx, update, module->t, module->b.slice(row, row + width), Tensor());
    ops::add(ctx, out, out, update);
    row += width;
  }
}

void LoraAdapters::backward(const OpContext& ctx, int64_t layer, LinearSlot slot, Tensor dx,
                            std::initializer_list<Tensor> douts, Tensor x, uint64_t dropout_seed) {
  Module* module = find(layer, slot);
  if (!module) return;
  // dt = sum over parts of dout_i B_i; dB_i += dout_i^T t.
  int64_t row = 0;
  bool first = true;
  for (const Tensor& dout : douts) {
    const int64_t width = dout.dim(-1);
    ops::linear_backward(ctx, first ? dt_ : dt_part_, module->db.slice(row, row + width), Tensor(),
                         dout, module->t, module->b.slice(row, row + width));
    if (!first) ops::add(ctx, dt_, dt_, dt_part_);
    first = false;
    row += width;
  }
  ops::scale(ctx, dt_, scale_);  // t = scale * A x, so d(A x) = scale * dt
  Tensor input = dropped_input(ctx, *module, x, dropout_seed);
  Tensor dinput;
  if (!dx.empty()) dinput = dx_.flat().slice(0, x.numel()).reshape(x.shape);
  ops::linear_backward(ctx, dinput, module->da, Tensor(), dt_, input, module->a);
  if (dx.empty()) return;
  if (dropout_ > 0 && dropout_seed != 0) {
    const InputShard& shard = input_shard_[static_cast<int>(module->slot)];
    ops::dropout_backward(ctx, dinput, dinput, dropout_, module_seed(dropout_seed, module->index),
                          shard.col_offset, shard.full_cols);
  }
  ops::add(ctx, dx, dx, dinput);
}

}  // namespace ft
