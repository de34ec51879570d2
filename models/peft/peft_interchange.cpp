#include "models/peft/peft_interchange.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/ops.h"
#include "models/peft/saved_prompt.h"
#include "runtime/buffer.h"
#include "runtime/checkpoint/safetensors.h"
#include "runtime/device.h"

namespace ft {
namespace {

using nlohmann::json;

constexpr const char* kConfigFile = "adapter_config.json";
constexpr const char* kWeightsFile = "adapter_model.safetensors";
constexpr const char* kLoraPrefix = "base_model.model.";
constexpr const char* kFingerprintKey = "ft_base_fingerprint";

const char* prompt_init_name(PromptInit init) {
  switch (init) {
    case PromptInit::random:
      return "RANDOM";
    case PromptInit::sample_vocab:
      return "SAMPLE_VOCAB";
    case PromptInit::text:
      return "TEXT";
  }
  return "RANDOM";
}

// The last part of a module path: model.layers.0.self_attn.q_proj -> q_proj.
std::string module_kind(const std::string& module) {
  return module.substr(module.rfind('.') + 1);
}

json adapter_config(const PeftSpec& spec, const ModelConfig& model, const PeftExportInfo& info) {
  json config = {
      {"peft_type", peft_type_name(spec.method)},
      {"task_type", "CAUSAL_LM"},
      // PEFT writes null when the base is unknown.
      {"base_model_name_or_path",
       info.base_model_name_or_path.empty() ? json(nullptr) : json(info.base_model_name_or_path)},
      {"revision", nullptr},
      {"inference_mode", true},
      {"auto_mapping", nullptr}};
  if (spec.method == PeftMethod::lora) {
    std::vector<std::string> targets;
    for (const std::string& target : spec.target_modules) {
      if (target != "all-linear") targets.push_back(target);
    }
    if (targets.empty()) {  // all-linear: the kinds of module it selected
      std::set<std::string> kinds;
      for (const LoraTarget& target : spec.lora_targets) kinds.insert(module_kind(target.module));
      targets.assign(kinds.begin(), kinds.end());
    }
    config.update({{"r", spec.lora_r},
                   {"lora_alpha", spec.lora_alpha},
                   {"lora_dropout", spec.lora_dropout},
                   {"target_modules", targets},
                   {"use_rslora", spec.use_rslora},
                   {"bias", "none"},
                   {"fan_in_fan_out", model.model_type == "gpt2"},
                   {"init_lora_weights", true},
                   {"modules_to_save", nullptr},
                   {"layers_to_transform", nullptr},
                   {"use_dora", false}});
    return config;
  }
  // Prompt learning. Prefix tuning on GQA models records the key/value width and heads.
  const bool prefix = spec.method == PeftMethod::prefix_tuning;
  config.update({{"num_virtual_tokens", spec.num_virtual_tokens},
                 {"token_dim", prefix ? model.kv_dim() : model.hidden_size},
                 {"num_transformer_submodules", 1},
                 {"num_attention_heads", prefix ? model.num_kv_heads : model.num_heads},
                 {"num_layers", model.num_layers}});
  if (spec.method == PeftMethod::prompt_tuning) {
    // The saved rows are the trained result, so the init no longer matters; TEXT is written as
    // RANDOM because PEFT refuses TEXT without a tokenizer_name_or_path to load.
    config["prompt_tuning_init"] =
        spec.prompt_init == PromptInit::text ? "RANDOM" : prompt_init_name(spec.prompt_init);
    config["prompt_tuning_init_text"] = nullptr;
    config["tokenizer_name_or_path"] = nullptr;
  } else if (spec.method == PeftMethod::p_tuning) {
    config.update({{"encoder_reparameterization_type", "MLP"},
                   {"encoder_hidden_size", spec.encoder_hidden_size},
                   {"encoder_num_layers", 2},
                   {"encoder_dropout", 0.0}});
  } else {
    config.update({{"encoder_hidden_size", spec.encoder_hidden_size},
                   {"prefix_projection", spec.prefix_projection}});
  }
  return config;
}

// A host f32 copy of a parameter (PEFT files hold fp32), staged through the host when the
// parameter lives on a GPU.
std::vector<float> as_f32(const Tensor& value) {
  std::vector<float> host(value.numel());
  OpContext ctx;
  if (value.device == Device::cpu) {
    ops::cast(ctx, Tensor(host.data(), DType::f32, value.shape), value);
    return host;
  }
  Buffer staging(Device::cpu, value.bytes());
  copy_tensor(staging.view(value.dtype, value.shape), value);
  ops::cast(ctx, Tensor(host.data(), DType::f32, value.shape),
            staging.view(value.dtype, value.shape));
  return host;
}

// PEFT's prompt_embeddings table for the adapter in `params`, on the host in fp32.
std::vector<float> saved_prompt_f32(const OpContext& ctx, const PeftSpec& spec,
                                    const ModelConfig& model, const ParameterStore& params) {
  const Shape shape = saved_prompt_shape(spec, model);
  std::vector<float> table(shape.numel());
  const Tensor host(table.data(), DType::f32, shape);
  if (params.device() == Device::cpu) {
    compute_saved_prompt(ctx, spec, model, params, host);
  } else {
    Buffer on_device(params.device(), host.bytes());
    compute_saved_prompt(ctx, spec, model, params, on_device.view(DType::f32, shape));
    copy_tensor(host, on_device.view(DType::f32, shape));
  }
  return table;
}

// Reads a stored tensor into a parameter on any device.
void read_parameter(const checkpoint::SafetensorsReader& weights, const std::string& stored,
                    const Tensor& value) {
  if (value.device == Device::cpu) {
    weights.read(stored, value);
    return;
  }
  Buffer staging(Device::cpu, value.bytes());
  weights.read(stored, staging.view(value.dtype, value.shape));
  copy_tensor(value, staging.view(value.dtype, value.shape));
}

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
    if (!(file << text) || !file.flush()) fail("cannot write {}", tmp);
  }
  std::error_code error;
  std::filesystem::rename(tmp, path, error);
  if (error) fail("cannot rename {} to {}: {}", tmp, path, error.message());
}

json read_config(const std::string& path) {
  std::ifstream file(path);
  if (!file)
    fail("{}: cannot open it (a PEFT adapter folder holds {} and {})", path, kConfigFile,
         kWeightsFile);
  json config = json::parse(file, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) fail("{}: not a JSON object", path);
  return config;
}

template <typename T>
T required(const json& config, const std::string& key, const std::string& path) {
  auto found = config.find(key);
  if (found == config.end() || found->is_null()) fail("{}: key '{}' is missing", path, key);
  try {
    return found->get<T>();
  } catch (const json::exception&) {
    fail("{}: key '{}' holds {}, of the wrong type", path, key, found->dump());
  }
}

template <typename T>
void expect_equal(const json& config, const std::string& key, const T& expected,
                  const std::string& path, const std::string& what) {
  const T stored = required<T>(config, key, path);
  if (stored != expected)
    fail("{}: {} = {}, but {} is {}", path, key, json(stored).dump(), what, json(expected).dump());
}

// Refuses a folder of this peft_type unless this run's method reads it, saying what to configure.
void check_method(const std::string& peft_type, const PeftSpec& spec, const std::string& path) {
  const PeftMethod method = spec.method;
  if (peft_type == "PROMPT_TUNING" || peft_type == "P_TUNING") {
    if (method == PeftMethod::prompt_tuning) return;
    if (method == PeftMethod::p_tuning)
      fail(
          "{}: peft_type {}: the folder holds the virtual-token embeddings (PEFT saves P-tuning's "
          "encoder output, not the encoder); load it with peft.method prompt_tuning (the same "
          "model) to evaluate or keep tuning",
          path, peft_type);
  } else if (peft_type == "PREFIX_TUNING") {
    if (method == PeftMethod::prefix_tuning && !spec.prefix_projection) return;
    if (method == PeftMethod::prefix_tuning)
      fail(
          "{}: peft_type PREFIX_TUNING holds the projected prefix, not the projection; load it "
          "with peft.prefix_projection false (the same model)",
          path);
  } else if (peft_type == "LORA") {
    if (method == PeftMethod::lora) return;
  } else {
    fail("{}: peft_type '{}' is not one ft reads (PROMPT_TUNING, P_TUNING, PREFIX_TUNING, LORA)",
         path, peft_type);
  }
  fail("{}: peft_type {} cannot be loaded by peft.method {}", path, peft_type,
       peft_method_name(method));
}

// A stored tensor and the parameter it fills.
struct PlannedRead {
  std::string stored;
  std::string param;
};

// Prompt learning: the one prompt_embeddings table, checked against the config and the model.
std::vector<PlannedRead> plan_prompt_import(const json& config, const std::string& peft_type,
                                            const PeftSpec& spec, const ModelConfig& model,
                                            const checkpoint::SafetensorsReader& weights,
                                            const std::string& config_path) {
  expect_equal<int64_t>(config, "num_virtual_tokens", spec.num_virtual_tokens, config_path,
                        "peft.num_virtual_tokens");
  expect_equal<int64_t>(config, "num_layers", model.num_layers, config_path,
                        "the model's num_layers");
  const bool prefix = spec.method == PeftMethod::prefix_tuning;
  expect_equal<int64_t>(config, "token_dim", prefix ? model.kv_dim() : model.hidden_size,
                        config_path, prefix ? "the model's key/value width" : "hidden_size");
  // The prefix's rows are laid out per key/value head: the head split must agree too.
  if (prefix)
    expect_equal<int64_t>(config, "num_attention_heads", model.num_kv_heads, config_path,
                          "the model's key/value heads");
  const std::string name = "prompt_embeddings";
  const std::string& path = weights.path();
  if (!weights.contains(name))
    fail("{}: tensor '{}' is missing (a {} adapter holds it)", path, name, peft_type);
  for (const std::string& stored : weights.names())
    if (stored != name)
      fail("{}: tensor '{}' is not part of a {} adapter (it holds only '{}')", path, stored,
           peft_type, name);
  const Shape expected = saved_prompt_shape(spec, model);
  if (!(weights.shape(name) == expected))
    fail("{}: tensor '{}' has shape {}, this model needs {}", path, name, weights.shape(name).str(),
         expected.str());
  return {{name, name}};
}

// LoRA: rank, scale and variant from the config; one A and one B per module the run targets.
std::vector<PlannedRead> plan_lora_import(const json& config, const PeftSpec& spec,
                                          const ParameterStore& params,
                                          const checkpoint::SafetensorsReader& weights,
                                          const std::string& config_path) {
  expect_equal<int64_t>(config, "r", spec.lora_r, config_path, "peft.lora_r");
  const double alpha = required<double>(config, "lora_alpha", config_path);
  if (std::abs(alpha - spec.lora_alpha) > 1e-12 * std::abs(alpha))
    fail("{}: lora_alpha = {}, but peft.lora_alpha is {}", config_path, alpha, spec.lora_alpha);
  const bool rslora = config.contains("use_rslora") && config["use_rslora"].is_boolean() &&
                      config["use_rslora"].get<bool>();
  if (rslora != spec.use_rslora)
    fail("{}: use_rslora = {}, but peft.use_rslora is {}", config_path, rslora, spec.use_rslora);
  for (const char* unsupported : {"use_dora", "modules_to_save", "lora_bias"}) {
    auto found = config.find(unsupported);
    if (found != config.end() && !found->is_null() && *found != json(false))
      fail("{}: {} = {}: ft trains plain LoRA weights only", config_path, unsupported,
           found->dump());
  }
  // Per-module ranks or scales would silently change the model under one global scale.
  for (const char* pattern : {"rank_pattern", "alpha_pattern"}) {
    auto found = config.find(pattern);
    if (found != config.end() && !found->is_null() && !found->empty())
      fail("{}: {} = {}: ft uses one rank and one lora_alpha for every module", config_path,
           pattern, found->dump());
  }
  if (config.contains("bias") && config["bias"] != "none")
    fail("{}: bias = {}: ft's LoRA trains no biases (expected \"none\")", config_path,
         config["bias"].dump());

  const std::string& path = weights.path();
  std::vector<PlannedRead> reads;
  std::set<std::string> expected;
  for (const LoraTarget& target : spec.lora_targets) {
    for (const std::string& name : {target.a_name(), target.b_name()}) {
      const std::string stored = kLoraPrefix + name;
      expected.insert(stored);
      if (!weights.contains(stored))
        fail(
            "{}: tensor '{}' is missing: peft.target_modules selects {}, which this adapter does "
            "not adapt",
            path, stored, target.module);
      const Shape& shape = params.at(name).value.shape;
      if (!(weights.shape(stored) == shape))
        fail("{}: tensor '{}' has shape {}, this model needs {}", path, stored,
             weights.shape(stored).str(), shape.str());
      reads.push_back({stored, name});
    }
  }
  for (const std::string& name : weights.names())
    if (!expected.count(name))
      fail("{}: tensor '{}' is not among the modules peft.target_modules selects", path, name);
  return reads;
}

}  // namespace

void export_peft_adapter(const std::string& dir, const PeftSpec& spec, const ModelConfig& model,
                         const ParameterStore& params, const PeftExportInfo& info,
                         const OpContext& ctx) {
  FT_CHECK(spec.is_peft(), "full fine-tuning has no adapter to export");
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) fail("cannot create the adapter folder {}: {}", dir, error.message());

  checkpoint::SafetensorsWriter writer(dir + "/" + kWeightsFile);
  writer.set_metadata("format", "pt");
  if (!info.base_fingerprint.empty()) writer.set_metadata(kFingerprintKey, info.base_fingerprint);
  if (spec.method == PeftMethod::lora) {
    for (const LoraTarget& target : spec.lora_targets) {
      for (const std::string& name : {target.a_name(), target.b_name()}) {
        const Tensor value = params.at(name).value;
        std::vector<float> host = as_f32(value);
        writer.add(kLoraPrefix + name, Tensor(host.data(), DType::f32, value.shape));
      }
    }
  } else {
    std::vector<float> table = saved_prompt_f32(ctx, spec, model, params);
    writer.add("prompt_embeddings",
               Tensor(table.data(), DType::f32, saved_prompt_shape(spec, model)));
  }
  writer.commit();
  write_text_atomically(dir + "/" + kConfigFile, adapter_config(spec, model, info).dump(2) + "\n");
}

void import_peft_adapter(const std::string& dir, const PeftSpec& spec, const ModelConfig& model,
                         const ParameterStore& params, const std::string& base_fingerprint) {
  FT_CHECK(spec.is_peft(), "full fine-tuning has no adapter to import");
  const std::string config_path = dir + "/" + kConfigFile;
  const std::string weights_path = dir + "/" + kWeightsFile;
  const json config = read_config(config_path);
  const std::string peft_type = required<std::string>(config, "peft_type", config_path);
  check_method(peft_type, spec, config_path);
  checkpoint::SafetensorsReader weights(weights_path);
  auto fingerprint = weights.metadata().find(kFingerprintKey);
  if (fingerprint != weights.metadata().end() && !base_fingerprint.empty() &&
      fingerprint->second != base_fingerprint)
    fail(
        "{}: this adapter was trained on another base model (fingerprint {}); this run's base has "
        "fingerprint {}. Load the base it was trained on with model.init_from",
        weights_path, fingerprint->second, base_fingerprint);

  // Everything is checked before any parameter is written: a refused folder changes nothing.
  const std::vector<PlannedRead> reads =
      spec.method == PeftMethod::lora
          ? plan_lora_import(config, spec, params, weights, config_path)
          : plan_prompt_import(config, peft_type, spec, model, weights, config_path);
  for (const PlannedRead& read : reads)
    read_parameter(weights, read.stored, params.at(read.param).value);
}

}  // namespace ft
