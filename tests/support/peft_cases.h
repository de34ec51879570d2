// Small PEFT configurations for tests on the tiny models (3 virtual tokens, a 10-wide encoder,
// rank-3 LoRA), and the cases that between them take every adapter code path.
#pragma once

#include <string>
#include <vector>

#include "runtime/config/ft_config.pb.h"

namespace ft::testing {

inline config::PeftConfig small_peft_config(const std::string& method) {
  config::PeftConfig peft;
  peft.set_method(method);
  peft.set_num_virtual_tokens(3);
  peft.set_encoder_hidden_size(10);
  peft.set_lora_r(3);
  peft.set_lora_alpha(6);
  return peft;
}

struct PeftCase {
  std::string name;
  config::PeftConfig peft;
};

// full (optional), prompt tuning, P-tuning, prefix tuning with and without projection, LoRA on
// the default targets, and all-linear rsLoRA.
inline std::vector<PeftCase> peft_cases(bool with_full = true) {
  std::vector<PeftCase> cases;
  if (with_full) cases.push_back({"full", small_peft_config("full")});
  for (const char* method : {"prompt_tuning", "p_tuning", "prefix_tuning"})
    cases.push_back({method, small_peft_config(method)});
  config::PeftConfig projected = small_peft_config("prefix_tuning");
  projected.set_prefix_projection(true);
  cases.push_back({"prefix_tuning with projection", projected});
  cases.push_back({"lora", small_peft_config("lora")});
  config::PeftConfig all_linear = small_peft_config("lora");
  all_linear.set_target_modules("all-linear");
  all_linear.set_use_rslora(true);
  cases.push_back({"lora all-linear rsLoRA", all_linear});
  return cases;
}

}  // namespace ft::testing
