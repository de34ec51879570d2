#include "models/model_config.h"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace ft {

int64_t ModelConfig::non_embedding_parameters() const {
  const int64_t C = hidden_size;
  int64_t attention = C * q_dim() + 2 * C * kv_dim() + q_dim() * C;
  if (qkv_bias) attention += q_dim() + 2 * kv_dim();
  if (linear_bias) attention += C;
  int64_t mlp = (this->mlp == MlpKind::swiglu ? 3 : 2) * C * intermediate_size;
  if (linear_bias) mlp += intermediate_size + C;
  int64_t norms = (norm == NormKind::layernorm ? 2 : 1) * C * 2;
  int64_t per_layer = attention + mlp + norms;
  int64_t final_norm = (norm == NormKind::layernorm ? 2 : 1) * C;
  int64_t head = tied_embeddings ? 0 : vocab_size * C;
  return num_layers * per_layer + final_norm + head;
}

double ModelConfig::training_flops_per_token(int64_t seq_len) const {
  double n = static_cast<double>(non_embedding_parameters());
  if (tied_embeddings) n += static_cast<double>(vocab_size * hidden_size);
  return 6.0 * n + 12.0 * num_layers * num_heads * head_dim * seq_len;
}

std::string ModelConfig::summary() const {
  return fmt::format(
      "{} ({}): {} layers, hidden {}, {} heads ({} kv) of {}, mlp {} {}, vocab {}, {} norm, {}{}",
      name, model_type, num_layers, hidden_size, num_heads, num_kv_heads, head_dim,
      mlp == MlpKind::swiglu ? "swiglu" : "gelu", intermediate_size, vocab_size,
      norm == NormKind::rmsnorm ? "rms" : "layer",
      positions == PositionKind::rope ? fmt::format("rope theta {}", rope_theta)
                                      : std::string("learned positions"),
      tied_embeddings ? ", tied embeddings" : "");
}

void validate_model_config(const ModelConfig& c) {
  auto positive = [&](const char* field, int64_t value) {
    if (value <= 0) fail("model {}: {} = {} must be positive", c.name, field, value);
  };
  positive("vocab_size", c.vocab_size);
  positive("hidden_size", c.hidden_size);
  positive("num_hidden_layers", c.num_layers);
  positive("num_attention_heads", c.num_heads);
  positive("num_key_value_heads", c.num_kv_heads);
  positive("head_dim", c.head_dim);
  positive("intermediate_size", c.intermediate_size);
  positive("max_position_embeddings", c.max_position_embeddings);
  if (c.num_heads % c.num_kv_heads != 0)
    fail("model {}: num_attention_heads {} is not a multiple of num_key_value_heads {}", c.name,
         c.num_heads, c.num_kv_heads);
  if (c.positions == PositionKind::rope && c.head_dim % 2 != 0)
    fail("model {}: head_dim {} must be even for rotary embeddings", c.name, c.head_dim);
  if (c.norm_eps <= 0) fail("model {}: the norm epsilon must be positive", c.name);
}

namespace {

using nlohmann::json;

template <typename T>
T required(const json& config, const std::string& path, const char* key) {
  if (!config.contains(key)) fail("{}: missing field \"{}\"", path, key);
  try {
    return config.at(key).get<T>();
  } catch (const json::exception& error) {
    fail("{}: field \"{}\": {}", path, key, error.what());
  }
}

template <typename T>
T optional(const json& config, const std::string& path, const char* key, T fallback) {
  if (!config.contains(key) || config.at(key).is_null()) return fallback;
  try {
    return config.at(key).get<T>();
  } catch (const json::exception& error) {
    fail("{}: field \"{}\": {}", path, key, error.what());
  }
}

void check_architecture(const json& config, const std::string& path, const char* expected) {
  if (!config.contains("architectures")) return;
  for (const json& name : config.at("architectures")) {
    if (name.is_string() && name.get<std::string>() == expected) return;
  }
  fail("{}: field \"architectures\" is {}, ft supports {} for this model_type", path,
       config.at("architectures").dump(), expected);
}

ModelConfig llama_family_from_hf(const json& j, const std::string& path, const std::string& type) {
  ModelConfig c;
  c.name = path;
  c.model_type = type;
  c.vocab_size = required<int64_t>(j, path, "vocab_size");
  c.hidden_size = required<int64_t>(j, path, "hidden_size");
  c.num_layers = required<int64_t>(j, path, "num_hidden_layers");
  c.num_heads = required<int64_t>(j, path, "num_attention_heads");
  c.num_kv_heads = optional<int64_t>(j, path, "num_key_value_heads", c.num_heads);
  if (c.num_heads <= 0) fail("{}: num_attention_heads = {} must be positive", path, c.num_heads);
  c.head_dim = optional<int64_t>(j, path, "head_dim", c.hidden_size / c.num_heads);
  c.intermediate_size = required<int64_t>(j, path, "intermediate_size");
  c.max_position_embeddings = optional<int64_t>(j, path, "max_position_embeddings", 2048);
  c.norm = NormKind::rmsnorm;
  c.norm_eps = optional<double>(j, path, "rms_norm_eps", 1e-6);
  c.positions = PositionKind::rope;
  c.rope_theta = optional<double>(j, path, "rope_theta", 10000.0);
  c.mlp = MlpKind::swiglu;
  std::string act = optional<std::string>(j, path, "hidden_act", "silu");
  if (act != "silu") fail("{}: hidden_act \"{}\" is not supported (expected silu)", path, act);
  // Qwen2 always has q/k/v biases; Mistral never has attention biases. Llama's attention_bias
  // would also put a bias on o_proj, which this model does not have.
  c.qkv_bias = type == "qwen2";
  if (type == "llama" && optional<bool>(j, path, "attention_bias", false))
    fail("{}: attention_bias true is not supported", path);
  if (type == "llama" && optional<bool>(j, path, "mlp_bias", false))
    fail("{}: mlp_bias true is not supported", path);
  c.init_std = optional<double>(j, path, "initializer_range", 0.02);
  c.tied_embeddings = optional<bool>(j, path, "tie_word_embeddings", false);
  const bool window_used =
      type == "mistral" ||
      (type == "qwen2" && optional<bool>(j, path, "use_sliding_window", false));
  if (window_used) c.sliding_window = optional<int64_t>(j, path, "sliding_window", 0);
  if (j.contains("rope_scaling") && !j.at("rope_scaling").is_null()) {
    const json& s = j.at("rope_scaling");
    const std::string scaling_path = path + " rope_scaling";
    std::string rope_type = optional<std::string>(
        s, scaling_path, "rope_type", optional<std::string>(s, scaling_path, "type", ""));
    if (rope_type == "llama3") {
      c.rope_scaling.factor = required<double>(s, path + " rope_scaling", "factor");
      c.rope_scaling.low_freq_factor =
          required<double>(s, path + " rope_scaling", "low_freq_factor");
      c.rope_scaling.high_freq_factor =
          required<double>(s, path + " rope_scaling", "high_freq_factor");
      c.rope_scaling.original_max_position_embeddings =
          required<int64_t>(s, path + " rope_scaling", "original_max_position_embeddings");
    } else if (rope_type != "default") {
      fail("{}: rope_scaling type \"{}\" is not supported (expected llama3 or default)", path,
           rope_type);
    }
  }
  return c;
}

ModelConfig gpt2_from_hf(const json& j, const std::string& path) {
  ModelConfig c;
  c.name = path;
  c.model_type = "gpt2";
  c.vocab_size = required<int64_t>(j, path, "vocab_size");
  c.hidden_size = required<int64_t>(j, path, "n_embd");
  c.num_layers = required<int64_t>(j, path, "n_layer");
  c.num_heads = required<int64_t>(j, path, "n_head");
  c.num_kv_heads = c.num_heads;
  if (c.num_heads <= 0 || c.hidden_size % c.num_heads != 0)
    fail("{}: n_embd {} must be a positive multiple of n_head {}", path, c.hidden_size,
         c.num_heads);
  c.head_dim = c.hidden_size / c.num_heads;
  c.intermediate_size = optional<int64_t>(j, path, "n_inner", 4 * c.hidden_size);
  // Attention variants GPT-2's config can switch on; each would change the logits.
  if (!optional<bool>(j, path, "scale_attn_weights", true))
    fail("{}: scale_attn_weights false is not supported", path);
  if (optional<bool>(j, path, "scale_attn_by_inverse_layer_idx", false))
    fail("{}: scale_attn_by_inverse_layer_idx true is not supported", path);
  c.init_std = optional<double>(j, path, "initializer_range", 0.02);
  c.max_position_embeddings = required<int64_t>(j, path, "n_positions");
  c.norm = NormKind::layernorm;
  c.norm_eps = optional<double>(j, path, "layer_norm_epsilon", 1e-5);
  c.positions = PositionKind::learned;
  c.mlp = MlpKind::gelu;
  std::string act = optional<std::string>(j, path, "activation_function", "gelu_new");
  if (act != "gelu_new" && act != "gelu_pytorch_tanh")
    fail("{}: activation_function \"{}\" is not supported (expected gelu_new)", path, act);
  c.qkv_bias = true;
  c.linear_bias = true;
  c.tied_embeddings = optional<bool>(j, path, "tie_word_embeddings", true);
  return c;
}

}  // namespace

ModelConfig model_config_from_hf(const std::string& path) {
  std::ifstream file(path);
  if (!file) fail("{}: cannot open the model config (expected a Hugging Face config.json)", path);
  json j;
  try {
    j = json::parse(file);
  } catch (const json::exception& error) {
    fail("{}: invalid JSON: {}", path, error.what());
  }
  std::string type = required<std::string>(j, path, "model_type");
  ModelConfig config;
  if (type == "llama") {
    check_architecture(j, path, "LlamaForCausalLM");
    config = llama_family_from_hf(j, path, type);
  } else if (type == "mistral") {
    check_architecture(j, path, "MistralForCausalLM");
    config = llama_family_from_hf(j, path, type);
  } else if (type == "qwen2") {
    check_architecture(j, path, "Qwen2ForCausalLM");
    config = llama_family_from_hf(j, path, type);
  } else if (type == "gpt2") {
    check_architecture(j, path, "GPT2LMHeadModel");
    config = gpt2_from_hf(j, path);
  } else {
    fail("{}: model_type \"{}\" is not supported (expected llama, mistral, qwen2 or gpt2)", path,
         type);
  }
  validate_model_config(config);
  return config;
}

namespace {

ModelConfig tiny_llama_like(const std::string& name, const std::string& type) {
  ModelConfig c;
  c.name = name;
  c.model_type = type;
  c.vocab_size = 61;
  c.hidden_size = 24;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 6;
  c.intermediate_size = 40;
  c.max_position_embeddings = 64;
  c.norm = NormKind::rmsnorm;
  c.norm_eps = 1e-5;
  c.positions = PositionKind::rope;
  c.rope_theta = 10000.0;
  c.mlp = MlpKind::swiglu;
  c.init_std = 0.3;  // large enough that a gradient check sees every path
  return c;
}

ModelConfig gpt2_like(const std::string& name, int64_t vocab, int64_t hidden, int64_t layers,
                      int64_t heads, int64_t positions) {
  ModelConfig c;
  c.name = name;
  c.model_type = "gpt2";
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = heads;
  c.head_dim = hidden / heads;
  c.intermediate_size = 4 * hidden;
  c.max_position_embeddings = positions;
  c.norm = NormKind::layernorm;
  c.norm_eps = 1e-5;
  c.positions = PositionKind::learned;
  c.mlp = MlpKind::gelu;
  c.qkv_bias = true;
  c.linear_bias = true;
  c.tied_embeddings = true;
  return c;
}

}  // namespace

std::vector<std::string> model_preset_names() {
  return {"tiny-llama", "tiny-mistral", "tiny-qwen2", "tiny-gpt2", "quickstart", "bench-gpt2"};
}

ModelConfig model_config_preset(const std::string& name) {
  ModelConfig c;
  if (name == "tiny-llama") {
    c = tiny_llama_like(name, "llama");
    c.rope_scaling = {4.0, 1.0, 4.0, 16};  // Llama 3 scaling, exercised at tiny size
  } else if (name == "tiny-mistral") {
    c = tiny_llama_like(name, "mistral");
    c.num_kv_heads = 1;
    c.rope_theta = 1e6;
  } else if (name == "tiny-qwen2") {
    c = tiny_llama_like(name, "qwen2");
    c.qkv_bias = true;
    c.tied_embeddings = true;
  } else if (name == "tiny-gpt2") {
    c = gpt2_like(name, /*vocab=*/61, /*hidden=*/24, /*layers=*/2, /*heads=*/4, /*positions=*/64);
    c.init_std = 0.3;
  } else if (name == "quickstart") {
    // Llama-style, byte-level vocabulary (259 ids), small enough to train in a minute on 2 cores.
    c = tiny_llama_like(name, "llama");
    c.vocab_size = 259;
    c.hidden_size = 128;
    c.num_layers = 4;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 32;
    c.intermediate_size = 352;
    c.max_position_embeddings = 256;
    c.tied_embeddings = true;
    c.init_std = 0.02;
  } else if (name == "bench-gpt2") {
    // The CPU benchmark's reference model: GPT-2 style, 6 x 384, vocab 8192, context 256.
    c = gpt2_like(name, /*vocab=*/8192, /*hidden=*/384, /*layers=*/6, /*heads=*/6,
                  /*positions=*/256);
  } else {
    std::string known;
    for (const std::string& preset : model_preset_names())
      known += (known.empty() ? "" : ", ") + preset;
    fail("model.preset \"{}\" is unknown (expected one of: {})", name, known);
  }
  validate_model_config(c);
  return c;
}

}  // namespace ft
