// Merging LoRA into the base: W' = W + scale * B A for every target module, after which the base
// alone computes what base + adapter computed (no added latency at inference).
#pragma once

#include "models/peft/peft_spec.h"
#include "runtime/parameters.h"

namespace ft {

// Adds each module's scale * B A into its base weight in `params` (host tensors, f32 or f64).
void merge_lora(const PeftSpec& spec, const ParameterStore& params);

}  // namespace ft
