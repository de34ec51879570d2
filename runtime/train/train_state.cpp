#include "runtime/train/train_state.h"

#include <vector>

#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "runtime/config/config.h"

namespace ft {
namespace {

// HDF5 I/O needs host memory; the CPU backend's tensors already are.
void require_host(const Tensor& tensor, const std::string& name) {
  if (tensor.device != Device::cpu)
    fail("checkpoint I/O of {} on {} is not available", name, device_name(tensor.device));
}

}  // namespace

void save_training_checkpoint(const std::string& path, const ParameterStore& params,
                              const TrainState& state, const config::RunConfig& config,
                              const std::string& model_summary) {
  checkpoint::CheckpointWriter writer(path);
  for (const Parameter& param : params.all()) {
    require_host(param.value, param.spec.name);
    writer.write_tensor("model/" + param.spec.name, param.value);
    if (param.spec.trainable) {
      writer.write_tensor("optimizer/m/" + param.spec.name, param.adam_m);
      writer.write_tensor("optimizer/v/" + param.spec.name, param.adam_v);
    }
  }
  writer.set_attribute("format", std::string("ft-checkpoint-1"));
  writer.set_attribute("step", state.step);
  writer.set_attribute("data_epoch", state.cursor.epoch);
  writer.set_attribute("data_position", state.cursor.position);
  writer.set_attribute("trained_tokens", state.trained_tokens);
  writer.set_attribute("seed", static_cast<int64_t>(state.seed));
  writer.set_attribute("train_sequences", state.train_sequences);
  writer.set_attribute("config", config::to_text(config));
  writer.set_attribute("model", model_summary);
  writer.commit();
}

TrainState load_training_checkpoint(const std::string& path, const ParameterStore& params,
                                    bool with_optimizer) {
  checkpoint::CheckpointReader reader(path);
  for (const Parameter& param : params.all()) {
    require_host(param.value, param.spec.name);
    std::string name = "model/" + param.spec.name;
    if (!reader.has_tensor(name))
      fail("checkpoint {}: tensor '{}' is missing (the model expects shape {})", path, name,
           param.spec.shape.str());
    reader.read_tensor(name, param.value);
  }
  TrainState state;
  if (!with_optimizer) return state;
  for (const Parameter& param : params.all()) {
    if (!param.spec.trainable) continue;
    for (const char* moment : {"m", "v"}) {
      std::string name = std::string("optimizer/") + moment + "/" + param.spec.name;
      if (!reader.has_tensor(name))
        fail("checkpoint {}: tensor '{}' is missing: it holds no optimizer state to resume", path,
             name);
      reader.read_tensor(name, moment[0] == 'm' ? param.adam_m : param.adam_v);
    }
  }
  state.step = reader.int_attribute("step");
  state.cursor.epoch = reader.int_attribute("data_epoch");
  state.cursor.position = reader.int_attribute("data_position");
  state.trained_tokens = reader.int_attribute("trained_tokens");
  state.seed = static_cast<uint64_t>(reader.int_attribute("seed"));
  state.train_sequences = reader.int_attribute("train_sequences");
  state.config_text = reader.string_attribute("config");
  return state;
}

}  // namespace ft
