// The base model's weights from a Hugging Face checkpoint: one model.safetensors, or the shards
// a model.safetensors.index.json names in its weight_map.
//
// Names are Hugging Face's (models/param_layout.h), so loading is a copy per parameter, with two
// translations: GPT-2's Conv1D matrices (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj weights)
// are stored (in, out) and transposed into ft's (out, in); and GPT-2 files saved from the bare
// GPT2Model (the hub's gpt2 checkpoints) name tensors without the "transformer." prefix.
// Non-parameter buffers (GPT-2's attn.bias / attn.masked_bias, rotary inv_freq) and a tied
// lm_head.weight are skipped; any other tensor the model has no parameter for is an error, so a
// checkpoint of another shape of model (more layers, another family) is not half loaded.
#pragma once

#include <map>
#include <string>

#include "models/model_config.h"
#include "runtime/parameters.h"

namespace ft {

// `path`: a .safetensors file, a model.safetensors.index.json, or a folder holding either
// (model.safetensors preferred). Fills every parameter of transformer_param_specs(config) in
// `params` (frozen or trainable, on any device, converting the stored dtype to the store's).
// Errors name the file and the tensor: a missing tensor, a stored shape other than the expected
// one (both printed), an unexpected tensor, a weight_map shard that lacks the tensor it should
// hold. These are all found before any parameter is written.
void load_hf_weights(const std::string& path, const ModelConfig& config,
                     const ParameterStore& params);

// The stored dtype ("F32", "BF16", "F16", ...) of every parameter of
// transformer_param_specs(config) that `path` (as for load_hf_weights) holds, by ft's (Hugging
// Face) parameter name.
std::map<std::string, std::string> hf_tensor_dtypes(const std::string& path,
                                                    const ModelConfig& config);

// The config.json a model path names: `path` itself, or `path`/config.json for a folder (as
// from_pretrained takes a folder).
std::string hf_config_file(const std::string& path);

// GPT-2's Conv1D layers (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj weights) store their
// weight (in, out); ft holds (out, in).
bool is_conv1d_weight(const ModelConfig& config, const std::string& name);

}  // namespace ft
