// The generation loop: a prompt's ids -> new tokens from a KvCacheModel and a Sampler, until a
// stop token, a stop string, max_new_tokens or the end of the model's context.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "models/generation/kv_cache_model.h"
#include "models/generation/sampler.h"
#include "runtime/data/tokenizer.h"

namespace ft {

struct GenerationOptions {
  int64_t max_new_tokens = 128;
  SamplingOptions sampling;
  // Generation ends when one of these ids is drawn (it is not part of the output).
  std::vector<int32_t> stop_ids;
  // ...or when the decoded output contains one of these (the output ends before it). Needs a
  // tokenizer.
  std::vector<std::string> stop_strings;
};

struct Generation {
  std::vector<int32_t> tokens;  // the new tokens, without the stop token
  std::string text;  // their decoded text (before a stop string); empty without tokenizer
  // "stop" (a stop id or string), "length" (max_new_tokens) or "context" (the model's context
  // is full).
  std::string finish_reason;
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0.0;  // the prompt's forward (and the first token's choice)
  double decode_seconds = 0.0;   // the forwards of the generated tokens
};

// Resets `model`, runs the prompt (at least one id) and generates. `tokenizer` (may be null)
// decodes the text and finds stop strings.
Generation generate(KvCacheModel& model, std::span<const int32_t> prompt,
                    const GenerationOptions& options, const data::Tokenizer* tokenizer);

}  // namespace ft
