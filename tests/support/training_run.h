// Helpers for tests that run the trainer end to end: a small Llama-style model and one call that
// trains it.
#pragma once

#include <sstream>
#include <string>
#include <utility>

#include "runtime/config/config.h"
#include "runtime/train/trainer.h"
#include "tests/support/temp_dir.h"

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

// A short run of the small Llama on the quickstart data: 4 x 2 sequences of 96 tokens per step,
// warm-up 2, weight decay, a 2-batch evaluation, two threads, into dir/output.
inline config::RunConfig small_run(const TempDir& dir, const std::string& output, int max_steps) {
  config::RunConfig config;
  config.mutable_model()->set_hf_config(dir.write("model/config.json", kSmallLlama));
  config.mutable_data()->set_train_file(std::string(FT_SOURCE_DIR) +
                                        "/examples/quickstart/train.jsonl");
  config.mutable_data()->set_valid_file(std::string(FT_SOURCE_DIR) +
                                        "/examples/quickstart/valid.jsonl");
  config.mutable_data()->set_seq_len(96);
  config.mutable_optim()->set_lr(3e-3);
  config.mutable_optim()->set_warmup_steps(2);
  config.mutable_optim()->set_weight_decay(0.01);
  config.mutable_train()->set_micro_batch_size(4);
  config.mutable_train()->set_grad_accum_steps(2);
  config.mutable_train()->set_max_steps(max_steps);
  config.mutable_train()->set_eval_batches(2);
  config.mutable_train()->set_log_every(1000);
  config.set_output_dir(dir.path(output));
  config.set_threads(2);
  config.set_seed(5);
  return config;
}

}  // namespace ft::testing
