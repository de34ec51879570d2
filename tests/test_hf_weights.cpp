// Loading a base model from Hugging Face safetensors: every parameter equal to the stored tensor
// (GPT-2's Conv1D matrices transposed), in fp32, fp64 and bf16; single files, folders and sharded
// checkpoints with an index, hub-style GPT-2 names without "transformer.", buffers skipped; and
// errors that name the file, the tensor and the shapes.
//
// The checkpoints are the PEFT goldens' base models (tests/data/peft_golden/*/model.safetensors);
// the sharded and broken ones are written here from them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "models/hf_weights.h"
#include "models/model_config.h"
#include "models/param_layout.h"
#include "runtime/checkpoint/safetensors.h"
#include "runtime/parameters.h"
#include "tests/support/gradcheck.h"
#include "tests/support/temp_dir.h"

namespace ft {
namespace {

using checkpoint::SafetensorsReader;
using checkpoint::SafetensorsWriter;
using testing::error_message;
using testing::TempDir;

const std::string kGolden = std::string(FT_TEST_DATA_DIR) + "/peft_golden/";
const std::string kLlama = kGolden + "llama_lora/";
const std::string kGpt2 = kGolden + "gpt2_lora/";

void expect_contains(const std::string& text, const std::vector<std::string>& parts) {
  for (const std::string& part : parts)
    EXPECT_NE(text.find(part), std::string::npos) << "expected '" << part << "' in: " << text;
}

// A stored tensor as doubles (every golden tensor is F32, so this is exact).
std::vector<double> stored_values(const SafetensorsReader& reader, const std::string& name) {
  std::vector<double> values(reader.entry(name).numel);
  reader.read(name, Tensor(values.data(), DType::f64, reader.shape(name)));
  return values;
}

std::vector<double> param_values(const Parameter& param) {
  std::vector<double> values(param.value.numel());
  for (int64_t i = 0; i < param.value.numel(); ++i) {
    switch (param.value.dtype) {
      case DType::f32:
        values[i] = param.value.ptr<float>()[i];
        break;
      case DType::f64:
        values[i] = param.value.ptr<double>()[i];
        break;
      case DType::bf16:
        values[i] = bf16_to_float(param.value.ptr<bf16>()[i]);
        break;
      default:
        ADD_FAILURE() << "unexpected dtype";
    }
  }
  return values;
}

bool is_conv1d(const std::string& name) {
  for (const char* suffix :
       {"attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"}) {
    const std::string s = suffix;
    if (name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0)
      return true;
  }
  return false;
}

// Every parameter equals the stored tensor `stored_name(param)` of `file` (rounded to bf16 for a
// bf16 store), transposed for GPT-2's Conv1D weights.
void expect_params_equal_file(const ModelConfig& config, const ParameterStore& params,
                              const std::string& file,
                              const std::function<std::string(const std::string&)>& stored_name) {
  SafetensorsReader reader(file);
  for (const Parameter& param : params.all()) {
    SCOPED_TRACE(param.spec.name);
    const std::string stored = stored_name(param.spec.name);
    ASSERT_TRUE(reader.contains(stored)) << stored;
    const std::vector<double> expected = stored_values(reader, stored);
    const std::vector<double> actual = param_values(param);
    ASSERT_EQ(expected.size(), actual.size());
    const bool transposed = config.model_type == "gpt2" && is_conv1d(param.spec.name);
    const int64_t rows = param.spec.shape[0];
    const int64_t cols = param.spec.shape.rank > 1 ? param.spec.shape[1] : 1;
    int64_t mismatches = 0;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        double want = transposed ? expected[c * rows + r] : expected[r * cols + c];
        if (param.value.dtype == DType::bf16)
          want = bf16_to_float(float_to_bf16(static_cast<float>(want)));
        mismatches += actual[r * cols + c] != want;
      }
    }
    EXPECT_EQ(mismatches, 0);
  }
}

std::string same_name(const std::string& name) {
  return name;
}

ParameterStore base_store(const ModelConfig& config, DType dtype) {
  return ParameterStore(transformer_param_specs(config), dtype, Device::cpu);
}

// Copies the tensors of `source` into `writer`, renamed by `rename` ("" drops the tensor).
void copy_tensors(const std::string& source, SafetensorsWriter& writer,
                  const std::function<std::string(const std::string&)>& rename) {
  SafetensorsReader reader(source);
  for (const std::string& name : reader.names()) {
    const std::string target = rename(name);
    if (target.empty()) continue;
    std::vector<float> values(reader.entry(name).numel);
    Tensor tensor(values.data(), DType::f32, reader.shape(name));
    reader.read(name, tensor);
    writer.add(target, tensor);
  }
}

void add_zeros(SafetensorsWriter& writer, const std::string& name, Shape shape) {
  std::vector<float> zeros(shape.numel(), 0.0f);
  writer.add(name, Tensor(zeros.data(), DType::f32, shape));
}

// A copy of `source` with `rename` applied and `extra` tensors (zeros) added.
std::string write_variant(const TempDir& dir, const std::string& file, const std::string& source,
                          const std::function<std::string(const std::string&)>& rename,
                          const std::map<std::string, Shape>& extra = {}) {
  const std::string path = dir.path(file);
  SafetensorsWriter writer(path);
  copy_tensors(source, writer, rename);
  for (const auto& [name, shape] : extra) add_zeros(writer, name, shape);
  writer.commit();
  return path;
}

TEST(HfWeights, LlamaEveryParameterEqualsTheFile) {
  const ModelConfig config = model_config_from_hf(kLlama + "config.json");
  for (DType dtype : {DType::f32, DType::f64, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dtype));
    ParameterStore params = base_store(config, dtype);
    load_hf_weights(kLlama + "model.safetensors", config, params);
    expect_params_equal_file(config, params, kLlama + "model.safetensors", same_name);
  }
  // One value by hand: the store's (out, in) q_proj is the file's row-major (out, in).
  ParameterStore params = base_store(config, DType::f32);
  load_hf_weights(kLlama, config, params);  // the folder
  SafetensorsReader reader(kLlama + "model.safetensors");
  const std::string q = "model.layers.1.self_attn.q_proj.weight";
  const std::vector<double> stored = stored_values(reader, q);
  EXPECT_EQ(params.at(q).value.ptr<float>()[5 * 32 + 7], static_cast<float>(stored[5 * 32 + 7]));
  EXPECT_NE(stored[5 * 32 + 7], 0.0);
}

TEST(HfWeights, Gpt2ConvWeightsAreTransposedAndTiedHeadIsAbsent) {
  const ModelConfig config = model_config_from_hf(kGpt2 + "config.json");
  ASSERT_TRUE(config.tied_embeddings);
  ParameterStore params = base_store(config, DType::f32);
  load_hf_weights(kGpt2 + "model.safetensors", config, params);
  expect_params_equal_file(config, params, kGpt2 + "model.safetensors", same_name);

  // c_fc: stored (in 32, out 128), ft (out 128, in 32); element (o, i) is stored at (i, o).
  SafetensorsReader reader(kGpt2 + "model.safetensors");
  const std::string fc = "transformer.h.0.mlp.c_fc.weight";
  EXPECT_EQ(reader.shape(fc), (Shape{32, 128}));
  EXPECT_EQ(params.at(fc).value.shape, (Shape{128, 32}));
  const std::vector<double> stored = stored_values(reader, fc);
  const int64_t o = 100, i = 3;
  EXPECT_EQ(params.at(fc).value.ptr<float>()[o * 32 + i], static_cast<float>(stored[i * 128 + o]));
  EXPECT_NE(stored[i * 128 + o], stored[o * 32 + i]);
}

TEST(HfWeights, HubGpt2NamesWithoutPrefixAndBuffersLoad) {
  // The hub's gpt2 checkpoints: "h.0.attn.c_attn.weight", "wte.weight", the attn.bias and
  // attn.masked_bias buffers, and sometimes lm_head.weight (tied: skipped).
  const ModelConfig config = model_config_from_hf(kGpt2 + "config.json");
  TempDir dir;
  const std::string path = write_variant(
      dir, "hub/model.safetensors", kGpt2 + "model.safetensors",
      [](const std::string& name) { return name.substr(std::string("transformer.").size()); },
      {{"h.0.attn.bias", Shape{1, 1, 64, 64}},
       {"h.1.attn.bias", Shape{1, 1, 64, 64}},
       {"h.0.attn.masked_bias", Shape{}},
       {"lm_head.weight", Shape{64, 32}}});
  ParameterStore params = base_store(config, DType::f32);
  load_hf_weights(dir.path("hub"), config, params);
  expect_params_equal_file(config, params, path, [](const std::string& name) {
    return name.substr(std::string("transformer.").size());
  });
}

TEST(HfWeights, ShardedCheckpointWithIndex) {
  const ModelConfig config = model_config_from_hf(kLlama + "config.json");
  TempDir dir;
  const std::string source = kLlama + "model.safetensors";
  auto in_first = [](const std::string& name) {
    return name.find("layers.0.") != std::string::npos || name == "model.embed_tokens.weight";
  };
  write_variant(dir, "sharded/model-00001-of-00002.safetensors", source,
                [&](const std::string& name) { return in_first(name) ? name : ""; });
  // The second shard also holds a rotary buffer, as older Llama checkpoints do.
  write_variant(dir, "sharded/model-00002-of-00002.safetensors", source,
                [&](const std::string& name) { return in_first(name) ? "" : name; },
                {{"model.layers.1.self_attn.rotary_emb.inv_freq", Shape{4}}});
  std::string weight_map;
  SafetensorsReader reader(source);
  for (const std::string& name : reader.names())
    weight_map += (weight_map.empty() ? "" : ",\n") + ("\"" + name + "\": \"model-0000") +
                  (in_first(name) ? "1" : "2") + "-of-00002.safetensors\"";
  weight_map +=
      ",\n\"model.layers.1.self_attn.rotary_emb.inv_freq\": "
      "\"model-00002-of-00002.safetensors\"";
  const std::string index =
      "{\"metadata\": {\"total_size\": 1}, \"weight_map\": {" + weight_map + "}}";
  dir.write("sharded/model.safetensors.index.json", index);

  for (const std::string& path :
       {dir.path("sharded"), dir.path("sharded/model.safetensors.index.json")}) {
    SCOPED_TRACE(path);
    ParameterStore params = base_store(config, DType::f32);
    load_hf_weights(path, config, params);
    expect_params_equal_file(config, params, source, same_name);
  }

  // An index that puts a tensor in the wrong shard, or names a shard that is not there.
  std::string wrong = index;
  const std::string norm_entry = "\"model.norm.weight\": \"model-00002-of-00002.safetensors\"";
  ASSERT_NE(wrong.find(norm_entry), std::string::npos);
  wrong.replace(wrong.find(norm_entry), norm_entry.size(),
                "\"model.norm.weight\": \"model-00001-of-00002.safetensors\"");
  dir.write("sharded/model.safetensors.index.json", wrong);
  ParameterStore params = base_store(config, DType::f32);
  expect_contains(error_message([&] { load_hf_weights(dir.path("sharded"), config, params); }),
                  {"model-00001-of-00002.safetensors", "model.norm.weight", "index"});
  std::string absent = index;
  absent.replace(absent.find(norm_entry), norm_entry.size(),
                 "\"model.norm.weight\": \"model-00003-of-00002.safetensors\"");
  dir.write("sharded/model.safetensors.index.json", absent);
  expect_contains(error_message([&] { load_hf_weights(dir.path("sharded"), config, params); }),
                  {"model-00003-of-00002.safetensors", "model.norm.weight", "does not exist"});
  dir.write("sharded/model.safetensors.index.json", "{\"metadata\": {}}");
  expect_contains(error_message([&] { load_hf_weights(dir.path("sharded"), config, params); }),
                  {"model.safetensors.index.json", "weight_map"});
}

TEST(HfWeights, MissingTensorIsNamed) {
  const ModelConfig config = model_config_from_hf(kLlama + "config.json");
  TempDir dir;
  const std::string missing = "model.layers.1.mlp.down_proj.weight";
  const std::string path =
      write_variant(dir, "missing.safetensors", kLlama + "model.safetensors",
                    [&](const std::string& name) { return name == missing ? "" : name; });
  ParameterStore params = base_store(config, DType::f32);
  expect_contains(error_message([&] { load_hf_weights(path, config, params); }),
                  {path, missing, "missing", "(32, 48)"});
}

TEST(HfWeights, WrongShapeNamesTensorAndBothShapes) {
  const ModelConfig config = model_config_from_hf(kLlama + "config.json");
  TempDir dir;
  const std::string wrong = "model.layers.0.self_attn.k_proj.weight";  // (16, 32)
  const std::string path = write_variant(
      dir, "wrong.safetensors", kLlama + "model.safetensors",
      [&](const std::string& name) { return name == wrong ? "" : name; }, {{wrong, Shape{32, 32}}});
  ParameterStore params = base_store(config, DType::f32);
  expect_contains(error_message([&] { load_hf_weights(path, config, params); }),
                  {path, wrong, "(32, 32)", "expected (16, 32)"});
}

TEST(HfWeights, Gpt2ConvWeightInFtOrientationIsRefused) {
  // A c_fc weight saved (out, in) (as a Linear would be) is not silently taken.
  const ModelConfig config = model_config_from_hf(kGpt2 + "config.json");
  TempDir dir;
  const std::string fc = "transformer.h.1.mlp.c_fc.weight";
  const std::string path = write_variant(
      dir, "linear.safetensors", kGpt2 + "model.safetensors",
      [&](const std::string& name) { return name == fc ? "" : name; }, {{fc, Shape{128, 32}}});
  ParameterStore params = base_store(config, DType::f32);
  expect_contains(error_message([&] { load_hf_weights(path, config, params); }),
                  {path, fc, "(128, 32)", "expected (32, 128)", "(in, out)"});
}

TEST(HfWeights, UnexpectedTensorsAreRefused) {
  // A checkpoint with a third layer does not half-load into the two-layer model.
  const ModelConfig config = model_config_from_hf(kLlama + "config.json");
  TempDir dir;
  const std::string path =
      write_variant(dir, "deeper.safetensors", kLlama + "model.safetensors", same_name,
                    {{"model.layers.2.input_layernorm.weight", Shape{32}}});
  ParameterStore params = base_store(config, DType::f32);
  expect_contains(error_message([&] { load_hf_weights(path, config, params); }),
                  {path, "model.layers.2.input_layernorm.weight", "1 tensor"});
  // Found before any parameter was written: the store keeps its (zeroed) values.
  const std::vector<double> embedding = param_values(params.at("model.embed_tokens.weight"));
  EXPECT_EQ(std::count(embedding.begin(), embedding.end(), 0.0),
            static_cast<std::ptrdiff_t>(embedding.size()));
  // An untied model needs its lm_head.
  const std::string headless =
      write_variant(dir, "headless.safetensors", kLlama + "model.safetensors",
                    [](const std::string& name) { return name == "lm_head.weight" ? "" : name; });
  expect_contains(error_message([&] { load_hf_weights(headless, config, params); }),
                  {"lm_head.weight", "missing"});
}

TEST(HfWeights, PathsThatHoldNoCheckpoint) {
  const ModelConfig config = model_config_from_hf(kLlama + "config.json");
  ParameterStore params = base_store(config, DType::f32);
  TempDir dir;
  expect_contains(error_message([&] { load_hf_weights(dir.path(), config, params); }),
                  {dir.path(), "model.safetensors", "model.safetensors.index.json"});
  expect_contains(
      error_message([&] { load_hf_weights(dir.path("nothing.safetensors"), config, params); }),
      {dir.path("nothing.safetensors"), "no such file"});
  // A store built for another model.
  const ModelConfig gpt2 = model_config_from_hf(kGpt2 + "config.json");
  expect_contains(error_message([&] { load_hf_weights(kGpt2, gpt2, params); }),
                  {"transformer.wte.weight"});
}

}  // namespace
}  // namespace ft
