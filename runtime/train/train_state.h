// A training checkpoint: the parameters under /model/<Hugging Face name>, the AdamW moments under
// /optimizer/m/<name> and /optimizer/v/<name> (trainable parameters only), and the run state as
// root attributes (step, data cursor, seed, the config as protobuf text, the model summary).
#pragma once

#include <cstdint>
#include <string>

#include "runtime/config/ft_config.pb.h"
#include "runtime/data/batch_loader.h"
#include "runtime/parameters.h"

namespace ft {

struct TrainState {
  int64_t step = 0;            // optimizer steps completed
  data::DataCursor cursor;     // where the training data continues
  int64_t trained_tokens = 0;  // target tokens trained so far
  uint64_t seed = 0;
  int64_t train_sequences = 0;  // training sequences per epoch (the cursor indexes them)
  std::string config_text;      // the run config, protobuf text format (when loaded)
};

// Writes `path` atomically (temporary name, then rename).
void save_training_checkpoint(const std::string& path, const ParameterStore& params,
                              const TrainState& state, const config::RunConfig& config,
                              const std::string& model_summary);

// Loads parameters (and, when `with_optimizer`, the moments and run state). A tensor whose shape
// differs from the model's, or a missing tensor, is an error naming the tensor and the file.
TrainState load_training_checkpoint(const std::string& path, const ParameterStore& params,
                                    bool with_optimizer);

}  // namespace ft
