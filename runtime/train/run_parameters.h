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

// The model a run config names, with the position override applied: model.hf_config (a Hugging
// Face config.json or the folder holding it), model.preset, or with neither, the model that
// model.init_from holds (a Hugging Face folder's config.json, or the model an ft full
// checkpoint's run recorded).
ModelConfig resolve_model_config(const config::ModelConfig& model);

// model.init_from: an ft HDF5 checkpoint, or Hugging Face weights (a .safetensors file, a
// model.safetensors.index.json, or a folder holding them). `base_only`: a PEFT run, which takes
// only the frozen base from it (an ft adapter checkpoint is refused, naming peft.init_from).
void load_init_weights(const std::string& path, const ModelConfig& model,
                       const ParameterStore& params, bool base_only);

// The PEFT method recorded in a checkpoint's config, resolved against `model`.
PeftSpec saved_peft_spec(const std::string& checkpoint_path, const ModelConfig& model);

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
