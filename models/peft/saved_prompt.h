// The table PEFT saves as `prompt_embeddings`: the trained rows for prompt tuning, the MLP
// encoder's output for P-tuning, the (projected) prefix for prefix tuning.
#pragma once

#include "kernels/context.h"
#include "models/peft/peft_spec.h"
#include "runtime/parameters.h"

namespace ft {

// (P, hidden_size) for prompt tuning and P-tuning; (P, num_layers * 2 * kv_dim) for prefix tuning.
Shape saved_prompt_shape(const PeftSpec& spec, const ModelConfig& model);

// Computes the table into `out` (any float dtype, converted) with the adapter's current values.
void compute_saved_prompt(const OpContext& ctx, const PeftSpec& spec, const ModelConfig& model,
                          const ParameterStore& params, const Tensor& out);

}  // namespace ft
