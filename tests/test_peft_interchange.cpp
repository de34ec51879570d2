// Hugging Face PEFT folders in and out (models/peft/peft_interchange.h), against the folders peft
// 0.21.2 wrote in tests/data/peft_golden/ (README.md there):
// - import: every golden folder loads into exactly what PEFT saved (the trainable tensors, or for
//   P-tuning / prefix projection, which import as prompt tuning / plain prefix, the table the
//   encoder computes);
// - export: from the golden's trainable values ft writes PEFT's config keys and tensors, and the
//   exported folder, imported again, gives PEFT's logits;
// - round trips on the tiny presets for every method, and the refusals, each naming the file and
//   the key or tensor.
// With FT_EXPORT_CHECK_DIR set, the export test also leaves <dir>/<case>/adapter/ and
// <dir>/<case>/ft_logits.safetensors for tools/check_peft_export.py, which loads the folder with
// peft.PeftModel.from_pretrained and compares PEFT's logits with ft's.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "models/hf_weights.h"
#include "models/model_config.h"
#include "models/peft/base_identity.h"
#include "models/peft/peft_interchange.h"
#include "models/peft/peft_spec.h"
#include "models/peft/saved_prompt.h"
#include "models/transformer.h"
#include "runtime/checkpoint/safetensors.h"
#include "runtime/config/config.h"
#include "runtime/random.h"
#include "runtime/train/input_layout.h"
#include "tests/support/gradcheck.h"
#include "tests/support/temp_dir.h"

namespace ft {
namespace {

using checkpoint::SafetensorsReader;
using checkpoint::SafetensorsWriter;
using nlohmann::json;
using testing::TempDir;

const std::string kGolden = std::string(FT_TEST_DATA_DIR) + "/peft_golden/";

// PEFT computes the encoders' outputs in fp32 torch, ft in another summation order.
constexpr double kEncoderTolerance = 1e-6;
constexpr double kLogitsTolerance = 1e-5;

json read_json(const std::string& path) {
  std::ifstream file(path);
  if (!file) fail("{}: cannot open", path);
  return json::parse(file);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// Host copies of a tensor's values.
std::vector<float> floats(const Tensor& tensor) {
  std::vector<float> values(tensor.numel());
  ops::cast(OpContext{}, Tensor(values.data(), DType::f32, tensor.shape), tensor);
  return values;
}
std::vector<double> doubles(const Tensor& tensor) {
  std::vector<double> values(tensor.numel());
  ops::cast(OpContext{}, Tensor(values.data(), DType::f64, tensor.shape), tensor);
  return values;
}
std::vector<double> doubles(const std::vector<float>& values) {
  return std::vector<double>(values.begin(), values.end());
}
std::vector<float> read_floats(const SafetensorsReader& reader, const std::string& name) {
  std::vector<float> values(reader.entry(name).numel);
  reader.read(name, Tensor(values.data(), DType::f32, reader.shape(name)));
  return values;
}

// A run's resolved spec from ft's `peft` config keys.
PeftSpec spec_from(const json& peft, const ModelConfig& model, int64_t seq_len = 7) {
  const config::RunConfig run = config::parse(json{{"peft", peft}}.dump(), "json", "test");
  return resolve_peft_spec(run.peft(), model, seq_len);
}

// The keys of the run that imports what PEFT saves for `peft`: P-tuning folders load as prompt
// tuning, prefix-with-projection folders as prefix tuning without projection.
json loadable_keys(const json& peft) {
  if (peft.at("method") == "p_tuning")
    return {{"method", "prompt_tuning"}, {"num_virtual_tokens", peft.at("num_virtual_tokens")}};
  json keys = peft;
  if (keys.value("prefix_projection", false)) {
    keys["prefix_projection"] = false;
    keys.erase("encoder_hidden_size");
  }
  return keys;
}

bool saves_trainable_values(const PeftSpec& spec) {
  return spec.method != PeftMethod::p_tuning && !spec.prefix_projection;
}

// The modules a PEFT target_modules list selects in `model` (PEFT's suffix rule, as ft applies it).
std::vector<std::string> selected_modules(const json& target_modules, const ModelConfig& model) {
  std::string joined;
  for (const json& name : target_modules)
    joined += (joined.empty() ? "" : ",") + name.get<std::string>();
  std::vector<std::string> modules;
  for (const LoraTarget& target :
       spec_from({{"method", "lora"}, {"target_modules", joined}}, model).lora_targets)
    modules.push_back(target.module);
  return modules;
}
std::vector<std::string> modules_of(const PeftSpec& spec) {
  std::vector<std::string> modules;
  for (const LoraTarget& target : spec.lora_targets) modules.push_back(target.module);
  return modules;
}

// Every trainable parameter set to distinct non-zero values (LoRA B included).
void fill_adapter(const ParameterStore& params, uint64_t seed) {
  for (const Parameter& p : params.all()) {
    if (!p.spec.trainable) continue;
    Random random(seed, p.offset);
    std::vector<double> values(p.value.numel());
    for (double& value : values) value = random.normal();
    ops::cast(OpContext{}, p.value, Tensor(values.data(), DType::f64, p.value.shape));
  }
}

// The adapter's values by name.
std::map<std::string, std::vector<float>> adapter_values(const ParameterStore& params) {
  std::map<std::string, std::vector<float>> values;
  for (const Parameter& p : params.all())
    if (p.spec.trainable) values[p.spec.name] = floats(p.value);
  return values;
}

std::vector<float> saved_prompt(const PeftSpec& spec, const ModelConfig& model,
                                const ParameterStore& params) {
  std::vector<float> table(saved_prompt_shape(spec, model).numel());
  compute_saved_prompt(OpContext{}, spec, model, params,
                       Tensor(table.data(), DType::f32, saved_prompt_shape(spec, model)));
  return table;
}

// Logits (B * T, V) for (B, L) input ids at positions 0..L-1, laid out as ft_train lays them out.
std::vector<float> forward_logits(const ModelConfig& config, const ParameterStore& params,
                                  const PeftSpec& spec, const std::vector<int32_t>& input_ids,
                                  int B, int L) {
  data::Batch batch;
  batch.batch_size = B;
  batch.seq_len = L;
  batch.input_ids = input_ids;
  batch.targets.assign(B * L, data::kIgnoreTarget);
  batch.positions.resize(B * L);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < L; ++t) {
      batch.positions[b * L + t] = t;
      if (t + 1 < L) batch.targets[b * L + t] = input_ids[b * L + t + 1];
    }
  lay_out_batch(spec, batch);
  Transformer model(config, params, spec, B, batch.seq_len);
  OpContext ctx;
  ctx.num_threads = 2;
  const ModelMemory memory = plan_model_memory(model, ctx);
  model.forward(ctx, model_inputs(batch));
  return floats(model.logits());
}

// One golden case: the base model's config, the spec it was trained with and the one that imports
// what PEFT saved.
struct GoldenCase {
  std::string name, dir;
  json case_json;
  ModelConfig model;
  PeftSpec trained, loadable;

  explicit GoldenCase(const std::string& case_name)
      : name(case_name), dir(kGolden + case_name + "/") {
    case_json = read_json(dir + "case.json");
    model = model_config_from_hf(dir + "config.json");
    const int64_t seq_len = case_json.at("seq_len").get<int64_t>();
    trained = spec_from(case_json.at("peft"), model, seq_len);
    loadable = spec_from(loadable_keys(case_json.at("peft")), model, seq_len);
  }

  std::unique_ptr<ParameterStore> store(const PeftSpec& spec, DType dtype, bool with_base) const {
    auto params =
        std::make_unique<ParameterStore>(run_param_specs(model, spec), dtype, Device::cpu);
    if (with_base) load_hf_weights(dir + "model.safetensors", model, *params);
    return params;
  }
  // The trained spec's adapter from trainable.safetensors.
  void read_trainable(const ParameterStore& params) const {
    SafetensorsReader trainable(dir + "trainable.safetensors");
    for (const Parameter& p : params.all())
      if (p.spec.trainable) trainable.read(p.spec.name, p.value);
  }
};

std::vector<std::string> golden_cases() {
  std::vector<std::string> cases;
  for (const char* family : {"llama", "gpt2"})
    for (const char* method : {"prompt_tuning", "p_tuning", "prefix_tuning",
                               "prefix_tuning_projection", "lora", "lora_all_linear_rslora"})
      cases.push_back(std::string(family) + "_" + method);
  return cases;
}

class GoldenFolder : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenFolder, ImportGivesWhatPeftSaved) {
  const GoldenCase golden(GetParam());
  auto params = golden.store(golden.loadable, DType::f32, /*with_base=*/false);
  import_peft_adapter(golden.dir + "adapter", golden.loadable, golden.model, *params, "");

  if (saves_trainable_values(golden.trained)) {
    // The folder holds the trainable tensors themselves: every one arrives bit for bit.
    SafetensorsReader trainable(golden.dir + "trainable.safetensors");
    int64_t compared = 0;
    for (const auto& [name, values] : adapter_values(*params)) {
      EXPECT_EQ(values, read_floats(trainable, name)) << name;
      ++compared;
    }
    EXPECT_EQ(compared, static_cast<int64_t>(golden.case_json.at("trainable").size()));
    return;
  }
  // The folder holds the encoder's output: the table ft computes from the encoder's weights.
  auto encoder = golden.store(golden.trained, DType::f64, /*with_base=*/false);
  golden.read_trainable(*encoder);
  const Shape shape = saved_prompt_shape(golden.trained, golden.model);
  std::vector<double> expected(shape.numel());
  compute_saved_prompt(OpContext{}, golden.trained, golden.model, *encoder,
                       Tensor(expected.data(), DType::f64, shape));
  const double error =
      testing::relative_l2(doubles(params->at("prompt_embeddings").value), expected);
  EXPECT_LT(error, kEncoderTolerance);
}

// The keys of adapter_config.json that change what PEFT builds, per method.
std::vector<std::string> keys_that_matter(const PeftSpec& spec) {
  std::vector<std::string> keys = {"peft_type", "task_type", "inference_mode", "revision"};
  auto add = [&](std::initializer_list<const char*> more) {
    keys.insert(keys.end(), more.begin(), more.end());
  };
  if (spec.method == PeftMethod::lora) {
    add({"r", "lora_alpha", "lora_dropout", "use_rslora", "bias", "fan_in_fan_out",
         "init_lora_weights", "use_dora", "modules_to_save", "layers_to_transform"});
    return keys;
  }
  add({"num_virtual_tokens", "token_dim", "num_transformer_submodules", "num_attention_heads",
       "num_layers"});
  if (spec.method == PeftMethod::prompt_tuning)
    add({"prompt_tuning_init", "prompt_tuning_init_text", "tokenizer_name_or_path"});
  if (spec.method == PeftMethod::p_tuning)
    add({"encoder_reparameterization_type", "encoder_hidden_size", "encoder_num_layers",
         "encoder_dropout"});
  if (spec.method == PeftMethod::prefix_tuning) add({"prefix_projection"});
  // Without projection the width is unused; PEFT records token_dim, ft its resolved default.
  if (spec.prefix_projection) add({"encoder_hidden_size"});
  return keys;
}

// Writes ft's logits next to the exported folder for tools/check_peft_export.py.
void write_ft_logits(const std::string& path, const GoldenCase& golden,
                     const std::vector<int32_t>& input_ids, int B, int L,
                     std::vector<float> logits) {
  SafetensorsWriter writer(path);
  writer.set_metadata("case", golden.name);
  std::vector<int32_t> ids = input_ids;
  writer.add("input_ids", Tensor(ids.data(), DType::i32, Shape{B, L}));
  const int64_t V = golden.model.vocab_size;
  const int64_t T = static_cast<int64_t>(logits.size()) / (B * V);
  writer.add("logits", Tensor(logits.data(), DType::f32, Shape{B, T, V}));
  writer.commit();
}

TEST_P(GoldenFolder, ExportWritesWhatPeftWrites) {
  const GoldenCase golden(GetParam());
  auto params = golden.store(golden.trained, DType::f32, /*with_base=*/true);
  golden.read_trainable(*params);

  TempDir temp;
  const char* check_dir = std::getenv("FT_EXPORT_CHECK_DIR");
  const std::string case_dir =
      check_dir && *check_dir ? std::string(check_dir) + "/" + golden.name : temp.path(golden.name);
  const std::string adapter = case_dir + "/adapter";
  std::filesystem::remove_all(adapter);
  PeftExportInfo info;
  info.base_model_name_or_path = std::filesystem::path(golden.dir).parent_path().string();
  info.base_fingerprint = base_fingerprint(*params, 2);
  export_peft_adapter(adapter, golden.trained, golden.model, *params, info, OpContext{});

  // adapter_config.json: only keys PEFT knows, and PEFT's values for the ones that matter.
  const json ours = read_json(adapter + "/adapter_config.json");
  const json peft = read_json(golden.dir + "adapter/adapter_config.json");
  for (const auto& [key, value] : ours.items())
    EXPECT_TRUE(peft.contains(key)) << "ft writes '" << key << "', which PEFT does not";
  for (const std::string& key : keys_that_matter(golden.trained)) {
    ASSERT_TRUE(ours.contains(key)) << key;
    EXPECT_EQ(ours.at(key), peft.at(key)) << key;
  }
  EXPECT_EQ(ours.at("base_model_name_or_path"), info.base_model_name_or_path);
  if (golden.trained.method == PeftMethod::lora)
    EXPECT_EQ(selected_modules(ours.at("target_modules"), golden.model),
              selected_modules(peft.at("target_modules"), golden.model));

  // adapter_model.safetensors: PEFT's tensor names and values, format pt, the base's fingerprint.
  const SafetensorsReader written(adapter + "/adapter_model.safetensors");
  const SafetensorsReader saved(golden.dir + "adapter/adapter_model.safetensors");
  EXPECT_EQ(written.metadata().at("format"), "pt");
  EXPECT_EQ(written.metadata().at("ft_base_fingerprint"), info.base_fingerprint);
  ASSERT_EQ(written.names(), saved.names());
  double tensor_error = 0.0;
  for (const std::string& name : written.names()) {
    EXPECT_EQ(written.shape(name), saved.shape(name)) << name;
    const std::vector<float> ours_values = read_floats(written, name);
    const std::vector<float> peft_values = read_floats(saved, name);
    if (saves_trainable_values(golden.trained)) {
      EXPECT_EQ(ours_values, peft_values) << name;
      continue;
    }
    tensor_error = testing::relative_l2(doubles(ours_values), doubles(peft_values));
    EXPECT_LT(tensor_error, kEncoderTolerance) << name;
  }

  // The exported folder, imported onto the base, is PEFT's model: the golden logits.
  SafetensorsReader tensors(golden.dir + "tensors.safetensors");
  const Shape ids_shape = tensors.shape("input_ids");
  const int B = static_cast<int>(ids_shape[0]), L = static_cast<int>(ids_shape[1]);
  std::vector<int32_t> input_ids(B * L);
  tensors.read("input_ids", Tensor(input_ids.data(), DType::i32, ids_shape));
  const std::vector<double> peft_logits = doubles(read_floats(tensors, "logits"));
  const std::vector<float> trained_logits =
      forward_logits(golden.model, *params, golden.trained, input_ids, B, L);
  ASSERT_EQ(trained_logits.size(), peft_logits.size());
  const double trained_error = testing::relative_l2(doubles(trained_logits), peft_logits);
  EXPECT_LT(trained_error, kLogitsTolerance);
  auto reloaded = golden.store(golden.loadable, DType::f32, /*with_base=*/true);
  import_peft_adapter(adapter, golden.loadable, golden.model, *reloaded, info.base_fingerprint);
  const std::vector<float> reloaded_logits =
      forward_logits(golden.model, *reloaded, golden.loadable, input_ids, B, L);
  ASSERT_EQ(reloaded_logits.size(), peft_logits.size());
  const double reloaded_error = testing::relative_l2(doubles(reloaded_logits), peft_logits);
  EXPECT_LT(reloaded_error, kLogitsTolerance);
  std::printf("[ export ] %-32s tensors %.2e, logits: trained %.2e, exported and imported %.2e\n",
              golden.name.c_str(), tensor_error, trained_error, reloaded_error);

  if (check_dir && *check_dir)
    write_ft_logits(case_dir + "/ft_logits.safetensors", golden, input_ids, B, L, trained_logits);
}

INSTANTIATE_TEST_SUITE_P(Peft, GoldenFolder, ::testing::ValuesIn(golden_cases()),
                         [](const auto& info) { return info.param; });

// ---- Round trips on the presets ----

struct RoundTripCase {
  std::string preset, label;
  json peft;
};

void PrintTo(const RoundTripCase& c, std::ostream* out) {
  *out << c.preset << " " << c.label;
}

std::vector<RoundTripCase> round_trip_cases() {
  const std::vector<std::pair<std::string, json>> methods = {
      {"prompt_tuning", {{"method", "prompt_tuning"}, {"num_virtual_tokens", 5}}},
      {"p_tuning",
       {{"method", "p_tuning"}, {"num_virtual_tokens", 3}, {"encoder_hidden_size", 12}}},
      {"prefix_tuning", {{"method", "prefix_tuning"}, {"num_virtual_tokens", 4}}},
      {"prefix_tuning_projection",
       {{"method", "prefix_tuning"},
        {"num_virtual_tokens", 2},
        {"prefix_projection", true},
        {"encoder_hidden_size", 10}}},
      {"lora", {{"method", "lora"}, {"lora_r", 3}, {"lora_alpha", 6.0}}},
      {"lora_all_linear_rslora",
       {{"method", "lora"},
        {"lora_r", 2},
        {"lora_alpha", 5.0},
        {"lora_dropout", 0.1},
        {"target_modules", "all-linear"},
        {"use_rslora", true}}}};
  std::vector<RoundTripCase> cases;
  for (const char* preset : {"tiny-llama", "tiny-gpt2"})
    for (const auto& [label, peft] : methods) cases.push_back({preset, label, peft});
  return cases;
}

class RoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(RoundTrip, ExportThenImportKeepsTheAdapter) {
  const RoundTripCase& param = GetParam();
  const ModelConfig model = model_config_preset(param.preset);
  const PeftSpec trained = spec_from(param.peft, model);
  const PeftSpec loadable = spec_from(loadable_keys(param.peft), model);
  ParameterStore source(run_param_specs(model, trained), DType::f32, Device::cpu);
  fill_adapter(source, 7);
  TempDir temp;
  const std::string adapter = temp.path("adapter");
  const PeftExportInfo info{"ft-preset:" + param.preset, "00112233aabbccdd"};
  export_peft_adapter(adapter, trained, model, source, info, OpContext{});

  const json config = read_json(adapter + "/adapter_config.json");
  EXPECT_EQ(config.at("peft_type"), peft_type_name(trained.method));
  EXPECT_EQ(config.at("task_type"), "CAUSAL_LM");
  EXPECT_EQ(config.at("base_model_name_or_path"), info.base_model_name_or_path);
  EXPECT_EQ(config.at("inference_mode"), true);
  if (trained.method == PeftMethod::lora) {
    EXPECT_EQ(config.at("r"), trained.lora_r);
    EXPECT_EQ(config.at("lora_alpha"), trained.lora_alpha);
    EXPECT_EQ(config.at("lora_dropout"), trained.lora_dropout);
    EXPECT_EQ(config.at("use_rslora"), trained.use_rslora);
    EXPECT_EQ(config.at("bias"), "none");
    EXPECT_EQ(config.at("fan_in_fan_out"), model.model_type == "gpt2");  // GPT-2's Conv1D
    EXPECT_EQ(selected_modules(config.at("target_modules"), model), modules_of(trained));
  } else {
    const bool prefix = trained.method == PeftMethod::prefix_tuning;
    EXPECT_EQ(config.at("num_virtual_tokens"), trained.num_virtual_tokens);
    EXPECT_EQ(config.at("token_dim"), prefix ? model.kv_dim() : model.hidden_size);
    EXPECT_EQ(config.at("num_attention_heads"), prefix ? model.num_kv_heads : model.num_heads);
    EXPECT_EQ(config.at("num_layers"), model.num_layers);
    EXPECT_EQ(config.at("num_transformer_submodules"), 1);
    if (prefix) EXPECT_EQ(config.at("prefix_projection"), trained.prefix_projection);
  }
  const SafetensorsReader written(adapter + "/adapter_model.safetensors");
  EXPECT_EQ(written.metadata().at("format"), "pt");
  EXPECT_EQ(written.metadata().at("ft_base_fingerprint"), info.base_fingerprint);
  for (const std::string& name : written.names()) EXPECT_EQ(written.entry(name).dtype, "F32");

  ParameterStore imported(run_param_specs(model, loadable), DType::f32, Device::cpu);
  import_peft_adapter(adapter, loadable, model, imported, info.base_fingerprint);
  if (saves_trainable_values(trained)) {
    EXPECT_EQ(adapter_values(imported), adapter_values(source));
  } else {
    EXPECT_EQ(floats(imported.at("prompt_embeddings").value), saved_prompt(trained, model, source));
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, RoundTrip, ::testing::ValuesIn(round_trip_cases()),
                         [](const auto& info) {
                           std::string name = info.param.preset + "_" + info.param.label;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

TEST(PeftExport, WritesFp32FromAnyStoreDtype) {
  const ModelConfig model = model_config_preset("tiny-llama");
  const PeftSpec spec = spec_from({{"method", "lora"}, {"lora_r", 2}}, model);
  ParameterStore source(run_param_specs(model, spec), DType::f64, Device::cpu);
  fill_adapter(source, 11);
  TempDir temp;
  export_peft_adapter(temp.path("adapter"), spec, model, source, {}, OpContext{});
  const json config = read_json(temp.path("adapter/adapter_config.json"));
  EXPECT_TRUE(config.at("base_model_name_or_path").is_null());  // as PEFT writes an unknown base
  const SafetensorsReader written(temp.path("adapter/adapter_model.safetensors"));
  EXPECT_EQ(written.metadata().count("ft_base_fingerprint"), 0u);
  ParameterStore imported(run_param_specs(model, spec), DType::f32, Device::cpu);
  import_peft_adapter(temp.path("adapter"), spec, model, imported, "any fingerprint");
  for (const auto& [name, values] : adapter_values(imported)) {
    EXPECT_EQ(written.entry("base_model.model." + name).dtype, "F32");
    EXPECT_EQ(values, floats(source.at(name).value)) << name;  // rounded once, to fp32
  }
}

// ---- Refusals: each names the file and the key or tensor, and changes no parameter ----

struct StoredTensor {
  Shape shape;
  std::vector<float> values;
};

class PeftImportRefuses : public ::testing::Test {
 protected:
  ModelConfig model = model_config_preset("tiny-llama");
  PeftSpec lora = spec_from({{"method", "lora"}, {"lora_r", 4}, {"lora_alpha", 8.0}}, model);
  PeftSpec prompt = spec_from({{"method", "prompt_tuning"}, {"num_virtual_tokens", 4}}, model);
  PeftSpec prefix = spec_from({{"method", "prefix_tuning"}, {"num_virtual_tokens", 4}}, model);
  TempDir temp;

  std::string exported(const std::string& name, const PeftSpec& spec,
                       const std::string& fingerprint = "") {
    ParameterStore params(run_param_specs(model, spec), DType::f32, Device::cpu);
    fill_adapter(params, 3);
    export_peft_adapter(temp.path(name), spec, model, params, {"tiny", fingerprint}, OpContext{});
    return temp.path(name);
  }
  // The import fails with every fragment in its message and leaves the adapter as it was (zero).
  void expect_refused(const std::string& dir, const PeftSpec& spec,
                      const std::vector<std::string>& fragments,
                      const std::string& fingerprint = "") {
    ParameterStore params(run_param_specs(model, spec), DType::f32, Device::cpu);
    try {
      import_peft_adapter(dir, spec, model, params, fingerprint);
      ADD_FAILURE() << "accepted " << dir << " for " << spec.summary();
    } catch (const Error& error) {
      const std::string message = error.what();
      for (const std::string& fragment : fragments)
        EXPECT_NE(message.find(fragment), std::string::npos)
            << "'" << fragment << "' not in: " << message;
    }
    for (const auto& [name, values] : adapter_values(params))
      EXPECT_EQ(values, std::vector<float>(values.size(), 0.0f)) << name << " was written";
  }
  static void edit_config(const std::string& dir, const std::function<void(json&)>& edit) {
    json config = read_json(dir + "/adapter_config.json");
    edit(config);
    write_text(dir + "/adapter_config.json", config.dump(2));
  }
  static void edit_weights(const std::string& dir,
                           const std::function<void(std::map<std::string, StoredTensor>&)>& edit) {
    const std::string path = dir + "/adapter_model.safetensors";
    std::map<std::string, StoredTensor> tensors;
    {
      const SafetensorsReader reader(path);
      for (const std::string& name : reader.names())
        tensors[name] = {reader.shape(name), read_floats(reader, name)};
    }
    edit(tensors);
    SafetensorsWriter writer(path);
    writer.set_metadata("format", "pt");
    for (auto& [name, tensor] : tensors)
      writer.add(name, Tensor(tensor.values.data(), DType::f32, tensor.shape));
    writer.commit();
  }
};

TEST_F(PeftImportRefuses, APeftTypeTheMethodCannotTake) {
  const std::string lora_dir = exported("lora", lora), prompt_dir = exported("prompt", prompt);
  expect_refused(
      lora_dir, prompt,
      {lora_dir + "/adapter_config.json", "peft_type LORA", "peft.method prompt_tuning"});
  expect_refused(prompt_dir, lora, {"adapter_config.json", "peft_type PROMPT_TUNING", "lora"});
  const PeftSpec p_tuning = spec_from({{"method", "p_tuning"}, {"num_virtual_tokens", 4}}, model);
  expect_refused(prompt_dir, p_tuning, {"adapter_config.json", "peft.method prompt_tuning"});
  const PeftSpec projection = spec_from(
      {{"method", "prefix_tuning"}, {"num_virtual_tokens", 4}, {"prefix_projection", true}}, model);
  expect_refused(exported("prefix", prefix), projection,
                 {"adapter_config.json", "peft.prefix_projection false"});
  edit_config(prompt_dir, [](json& config) { config["peft_type"] = "IA3"; });
  expect_refused(prompt_dir, prompt, {"adapter_config.json", "peft_type 'IA3'"});
}

TEST_F(PeftImportRefuses, AnotherVirtualTokenCountOrModelShape) {
  const std::string prompt_dir = exported("prompt", prompt),
                    prefix_dir = exported("prefix", prefix);
  const PeftSpec six = spec_from({{"method", "prompt_tuning"}, {"num_virtual_tokens", 6}}, model);
  expect_refused(prompt_dir, six,
                 {prompt_dir + "/adapter_config.json", "num_virtual_tokens = 4", "is 6"});
  edit_config(prompt_dir, [](json& config) { config["token_dim"] = 99; });
  expect_refused(prompt_dir, prompt, {"adapter_config.json", "token_dim = 99"});
  edit_config(prefix_dir, [](json& config) { config["num_attention_heads"] = 7; });
  expect_refused(prefix_dir, prefix, {"adapter_config.json", "num_attention_heads = 7"});
}

TEST_F(PeftImportRefuses, ATensorOfTheWrongShape) {
  const std::string prompt_dir = exported("prompt", prompt), lora_dir = exported("lora", lora);
  edit_weights(prompt_dir, [&](auto& tensors) {
    tensors["prompt_embeddings"] = {Shape{4, model.hidden_size + 1},
                                    std::vector<float>(4 * (model.hidden_size + 1), 1.0f)};
  });
  expect_refused(prompt_dir, prompt,
                 {prompt_dir + "/adapter_model.safetensors", "'prompt_embeddings'",
                  Shape{4, model.hidden_size + 1}.str(), Shape{4, model.hidden_size}.str()});
  const std::string name = "base_model.model." + lora.lora_targets.back().a_name();
  edit_weights(lora_dir, [&](auto& tensors) {
    tensors[name] = {Shape{4, 3}, std::vector<float>(12, 1.0f)};
  });
  expect_refused(lora_dir, lora, {"adapter_model.safetensors", "'" + name + "'", "(4, 3)"});
}

TEST_F(PeftImportRefuses, AMissingOrForeignTensor) {
  const std::string prompt_dir = exported("prompt", prompt), lora_dir = exported("lora", lora);
  const std::string last_b = "base_model.model." + lora.lora_targets.back().b_name();
  edit_weights(lora_dir, [&](auto& tensors) { tensors.erase(last_b); });
  expect_refused(lora_dir, lora, {lora_dir + "/adapter_model.safetensors", last_b, "missing"});
  edit_weights(prompt_dir, [](auto& tensors) {
    tensors["prompt_encoder.embedding.weight"] = tensors.at("prompt_embeddings");
  });
  expect_refused(prompt_dir, prompt,
                 {"adapter_model.safetensors", "'prompt_encoder.embedding.weight'", "not part"});
  edit_weights(prompt_dir, [](auto& tensors) { tensors.erase("prompt_embeddings"); });
  expect_refused(prompt_dir, prompt,
                 {"adapter_model.safetensors", "'prompt_embeddings'", "missing"});
}

TEST_F(PeftImportRefuses, AnExtraLoraTensorTheTargetsDoNotSelect) {
  const PeftSpec all_linear = spec_from(
      {{"method", "lora"}, {"lora_r", 4}, {"lora_alpha", 8.0}, {"target_modules", "all-linear"}},
      model);
  const std::string dir = exported("all_linear", all_linear);
  expect_refused(dir, lora,
                 {dir + "/adapter_model.safetensors",
                  "'base_model.model.model.layers.0.mlp.down_proj.lora_A.weight'",
                  "not among the modules peft.target_modules selects"});
}

TEST_F(PeftImportRefuses, AnotherRankScaleOrLoraVariant) {
  const std::string dir = exported("lora", lora);
  auto lora_with = [&](json keys) {
    keys["method"] = "lora";
    keys.emplace("lora_r", 4);
    keys.emplace("lora_alpha", 8.0);
    return spec_from(keys, model);
  };
  expect_refused(dir, lora_with({{"lora_r", 8}}),
                 {dir + "/adapter_config.json", "r = 4", "peft.lora_r is 8"});
  expect_refused(dir, lora_with({{"lora_alpha", 16.0}}), {"adapter_config.json", "lora_alpha = 8"});
  expect_refused(dir, lora_with({{"use_rslora", true}}), {"adapter_config.json", "use_rslora"});
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, json>>{{"use_dora", true},
                                                 {"alpha_pattern", {{"q_proj", 16}}},
                                                 {"rank_pattern", {{"v_proj", 2}}},
                                                 {"bias", "all"}}) {
    edit_config(dir, [&](json& config) { config[key] = value; });
    expect_refused(dir, lora, {"adapter_config.json", key + " = "});
    edit_config(dir, [&](json& config) { config.erase(key); });
  }
}

TEST_F(PeftImportRefuses, AnAdapterOfAnotherBase) {
  const std::string dir = exported("ours", lora, "aaaaaaaaaaaaaaaa");
  expect_refused(dir, lora,
                 {dir + "/adapter_model.safetensors", "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"},
                 "bbbbbbbbbbbbbbbb");
  // An unknown base (""), or a folder PEFT wrote (no fingerprint), is taken as it is.
  ParameterStore params(run_param_specs(model, lora), DType::f32, Device::cpu);
  EXPECT_NO_THROW(import_peft_adapter(dir, lora, model, params, ""));
  EXPECT_NO_THROW(import_peft_adapter(exported("peft", lora), lora, model, params, "bbbb"));
}

TEST_F(PeftImportRefuses, AMissingOrBrokenFile) {
  const std::string dir = exported("prompt", prompt);
  const std::string config_path = dir + "/adapter_config.json";
  const std::string saved = testing::read_file(config_path);
  for (const std::string& text : {std::string("{\"peft_type\": "), std::string("[1, 2]")}) {
    write_text(config_path, text);
    expect_refused(dir, prompt, {config_path, "not a JSON object"});
  }
  write_text(config_path, "{}");
  expect_refused(dir, prompt, {config_path, "'peft_type' is missing"});
  write_text(config_path, saved);
  edit_config(dir, [](json& config) { config["num_virtual_tokens"] = "four"; });
  expect_refused(dir, prompt, {config_path, "'num_virtual_tokens'", "wrong type"});
  std::filesystem::remove(config_path);
  expect_refused(dir, prompt, {config_path, "cannot open"});
  write_text(config_path, saved);
  std::filesystem::remove(dir + "/adapter_model.safetensors");
  expect_refused(dir, prompt, {dir + "/adapter_model.safetensors"});
}

}  // namespace
}  // namespace ft
