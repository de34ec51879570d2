#include "models/generation/model_loading.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "models/hf_weights.h"
#include "models/peft/base_identity.h"
#include "models/peft/peft_interchange.h"
#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "runtime/config/config.h"
#include "runtime/train/run_parameters.h"
#include "runtime/train/train_state.h"

namespace ft {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

json read_json_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) fail("{}: cannot open it", path);
  json value = json::parse(file, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object()) fail("{}: not a JSON object", path);
  return value;
}

// The folder's chat template text ("" : none).
std::string folder_chat_template_text(const std::string& dir) {
  const fs::path path = fs::path(dir) / "tokenizer_config.json";
  if (!fs::exists(path)) return "";
  const json j = read_json_file(path.string());
  auto found = j.find("chat_template");
  if (found == j.end()) return "";
  std::string text;
  if (found->is_string()) {
    text = found->get<std::string>();
  } else if (found->is_array()) {  // named templates: the "default" one
    for (const json& entry : *found)
      if (entry.value("name", "") == "default") text = entry.value("template", "");
  }
  return text;
}

// The run config an ft checkpoint records.
config::RunConfig checkpoint_config(const std::string& path) {
  checkpoint::CheckpointReader reader(path);
  return config::from_text(reader.string_attribute("config"), path);
}

// The run's data layout: what --eval needs to mask and batch as its validation did.
void take_data_layout(const config::RunConfig& run, LoadedModel& loaded) {
  loaded.chatml_default_system = run.data().chatml_default_system();
  loaded.train_on = run.data().train_on();
  loaded.seq_len = run.data().seq_len();
  loaded.data_format = run.data().format();
  loaded.too_long = run.data().too_long();
  loaded.micro_batch_size = run.train().micro_batch_size();
}

void take_data_settings(const config::RunConfig& run, LoadedModel& loaded) {
  loaded.tokenizer = run.data().tokenizer();
  loaded.chat_template = run.data().chat_template();
  take_data_layout(run, loaded);
}

void require_exists(const std::string& path, const char* option) {
  if (!fs::exists(path)) fail("{} {}: no such file or folder", option, path);
}

void load_checkpoint(const ModelSource& source, LoadedModel& loaded) {
  require_exists(source.checkpoint, "--checkpoint");
  if (fs::is_directory(source.checkpoint))
    fail(
        "--checkpoint {}: a folder, not an ft checkpoint (.h5); a Hugging Face model folder goes "
        "in --model and a PEFT folder in --adapter",
        source.checkpoint);
  RunParameters run = load_run_parameters(source.checkpoint, source.num_threads);
  loaded.model = run.model;
  loaded.peft = run.peft;
  loaded.params = std::move(run.params);
  loaded.tuned = true;
  take_data_settings(run.config, loaded);
  const std::string& init_from = run.config.model().init_from();
  const std::string start = init_from.empty()
                                ? fmt::format("seeded random init (seed {})", run.config.seed())
                                : init_from;
  if (run.peft.is_peft()) {
    loaded.description = fmt::format("{} adapter {} on {}", run.peft.summary(), source.checkpoint,
                                     run.base.description);
    loaded.untuned_description = "base " + run.base.description;
    return;
  }
  loaded.description =
      fmt::format("full fine-tune {} ({})", source.checkpoint, run.model.summary());
  loaded.untuned_description = fmt::format("the weights it started from: {}", start);
  if (!source.load_untuned) return;
  const DType dtype = loaded.params->dtype();
  loaded.untuned_params =
      std::make_unique<ParameterStore>(run_param_specs(run.model, PeftSpec{}), dtype, Device::cpu,
                                       ParameterStoreOptions{.gradients = false, .moments = false});
  loaded.untuned_params->initialize(run.config.seed());
  if (!init_from.empty())
    load_init_weights(init_from, run.model, *loaded.untuned_params, /*base_only=*/false);
}

// The base's config and, for an ft checkpoint, the run it records.
ModelConfig base_model_config(const ModelSource& source, LoadedModel& loaded) {
  require_exists(source.model, "--model");
  if (fs::is_directory(source.model)) {
    const std::string config_path = (fs::path(source.model) / "config.json").string();
    if (!fs::exists(config_path))
      fail("--model {}: the folder has no config.json (a Hugging Face model folder holds one)",
           source.model);
    const fs::path tokenizer = fs::path(source.model) / "tokenizer.json";
    if (fs::exists(tokenizer)) loaded.tokenizer = tokenizer.string();
    loaded.chat_template = chat_template_of_folder(source.model);
    loaded.unknown_chat_template =
        loaded.chat_template.empty() && !folder_chat_template_text(source.model).empty();
    return model_config_from_hf(config_path);
  }
  if (is_adapter_checkpoint(source.model))
    fail(
        "--model {}: this is an adapter checkpoint; pass it as --checkpoint (its base comes from "
        "its run), or as --adapter with its base model as --model",
        source.model);
  const config::RunConfig run = checkpoint_config(source.model);
  take_data_settings(run, loaded);
  return resolve_model_config(run.model());
}

void load_adapter(const ModelSource& source, const BaseIdentity& base, LoadedModel& loaded) {
  const std::string& path = source.adapter;
  if (fs::is_directory(path)) {
    import_peft_adapter(path, loaded.peft, loaded.model, *loaded.params, base.fingerprint);
    return;
  }
  checkpoint::CheckpointReader reader(path);
  const std::string saved = reader.has_attribute("base_fingerprint")
                                ? reader.string_attribute("base_fingerprint")
                                : std::string();
  if (saved != base.fingerprint)
    fail(
        "--adapter {} was trained on another base model ({}, fingerprint {}); --model {} is {} "
        "(fingerprint {}). Pass the base it was trained on as --model",
        path, reader.string_attribute("base_model"), saved, source.model, base.description,
        base.fingerprint);
  load_training_checkpoint(path, *loaded.params, /*with_optimizer=*/false, &base);
}

void load_base_and_adapter(const ModelSource& source, LoadedModel& loaded) {
  loaded.model = base_model_config(source, loaded);
  if (!source.adapter.empty()) {
    require_exists(source.adapter, "--adapter");
    if (fs::is_directory(source.adapter)) {
      loaded.peft = peft_spec_from_folder(source.adapter, loaded.model);
    } else {
      if (!is_adapter_checkpoint(source.adapter))
        fail("--adapter {}: a full checkpoint, not an adapter; pass it as --checkpoint or --model",
             source.adapter);
      loaded.peft = saved_peft_spec(source.adapter, loaded.model);
      // The adapter's run knows its data layout, and its tokenizer when the base does not.
      const config::RunConfig run = checkpoint_config(source.adapter);
      if (loaded.tokenizer.empty() && loaded.chat_template.empty())
        take_data_settings(run, loaded);
      else
        take_data_layout(run, loaded);
    }
  }
  loaded.params = std::make_unique<ParameterStore>(
      run_param_specs(loaded.model, loaded.peft), source.dtype, Device::cpu,
      ParameterStoreOptions{.gradients = false, .moments = false});
  try {
    load_init_weights(source.model, loaded.model, *loaded.params, loaded.peft.is_peft());
  } catch (const Error& error) {
    fail("--model {}: {}", source.model, error.what());
  }
  BaseIdentity base;
  base.description = fmt::format("{} ({})", source.model, loaded.model.summary());
  loaded.description = base.description;
  if (!loaded.peft.is_peft()) return;
  base.fingerprint = base_fingerprint(*loaded.params, source.num_threads);
  load_adapter(source, base, loaded);
  loaded.tuned = true;
  loaded.description =
      fmt::format("{} adapter {} on {}", loaded.peft.summary(), source.adapter, base.description);
  loaded.untuned_description = "base " + base.description;
}

}  // namespace

LoadedModel load_model(const ModelSource& source) {
  const int given = !source.checkpoint.empty() + !source.model.empty();
  if (given != 1) fail("give one model: --checkpoint (an ft run's checkpoint) or --model");
  if (!source.checkpoint.empty() && !source.adapter.empty())
    fail(
        "--adapter goes with --model (a base model); --checkpoint {} already names its base and "
        "adapter",
        source.checkpoint);
  LoadedModel loaded;
  if (!source.checkpoint.empty())
    load_checkpoint(source, loaded);
  else
    load_base_and_adapter(source, loaded);
  return loaded;
}

PeftSpec peft_spec_from_folder(const std::string& dir, const ModelConfig& model) {
  const std::string path = (fs::path(dir) / "adapter_config.json").string();
  if (!fs::exists(path))
    fail("--adapter {}: the folder has no adapter_config.json (a PEFT adapter folder holds it)",
         dir);
  const json j = read_json_file(path);
  auto get = [&](const char* key) -> const json& {
    auto found = j.find(key);
    if (found == j.end() || found->is_null()) fail("{}: key '{}' is missing", path, key);
    return *found;
  };
  config::PeftConfig peft;
  const std::string type = get("peft_type").get<std::string>();
  if (type == "PROMPT_TUNING" || type == "P_TUNING" || type == "PREFIX_TUNING") {
    // PEFT saves the rows the model uses: P-tuning's encoder output, the projected prefix.
    peft.set_method(type == "PREFIX_TUNING" ? "prefix_tuning" : "prompt_tuning");
    peft.set_num_virtual_tokens(get("num_virtual_tokens").get<int>());
  } else if (type == "LORA") {
    peft.set_method("lora");
    peft.set_lora_r(get("r").get<int>());
    peft.set_lora_alpha(get("lora_alpha").get<double>());
    peft.set_use_rslora(j.value("use_rslora", false));
    const json& targets = get("target_modules");
    std::string list;
    if (targets.is_string()) {
      list = targets.get<std::string>();
      if (list != "all-linear" && list.find_first_of("*+?()[]|\\^$") != std::string::npos)
        fail("{}: target_modules = \"{}\" is a regular expression; ft takes a list of names", path,
             list);
    } else {
      for (const json& name : targets) {
        if (!list.empty()) list += ',';
        list += name.get<std::string>();
      }
    }
    peft.set_target_modules(list);
    for (const char* key : {"layers_to_transform", "layers_pattern"}) {
      auto found = j.find(key);
      if (found != j.end() && !found->is_null() && !found->empty())
        fail("{}: {} = {}: ft adapts every layer the names select", path, key, found->dump());
    }
  } else {
    fail("{}: peft_type '{}' is not one ft reads (PROMPT_TUNING, P_TUNING, PREFIX_TUNING, LORA)",
         path, type);
  }
  try {
    return resolve_peft_spec(peft, model, /*seq_len=*/1);
  } catch (const Error& error) {
    fail("{}: {}", path, error.what());
  }
}

std::string chat_template_of_folder(const std::string& dir) {
  const std::string text = folder_chat_template_text(dir);
  if (text.find("<|im_start|>") != std::string::npos) return "chatml";
  if (text.find("<|start_header_id|>") != std::string::npos) return "llama3";
  if (text.find("<<SYS>>") != std::string::npos) return "llama2";
  if (text.find("[INST]") != std::string::npos) return "mistral";
  return "";
}

}  // namespace ft
