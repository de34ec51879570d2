// Loss, perplexity and mean token accuracy of a model (with its adapter) on a dataset, computed
// as training's validation is: load_dataset's sequences and loss mask, the training Transformer's
// forward with the adapter's input layout, the loss summed over target tokens.
#pragma once

#include <cstdint>
#include <vector>

#include "models/model_config.h"
#include "models/peft/peft_spec.h"
#include "runtime/data/dataset.h"
#include "runtime/parameters.h"

namespace ft {

struct EvalResult {
  int64_t sequences = 0;
  int64_t tokens = 0;       // target tokens (the loss mask's)
  double loss = 0.0;        // mean cross-entropy per target token (nats)
  double perplexity = 0.0;  // exp(loss)
  double accuracy = 0.0;    // targets equal to the argmax of their logits
};

// How the sequences are batched. A run's own layout (train.micro_batch_size rows padded to
// data.seq_len with the tokenizer's EOS) makes the figures the trainer's full_valid_loss and
// full_valid_mean_token_accuracy bit for bit: the same forwards over the same rows.
struct EvalOptions {
  int batch_size = 4;
  int seq_len = 0;     // rows are padded to this many positions (0: the longest sequence's)
  int32_t pad_id = 0;  // the input id of padding (never a target)
  int num_threads = 1;
};

// Runs `sequences` in file order, batch_size at a time. Throws ft::Error when a sequence is
// longer than seq_len + 1 tokens, when the rows and the adapter's virtual tokens exceed the
// model's positions, or when no sequence has a target token.
EvalResult evaluate_sequences(const ModelConfig& model, const ParameterStore& params,
                              const PeftSpec& peft, const std::vector<data::Sequence>& sequences,
                              const EvalOptions& options);

// The same, padded to the longest sequence with id 0.
EvalResult evaluate_sequences(const ModelConfig& model, const ParameterStore& params,
                              const PeftSpec& peft, const std::vector<data::Sequence>& sequences,
                              int batch_size, int num_threads);

}  // namespace ft
