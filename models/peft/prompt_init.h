// Prompt tuning's SAMPLE_VOCAB and TEXT initializations: the virtual tokens start as rows of the
// frozen token-embedding table, as in PEFT.
#pragma once

#include <cstdint>
#include <vector>

#include "models/peft/peft_spec.h"
#include "runtime/parameters.h"

namespace ft {

// SAMPLE_VOCAB: ids drawn uniformly from [0, vocab_size) with `seed`. TEXT: `text_ids` (the init
// text's tokens) cut to P, or repeated until P ids are there. RANDOM: nothing to do.
void initialize_prompt_from_vocabulary(const PeftSpec& spec, const ModelConfig& model,
                                       const ParameterStore& params,
                                       const std::vector<int32_t>& text_ids, uint64_t seed);

}  // namespace ft
