// Training checkpoints, two kinds:
//  - full ("ft-checkpoint-1"): every parameter under /model/<Hugging Face name>;
//  - adapter ("ft-adapter-1", PEFT runs): only the adapter's parameters under /adapter/<name>, and
//    the identity of the frozen base they were trained on (base_fingerprint, base_model).
// Both hold the AdamW moments of the trainable parameters under /optimizer/m/<name> and
// /optimizer/v/<name>, and the run state as root attributes (step, data cursor, seed, the config
// as protobuf text, the model summary).
#pragma once

#include <cstdint>
#include <string>

#include "models/peft/base_identity.h"
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

// Writes `path` atomically (temporary name, then rename). `base` non-null: an adapter checkpoint
// holding only the trainable parameters.
void save_training_checkpoint(const std::string& path, const ParameterStore& params,
                              const TrainState& state, const config::RunConfig& config,
                              const std::string& model_summary, const BaseIdentity* base);

// Loads the trainable parameters' values from an adapter checkpoint, or every parameter from a
// full one (and, when `with_optimizer`, the moments and run state). A tensor whose shape differs
// from the model's, or a missing tensor, is an error naming the tensor and the file. For an
// adapter checkpoint, `base` (this run's base) must carry the fingerprint the file records.
TrainState load_training_checkpoint(const std::string& path, const ParameterStore& params,
                                    bool with_optimizer, const BaseIdentity* base = nullptr);

// Loads the frozen base parameters from a full checkpoint (model.init_from of a PEFT run).
void load_base_weights(const std::string& path, const ParameterStore& params);

// Writes the frozen (base) parameters as a full checkpoint at step 0: a merged LoRA model, usable
// as model.init_from. `config` is recorded as the run that produced it.
void save_base_weights(const std::string& path, const ParameterStore& params,
                       const config::RunConfig& config, const std::string& model_summary);

// True when `path` is an adapter checkpoint.
bool is_adapter_checkpoint(const std::string& path);

}  // namespace ft
