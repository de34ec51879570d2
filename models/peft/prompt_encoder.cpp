#include "models/peft/prompt_encoder.h"

namespace ft {

PromptEncoder::PromptEncoder(const PeftSpec& spec, const ModelConfig& model,
                             const ParameterStore& params)
    : mlp_(spec.method == PeftMethod::p_tuning),
      rows_(spec.num_virtual_tokens),
      width_(model.hidden_size),
      hidden_(spec.encoder_hidden_size),
      dtype_(params.dtype()) {
  FT_CHECK(spec.virtual_rows() > 0, "the prompt encoder serves prompt tuning and P-tuning only");
  const Parameter& table =
      params.at(mlp_ ? "prompt_encoder.embedding.weight" : "prompt_embeddings");
  embedding_ = table.value;
  dembedding_ = table.grad;
  if (!mlp_) return;
  const char* names[3] = {"prompt_encoder.mlp_head.0", "prompt_encoder.mlp_head.2",
                          "prompt_encoder.mlp_head.4"};
  for (int i = 0; i < 3; ++i) {
    const Parameter& weight = params.at(std::string(names[i]) + ".weight");
    const Parameter& bias = params.at(std::string(names[i]) + ".bias");
    layers_[i] = {weight.value, bias.value, weight.grad, bias.grad};
  }
}

void PromptEncoder::bind_activations(Arena& arena) {
  if (!mlp_) return;
  const int64_t P = rows_, C = width_, H = hidden_;
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

Tensor PromptEncoder::begin_backward(const OpContext& ctx) {
  if (!mlp_) return dembedding_;
  ops::zero(ctx, dtable_);
  return dtable_;
}

void PromptEncoder::end_backward(const OpContext& ctx) {
  if (!mlp_) return;
  ops::linear_backward(ctx, da_, layers_[2].dweight, layers_[2].dbias, dtable_, a2_,
                       layers_[2].weight);
  ops::relu_backward(ctx, dh_, da_, h2_);
  ops::linear_backward(ctx, da_, layers_[1].dweight, layers_[1].dbias, dh_, a1_, layers_[1].weight);
  ops::relu_backward(ctx, dh_, da_, h1_);
  ops::linear_backward(ctx, dembedding_rows_, layers_[0].dweight, layers_[0].dbias, dh_, embedding_,
                       layers_[0].weight);
  ops::add(ctx, dembedding_, dembedding_, dembedding_rows_);
}

}  // namespace ft
