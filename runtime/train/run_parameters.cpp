#include "runtime/train/run_parameters.h"

#include <filesystem>

#include "models/hf_weights.h"
#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "runtime/config/config.h"
#include "runtime/train/train_state.h"

namespace ft {

ModelConfig resolve_model_config(const config::ModelConfig& model) {
  ModelConfig result = model.has_hf_config() && !model.hf_config().empty()
                           ? model_config_from_hf(model.hf_config())
                           : model_config_preset(model.preset());
  if (model.max_position_embeddings() > 0)
    result.max_position_embeddings = model.max_position_embeddings();
  return result;
}

void load_init_weights(const std::string& path, const ModelConfig& model,
                       const ParameterStore& params, bool base_only) {
  const std::filesystem::path file(path);
  if (!std::filesystem::exists(file)) fail("model.init_from = {}: no such file or folder", path);
  const std::string extension = file.extension().string();
  if (std::filesystem::is_directory(file) || extension == ".safetensors" || extension == ".json") {
    load_hf_weights(path, model, params);
  } else if (base_only) {
    load_base_weights(path, params);
  } else {
    load_training_checkpoint(path, params, /*with_optimizer=*/false);
  }
}

PeftSpec saved_peft_spec(const std::string& checkpoint_path, const ModelConfig& model) {
  checkpoint::CheckpointReader reader(checkpoint_path);
  const config::RunConfig saved =
      config::from_text(reader.string_attribute("config"), checkpoint_path);
  return resolve_peft_spec(saved.peft(), model, saved.data().seq_len());
}

RunParameters load_run_parameters(const std::string& checkpoint_path, int num_threads) {
  RunParameters run;
  {
    checkpoint::CheckpointReader reader(checkpoint_path);
    run.config = config::from_text(reader.string_attribute("config"), checkpoint_path);
  }
  run.model = resolve_model_config(run.config.model());
  run.peft = resolve_peft_spec(run.config.peft(), run.model, run.config.data().seq_len());
  const DType dtype = run.config.dtype() == "fp64" ? DType::f64 : DType::f32;
  run.params =
      std::make_unique<ParameterStore>(run_param_specs(run.model, run.peft), dtype, Device::cpu);
  run.params->initialize(run.config.seed());
  if (!run.peft.is_peft()) {
    load_training_checkpoint(checkpoint_path, *run.params, /*with_optimizer=*/false);
    return run;
  }
  const std::string& base_path = run.config.model().init_from();
  if (!base_path.empty()) load_init_weights(base_path, run.model, *run.params, /*base_only=*/true);
  run.base.fingerprint = base_fingerprint(*run.params, num_threads);
  run.base.description =
      run.model.summary() + (base_path.empty() ? ", seeded random init" : ", " + base_path);
  load_training_checkpoint(checkpoint_path, *run.params, /*with_optimizer=*/false, &run.base);
  return run;
}

}  // namespace ft
