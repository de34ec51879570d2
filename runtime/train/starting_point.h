// Where a run's parameters start: the seeded initialization, model.init_from (ft checkpoint or
// Hugging Face weights), a frozen PEFT base with its fingerprint, peft.init_from (an adapter to
// continue), or --resume (parameters, moments and run state). Works on full-shape parameters;
// under a parallel layout world rank 0 fills them and parameter_distribution shards them.
#pragma once

#include <cstdint>
#include <string>

#include "models/model_config.h"
#include "models/peft/base_identity.h"
#include "models/peft/peft_spec.h"
#include "parallel/communicator.h"
#include "runtime/config/ft_config.pb.h"
#include "runtime/data/tokenizer.h"
#include "runtime/parameters.h"
#include "runtime/train/train_state.h"

namespace ft {

struct StartingPoint {
  TrainState state;      // step 0 unless resumed
  BaseIdentity base;     // PEFT runs: the frozen base
  std::string messages;  // lines for the log ("ft: resumed from ...")
};

struct StartingPointRequest {
  const config::RunConfig* config = nullptr;
  const ModelConfig* model = nullptr;
  const PeftSpec* peft = nullptr;
  const data::Tokenizer* tokenizer = nullptr;  // prompt tuning's TEXT init
  std::string resume_path;                     // "" for a fresh run
  std::string checkpoint_dir;                  // the run's checkpoints (newer-checkpoint check)
  int64_t total_steps = 0;
  int64_t train_sequences = 0;  // the training set's size (a resume must match it)
  int num_threads = 1;
};

// Fills `params` (full shapes, including the moments when resuming) and returns the state. Every
// mismatch (another model, another adapter, another base, another dataset, nothing left to
// train) is an error naming the file and the field.
StartingPoint load_starting_point(const StartingPointRequest& request, ParameterStore& params);

// Root's starting point (everything but the parameters) to every rank of `world`.
void broadcast_starting_point(StartingPoint& point, Communicator& world, int root);

}  // namespace ft
