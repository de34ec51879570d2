// A run's parameters rebuilt from one of its checkpoints, for tools that work on trained models
// (ft_convert): the config it recorded, the model, the PEFT method, and the parameters — the base
// as the run had it (model.init_from or the seeded init), then the checkpoint's values.
#pragma once

#include <memory>
#include <string>

#include "models/model_config.h"
#include "models/peft/base_identity.h"
#include "models/peft/peft_spec.h"
#include "runtime/config/ft_config.pb.h"
#include "runtime/parameters.h"

namespace ft {

// The model a run config names: a Hugging Face config.json or a preset, with the position
// override applied.
ModelConfig resolve_model_config(const config::ModelConfig& model);

struct RunParameters {
  config::RunConfig config;
  ModelConfig model;
  PeftSpec peft;
  std::unique_ptr<ParameterStore> params;  // fp32 or fp64 as the run trained, on the CPU
  BaseIdentity base;                       // PEFT runs
};

// Reads `checkpoint_path` (full or adapter). An adapter checkpoint whose recorded base differs
// from the base its config rebuilds is refused, naming both.
RunParameters load_run_parameters(const std::string& checkpoint_path, int num_threads);

}  // namespace ft
