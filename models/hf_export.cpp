#include "models/hf_export.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <system_error>

#include "kernels/ops.h"
#include "models/hf_weights.h"
#include "models/param_layout.h"
#include "runtime/checkpoint/safetensors.h"
#include "runtime/error.h"

namespace ft {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// dst (cols, rows) = src (rows, cols)^T for elements of `element` bytes.
std::vector<unsigned char> transposed(const std::vector<unsigned char>& src, int64_t rows,
                                      int64_t cols, size_t element) {
  std::vector<unsigned char> dst(src.size());
  constexpr int64_t kTile = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile)
    for (int64_t c0 = 0; c0 < cols; c0 += kTile)
      for (int64_t r = r0; r < std::min(rows, r0 + kTile); ++r)
        for (int64_t c = c0; c < std::min(cols, c0 + kTile); ++c)
          std::memcpy(&dst[(c * rows + r) * element], &src[(r * cols + c) * element], element);
  return dst;
}

// One tensor in its stored form.
struct EncodedTensor {
  std::string name, dtype;
  std::vector<int64_t> dims;
  std::vector<unsigned char> bytes;
};

// `value` (host) as little-endian `dtype` elements. bf16 values stored as BF16 are copied bit for
// bit; everything else goes through f32 (exact for f32 and bf16 values, rounding f64).
std::vector<unsigned char> encode(const Tensor& value, const std::string& dtype) {
  const int64_t count = value.numel();
  std::vector<unsigned char> bytes(count * (dtype == "F32" ? 4 : 2));
  if (value.dtype == DType::bf16 && dtype == "BF16") {
    std::memcpy(bytes.data(), value.data, bytes.size());
    return bytes;
  }
  std::vector<float> values(count);
  if (value.dtype == DType::f32)
    std::memcpy(values.data(), value.data, count * sizeof(float));
  else
    ops::cast(OpContext{}, Tensor(values.data(), DType::f32, value.shape), value);
  if (dtype == "F32") {
    std::memcpy(bytes.data(), values.data(), bytes.size());
    return bytes;
  }
  std::vector<uint16_t> halves(count);
  for (int64_t i = 0; i < count; ++i)
    halves[i] = dtype == "BF16" ? float_to_bf16(values[i]).bits : float_to_fp16(values[i]);
  std::memcpy(bytes.data(), halves.data(), bytes.size());
  return bytes;
}

EncodedTensor encode_parameter(const ModelConfig& config, const Parameter& param,
                               const std::string& dtype) {
  if (param.value.device != Device::cpu)
    fail("Hugging Face export of {}: the tensor is on {}, expected host memory", param.spec.name,
         device_name(param.value.device));
  EncodedTensor tensor{param.spec.name, dtype, {}, encode(param.value, dtype)};
  const Shape& shape = param.spec.shape;
  tensor.dims.assign(shape.dims.begin(), shape.dims.begin() + shape.rank);
  if (is_conv1d_weight(config, param.spec.name)) {
    tensor.bytes = transposed(tensor.bytes, shape[0], shape[1], dtype == "F32" ? 4 : 2);
    std::swap(tensor.dims[0], tensor.dims[1]);
  }
  return tensor;
}

// save_pretrained's split (huggingface_hub's split_state_dict_into_shards): tensors in order,
// a new shard when the next tensor would overflow the current one, a tensor larger than the
// limit alone in its own shard.
std::vector<std::vector<const EncodedTensor*>> split_into_shards(
    const std::vector<EncodedTensor>& tensors, int64_t max_shard_bytes) {
  std::vector<std::vector<const EncodedTensor*>> shards;
  std::vector<const EncodedTensor*> current;
  int64_t current_bytes = 0;
  for (const EncodedTensor& tensor : tensors) {
    const int64_t bytes = static_cast<int64_t>(tensor.bytes.size());
    if (max_shard_bytes > 0 && bytes > max_shard_bytes) {
      shards.push_back({&tensor});
      continue;
    }
    if (max_shard_bytes > 0 && current_bytes + bytes > max_shard_bytes && !current.empty()) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(&tensor);
    current_bytes += bytes;
  }
  if (!current.empty()) shards.push_back(std::move(current));
  return shards;
}

void write_safetensors(const std::string& path, const std::vector<const EncodedTensor*>& tensors) {
  checkpoint::SafetensorsWriter writer(path);
  for (const EncodedTensor* tensor : tensors)
    writer.add_encoded(tensor->name, tensor->dtype, tensor->dims, tensor->bytes.data());
  writer.set_metadata("format", "pt");  // transformers refuses files without it
  writer.commit();
}

json parse_config(const std::string& text, const std::string& what) {
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object())
    fail("{}: not a JSON object (expected a Hugging Face config.json)", what);
  return parsed;
}

}  // namespace

uint16_t float_to_fp16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u)  // NaN: keep the top payload bits, quiet
    return sign | 0x7e00u | static_cast<uint16_t>((magnitude >> 13) & 0x3ffu);
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // rounds past 65504: infinity
  if (magnitude < 0x38800000u) {
    // Below 2^-14: a subnormal half, in units of 2^-24. The scaling is exact, nearbyint rounds
    // to nearest even (the default mode), and 1024 units encode the smallest normal correctly.
    const float units = std::bit_cast<float>(magnitude) * 16777216.0f;
    return sign | static_cast<uint16_t>(std::nearbyint(units));
  }
  const uint32_t rebased = magnitude - (112u << 23);  // exponent bias 127 -> 15
  const uint32_t rounded = rebased + 0xfffu + ((rebased >> 13) & 1u);
  return sign | static_cast<uint16_t>(rounded >> 13);
}

StagedFolder::StagedFolder(std::string dir) : dir_(std::move(dir)) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  if (dir_.empty()) fail("output folder: empty path");
  if (fs::exists(dir_)) fail("{} exists: ft_convert does not overwrite files or folders", dir_);
  staging_ = dir_ + ".tmp";
  std::error_code error;
  fs::remove_all(staging_, error);
  if (!fs::create_directories(staging_, error) || error)
    fail("{}: cannot create the staging folder {}: {}", dir_, staging_, error.message());
}

StagedFolder::~StagedFolder() {
  if (committed_) return;
  std::error_code error;
  fs::remove_all(staging_, error);  // best effort: a destructor does not throw
}

std::string StagedFolder::path(const std::string& name) const {
  return (fs::path(staging_) / name).string();
}

void StagedFolder::copy_in(const std::string& file) const {
  std::error_code error;
  fs::copy_file(file, path(fs::path(file).filename().string()),
                fs::copy_options::overwrite_existing, error);
  if (error) fail("{}: cannot copy {} into it: {}", dir_, file, error.message());
}

void StagedFolder::write_text(const std::string& name, const std::string& text) const {
  std::ofstream out(path(name), std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) fail("{}: cannot write {}", dir_, path(name));
}

void StagedFolder::commit() {
  if (committed_) fail("{}: committed twice", dir_);
  if (fs::exists(dir_)) fail("{} appeared while it was written: not overwriting it", dir_);
  std::error_code error;
  fs::rename(staging_, dir_, error);
  if (error) fail("{}: cannot rename {} to it: {}", dir_, staging_, error.message());
  committed_ = true;
}

std::string hf_storage_dtype(const std::string& name, const std::string& option) {
  if (name == "fp32") return "F32";
  if (name == "fp16") return "F16";
  if (name == "bf16") return "BF16";
  fail("{} {}: expected fp32, fp16 or bf16", option, name);
}

std::string hf_torch_dtype(const std::string& storage_dtype) {
  if (storage_dtype == "F32") return "float32";
  if (storage_dtype == "F16") return "float16";
  if (storage_dtype == "BF16") return "bfloat16";
  fail("no torch_dtype for the safetensors dtype {} (expected F32, F16 or BF16)", storage_dtype);
}

int64_t parse_byte_size(const std::string& text, const std::string& option) {
  size_t digits = 0;
  while (digits < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.'))
    ++digits;
  std::string unit = text.substr(digits);
  std::transform(unit.begin(), unit.end(), unit.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  const std::pair<const char*, double> units[] = {
      {"", 1},     {"B", 1},        {"KB", 1e3},        {"MB", 1e6},
      {"GB", 1e9}, {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}};
  for (const auto& [name, factor] : units) {
    if (unit != name || digits == 0) continue;
    double number = 0;
    try {
      number = std::stod(text.substr(0, digits));
    } catch (const std::exception&) {
      break;
    }
    const double bytes = number * factor;
    if (bytes >= 1 && bytes < 9e18) return static_cast<int64_t>(bytes);
    break;
  }
  fail("{} '{}': expected a size such as 5GB, 200MB, 100KiB or a number of bytes (at least 1)",
       option, text);
}

std::string hf_config_json(const ModelConfig& c, const std::string& torch_dtype) {
  json j;
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["initializer_range"] = c.init_std;
  j["tie_word_embeddings"] = c.tied_embeddings;
  j["torch_dtype"] = torch_dtype;
  if (c.model_type == "gpt2") {
    j["architectures"] = {"GPT2LMHeadModel"};
    j["n_embd"] = c.hidden_size;
    j["n_layer"] = c.num_layers;
    j["n_head"] = c.num_heads;
    j["n_inner"] = c.intermediate_size;
    j["n_positions"] = c.max_position_embeddings;
    j["layer_norm_epsilon"] = c.norm_eps;
    j["activation_function"] = "gelu_new";
    return j.dump(2) + "\n";
  }
  const std::map<std::string, std::string> architectures = {{"llama", "LlamaForCausalLM"},
                                                            {"mistral", "MistralForCausalLM"},
                                                            {"qwen2", "Qwen2ForCausalLM"}};
  auto architecture = architectures.find(c.model_type);
  if (architecture == architectures.end())
    fail(
        "model {}: model_type '{}' has no Hugging Face config (expected llama, mistral, qwen2 or "
        "gpt2)",
        c.name, c.model_type);
  j["architectures"] = {architecture->second};
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  if (c.model_type != "qwen2") j["head_dim"] = c.head_dim;  // Qwen2 derives it
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["hidden_act"] = "silu";
  j["rope_scaling"] = nullptr;
  if (c.rope_scaling.factor > 0)
    j["rope_scaling"] = {
        {"rope_type", "llama3"},
        {"factor", c.rope_scaling.factor},
        {"low_freq_factor", c.rope_scaling.low_freq_factor},
        {"high_freq_factor", c.rope_scaling.high_freq_factor},
        {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  if (c.model_type == "llama") {
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
  }
  if (c.model_type == "mistral")
    j["sliding_window"] = c.sliding_window > 0 ? json(c.sliding_window) : json(nullptr);
  if (c.model_type == "qwen2") {
    j["use_sliding_window"] = c.sliding_window > 0;
    if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
  }
  return j.dump(2) + "\n";
}

std::string patch_hf_config_json(const std::string& config_json, const std::string& torch_dtype,
                                 int64_t max_positions) {
  json j = parse_config(config_json, "config.json");
  bool changed = false;
  auto set = [&](const char* key, const json& value) {
    if (j.contains(key) && j.at(key) == value) return;
    j[key] = value;
    changed = true;
  };
  set("torch_dtype", torch_dtype);
  if (max_positions > 0)
    set(j.value("model_type", "") == "gpt2" ? "n_positions" : "max_position_embeddings",
        max_positions);
  return changed ? j.dump(2) + "\n" : config_json;
}

void check_hf_config_matches(const std::string& path, const ModelConfig& expected) {
  const ModelConfig got = model_config_from_hf(path);
  auto same = [&](const char* field, auto written, auto model) {
    if (written != model)
      fail("{}: {} is {}, but the model being exported has {}", path, field, written, model);
  };
  same("model_type", got.model_type, expected.model_type);
  same("vocab_size", got.vocab_size, expected.vocab_size);
  same("hidden_size", got.hidden_size, expected.hidden_size);
  same("num_hidden_layers", got.num_layers, expected.num_layers);
  same("num_attention_heads", got.num_heads, expected.num_heads);
  same("num_key_value_heads", got.num_kv_heads, expected.num_kv_heads);
  same("head_dim", got.head_dim, expected.head_dim);
  same("intermediate_size", got.intermediate_size, expected.intermediate_size);
  same("max_position_embeddings", got.max_position_embeddings, expected.max_position_embeddings);
  same("the norm (rms or layer)", static_cast<int>(got.norm), static_cast<int>(expected.norm));
  same("the norm epsilon", got.norm_eps, expected.norm_eps);
  same("the positions (rope or learned)", static_cast<int>(got.positions),
       static_cast<int>(expected.positions));
  same("the MLP (swiglu or gelu)", static_cast<int>(got.mlp), static_cast<int>(expected.mlp));
  same("rope_theta", got.rope_theta, expected.rope_theta);
  same("rope_scaling factor", got.rope_scaling.factor, expected.rope_scaling.factor);
  same("rope_scaling low_freq_factor", got.rope_scaling.low_freq_factor,
       expected.rope_scaling.low_freq_factor);
  same("rope_scaling high_freq_factor", got.rope_scaling.high_freq_factor,
       expected.rope_scaling.high_freq_factor);
  same("rope_scaling original_max_position_embeddings",
       got.rope_scaling.original_max_position_embeddings,
       expected.rope_scaling.original_max_position_embeddings);
  same("q/k/v biases", got.qkv_bias, expected.qkv_bias);
  same("linear biases", got.linear_bias, expected.linear_bias);
  same("tie_word_embeddings", got.tied_embeddings, expected.tied_embeddings);
  same("sliding_window", got.sliding_window, expected.sliding_window);
}

std::vector<std::string> hf_side_files(const std::string& folder) {
  std::vector<std::string> files;
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "generation_config.json", "tokenizer.model", "vocab.json", "merges.txt",
                           "added_tokens.json"}) {
    const fs::path file = fs::path(folder) / name;
    if (fs::is_regular_file(file)) files.push_back(file.string());
  }
  return files;
}

std::vector<std::string> write_hf_weights(const std::string& folder, const ModelConfig& config,
                                          const ParameterStore& params,
                                          const HfWeightOptions& options) {
  std::vector<EncodedTensor> tensors;
  for (const ParamSpec& spec : transformer_param_specs(config)) {
    if (!params.contains(spec.name))
      fail("Hugging Face export to {}: the parameters hold no '{}' ({})", folder, spec.name,
           config.summary());
    std::string dtype = options.dtype;
    if (dtype.empty()) {
      auto source = options.source_dtypes.find(spec.name);
      dtype = source != options.source_dtypes.end() ? source->second : "F32";
    }
    if (dtype != "F32" && dtype != "F16" && dtype != "BF16")
      fail("Hugging Face export of {}: storage dtype {} is not supported (F32, F16 or BF16)",
           spec.name, dtype);
    tensors.push_back(encode_parameter(config, params.at(spec.name), dtype));
  }
  const auto shards = split_into_shards(tensors, options.max_shard_bytes);
  const fs::path dir(folder);
  if (shards.size() == 1) {
    write_safetensors((dir / "model.safetensors").string(), shards.front());
    return {(dir / "model.safetensors").string()};
  }
  std::vector<std::string> written;
  json weight_map = json::object();
  int64_t total_size = 0;
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name =
        fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
    write_safetensors((dir / name).string(), shards[i]);
    written.push_back((dir / name).string());
    for (const EncodedTensor* tensor : shards[i]) {
      weight_map[tensor->name] = name;
      total_size += static_cast<int64_t>(tensor->bytes.size());
    }
  }
  const json index = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
  const std::string index_path = (dir / "model.safetensors.index.json").string();
  std::ofstream out(index_path, std::ios::binary | std::ios::trunc);
  out << index.dump(2) << "\n";
  out.close();
  if (!out) fail("Hugging Face export: cannot write {}", index_path);
  written.push_back(index_path);
  return written;
}

}  // namespace ft
