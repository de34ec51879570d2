// Writing Hugging Face model folders from ft parameters: config.json, model.safetensors (or
// shards model-0000k-of-0000n.safetensors with model.safetensors.index.json, split as
// transformers' save_pretrained splits them) and the tokenizer files that travel with a model.
//
// Tensors are written under their Hugging Face names in a chosen storage dtype (F32, F16 or
// BF16, rounding to nearest even), with save_pretrained's metadata {"format": "pt"}. GPT-2's
// Conv1D matrices go back to (in, out); a tied LM head is not written (transformers drops it
// too). Reading the folder back with load_hf_weights gives the same values; a model imported from
// a folder and exported in the dtypes it came in has the same bytes for every tensor.
//
// Crash safety: a folder is assembled under `<dir>.tmp` (StagedFolder) and renamed to `dir` only
// once complete; a failure removes the staging folder and never leaves a partial `dir`.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "models/model_config.h"
#include "runtime/parameters.h"

namespace ft {

// A folder built under `<dir>.tmp` and renamed to `dir` by commit().
class StagedFolder {
 public:
  // Refuses an existing `dir` (nothing is overwritten); replaces a stale `<dir>.tmp`.
  explicit StagedFolder(std::string dir);
  // If not committed: removes the staging folder (never `dir`).
  ~StagedFolder();
  StagedFolder(const StagedFolder&) = delete;
  StagedFolder& operator=(const StagedFolder&) = delete;

  const std::string& dir() const { return dir_; }
  // `name` inside the staging folder.
  std::string path(const std::string& name) const;
  // Copies `file` into the staging folder under its own name.
  void copy_in(const std::string& file) const;
  void write_text(const std::string& name, const std::string& text) const;
  // Renames the staging folder to `dir`.
  void commit();

 private:
  std::string dir_, staging_;
  bool committed_ = false;
};

// IEEE binary16 bits of `value`, rounded to nearest even (overflow to infinity, NaN kept NaN).
uint16_t float_to_fp16(float value);

// The safetensors dtype for a command-line name: fp32 -> F32, fp16 -> F16, bf16 -> BF16; an
// error naming `option` otherwise.
std::string hf_storage_dtype(const std::string& name, const std::string& option);
// config.json's torch_dtype for a safetensors dtype: F32 -> float32, F16 -> float16, BF16 ->
// bfloat16.
std::string hf_torch_dtype(const std::string& storage_dtype);

// A size as save_pretrained's max_shard_size takes it: bytes, or a number with KB, MB, GB (powers
// of 1000) or KiB, MiB, GiB (powers of 1024), e.g. "5GB", "200MB", "100KiB". Errors name `option`.
int64_t parse_byte_size(const std::string& text, const std::string& option);

// A config.json that transformers loads as `config` (architectures, model_type and the fields
// model_config_from_hf reads), with torch_dtype `torch_dtype`. For models that did not come from
// a Hugging Face folder (presets). An error for a model transformers cannot describe (a Qwen2
// head_dim other than hidden_size / heads, Llama 3 RoPE scaling on GPT-2, ...).
std::string hf_config_json(const ModelConfig& config, const std::string& torch_dtype);
// `config_json` with its torch_dtype (and, when `max_positions` > 0, max_position_embeddings or
// GPT-2's n_positions) set; the text is kept byte for byte when nothing changes.
std::string patch_hf_config_json(const std::string& config_json, const std::string& torch_dtype,
                                 int64_t max_positions);
// Fails, naming `config_json_path` and the field, unless the config.json describes `expected`'s
// architecture (sizes, heads, norm, positions, biases, tying, RoPE).
void check_hf_config_matches(const std::string& config_json_path, const ModelConfig& expected);

// The files besides config.json and the weights that a Hugging Face model folder carries and
// ft_convert copies along: tokenizer.json, tokenizer_config.json, special_tokens_map.json,
// generation_config.json (and tokenizer.model, vocab.json, merges.txt, added_tokens.json for
// tokenizers stored that way). Those present in `folder`, as paths.
std::vector<std::string> hf_side_files(const std::string& folder);

struct HfWeightOptions {
  // Storage dtype of every tensor (F32, F16, BF16); empty: source_dtypes[name] where present
  // (the dtype the tensor came in), else F32.
  std::string dtype;
  std::map<std::string, std::string> source_dtypes;
  int64_t max_shard_bytes = 0;  // > 0: shards of at most this size (a larger tensor alone)
};

// Writes the weights of `config`'s parameters (from `params`, host, f32/f64/bf16) into `folder`
// (an existing folder, usually a StagedFolder's staging path): model.safetensors, or the shards
// and model.safetensors.index.json. Returns the files written.
std::vector<std::string> write_hf_weights(const std::string& folder, const ModelConfig& config,
                                          const ParameterStore& params,
                                          const HfWeightOptions& options);

}  // namespace ft
