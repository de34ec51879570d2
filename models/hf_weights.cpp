#include "models/hf_weights.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>
#include <vector>

#include "models/param_layout.h"
#include "runtime/buffer.h"
#include "runtime/checkpoint/safetensors.h"
#include "runtime/device.h"

namespace ft {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

// Where every stored tensor lives: one reader per file, and the name -> reader map (for a sharded
// checkpoint, the index's weight_map).
struct WeightFiles {
  std::string description;  // the file or index named in errors
  std::vector<std::unique_ptr<checkpoint::SafetensorsReader>> readers;
  std::map<std::string, const checkpoint::SafetensorsReader*> tensors;
};

WeightFiles open_single(const std::string& file) {
  WeightFiles files;
  files.description = file;
  files.readers.push_back(std::make_unique<checkpoint::SafetensorsReader>(file));
  for (const std::string& name : files.readers.front()->names())
    files.tensors[name] = files.readers.front().get();
  return files;
}

WeightFiles open_sharded(const std::string& index_path) {
  std::ifstream stream(index_path);
  if (!stream) fail("{}: cannot open the sharded checkpoint's index", index_path);
  const json index = json::parse(stream, nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded() || !index.is_object()) fail("{}: not a JSON object", index_path);
  auto weight_map = index.find("weight_map");
  if (weight_map == index.end() || !weight_map->is_object())
    fail("{}: 'weight_map' (tensor name -> shard file) is missing or not an object", index_path);

  WeightFiles files;
  files.description = index_path;
  const fs::path folder = fs::path(index_path).parent_path();
  std::map<std::string, const checkpoint::SafetensorsReader*> shards;
  for (const auto& [name, shard] : weight_map->items()) {
    if (!shard.is_string())
      fail("{}: weight_map['{}'] is {}, expected a shard file name", index_path, name,
           shard.dump());
    const std::string shard_name = shard.get<std::string>();
    auto found = shards.find(shard_name);
    if (found == shards.end()) {
      const std::string shard_path = (folder / shard_name).string();
      if (!fs::is_regular_file(shard_path))
        fail("{}: weight_map['{}'] names shard {}, which does not exist", index_path, name,
             shard_path);
      files.readers.push_back(std::make_unique<checkpoint::SafetensorsReader>(shard_path));
      found = shards.emplace(shard_name, files.readers.back().get()).first;
    }
    if (!found->second->contains(name))
      fail(
          "{}: the index's weight_map puts tensor '{}' in this shard, which does not hold it "
          "(index {})",
          found->second->path(), name, index_path);
    files.tensors[name] = found->second;
  }
  return files;
}

WeightFiles open_weight_files(const std::string& path) {
  if (fs::is_directory(path)) {
    const fs::path folder(path);
    if (fs::is_regular_file(folder / kSingleFile))
      return open_single((folder / kSingleFile).string());
    if (fs::is_regular_file(folder / kIndexFile))
      return open_sharded((folder / kIndexFile).string());
    fail("{}: holds neither {} nor {} (a Hugging Face model folder has one of them)", path,
         kSingleFile, kIndexFile);
  }
  if (!fs::is_regular_file(path))
    fail("{}: no such file or folder (expected a Hugging Face {}, a {} or a folder holding one)",
         path, kSingleFile, kIndexFile);
  if (path.ends_with(".json")) return open_sharded(path);
  return open_single(path);
}

// Tensors a checkpoint may hold that are not parameters of ft's model.
bool is_skippable(const ModelConfig& config, const std::string& name) {
  if (name.ends_with("rotary_emb.inv_freq")) return true;
  if (config.model_type == "gpt2" &&
      (name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias")))
    return true;
  return config.tied_embeddings && name == "lm_head.weight";
}

// The stored name of parameter `name`: itself, or for GPT-2 the name without "transformer.".
bool find_stored(const WeightFiles& files, const ModelConfig& config, const std::string& name,
                 std::string& stored) {
  stored = name;
  if (files.tensors.count(stored)) return true;
  const std::string prefix = "transformer.";
  if (config.model_type == "gpt2" && name.rfind(prefix, 0) == 0) {
    stored = name.substr(prefix.size());
    if (files.tensors.count(stored)) return true;
  }
  return false;
}

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string text = "(";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
  return text + ")";  // as Shape::str, for any rank
}

// dst (cols, rows) = src (rows, cols)^T for elements of type Word, in cache-sized tiles.
template <typename Word>
void transpose(Word* dst, const Word* src, int64_t rows, int64_t cols) {
  constexpr int64_t kTile = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile)
    for (int64_t c0 = 0; c0 < cols; c0 += kTile)
      for (int64_t r = r0; r < std::min(rows, r0 + kTile); ++r)
        for (int64_t c = c0; c < std::min(cols, c0 + kTile); ++c)
          dst[c * rows + r] = src[r * cols + c];
}

void transpose_bytes(void* dst, const void* src, int64_t rows, int64_t cols, size_t element) {
  switch (element) {
    case 2:
      return transpose(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), rows, cols);
    case 4:
      return transpose(static_cast<uint32_t*>(dst), static_cast<const uint32_t*>(src), rows, cols);
    case 8:
      return transpose(static_cast<uint64_t*>(dst), static_cast<const uint64_t*>(src), rows, cols);
    default:
      fail("transpose of {}-byte elements is not supported", element);
  }
}

// Fails unless `stored` has the shape of `spec` (transposed for GPT-2's Conv1D weights).
void check_shape(const checkpoint::SafetensorsReader& reader, const std::string& stored,
                 const ModelConfig& config, const ParamSpec& spec) {
  const bool transposed = is_conv1d_weight(config, spec.name);
  std::vector<int64_t> expected(spec.shape.dims.begin(), spec.shape.dims.begin() + spec.shape.rank);
  if (transposed) std::swap(expected[0], expected[1]);
  const checkpoint::SafetensorsEntry& entry = reader.entry(stored);
  if (entry.dims != expected)
    fail("{}: tensor '{}' has shape {}, expected {}{}", reader.path(), stored, dims_str(entry.dims),
         dims_str(expected), transposed ? " (GPT-2 Conv1D weights are stored (in, out))" : "");
}

void load_parameter(const checkpoint::SafetensorsReader& reader, const std::string& stored,
                    const ModelConfig& config, const Parameter& param) {
  const Shape& shape = param.spec.shape;
  const Tensor& value = param.value;
  const bool transposed = is_conv1d_weight(config, param.spec.name);
  if (!transposed && value.device == Device::cpu) {
    reader.read(stored, value);
    return;
  }
  Buffer staging(Device::cpu, value.bytes());
  if (!transposed) {
    reader.read(stored, staging.view(value.dtype, shape));
    copy_tensor(value, staging.view(value.dtype, shape));
    return;
  }
  const Shape stored_shape{shape[1], shape[0]};
  reader.read(stored, staging.view(value.dtype, stored_shape));
  Buffer turned(Device::cpu, value.bytes());
  transpose_bytes(turned.data(), staging.data(), shape[1], shape[0], dtype_size(value.dtype));
  copy_tensor(value, turned.view(value.dtype, shape));
}

}  // namespace

void load_hf_weights(const std::string& path, const ModelConfig& config,
                     const ParameterStore& params) {
  const WeightFiles files = open_weight_files(path);
  // Every name and shape is checked before the first parameter is overwritten.
  std::vector<std::pair<std::string, std::string>> plan;  // (parameter, stored name)
  std::set<std::string> used;
  for (const ParamSpec& spec : transformer_param_specs(config)) {
    if (!params.contains(spec.name))
      fail("load_hf_weights({}): the parameter store has no '{}' (built for another model?)", path,
           spec.name);
    std::string stored;
    if (!find_stored(files, config, spec.name, stored))
      fail("{}: tensor '{}' is missing (the model needs it with shape {}{})", files.description,
           spec.name, spec.shape.str(),
           is_conv1d_weight(config, spec.name) ? ", stored transposed" : "");
    check_shape(*files.tensors.at(stored), stored, config, spec);
    plan.emplace_back(spec.name, stored);
    used.insert(stored);
  }

  std::vector<std::string> unexpected;
  for (const auto& [name, reader] : files.tensors)
    if (!used.count(name) && !is_skippable(config, name)) unexpected.push_back(name);
  if (!unexpected.empty()) {
    std::string listed;
    for (size_t i = 0; i < std::min<size_t>(unexpected.size(), 5); ++i)
      listed += (i ? ", " : "") + ("'" + unexpected[i] + "'");
    fail("{}: {} tensor(s) that {} has no parameter for: {}{} (a checkpoint of another model?)",
         files.description, unexpected.size(), config.summary(), listed,
         unexpected.size() > 5 ? ", ..." : "");
  }

  for (const auto& [name, stored] : plan)
    load_parameter(*files.tensors.at(stored), stored, config, params.at(name));
}

std::map<std::string, std::string> hf_tensor_dtypes(const std::string& path,
                                                    const ModelConfig& config) {
  const WeightFiles files = open_weight_files(path);
  std::map<std::string, std::string> dtypes;
  for (const ParamSpec& spec : transformer_param_specs(config)) {
    std::string stored;
    if (find_stored(files, config, spec.name, stored))
      dtypes[spec.name] = files.tensors.at(stored)->entry(stored).dtype;
  }
  return dtypes;
}

std::string hf_config_file(const std::string& path) {
  return fs::is_directory(path) ? (fs::path(path) / "config.json").string() : path;
}

bool is_conv1d_weight(const ModelConfig& config, const std::string& name) {
  if (config.model_type != "gpt2") return false;
  for (const char* suffix :
       {".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight"})
    if (name.ends_with(suffix)) return true;
  return false;
}

}  // namespace ft
