#include "models/peft/saved_prompt.h"

#include "models/peft/prefix_encoder.h"
#include "models/peft/prompt_encoder.h"

namespace ft {

Shape saved_prompt_shape(const PeftSpec& spec, const ModelConfig& model) {
  const int64_t P = spec.num_virtual_tokens;
  switch (spec.method) {
    case PeftMethod::prompt_tuning:
    case PeftMethod::p_tuning:
      return Shape{P, model.hidden_size};
    case PeftMethod::prefix_tuning:
      return Shape{P, model.num_layers * 2 * model.kv_dim()};
    default:
      fail("{} saves no prompt table", peft_method_name(spec.method));
  }
}

void compute_saved_prompt(const OpContext& ctx, const PeftSpec& spec, const ModelConfig& model,
                          const ParameterStore& params, const Tensor& out) {
  const Shape shape = saved_prompt_shape(spec, model);
  FT_CHECK(out.shape == shape, "the saved prompt table is {}, the output tensor {}", shape.str(),
           out.shape.str());
  // The encoders' activations are a few rows: plan them like the model's.
  auto run = [&](auto& encoder) {
    Arena measuring = Arena::measuring(params.device());
    encoder.bind_activations(measuring);
    Arena arena(params.device(), measuring.used());
    encoder.bind_activations(arena);
    ops::cast(ctx, out, encoder.forward(ctx));
  };
  if (spec.method == PeftMethod::prefix_tuning) {
    PrefixEncoder encoder(spec, model, params);
    run(encoder);
  } else {
    PromptEncoder encoder(spec, model, params);
    run(encoder);
  }
}

}  // namespace ft
