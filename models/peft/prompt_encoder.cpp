#include "models/peft/prompt_encoder.h"

namespace ft {

PromptEncoder::PromptEncoder(const PeftSpec& spec, const ModelConfig& model,
                             const ParameterStore& params)
    : mlp_(spec.method == PeftMethod::p_tuning),
      rows_(spec.num_virtual_tokens),
      width_(model.hidden_size),
      hidden_(spec.encoder_hidden_size),
      dtype_(params.compute_dtype()) {
  mixed_ = params.mixed_precision();
  FT_CHECK(spec.virtual_rows() > 0, "the prompt encoder serves prompt tuning and P-tuning only");
  const Parameter& table =
      params.at(mlp_ ? "prompt_encoder.embedding.weight" : "prompt_embeddings");
  embedding_ = table.compute;
  dembedding_ = table.grad;
  if (!mlp_) return;
  const char* names[3] = {"prompt_encoder.mlp_head.0", "prompt_encoder.mlp_head.2",
                          "prompt_encoder.mlp_head.4"};
  for (int i = 0; i < 3; ++i) {
    const Parameter& weight = params.at(std::string(names[i]) + ".weight");
    const Parameter& bias = params.at(std::string(names[i]) + ".bias");
    layers_[i] = {weight.compute, bias.compute, weight.grad, bias.grad};
  }
}

void PromptEncoder::bind_activations(Arena& arena) {
  const int64_t P = rows_, C = width_, H = hidden_;
  if (mixed_) {
    rows_f32_ = arena.take(DType::f32, {P, C}, "virtual-row gradient (f32)");
    if (mlp_) dtable_f32_ = arena.take(DType::f32, {P, C}, "p-tuning prompt gradient (f32)");
  }
  if (!mlp_) return;
  h1_ = arena.take(dtype_, {P, H}, "p-tuning hidden");
  a1_ = arena.take(dtype_, {P, H}, "p-tuning hidden");
  h2_ = arena.take(dtype_, {P, H}, "p-tuning hidden");
  a2_ = arena.take(dtype_, {P, H}, "p-tuning hidden");
  table_ = arena.take(dtype_, {P, C}, "p-tuning prompt");
  dtable_ = arena.take(dtype_, {P, C}, "p-tuning prompt gradient");
  dh_ = arena.take(dtype_, {P, H}, "p-tuning hidden gradient");
  da_ = arena.take(dtype_, {P, H}, "p-tuning hidden gradient");
  dembedding_rows_ = arena.take(dtype_, {P, C}, "p-tuning embedding gradient");
}

Tensor PromptEncoder::forward(const OpContext& ctx) {
  if (!mlp_) return embedding_;
  ops::linear_forward(ctx, h1_, embedding_, layers_[0].weight, layers_[0].bias);
  ops::relu_forward(ctx, a1_, h1_);
  ops::linear_forward(ctx, h2_, a1_, layers_[1].weight, layers_[1].bias);
  ops::relu_forward(ctx, a2_, h2_);
  ops::linear_forward(ctx, table_, a2_, layers_[2].weight, layers_[2].bias);
  return table_;
}

void PromptEncoder::begin_backward(const OpContext& ctx) {
  if (mlp_) ops::zero(ctx, mixed_ ? dtable_f32_ : dtable_);
}

void PromptEncoder::accumulate_rows(const OpContext& ctx, Tensor drows) {
  Tensor sum = mlp_ ? (mixed_ ? dtable_f32_ : dtable_) : dembedding_;
  if (sum.empty()) return;  // frozen
  if (mixed_) {
    ops::cast(ctx, rows_f32_, drows);
    drows = rows_f32_;
  }
  ops::add(ctx, sum, sum, drows);
}

void PromptEncoder::end_backward(const OpContext& ctx) {
  if (!mlp_) return;
  if (mixed_) ops::cast(ctx, dtable_, dtable_f32_);
  ops::linear_backward(ctx, da_, layers_[2].dweight, layers_[2].dbias, dtable_, a2_,
                       layers_[2].weight);
  ops::relu_backward(ctx, dh_, da_, h2_);
  ops::linear_backward(ctx, da_, layers_[1].dweight, layers_[1].dbias, dh_, a1_, layers_[1].weight);
  ops::relu_backward(ctx, dh_, da_, h1_);
  ops::linear_backward(ctx, dembedding_rows_, layers_[0].dweight, layers_[0].dbias, dh_, embedding_,
                       layers_[0].weight);
  if (dembedding_.empty()) return;
  if (mixed_) {
    ops::cast(ctx, rows_f32_, dembedding_rows_);
    ops::add(ctx, dembedding_, dembedding_, rows_f32_);
  } else {
    ops::add(ctx, dembedding_, dembedding_, dembedding_rows_);
  }
}

}  // namespace ft
