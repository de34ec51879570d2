#include "runtime/train/run_parameters.h"

#include <filesystem>

#include "models/hf_weights.h"
#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "runtime/config/config.h"
#include "runtime/train/train_state.h"

namespace ft {

namespace {

// The architecture when neither model.preset nor model.hf_config is set: model.init_from names
// it along with the weights, as from_pretrained(folder) does. A Hugging Face folder brings its
// config.json; an ft checkpoint the model of the run (or import) that wrote it.
ModelConfig model_config_of_init_from(const std::string& init_from, int depth) {
  namespace fs = std::filesystem;
  const char* expected =
      "with neither model.preset nor model.hf_config set, model.init_from must name the model: a "
      "Hugging Face model folder (config.json + weights) or an ft full checkpoint";
  if (init_from.empty()) fail("config field model: {}; model.init_from is empty too", expected);
  if (!fs::exists(init_from)) fail("model.init_from = {}: no such file or folder", init_from);
  if (fs::is_directory(init_from)) {
    const std::string config_json = hf_config_file(init_from);
    if (!fs::is_regular_file(config_json))
      fail("model.init_from = {}: the folder holds no config.json ({})", init_from, expected);
    return model_config_from_hf(config_json);
  }
  const std::string extension = fs::path(init_from).extension().string();
  if (extension == ".safetensors" || extension == ".json")
    fail("model.init_from = {}: Hugging Face weights without their folder; {}", init_from,
         expected);
  checkpoint::CheckpointReader reader(init_from);
  const config::RunConfig saved = config::from_text(reader.string_attribute("config"), init_from);
  const config::ModelConfig& model = saved.model();
  if (model.preset().empty() && model.hf_config().empty()) {
    if (depth >= 8)
      fail("model.init_from = {}: its recorded model.init_from chain is too long", init_from);
    return model_config_of_init_from(model.init_from(), depth + 1);
  }
  return resolve_model_config(model);
}

}  // namespace

ModelConfig resolve_model_config(const config::ModelConfig& model) {
  ModelConfig result;
  if (!model.hf_config().empty())
    result = model_config_from_hf(hf_config_file(model.hf_config()));
  else if (!model.preset().empty())
    result = model_config_preset(model.preset());
  else
    result = model_config_of_init_from(model.init_from(), 0);
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
