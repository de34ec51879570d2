// Helpers for tests that run the trainer end to end: a small Llama-style model and one call that
// trains it.
#pragma once

#include <sstream>
#include <string>
#include <utility>

#include "runtime/config/config.h"
#include "runtime/train/trainer.h"

namespace ft::testing {

// A Hugging Face config.json for a small Llama: byte-level vocabulary (259), hidden size 32, two
// layers, 4 query and 2 key/value heads, 128 positions, tied embeddings.
inline constexpr const char* kSmallLlama = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 259,
  "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
  "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
  "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true})";

// Trains `config` to the end (resume: as TrainerOptions::resume). The trainer's log is kept out
// of the test output; *log_text receives it when given.
inline TrainSummary train(config::RunConfig config, const std::string& resume = "",
                          std::string* log_text = nullptr) {
  std::ostringstream log;
  TrainerOptions options;
  options.config = std::move(config);
  options.resume = resume;
  options.log = &log;
  Trainer trainer(std::move(options));
  TrainSummary summary = trainer.run();
  if (log_text) *log_text = log.str();
  return summary;
}

}  // namespace ft::testing
