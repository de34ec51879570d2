#include "runtime/train/train_state.h"

#include <algorithm>
#include <vector>

#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "runtime/config/config.h"

namespace ft {
namespace {

constexpr const char* kFullFormat = "ft-checkpoint-1";
constexpr const char* kAdapterFormat = "ft-adapter-1";

// HDF5 I/O needs host memory; the CPU backend's tensors already are.
void require_host(const Tensor& tensor, const std::string& name) {
  if (tensor.device != Device::cpu)
    fail("checkpoint I/O of {} on {} is not available", name, device_name(tensor.device));
}

void read_parameter(const checkpoint::CheckpointReader& reader, const std::string& name,
                    const Parameter& param) {
  require_host(param.value, param.spec.name);
  if (!reader.has_tensor(name))
    fail("checkpoint {}: tensor '{}' is missing (the model expects shape {})", reader.path(), name,
         param.spec.shape.str());
  reader.read_tensor(name, param.value);
}

std::string format_of(const checkpoint::CheckpointReader& reader) {
  return reader.has_attribute("format") ? reader.string_attribute("format") : "";
}

}  // namespace

void save_training_checkpoint(const std::string& path, const ParameterStore& params,
                              const TrainState& state, const config::RunConfig& config,
                              const std::string& model_summary, const BaseIdentity* base) {
  checkpoint::CheckpointWriter writer(path);
  for (const Parameter& param : params.all()) {
    require_host(param.value, param.spec.name);
    if (!param.spec.trainable) {
      if (!base) writer.write_tensor("model/" + param.spec.name, param.value);
      continue;
    }
    writer.write_tensor((base ? "adapter/" : "model/") + param.spec.name, param.value);
    writer.write_tensor("optimizer/m/" + param.spec.name, param.adam_m);
    writer.write_tensor("optimizer/v/" + param.spec.name, param.adam_v);
  }
  writer.set_attribute("format", std::string(base ? kAdapterFormat : kFullFormat));
  if (base) {
    writer.set_attribute("base_fingerprint", base->fingerprint);
    writer.set_attribute("base_model", base->description);
  }
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

void save_base_weights(const std::string& path, const ParameterStore& params,
                       const config::RunConfig& config, const std::string& model_summary) {
  checkpoint::CheckpointWriter writer(path);
  for (const Parameter& param : params.all()) {
    if (param.spec.trainable) continue;
    require_host(param.value, param.spec.name);
    writer.write_tensor("model/" + param.spec.name, param.value);
  }
  writer.set_attribute("format", std::string(kFullFormat));
  writer.set_attribute("step", int64_t{0});
  writer.set_attribute("config", config::to_text(config));
  writer.set_attribute("model", model_summary);
  writer.commit();
}

bool is_adapter_checkpoint(const std::string& path) {
  checkpoint::CheckpointReader reader(path);
  return format_of(reader) == kAdapterFormat;
}

TrainState load_training_checkpoint(const std::string& path, const ParameterStore& params,
                                    bool with_optimizer, const BaseIdentity* base) {
  checkpoint::CheckpointReader reader(path);
  const bool adapter = format_of(reader) == kAdapterFormat;
  const bool peft_run = params.frozen_count() > 0;
  if (adapter && !peft_run)
    fail(
        "checkpoint {} is an adapter checkpoint (only the adapter's parameters): load it in a "
        "run with the same peft.method, not into full fine-tuning",
        path);
  if (adapter) {
    const std::string saved = reader.string_attribute("base_fingerprint");
    if (base && saved != base->fingerprint)
      fail(
          "adapter checkpoint {} was trained on another base model (fingerprint {}, {}); this "
          "run's base is {} (fingerprint {}). Load the base it was trained on with "
          "model.init_from",
          path, saved, reader.string_attribute("base_model"), base->description, base->fingerprint);
    std::vector<std::string> expected;
    for (const Parameter& param : params.all())
      if (param.spec.trainable) expected.push_back(param.spec.name);
    for (const std::string& name : reader.tensor_names("adapter"))
      if (std::find(expected.begin(), expected.end(), name) == expected.end())
        fail("adapter checkpoint {}: tensor 'adapter/{}' is not a parameter of this run's adapter",
             path, name);
    for (const Parameter& param : params.all())
      if (param.spec.trainable) read_parameter(reader, "adapter/" + param.spec.name, param);
  } else {
    for (const Parameter& param : params.all())
      read_parameter(reader, "model/" + param.spec.name, param);
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

void load_base_weights(const std::string& path, const ParameterStore& params) {
  checkpoint::CheckpointReader reader(path);
  if (format_of(reader) == kAdapterFormat)
    fail(
        "model.init_from = {}: this is an adapter checkpoint; the base model comes from a full "
        "checkpoint, and an adapter to start from goes in peft.init_from",
        path);
  for (const Parameter& param : params.all())
    if (!param.spec.trainable) read_parameter(reader, "model/" + param.spec.name, param);
}

}  // namespace ft
