// Hugging Face PEFT interchange: adapters written as PEFT's save_pretrained writes them
// (adapter_config.json + adapter_model.safetensors) and read back, for prompt tuning, P-tuning,
// prefix tuning and LoRA. See shared/reference/peft.md for the names, shapes and config keys.
//
// What PEFT saves is not always what trains: P-tuning saves the MLP encoder's output and prefix
// tuning with projection the projected prefix. Such folders import as prompt tuning and as prefix
// tuning without projection, which compute exactly the same model.
#pragma once

#include <string>

#include "kernels/context.h"
#include "models/peft/peft_spec.h"
#include "runtime/parameters.h"

namespace ft {

struct PeftExportInfo {
  std::string base_model_name_or_path;  // adapter_config.json's base_model_name_or_path
  std::string base_fingerprint;         // stored in the safetensors metadata (ft_base_fingerprint)
};

// Writes `dir`/adapter_config.json and `dir`/adapter_model.safetensors (fp32) for the adapter in
// `params`. Each file is written to a temporary name and renamed.
void export_peft_adapter(const std::string& dir, const PeftSpec& spec, const ModelConfig& model,
                         const ParameterStore& params, const PeftExportInfo& info,
                         const OpContext& ctx);

// Reads a PEFT folder into the adapter parameters of `params` (the run's spec). Errors name the
// file and the key or tensor: a peft_type this run's method cannot take, a shape, rank, target
// module or virtual-token count that differs, a missing tensor. A folder that ft exported records
// its base's fingerprint; when it differs from `base_fingerprint` the import is refused.
void import_peft_adapter(const std::string& dir, const PeftSpec& spec, const ModelConfig& model,
                         const ParameterStore& params, const std::string& base_fingerprint);

}  // namespace ft
