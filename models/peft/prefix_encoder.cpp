#include "models/peft/prefix_encoder.h"

namespace ft {

PrefixEncoder::PrefixEncoder(const PeftSpec& spec, const ModelConfig& model,
                             const ParameterStore& params)
    : projection_(spec.prefix_projection),
      rows_(spec.num_virtual_tokens),
      layers_count_(model.num_layers),
      kv_heads_(model.num_kv_heads),
      head_dim_(model.head_dim),
      hidden_(spec.encoder_hidden_size),
      dtype_(params.compute_dtype()) {
  mixed_ = params.mixed_precision();
  FT_CHECK(spec.method == PeftMethod::prefix_tuning, "the prefix encoder serves prefix tuning");
  if (!projection_) {
    const Parameter& table = params.at("prompt_embeddings");
    table_ = table.compute;
    dtable_ = table.grad;
    return;
  }
  const Parameter& embedding = params.at("prompt_encoder.embedding.weight");
  embedding_ = embedding.compute;
  dembedding_ = embedding.grad;
  const char* names[2] = {"prompt_encoder.transform.0", "prompt_encoder.transform.2"};
  for (int i = 0; i < 2; ++i) {
    const Parameter& weight = params.at(std::string(names[i]) + ".weight");
    const Parameter& bias = params.at(std::string(names[i]) + ".bias");
    layers_[i] = {weight.compute, bias.compute, weight.grad, bias.grad};
  }
}

void PrefixEncoder::bind_activations(Arena& arena) {
  const int64_t P = rows_, kv = kv_heads_ * head_dim_, width = layers_count_ * 2 * kv;
  kv_ = arena.take(dtype_, {layers_count_ * 2, P, kv}, "prefix keys and values");
  // The attention backward accumulates prefix gradients in the parameter gradients' dtype.
  const DType grad_dtype = mixed_ ? DType::f32 : dtype_;
  dkv_ = arena.take(grad_dtype, {layers_count_ * 2, P, kv}, "prefix key and value gradients");
  if (!projection_) return;
  if (mixed_) {
    dtable_f32_ = arena.take(DType::f32, {P, width}, "projected prefix gradient (f32)");
    dembedding_f32_ = arena.take(DType::f32, embedding_.shape, "prefix embedding gradient (f32)");
  }
  hidden_pre_ = arena.take(dtype_, {P, hidden_}, "prefix projection hidden");
  hidden_act_ = arena.take(dtype_, {P, hidden_}, "prefix projection hidden");
  dhidden_act_ = arena.take(dtype_, {P, hidden_}, "prefix projection hidden gradient");
  dhidden_pre_ = arena.take(dtype_, {P, hidden_}, "prefix projection hidden gradient");
  table_ = arena.take(dtype_, {P, width}, "projected prefix");
  dtable_ = arena.take(dtype_, {P, width}, "projected prefix gradient");
  dembedding_rows_ = arena.take(dtype_, embedding_.shape, "prefix embedding gradient");
}

Tensor PrefixEncoder::block(const Tensor& blocks, int64_t layer, int64_t which) const {
  return blocks.slice(2 * layer + which, 2 * layer + which + 1)
      .reshape({rows_, kv_heads_, head_dim_});
}

Tensor PrefixEncoder::forward(const OpContext& ctx) {
  if (projection_) {
    ops::linear_forward(ctx, hidden_pre_, embedding_, layers_[0].weight, layers_[0].bias);
    ops::tanh_forward(ctx, hidden_act_, hidden_pre_);
    ops::linear_forward(ctx, table_, hidden_act_, layers_[1].weight, layers_[1].bias);
  }
  const int64_t kv = kv_heads_ * head_dim_;
  for (int64_t index = 0; index < 2 * layers_count_; ++index)
    ops::copy_columns(ctx, kv_.slice(index, index + 1).reshape({rows_, kv}), table_, index * kv);
  return table_;
}

void PrefixEncoder::begin_backward(const OpContext& ctx) {
  ops::zero(ctx, dkv_);
}

void PrefixEncoder::end_backward(const OpContext& ctx) {
  if (dtable_.empty()) return;
  // Without projection dtable_ is the parameter gradient (f32 under mixed precision, as dkv_).
  const Tensor sum = projection_ && mixed_ ? dtable_f32_ : dtable_;
  if (projection_) ops::zero(ctx, sum);
  const int64_t kv = kv_heads_ * head_dim_;
  for (int64_t index = 0; index < 2 * layers_count_; ++index)
    ops::add_to_columns(ctx, sum, dkv_.slice(index, index + 1).reshape({rows_, kv}), index * kv);
  if (!projection_) return;
  if (mixed_) ops::cast(ctx, dtable_, dtable_f32_);
  ops::linear_backward(ctx, dhidden_act_, layers_[1].dweight, layers_[1].dbias, dtable_,
                       hidden_act_, layers_[1].weight);
  ops::tanh_backward(ctx, dhidden_pre_, dhidden_act_, hidden_act_);
  ops::linear_backward(ctx, dembedding_rows_, layers_[0].dweight, layers_[0].dbias, dhidden_pre_,
                       embedding_, layers_[0].weight);
  if (mixed_) {
    ops::cast(ctx, dembedding_f32_, dembedding_rows_);
    ops::add(ctx, dembedding_, dembedding_, dembedding_f32_);
  } else {
    ops::add(ctx, dembedding_, dembedding_, dembedding_rows_);
  }
}

}  // namespace ft
