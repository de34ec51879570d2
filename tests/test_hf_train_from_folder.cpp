// ft_train from a Hugging Face model folder and trained models back out as folders:
// - `model: {init_from: FOLDER}` alone is from_pretrained(FOLDER): the architecture from its
//   config.json, the weights converted in memory; it trains exactly as the ft checkpoint that
//   ft_convert import-hf writes (alone, or with model.hf_config), and not as a random init;
// - a full fine-tune's checkpoint and a LoRA adapter (ft_convert export-hf / merge-lora --hf-out)
//   export as folders with the origin's config.json, dtype and tokenizer files, and a preset
//   model with a generated config.json that describes it.
// The golden folders: tests/data/hf_golden/ (README.md there).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/hf_export.h"
#include "models/hf_weights.h"
#include "models/model_config.h"
#include "models/param_layout.h"
#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "runtime/checkpoint/safetensors.h"
#include "runtime/config/config.h"
#include "runtime/train/run_parameters.h"
#include "runtime/train/train_state.h"
#include "tests/support/expect_contains.h"
#include "tests/support/gradcheck.h"
#include "tests/support/python.h"
#include "tests/support/temp_dir.h"
#include "tests/support/training_run.h"

namespace ft {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::TempDir;

const std::string kGolden = std::string(FT_TEST_DATA_DIR) + "/hf_golden/";

testing::CommandResult run_convert(const std::string& arguments) {
  const std::string exe = (fs::path(FT_TRAIN_EXE).parent_path() / "ft_convert").string();
  testing::CommandResult result = testing::run_command(exe + " " + arguments);
  result.status = WIFEXITED(result.status) ? WEXITSTATUS(result.status) : -1;
  return result;
}

// Two steps of `method` on the golden Llama (byte-level vocabulary) from `model` (YAML keys).
TrainSummary train_two_steps(const TempDir& dir, const std::string& name, const std::string& model,
                             const std::string& method = "full") {
  const config::RunConfig config = config::parse(
      "model: {" + model + "}\npeft: {method: " + method +
          "}\ndata: {train_file: " + FT_SOURCE_DIR +
          "/examples/peft/train.jsonl, seq_len: 32, train_on: all}\ntrain: {micro_batch_size: 2, "
          "max_steps: 2, "
          "eval_at_start: false}\noptim: {lr: 0.01}\nthreads: 2\nseed: 3\noutput_dir: " +
          dir.path(name),
      "yaml", name);
  config::validate(config);
  return testing::train(config);
}

// Every parameter of `config` as stored in a Hugging Face folder, in f32.
std::map<std::string, std::vector<float>> folder_values(const std::string& folder,
                                                        const ModelConfig& config) {
  ParameterStoreOptions values_only;
  values_only.gradients = values_only.moments = false;
  ParameterStore params(transformer_param_specs(config), DType::f32, Device::cpu, values_only);
  load_hf_weights(folder, config, params);
  std::map<std::string, std::vector<float>> values;
  for (const Parameter& param : params.all())
    values[param.spec.name].assign(param.value.ptr<float>(),
                                   param.value.ptr<float>() + param.value.numel());
  return values;
}

// Every model/ tensor of an ft checkpoint, in f32.
std::map<std::string, std::vector<float>> checkpoint_values(const std::string& path,
                                                            const ModelConfig& config) {
  const checkpoint::CheckpointReader reader(path);
  std::map<std::string, std::vector<float>> values;
  for (const ParamSpec& spec : transformer_param_specs(config)) {
    std::vector<float>& value = values[spec.name];
    value.resize(spec.shape.numel());
    reader.read_tensor("model/" + spec.name, Tensor(value.data(), DType::f32, spec.shape));
  }
  return values;
}

std::string stored_dtype(const std::string& folder, const std::string& tensor) {
  return checkpoint::SafetensorsReader(folder + "/model.safetensors").entry(tensor).dtype;
}

TEST(TrainFromHfFolder, AFolderAloneTrainsAsItsImportedCheckpoint) {
  TempDir dir;
  const std::string folder = kGolden + "llama";
  const TrainSummary direct = train_two_steps(dir, "direct", "init_from: " + folder);
  ASSERT_EQ(direct.steps, 2);
  ASSERT_EQ(direct.step_losses.size(), 2u);
  ASSERT_GT(direct.step_losses.front(), 0.0);

  const std::string imported = dir.path("llama.h5");
  const testing::CommandResult result =
      run_convert("import-hf --hf " + folder + " --out " + imported);
  ASSERT_EQ(result.status, 0) << result.output;
  // The checkpoint alone names its model (the config.json it records); with hf_config as well.
  const TrainSummary alone = train_two_steps(dir, "alone", "init_from: " + imported);
  const TrainSummary with_config = train_two_steps(
      dir, "with_config", "hf_config: " + dir.path("llama_hf") + ", init_from: " + imported);
  EXPECT_EQ(alone.step_losses, direct.step_losses);
  EXPECT_EQ(with_config.step_losses, direct.step_losses);
  // model.hf_config takes the folder too, for the architecture alone: a seeded random init.
  const TrainSummary random = train_two_steps(dir, "random", "hf_config: " + folder);
  EXPECT_NE(random.step_losses.front(), direct.step_losses.front());
}

TEST(TrainFromHfFolder, FullFineTuneExportsInTheDtypeItCameIn) {
  TempDir dir;
  const std::string folder = kGolden + "llama_bf16";
  const TrainSummary run = train_two_steps(dir, "run", "init_from: " + folder);
  const std::string out = dir.path("hf");
  const testing::CommandResult result =
      run_convert("export-hf --checkpoint " + run.last_checkpoint + " --out " + out);
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_EQ(stored_dtype(out, "model.layers.1.self_attn.q_proj.weight"), "BF16");
  EXPECT_EQ(testing::read_file(out + "/config.json"), testing::read_file(folder + "/config.json"));
  EXPECT_EQ(testing::read_file(out + "/generation_config.json"),
            testing::read_file(folder + "/generation_config.json"));
  const ModelConfig model = model_config_from_hf(folder + "/config.json");
  // The trained fp32 values, rounded to bf16.
  const auto trained = checkpoint_values(run.last_checkpoint, model);
  for (const auto& [name, values] : folder_values(out, model)) {
    const std::vector<float>& expected = trained.at(name);
    for (size_t i = 0; i < values.size(); ++i)
      ASSERT_EQ(values[i], bf16_to_float(float_to_bf16(expected[i]))) << name << "[" << i << "]";
  }
  // --dtype fp32 keeps the trained values exactly.
  ASSERT_EQ(run_convert("export-hf --checkpoint " + run.last_checkpoint + " --out " +
                        dir.path("fp32") + " --dtype fp32")
                .status,
            0);
  EXPECT_EQ(folder_values(dir.path("fp32"), model), trained);
  EXPECT_EQ(json::parse(testing::read_file(dir.path("fp32/config.json"))).at("torch_dtype"),
            "float32");
}

TEST(TrainFromHfFolder, LoraMergesIntoAFolder) {
  TempDir dir;
  const std::string folder = kGolden + "llama";
  const TrainSummary run = train_two_steps(dir, "lora", "init_from: " + folder, "lora");
  const std::string merged = dir.path("merged.h5"), hf_out = dir.path("merged_hf");
  testing::CommandResult result = run_convert("merge-lora --checkpoint " + run.last_checkpoint +
                                              " --out " + merged + " --hf-out " + hf_out);
  ASSERT_EQ(result.status, 0) << result.output;
  result = run_convert("export-hf --checkpoint " + run.last_checkpoint + " --out " +
                       dir.path("exported"));
  ASSERT_EQ(result.status, 0) << result.output;

  const ModelConfig model = model_config_from_hf(folder + "/config.json");
  const auto merged_values = checkpoint_values(merged, model);
  EXPECT_EQ(folder_values(hf_out, model), merged_values);
  EXPECT_EQ(folder_values(dir.path("exported"), model), merged_values);
  // The adapted projections moved; the rest is the base.
  const auto base = folder_values(folder, model);
  EXPECT_NE(merged_values.at("model.layers.0.self_attn.q_proj.weight"),
            base.at("model.layers.0.self_attn.q_proj.weight"));
  EXPECT_EQ(merged_values.at("model.layers.0.mlp.up_proj.weight"),
            base.at("model.layers.0.mlp.up_proj.weight"));
  // The base's config.json and tokenizer files come along.
  for (const char* file : {"config.json", "tokenizer_config.json", "special_tokens_map.json"})
    EXPECT_EQ(testing::read_file(hf_out + "/" + file), testing::read_file(folder + "/" + file))
        << file;
  result = run_convert("merge-lora --checkpoint " + run.last_checkpoint);
  EXPECT_EQ(result.status, 1);
  EXPECT_CONTAINS(result.output, "give --out (an ft checkpoint) and/or --hf-out");
}

// A preset model has no config.json of its own: export-hf writes one that describes it.
class PresetExport : public ::testing::TestWithParam<std::string> {};

TEST_P(PresetExport, GeneratedConfigDescribesTheModel) {
  TempDir dir;
  const config::RunConfig config =
      config::parse("model: {preset: " + GetParam() + "}\ndata: {train_file: x}", "yaml", "test");
  const ModelConfig model = resolve_model_config(config.model());
  ParameterStore params(transformer_param_specs(model), DType::f32, Device::cpu);
  params.initialize(9);
  const std::string checkpoint = dir.path("model.h5");
  save_training_checkpoint(checkpoint, params, TrainState{}, config, model.summary(), nullptr);
  const std::string out = dir.path("hf");
  const testing::CommandResult result =
      run_convert("export-hf --checkpoint " + checkpoint + " --out " + out + " --dtype fp32");
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NO_THROW(check_hf_config_matches(out + "/config.json", model));
  EXPECT_EQ(folder_values(out, model_config_from_hf(out + "/config.json")),
            checkpoint_values(checkpoint, model));
}

INSTANTIATE_TEST_SUITE_P(Presets, PresetExport,
                         ::testing::Values("tiny-llama", "tiny-mistral", "tiny-qwen2", "tiny-gpt2"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(TrainFromHfFolder, ModelFieldsSayWhatIsMissing) {
  TempDir dir;
  auto model_error = [&](const std::string& keys) {
    return testing::error_message([&] {
      resolve_model_config(
          config::parse("model: {" + keys + "}\ndata: {train_file: x}", "yaml", "test").model());
    });
  };
  fs::create_directories(dir.path("empty"));
  EXPECT_CONTAINS(model_error("init_from: " + dir.path("empty")),
                  "model.init_from = " + dir.path("empty") + ": the folder holds no config.json");
  EXPECT_CONTAINS(model_error("init_from: " + dir.path("missing")), "no such file or folder");
  EXPECT_CONTAINS(model_error("init_from: " + kGolden + "llama/model.safetensors"),
                  "Hugging Face weights without their folder");
  EXPECT_CONTAINS(model_error("hf_config: " + dir.path("empty")), "config.json");
  EXPECT_EQ(resolve_model_config(
                config::parse("model: {hf_config: " + kGolden + "gpt2}\ndata: {train_file: x}",
                              "yaml", "test")
                    .model())
                .model_type,
            "gpt2");
}

}  // namespace
}  // namespace ft
