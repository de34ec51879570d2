// Hugging Face model folders in and out, against the folders transformers 4.49 wrote in
// tests/data/hf_golden/ (README.md there; tools/make_hf_goldens.py):
// - parity: each family's folder (Llama with GQA and Llama 3 RoPE, Qwen2 with q/k/v biases,
//   Mistral, GPT-2) gives transformers' fp32 logits to relative 1e-5 and its 16 greedy tokens;
// - ft_convert import-hf / export-hf: the round trip HF -> ft -> HF writes every tensor with the
//   same bytes in the same dtype (fp32, bf16, fp16, sharded), the same config.json, and copies
//   the tokenizer files;
// - bad input (unsupported model_type or architecture, missing shard, shape mismatch, corrupt
//   header) stops with an error naming it and leaves no output behind.
// ft_train starting from a folder and LoRA merges exported as folders: test_hf_train_from_folder.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "models/generation/generator.h"
#include "models/generation/kv_cache_model.h"
#include "models/hf_export.h"
#include "models/hf_weights.h"
#include "models/model_config.h"
#include "models/param_layout.h"
#include "models/transformer.h"
#include "runtime/checkpoint/safetensors.h"
#include "runtime/checkpoint/safetensors_dtypes.h"
#include "runtime/train/input_layout.h"
#include "tests/support/expect_contains.h"
#include "tests/support/gradcheck.h"
#include "tests/support/python.h"
#include "tests/support/temp_dir.h"

namespace ft {
namespace {

namespace fs = std::filesystem;
using checkpoint::SafetensorsReader;
using nlohmann::json;
using testing::TempDir;

const std::string kGolden = std::string(FT_TEST_DATA_DIR) + "/hf_golden/";
constexpr double kLogitsTolerance = 1e-5;

json read_json(const std::string& path) {
  std::ifstream file(path);
  if (!file) fail("{}: cannot open", path);
  return json::parse(file);
}

std::string convert_exe() {
  return (fs::path(FT_TRAIN_EXE).parent_path() / "ft_convert").string();
}

testing::CommandResult run_convert(const std::string& arguments) {
  testing::CommandResult result = testing::run_command(convert_exe() + " " + arguments);
  result.status = WIFEXITED(result.status) ? WEXITSTATUS(result.status) : -1;
  return result;
}

// Every tensor of a Hugging Face folder (one file or shards): name -> (dtype, dims, raw bytes).
struct RawTensor {
  std::string dtype;
  std::vector<int64_t> dims;
  std::string bytes;
  bool operator==(const RawTensor&) const = default;
};

std::map<std::string, RawTensor> raw_tensors(const std::string& folder) {
  std::vector<std::string> files;
  if (fs::exists(folder + "/model.safetensors")) {
    files.push_back(folder + "/model.safetensors");
  } else {
    std::set<std::string> shards;
    for (const auto& [name, shard] :
         read_json(folder + "/model.safetensors.index.json").at("weight_map").items())
      shards.insert(folder + "/" + shard.get<std::string>());
    files.assign(shards.begin(), shards.end());
  }
  std::map<std::string, RawTensor> tensors;
  for (const std::string& file : files) {
    const SafetensorsReader reader(file);
    const std::string content = testing::read_file(file);
    for (const std::string& name : reader.names()) {
      const checkpoint::SafetensorsEntry& entry = reader.entry(name);
      const size_t begin = reader.data_section_offset() + entry.begin;
      tensors[name] = {entry.dtype, entry.dims, content.substr(begin, entry.end - entry.begin)};
    }
  }
  return tensors;
}

// The files under a folder, recursively, relative to it.
std::vector<std::string> listing(const std::string& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::recursive_directory_iterator(folder))
    names.push_back(fs::relative(entry.path(), folder).string());
  std::sort(names.begin(), names.end());
  return names;
}

// ---- parity with transformers ----------------------------------------------------------------

struct Family {
  std::string name;
  ModelConfig config;
  std::unique_ptr<ParameterStore> params;
};

Family load_family(const std::string& name) {
  Family family{name, model_config_from_hf(kGolden + name + "/config.json"), nullptr};
  family.params = std::make_unique<ParameterStore>(transformer_param_specs(family.config),
                                                   DType::f32, Device::cpu);
  load_hf_weights(kGolden + name, family.config, *family.params);
  return family;
}

// Logits (B * T, V) of (B, T) ids at positions 0..T-1, as ft_train computes them.
std::vector<double> forward_logits(const Family& family, const std::vector<int32_t>& ids, int B,
                                   int T) {
  data::Batch batch;
  batch.batch_size = B;
  batch.seq_len = T;
  batch.input_ids = ids;
  batch.targets.assign(B * T, data::kIgnoreTarget);
  batch.positions.resize(B * T);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) batch.positions[b * T + t] = t;
  lay_out_batch(PeftSpec{}, batch);
  Transformer model(family.config, *family.params, B, T);
  OpContext ctx;
  ctx.num_threads = 2;
  const ModelMemory memory = plan_model_memory(model, ctx);
  model.forward(ctx, model_inputs(batch));
  std::vector<double> logits(model.logits().numel());
  ops::cast(OpContext{}, Tensor(logits.data(), DType::f64, model.logits().shape), model.logits());
  return logits;
}

class HfParity : public ::testing::TestWithParam<std::string> {};

TEST_P(HfParity, LogitsMatchTransformers) {
  const std::string name = GetParam();
  const json golden = read_json(kGolden + "goldens.json");
  const json& entry = golden.at("cases").at(name);
  const int B = golden.at("batch"), T = golden.at("seq_len");
  std::vector<int32_t> ids;
  for (const json& row : entry.at("input_ids"))
    for (const json& id : row) ids.push_back(id.get<int32_t>());
  const Family family = load_family(name);
  const std::vector<double> logits = forward_logits(family, ids, B, T);

  const SafetensorsReader reader(kGolden + "logits.safetensors");
  std::vector<double> expected(reader.entry(name).numel);
  reader.read(name, Tensor(expected.data(), DType::f64, reader.shape(name)));
  ASSERT_EQ(logits.size(), expected.size());
  double max_error = 0, max_reference = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    max_error = std::max(max_error, std::abs(logits[i] - expected[i]));
    max_reference = std::max(max_reference, std::abs(expected[i]));
  }
  const double relative = testing::relative_l2(logits, expected);
  std::printf("[ parity ] %-8s logits relative L2 %.2e, max |error| / max |logit| %.2e\n",
              name.c_str(), relative, max_error / max_reference);
  EXPECT_LT(relative, kLogitsTolerance);
  EXPECT_LT(max_error / max_reference, kLogitsTolerance);
}

TEST_P(HfParity, GreedyTokensMatchTransformers) {
  const std::string name = GetParam();
  const json golden = read_json(kGolden + "goldens.json");
  const json& entry = golden.at("cases").at(name);
  const Family family = load_family(name);
  KvCacheModel model(family.config, *family.params, PeftSpec{});
  GenerationOptions options;
  options.max_new_tokens = golden.at("new_tokens");
  for (size_t i = 0; i < entry.at("prompts").size(); ++i) {
    const auto prompt = entry.at("prompts")[i].get<std::vector<int32_t>>();
    const auto expected = entry.at("continuations")[i].get<std::vector<int32_t>>();
    EXPECT_EQ(generate(model, prompt, options, nullptr).tokens, expected)
        << name << " prompt " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, HfParity,
                         ::testing::Values("llama", "qwen2", "mistral", "gpt2"));

// ---- ft_convert round trips ------------------------------------------------------------------

struct RoundTrip {
  std::string folder;
  std::string export_flags;
};

class HfRoundTrip : public ::testing::TestWithParam<RoundTrip> {};

TEST_P(HfRoundTrip, ImportThenExportWritesTheSameBytes) {
  ASSERT_TRUE(fs::exists(convert_exe())) << convert_exe() << " is not built";
  const RoundTrip& trip = GetParam();
  const std::string source = kGolden + trip.folder;
  TempDir dir;
  const std::string model = dir.path("model.h5"), out = dir.path("out");
  testing::CommandResult result = run_convert("import-hf --hf " + source + " --out " + model);
  ASSERT_EQ(result.status, 0) << result.output;
  result =
      run_convert("export-hf --checkpoint " + model + " --out " + out + " " + trip.export_flags);
  ASSERT_EQ(result.status, 0) << result.output;

  const auto expected = raw_tensors(source), got = raw_tensors(out);
  ASSERT_EQ(got.size(), expected.size());
  for (const auto& [name, tensor] : expected) {
    ASSERT_TRUE(got.count(name)) << name << " was not exported";
    EXPECT_EQ(got.at(name).dtype, tensor.dtype) << name;
    EXPECT_EQ(got.at(name).dims, tensor.dims) << name;
    EXPECT_TRUE(got.at(name).bytes == tensor.bytes) << name << ": the bytes differ";
  }
  // config.json and the side files come back unchanged; a single file even byte for byte, as
  // save_pretrained writes it.
  for (const std::string& file : ft::hf_side_files(source))
    EXPECT_EQ(testing::read_file(out + "/" + fs::path(file).filename().string()),
              testing::read_file(file))
        << file;
  EXPECT_EQ(testing::read_file(out + "/config.json"), testing::read_file(source + "/config.json"));
  if (fs::exists(source + "/model.safetensors"))
    EXPECT_TRUE(testing::read_file(out + "/model.safetensors") ==
                testing::read_file(source + "/model.safetensors"));
  // import-hf put config.json and the tokenizer files beside the checkpoint; nothing is left
  // over under a temporary name.
  for (const std::string& file : ft::hf_side_files(source))
    EXPECT_TRUE(fs::exists(dir.path("model_hf/" + fs::path(file).filename().string()))) << file;
  EXPECT_TRUE(fs::exists(dir.path("model_hf/config.json")));
  for (const std::string& name : listing(dir.path()))
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
}

INSTANTIATE_TEST_SUITE_P(Folders, HfRoundTrip,
                         ::testing::Values(RoundTrip{"llama", ""}, RoundTrip{"qwen2", ""},
                                           RoundTrip{"mistral", ""}, RoundTrip{"gpt2", ""},
                                           RoundTrip{"llama_bf16", ""}, RoundTrip{"gpt2_fp16", ""},
                                           RoundTrip{"qwen2_sharded", "--max-shard-size 25KB"}),
                         [](const ::testing::TestParamInfo<RoundTrip>& info) {
                           return info.param.folder;
                         });

TEST(HfExport, ShardsAreSplitAsSavePretrainedSplitsThem) {
  TempDir dir;
  const std::string model = dir.path("model.h5"), out = dir.path("out");
  ASSERT_EQ(run_convert("import-hf --hf " + kGolden + "qwen2 --out " + model).status, 0);
  ASSERT_EQ(
      run_convert("export-hf --checkpoint " + model + " --out " + out + " --max-shard-size 20KB")
          .status,
      0);
  const json index = read_json(out + "/model.safetensors.index.json");
  int64_t total = 0;
  std::set<std::string> shards;
  for (const auto& [name, shard] : index.at("weight_map").items()) shards.insert(shard);
  for (const std::string& shard : shards) {
    const int64_t bytes = static_cast<int64_t>(fs::file_size(out + "/" + shard));
    const SafetensorsReader reader(out + "/" + shard);
    int64_t data = bytes - static_cast<int64_t>(reader.data_section_offset());
    total += data;
    // At most 20 kB of tensor data per shard unless a single tensor is larger.
    EXPECT_TRUE(data <= 20000 || reader.names().size() == 1) << shard << " holds " << data;
  }
  EXPECT_EQ(index.at("metadata").at("total_size").get<int64_t>(), total);
  EXPECT_GT(shards.size(), 2u);
  EXPECT_EQ(shards.count("model-00001-of-0000" + std::to_string(shards.size()) + ".safetensors"),
            1u);
  EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
}

TEST(HfExport, DtypeOptionConvertsEveryTensorAndTheConfig) {
  TempDir dir;
  const std::string model = dir.path("model.h5");
  ASSERT_EQ(run_convert("import-hf --hf " + kGolden + "llama --out " + model).status, 0);
  ASSERT_EQ(run_convert("export-hf --checkpoint " + model + " --out " + dir.path("bf16") +
                        " --dtype bf16")
                .status,
            0);
  const auto fp32 = raw_tensors(kGolden + "llama"), bf16 = raw_tensors(dir.path("bf16"));
  // Rounded to nearest even, as torch's .to(torch.bfloat16): the golden bf16 folder holds the
  // same model converted by torch.
  EXPECT_TRUE(bf16 == raw_tensors(kGolden + "llama_bf16"));
  EXPECT_EQ(bf16.at("lm_head.weight").bytes.size() * 2, fp32.at("lm_head.weight").bytes.size());
  EXPECT_EQ(read_json(dir.path("bf16/config.json")).at("torch_dtype"), "bfloat16");
  // ...and back to fp32 widens exactly.
  const std::string bf16_model = dir.path("bf16.h5");
  ASSERT_EQ(run_convert("import-hf --hf " + dir.path("bf16") + " --out " + bf16_model).status, 0);
  ASSERT_EQ(run_convert("export-hf --checkpoint " + bf16_model + " --out " + dir.path("fp32") +
                        " --dtype fp32")
                .status,
            0);
  const auto widened = raw_tensors(dir.path("fp32"));
  const SafetensorsReader reader(kGolden + "llama_bf16/model.safetensors");
  for (const auto& [name, tensor] : widened) {
    ASSERT_EQ(tensor.dtype, "F32") << name;
    std::vector<float> expected(reader.entry(name).numel);
    reader.read(name, Tensor(expected.data(), DType::f32, reader.shape(name)));
    EXPECT_EQ(std::memcmp(tensor.bytes.data(), expected.data(), tensor.bytes.size()), 0) << name;
  }
}

TEST(HfExport, Fp16EncodingRoundsToNearestEven) {
  // Every finite half comes back to its own bits through float.
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    if ((bits & 0x7c00u) == 0x7c00u && (bits & 0x3ffu) != 0) continue;  // NaN
    const float value = checkpoint::detail::half_to_float(static_cast<uint16_t>(bits));
    ASSERT_EQ(float_to_fp16(value), bits) << std::hex << bits;
  }
  EXPECT_EQ(float_to_fp16(65519.0f), 0x7bffu);  // below the halfway point to 65536
  EXPECT_EQ(float_to_fp16(65520.0f), 0x7c00u);  // halfway: rounds to even, infinity
  EXPECT_EQ(float_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00u);      // tie to even (down)
  EXPECT_EQ(float_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02u);  // tie to even (up)
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -25)), 0x0000u);  // half the smallest subnormal: 0
  EXPECT_EQ(float_to_fp16(std::ldexp(3.0f, -26)), 0x0001u);  // above half: the smallest
  EXPECT_EQ(float_to_fp16(-std::ldexp(1.0f, -14)), 0x8400u);
  EXPECT_TRUE(std::isnan(checkpoint::detail::half_to_float(float_to_fp16(std::nanf("")))));
}

TEST(HfExport, StagedFolderLeavesNothingUnlessCommitted) {
  TempDir dir;
  {
    StagedFolder folder(dir.path("out"));
    folder.write_text("config.json", "{}");
    EXPECT_TRUE(fs::exists(dir.path("out.tmp/config.json")));
  }
  EXPECT_TRUE(listing(dir.path()).empty());
  StagedFolder folder(dir.path("out"));
  folder.write_text("config.json", "{}");
  folder.commit();
  EXPECT_EQ(listing(dir.path()), (std::vector<std::string>{"out", "out/config.json"}));
  EXPECT_CONTAINS(testing::error_message([&] { StagedFolder again(dir.path("out")); }),
                  "does not overwrite");
}

TEST(HfExport, SizesParseAsSavePretrainedTakesThem) {
  EXPECT_EQ(parse_byte_size("5GB", "--max-shard-size"), 5000000000);
  EXPECT_EQ(parse_byte_size("200MB", "--max-shard-size"), 200000000);
  EXPECT_EQ(parse_byte_size("2GiB", "--max-shard-size"), int64_t{2} << 30);
  EXPECT_EQ(parse_byte_size("25kb", "--max-shard-size"), 25000);
  EXPECT_EQ(parse_byte_size("4096", "--max-shard-size"), 4096);
  for (const char* bad : {"", "GB", "5XB", "-1", "0"})
    EXPECT_CONTAINS(testing::error_message([&] { parse_byte_size(bad, "--max-shard-size"); }),
                    "--max-shard-size '" + std::string(bad) + "'");
}

// ---- bad input -------------------------------------------------------------------------------

// A copy of a golden folder that `damage` breaks; import-hf must fail naming `expected` and leave
// the output folder as it was (empty).
void expect_import_refused(const std::string& golden,
                           const std::function<void(const std::string&)>& damage,
                           const std::vector<std::string>& expected) {
  TempDir dir;
  const std::string source = dir.path("source");
  fs::copy(kGolden + golden, source);
  damage(source);
  fs::create_directories(dir.path("output"));
  const testing::CommandResult result =
      run_convert("import-hf --hf " + source + " --out " + dir.path("output/model.h5"));
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_CONTAINS(result.output, "ft_convert: error:");
  for (const std::string& part : expected) EXPECT_CONTAINS(result.output, part);
  EXPECT_TRUE(listing(dir.path("output")).empty());
}

void edit_config(const std::string& folder, const std::function<void(json&)>& edit) {
  json config = read_json(folder + "/config.json");
  edit(config);
  std::ofstream(folder + "/config.json") << config.dump(2);
}

TEST(HfImportErrors, UnsupportedModelTypeIsNamed) {
  expect_import_refused(
      "llama",
      [](const std::string& dir) { edit_config(dir, [](json& c) { c["model_type"] = "falcon"; }); },
      {"model_type \"falcon\" is not supported", "config.json"});
}

TEST(HfImportErrors, UnsupportedArchitectureIsNamed) {
  expect_import_refused(
      "qwen2",
      [](const std::string& dir) {
        edit_config(dir, [](json& c) { c["architectures"] = {"Qwen2ForSequenceClassification"}; });
      },
      {"Qwen2ForSequenceClassification", "architectures", "Qwen2ForCausalLM"});
}

TEST(HfImportErrors, MissingShardIsNamed) {
  expect_import_refused(
      "qwen2_sharded",
      [](const std::string& dir) { fs::remove(dir + "/model-00002-of-00004.safetensors"); },
      {"model-00002-of-00004.safetensors", "does not exist", "model.safetensors.index.json"});
}

TEST(HfImportErrors, ShapeMismatchNamesTheTensorAndBothShapes) {
  expect_import_refused(
      "mistral",
      [](const std::string& dir) {
        edit_config(dir, [](json& c) { c["intermediate_size"] = 56; });
      },
      {"model.layers.0.mlp.gate_proj.weight", "has shape (48, 32), expected (56, 32)"});
}

TEST(HfImportErrors, CorruptHeaderNamesTheFile) {
  expect_import_refused("gpt2",
                        [](const std::string& dir) {
                          std::fstream file(dir + "/model.safetensors",
                                            std::ios::in | std::ios::out | std::ios::binary);
                          file.seekp(8);
                          file.write("[not json", 9);
                        },
                        {"source/model.safetensors: the header is not valid JSON"});
}

TEST(HfImportErrors, ExistingOutputsAreNotOverwritten) {
  TempDir dir;
  const std::string model = dir.write("model.h5", "keep");
  testing::CommandResult result = run_convert("import-hf --hf " + kGolden + "llama --out " + model);
  EXPECT_EQ(result.status, 1);
  EXPECT_CONTAINS(result.output, "--out " + model + " exists");
  EXPECT_EQ(testing::read_file(model), "keep");
  fs::create_directories(dir.path("other_hf"));
  result = run_convert("import-hf --hf " + kGolden + "llama --out " + dir.path("other.h5"));
  EXPECT_CONTAINS(result.output, "--files-out " + dir.path("other_hf") + " exists");
  EXPECT_FALSE(fs::exists(dir.path("other.h5")));
  result = run_convert("import-hf --hf " + dir.path("nowhere") + " --out " + dir.path("x.h5"));
  EXPECT_CONTAINS(result.output, "--hf " + dir.path("nowhere") + ": not a folder");
  result = run_convert("export-hf --checkpoint " + model + " --out " + dir.path("other_hf"));
  EXPECT_CONTAINS(result.output, "--out " + dir.path("other_hf") + " exists");
}

}  // namespace
}  // namespace ft
