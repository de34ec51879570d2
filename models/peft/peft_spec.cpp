#include "models/peft/peft_spec.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include <fmt/format.h>

#include "runtime/error.h"

namespace ft {
namespace {

// Adapter widths beyond this are configuration mistakes, refused before any allocation.
constexpr int64_t kMaxWidth = 65536;

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string trim(const std::string& text) {
  size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  size_t end = text.find_last_not_of(" \t");
  return text.substr(begin, end - begin + 1);
}

PeftMethod parse_method(const std::string& name) {
  for (PeftMethod method : {PeftMethod::full, PeftMethod::prompt_tuning, PeftMethod::prefix_tuning,
                            PeftMethod::p_tuning, PeftMethod::lora})
    if (name == peft_method_name(method)) return method;
  fail("peft.method = '{}': expected full | prompt_tuning | prefix_tuning | p_tuning | lora", name);
}

PromptInit parse_prompt_init(const std::string& name) {
  const std::string key = lower(name);
  if (key == "random") return PromptInit::random;
  if (key == "sample_vocab") return PromptInit::sample_vocab;
  if (key == "text") return PromptInit::text;
  fail("peft.prompt_tuning_init = '{}': expected RANDOM | SAMPLE_VOCAB | TEXT", name);
}

// Every linear module of one layer LoRA can attach to, with its features.
std::vector<LoraTarget> layer_linear_modules(const ModelConfig& c, int64_t layer) {
  const int64_t C = c.hidden_size, F = c.intermediate_size, q = c.q_dim(), kv = c.kv_dim();
  if (c.model_type == "gpt2") {
    const std::string p = fmt::format("transformer.h.{}.", layer);
    return {{p + "attn.c_attn", layer, LinearSlot::qkv, C, q + 2 * kv},
            {p + "attn.c_proj", layer, LinearSlot::o, q, C},
            {p + "mlp.c_fc", layer, LinearSlot::up, C, F},
            {p + "mlp.c_proj", layer, LinearSlot::down, F, C}};
  }
  const std::string p = fmt::format("model.layers.{}.", layer);
  return {{p + "self_attn.q_proj", layer, LinearSlot::q, C, q},
          {p + "self_attn.k_proj", layer, LinearSlot::k, C, kv},
          {p + "self_attn.v_proj", layer, LinearSlot::v, C, kv},
          {p + "self_attn.o_proj", layer, LinearSlot::o, q, C},
          {p + "mlp.gate_proj", layer, LinearSlot::gate, C, F},
          {p + "mlp.up_proj", layer, LinearSlot::up, C, F},
          {p + "mlp.down_proj", layer, LinearSlot::down, F, C}};
}

// PEFT's rule for a list of names: a module matches when its path equals the name or ends with
// "." + name.
bool module_matches(const std::string& module, const std::string& target) {
  if (module == target) return true;
  return module.size() > target.size() &&
         module.compare(module.size() - target.size(), target.size(), target) == 0 &&
         module[module.size() - target.size() - 1] == '.';
}

void resolve_lora(const config::PeftConfig& peft, const ModelConfig& model, PeftSpec& spec) {
  if (peft.lora_r() < 1 || peft.lora_r() > kMaxWidth)
    fail("peft.lora_r = {}: expected a rank from 1 to {}", peft.lora_r(), kMaxWidth);
  if (!(peft.lora_alpha() > 0))
    fail("peft.lora_alpha = {}: expected a positive scale", peft.lora_alpha());
  if (!(peft.lora_dropout() >= 0 && peft.lora_dropout() < 1))
    fail("peft.lora_dropout = {}: expected a probability in [0, 1)", peft.lora_dropout());
  spec.lora_r = peft.lora_r();
  spec.lora_alpha = peft.lora_alpha();
  spec.lora_dropout = peft.lora_dropout();
  spec.use_rslora = peft.use_rslora();

  std::string targets = trim(peft.target_modules());
  if (targets.empty()) targets = model.model_type == "gpt2" ? "c_attn" : "q_proj,v_proj";
  size_t begin = 0;
  while (begin <= targets.size()) {
    size_t end = targets.find(',', begin);
    if (end == std::string::npos) end = targets.size();
    std::string name = trim(targets.substr(begin, end - begin));
    if (name.empty())
      fail("peft.target_modules = '{}': empty module name in the list", peft.target_modules());
    spec.target_modules.push_back(name);
    begin = end + 1;
  }
  const bool all_linear = std::find(spec.target_modules.begin(), spec.target_modules.end(),
                                    "all-linear") != spec.target_modules.end();
  if (all_linear && spec.target_modules.size() > 1)
    fail("peft.target_modules = '{}': all-linear cannot be combined with other names",
         peft.target_modules());

  std::vector<bool> used(spec.target_modules.size(), false);
  for (int64_t layer = 0; layer < model.num_layers; ++layer) {
    for (const LoraTarget& module : layer_linear_modules(model, layer)) {
      bool selected = all_linear;
      for (size_t i = 0; i < spec.target_modules.size() && !all_linear; ++i) {
        if (module_matches(module.module, spec.target_modules[i])) {
          selected = true;
          used[i] = true;
        }
      }
      if (selected) spec.lora_targets.push_back(module);
    }
  }
  for (size_t i = 0; i < spec.target_modules.size() && !all_linear; ++i) {
    if (used[i]) continue;
    std::string known;
    for (const LoraTarget& module : layer_linear_modules(model, 0)) {
      std::string last = module.module.substr(module.module.rfind('.') + 1);
      if (known.find(last) == std::string::npos) known += (known.empty() ? "" : ", ") + last;
    }
    fail(
        "peft.target_modules: no linear module of the {} model is named '{}'; expected names "
        "among {} (matched against the end of a module path such as {}), or all-linear",
        model.model_type, spec.target_modules[i], known, layer_linear_modules(model, 0)[0].module);
  }
}

void resolve_virtual_tokens(const config::PeftConfig& peft, const ModelConfig& model,
                            int64_t seq_len, PeftSpec& spec) {
  const int64_t P = peft.num_virtual_tokens();
  if (P < 1) fail("peft.num_virtual_tokens = {}: expected at least 1", P);
  if (P + seq_len > model.max_position_embeddings)
    fail(
        "peft.num_virtual_tokens = {} does not fit the context: the virtual tokens take positions "
        "0..{} and the data.seq_len = {} real tokens follow, {} positions in all, more than the "
        "model's max_position_embeddings {}",
        P, P - 1, seq_len, P + seq_len, model.max_position_embeddings);
  if (model.sliding_window > 0 && P + seq_len > model.sliding_window)
    fail(
        "peft.num_virtual_tokens = {} plus data.seq_len = {} exceeds the model's sliding_window "
        "{}: sliding-window attention is not implemented",
        P, seq_len, model.sliding_window);
  spec.num_virtual_tokens = P;
  if (peft.encoder_hidden_size() < 0 || peft.encoder_hidden_size() > kMaxWidth)
    fail("peft.encoder_hidden_size = {}: expected 0 (PEFT's token_dim) or a width up to {}",
         peft.encoder_hidden_size(), kMaxWidth);
  // PEFT's default width is token_dim: the key/value width for prefix tuning, else hidden_size.
  const int64_t token_dim =
      spec.method == PeftMethod::prefix_tuning ? model.kv_dim() : model.hidden_size;
  spec.encoder_hidden_size =
      peft.encoder_hidden_size() > 0 ? peft.encoder_hidden_size() : token_dim;
}

}  // namespace

const char* peft_method_name(PeftMethod method) {
  switch (method) {
    case PeftMethod::full:
      return "full";
    case PeftMethod::prompt_tuning:
      return "prompt_tuning";
    case PeftMethod::prefix_tuning:
      return "prefix_tuning";
    case PeftMethod::p_tuning:
      return "p_tuning";
    case PeftMethod::lora:
      return "lora";
  }
  return "?";
}

const char* peft_type_name(PeftMethod method) {
  switch (method) {
    case PeftMethod::prompt_tuning:
      return "PROMPT_TUNING";
    case PeftMethod::prefix_tuning:
      return "PREFIX_TUNING";
    case PeftMethod::p_tuning:
      return "P_TUNING";
    case PeftMethod::lora:
      return "LORA";
    case PeftMethod::full:
      break;
  }
  fail("full fine-tuning has no PEFT type");
}

double PeftSpec::lora_scale() const {
  return use_rslora ? lora_alpha / std::sqrt(static_cast<double>(lora_r))
                    : lora_alpha / static_cast<double>(lora_r);
}

std::string PeftSpec::summary() const {
  switch (method) {
    case PeftMethod::full:
      return "full fine-tuning";
    case PeftMethod::prompt_tuning:
      return fmt::format("prompt tuning ({} virtual tokens)", num_virtual_tokens);
    case PeftMethod::p_tuning:
      return fmt::format("P-tuning ({} virtual tokens, MLP encoder width {})", num_virtual_tokens,
                         encoder_hidden_size);
    case PeftMethod::prefix_tuning:
      return prefix_projection
                 ? fmt::format("prefix tuning ({} virtual tokens, projection width {})",
                               num_virtual_tokens, encoder_hidden_size)
                 : fmt::format("prefix tuning ({} virtual tokens)", num_virtual_tokens);
    case PeftMethod::lora: {
      std::string targets;
      for (const std::string& t : target_modules) targets += (targets.empty() ? "" : ",") + t;
      return fmt::format("LoRA (r {}, alpha {}{}, scale {:.4g}, dropout {}, {} on {} modules)",
                         lora_r, lora_alpha, use_rslora ? ", rsLoRA" : "", lora_scale(),
                         lora_dropout, targets, lora_targets.size());
    }
  }
  return "?";
}

PeftSpec resolve_peft_spec(const config::PeftConfig& peft, const ModelConfig& model,
                           int64_t seq_len) {
  PeftSpec spec;
  spec.method = parse_method(peft.method());
  if (peft.prefix_projection() && spec.method != PeftMethod::prefix_tuning)
    fail("peft.prefix_projection = true applies to prefix_tuning only (peft.method is {})",
         peft.method());
  switch (spec.method) {
    case PeftMethod::full:
      return spec;
    case PeftMethod::prompt_tuning:
      resolve_virtual_tokens(peft, model, seq_len, spec);
      spec.prompt_init = parse_prompt_init(peft.prompt_tuning_init());
      spec.prompt_init_text = peft.prompt_tuning_init_text();
      if (spec.prompt_init == PromptInit::text && spec.prompt_init_text.empty())
        fail("peft.prompt_tuning_init = TEXT needs peft.prompt_tuning_init_text");
      return spec;
    case PeftMethod::p_tuning:
      resolve_virtual_tokens(peft, model, seq_len, spec);
      return spec;
    case PeftMethod::prefix_tuning:
      resolve_virtual_tokens(peft, model, seq_len, spec);
      spec.prefix_projection = peft.prefix_projection();
      return spec;
    case PeftMethod::lora:
      resolve_lora(peft, model, spec);
      return spec;
  }
  return spec;
}

void check_same_adapter(const PeftSpec& saved, const PeftSpec& now, const std::string& source) {
  auto differs = [&](const char* field, const std::string& before, const std::string& after) {
    if (before != after)
      fail(
          "{}: the adapter was trained with {} = {}, and this run has {}; set the same value (the "
          "adapter's values only mean something with its own settings)",
          source, field, before, after);
  };
  differs("peft.method", peft_method_name(saved.method), peft_method_name(now.method));
  if (now.method == PeftMethod::lora) {
    differs("peft.lora_r", std::to_string(saved.lora_r), std::to_string(now.lora_r));
    differs("peft.lora_alpha", fmt::format("{}", saved.lora_alpha),
            fmt::format("{}", now.lora_alpha));
    differs("peft.use_rslora", saved.use_rslora ? "true" : "false",
            now.use_rslora ? "true" : "false");
    auto modules = [](const PeftSpec& spec) {
      std::string list;
      for (const LoraTarget& target : spec.lora_targets)
        list += (list.empty() ? "" : ",") + target.module;
      return list;
    };
    differs("peft.target_modules (the modules it selects)", modules(saved), modules(now));
    return;
  }
  if (!now.is_peft()) return;
  differs("peft.num_virtual_tokens", std::to_string(saved.num_virtual_tokens),
          std::to_string(now.num_virtual_tokens));
  differs("peft.prefix_projection", saved.prefix_projection ? "true" : "false",
          now.prefix_projection ? "true" : "false");
  if (now.method == PeftMethod::p_tuning || now.prefix_projection)
    differs("peft.encoder_hidden_size", std::to_string(saved.encoder_hidden_size),
            std::to_string(now.encoder_hidden_size));
}

std::vector<ParamSpec> peft_param_specs(const PeftSpec& spec, const ModelConfig& model) {
  const int64_t P = spec.num_virtual_tokens, C = model.hidden_size, H = spec.encoder_hidden_size;
  const int64_t kv = model.kv_dim(), prefix_width = model.num_layers * 2 * kv;
  std::vector<ParamSpec> specs;
  // Embedding-like tables start N(0, 1) as torch.nn.Embedding does; Linear layers use PyTorch's
  // default kaiming-uniform bound 1 / sqrt(in_features) for weight and bias.
  auto table = [&](const std::string& name, int64_t rows, int64_t cols) {
    specs.push_back({name, Shape{rows, cols}, InitKind::normal, 1.0, true, true});
  };
  auto linear = [&](const std::string& prefix, int64_t in, int64_t out) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    specs.push_back(
        {prefix + ".weight", Shape{out, in}, InitKind::uniform, 0.0, true, true, bound});
    specs.push_back({prefix + ".bias", Shape{out}, InitKind::uniform, 0.0, false, true, bound});
  };
  switch (spec.method) {
    case PeftMethod::full:
      break;
    case PeftMethod::prompt_tuning:
      table("prompt_embeddings", P, C);
      break;
    case PeftMethod::p_tuning:
      table("prompt_encoder.embedding.weight", P, C);
      linear("prompt_encoder.mlp_head.0", C, H);
      linear("prompt_encoder.mlp_head.2", H, H);
      linear("prompt_encoder.mlp_head.4", H, C);
      break;
    case PeftMethod::prefix_tuning:
      if (spec.prefix_projection) {
        table("prompt_encoder.embedding.weight", P, kv);
        linear("prompt_encoder.transform.0", kv, H);
        linear("prompt_encoder.transform.2", H, prefix_width);
      } else {
        table("prompt_embeddings", P, prefix_width);
      }
      break;
    case PeftMethod::lora:
      for (const LoraTarget& target : spec.lora_targets) {
        const double bound = 1.0 / std::sqrt(static_cast<double>(target.in_features));
        specs.push_back({target.a_name(), Shape{spec.lora_r, target.in_features}, InitKind::uniform,
                         0.0, true, true, bound});
        specs.push_back({target.b_name(), Shape{target.out_features, spec.lora_r}, InitKind::zeros,
                         0.0, true, true});
      }
      break;
  }
  return specs;
}

std::vector<ParamSpec> run_param_specs(const ModelConfig& model, const PeftSpec& spec) {
  std::vector<ParamSpec> specs = transformer_param_specs(model);
  if (!spec.is_peft()) return specs;
  for (ParamSpec& base : specs) base.trainable = false;
  for (ParamSpec& adapter : peft_param_specs(spec, model)) specs.push_back(std::move(adapter));
  return specs;
}

}  // namespace ft
