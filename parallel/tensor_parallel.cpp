#include "parallel/tensor_parallel.h"

#include <cstring>
#include <optional>

#include "runtime/error.h"

namespace ft {
namespace {

using Ranges = std::vector<std::pair<int64_t, int64_t>>;

// What a rank keeps of each kind of dimension, in full coordinates.
struct RankSlices {
  Ranges q;       // its query heads' rows of q (columns of o): one block
  Ranges kv;      // its KV heads' rows of k or v: one block (a replicated head when Hkv < tp)
  Ranges qkv;     // GPT-2's c_attn rows: its q, k and v blocks
  Ranges mlp;     // its rows of the intermediate size
  Ranges vocab;   // its vocabulary rows
  Ranges prefix;  // its KV heads' columns in every (layer, K/V) block of a prefix row
  bool kv_replicated = false;  // Hkv < tp: a KV head is held by tp / Hkv ranks
  bool kv_first = true;        // this rank is the first of its kv group
};

RankSlices rank_slices(const ModelConfig& c, TensorParallelRank tp) {
  check_tensor_parallel(c, PeftSpec{}, tp.size);
  const int64_t r = tp.rank, n = tp.size, D = c.head_dim;
  RankSlices s;
  const int64_t q_local = c.q_dim() / n;
  s.q = {{r * q_local, (r + 1) * q_local}};
  int64_t kv_head_begin = 0, kv_heads = 0;
  if (c.num_kv_heads >= n) {
    kv_heads = c.num_kv_heads / n;
    kv_head_begin = r * kv_heads;
  } else {
    const int64_t ranks_per_head = n / c.num_kv_heads;
    kv_heads = 1;
    kv_head_begin = r / ranks_per_head;
    s.kv_replicated = true;
    s.kv_first = r % ranks_per_head == 0;
  }
  const std::pair<int64_t, int64_t> kv{kv_head_begin * D, (kv_head_begin + kv_heads) * D};
  s.kv = {kv};
  const int64_t q = c.q_dim(), kv_dim = c.kv_dim();
  s.qkv = {s.q[0], {q + kv.first, q + kv.second}, {q + kv_dim + kv.first, q + kv_dim + kv.second}};
  const int64_t f_local = c.intermediate_size / n;
  s.mlp = {{r * f_local, (r + 1) * f_local}};
  s.vocab = {vocab_range(c.vocab_size, tp)};
  for (int64_t block = 0; block < 2 * c.num_layers; ++block)
    s.prefix.push_back({block * kv_dim + kv.first, block * kv_dim + kv.second});
  return s;
}

ShardRule whole(GradSync sync, bool counts_in_norm) {
  ShardRule rule;
  rule.grad_sync = sync;
  rule.counts_in_norm = counts_in_norm;
  return rule;
}

ShardRule split(int axis, Ranges ranges) {
  ShardRule rule;
  rule.axis = axis;
  rule.ranges = std::move(ranges);
  return rule;
}

// A shard of the KV heads: replicated heads are completed over their kv group.
ShardRule kv_split(int axis, Ranges ranges, const RankSlices& s) {
  ShardRule rule = split(axis, std::move(ranges));
  if (s.kv_replicated) {
    rule.grad_sync = GradSync::kv_group_sum;
    rule.counts_in_norm = s.kv_first;
  }
  return rule;
}

// "model.layers.3.xxx" / "transformer.h.3.xxx" -> 3.
std::optional<int64_t> layer_of(const std::string& name, const ModelConfig& c) {
  const std::string prefix = c.model_type == "gpt2" ? "transformer.h." : "model.layers.";
  if (name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  size_t pos = prefix.size();
  int64_t layer = 0;
  bool digits = false;
  while (pos < name.size() && name[pos] >= '0' && name[pos] <= '9') {
    layer = layer * 10 + (name[pos++] - '0');
    digits = true;
  }
  if (!digits || pos >= name.size() || name[pos] != '.' || layer >= c.num_layers)
    return std::nullopt;
  return layer;
}

std::optional<ShardRule> lora_rule(const std::string& name, const PeftSpec& peft,
                                   const RankSlices& s, bool rank0) {
  if (peft.method != PeftMethod::lora) return std::nullopt;
  for (const LoraTarget& target : peft.lora_targets) {
    const bool a = name == target.a_name(), b = name == target.b_name();
    if (!a && !b) continue;
    const ShardRule partial = whole(GradSync::tp_sum, rank0);
    switch (target.slot) {
      // Column-parallel: A sees the whole input on every rank; B makes this rank's outputs.
      case LinearSlot::q:
        return a ? partial : split(0, s.q);
      case LinearSlot::k:
      case LinearSlot::v:
        return a ? partial : kv_split(0, s.kv, s);
      case LinearSlot::qkv:
        FT_CHECK(!s.kv_replicated, "{}: the fused qkv projection needs tp to divide the KV heads",
                 name);
        return a ? partial : split(0, s.qkv);
      case LinearSlot::gate:
      case LinearSlot::up:
        return a ? partial : split(0, s.mlp);
      // Row-parallel: A reads this rank's input columns; B's output is all-reduced.
      case LinearSlot::o:
        return a ? split(1, s.q) : partial;
      case LinearSlot::down:
        return a ? split(1, s.mlp) : partial;
    }
  }
  return std::nullopt;
}

std::optional<ShardRule> prompt_rule(const std::string& name, const PeftSpec& peft,
                                     const RankSlices& s, bool rank0) {
  switch (peft.method) {
    case PeftMethod::prompt_tuning:
      if (name == "prompt_embeddings") return whole(GradSync::none, rank0);
      break;
    case PeftMethod::p_tuning:
      // The encoder runs whole on every rank from the replicated residual stream's gradient.
      if (name.compare(0, 15, "prompt_encoder.") == 0) return whole(GradSync::none, rank0);
      break;
    case PeftMethod::prefix_tuning:
      if (!peft.prefix_projection) {
        if (name == "prompt_embeddings") return kv_split(1, s.prefix, s);
        break;
      }
      // Each rank projects to its own KV heads' columns, so everything before the last layer
      // receives a partial gradient.
      if (name == "prompt_encoder.embedding.weight" ||
          name == "prompt_encoder.transform.0.weight" || name == "prompt_encoder.transform.0.bias")
        return whole(GradSync::tp_sum, rank0);
      if (name == "prompt_encoder.transform.2.weight" || name == "prompt_encoder.transform.2.bias")
        return kv_split(0, s.prefix, s);
      break;
    case PeftMethod::full:
    case PeftMethod::lora:
      break;
  }
  return std::nullopt;
}

std::optional<ShardRule> layer_rule(const std::string& name, const ModelConfig& c,
                                    const RankSlices& s, bool rank0) {
  const std::optional<int64_t> layer = layer_of(name, c);
  if (!layer) return std::nullopt;
  const LayerParamNames n = layer_param_names(c, *layer);
  const ShardRule replicated = whole(GradSync::none, rank0);
  if (c.model_type == "gpt2" && (name == n.q_weight || name == n.q_bias)) {
    FT_CHECK(!s.kv_replicated, "{}: the fused c_attn needs tp to divide the KV heads", name);
    return split(0, s.qkv);
  }
  if (name == n.q_weight || name == n.q_bias) return split(0, s.q);
  if (name == n.k_weight || name == n.k_bias || name == n.v_weight || name == n.v_bias)
    return kv_split(0, s.kv, s);
  if (name == n.o_weight) return split(1, s.q);
  if (name == n.gate_weight || name == n.up_weight || name == n.up_bias) return split(0, s.mlp);
  if (name == n.down_weight) return split(1, s.mlp);
  // Row-parallel biases are added once, after the all-reduce; norms see the whole residual.
  if (name == n.o_bias || name == n.down_bias || name == n.attn_norm_weight ||
      name == n.attn_norm_bias || name == n.mlp_norm_weight || name == n.mlp_norm_bias)
    return replicated;
  return std::nullopt;
}

void check_rule_fits(const Shape& full, const ShardRule& rule, const char* what) {
  if (rule.axis < 0) return;
  FT_CHECK(rule.axis < full.rank, "{}: shard axis {} of a tensor of shape {}", what, rule.axis,
           full.str());
  int64_t previous = 0;
  for (const auto& [begin, end] : rule.ranges) {
    FT_CHECK(begin >= previous && begin <= end && end <= full[rule.axis],
             "{}: shard range [{}, {}) does not fit axis {} of {} (ranges must be in order)", what,
             begin, end, rule.axis, full.str());
    previous = end;
  }
}

// Copies the kept ranges between a full and a local host tensor, in either direction.
void copy_shard(const Tensor& full, const Tensor& local, const ShardRule& rule, bool to_local,
                const char* what) {
  FT_CHECK(full.device == Device::cpu && local.device == Device::cpu,
           "{}: host tensors only (full {}, local {})", what, full.describe(), local.describe());
  FT_CHECK(full.dtype == local.dtype, "{}: full {} and local {} differ in dtype", what,
           full.describe(), local.describe());
  FT_CHECK(full.rank() == 1 || full.rank() == 2, "{}: tensors of rank 1 or 2, got {}", what,
           full.describe());
  check_rule_fits(full.shape, rule, what);
  FT_CHECK(local.shape == local_shape(full.shape, rule),
           "{}: local tensor {} is not the shard shape {} of full {}", what, local.describe(),
           local_shape(full.shape, rule).str(), full.describe());
  auto copy = [&](char* full_bytes, char* local_bytes, size_t count) {
    if (count == 0) return;
    if (to_local)
      std::memcpy(local_bytes, full_bytes, count);
    else
      std::memcpy(full_bytes, local_bytes, count);
  };
  char* full_data = static_cast<char*>(full.data);
  char* local_data = static_cast<char*>(local.data);
  const size_t element = dtype_size(full.dtype);
  if (rule.axis < 0) {
    copy(full_data, local_data, full.bytes());
    return;
  }
  if (rule.axis == 0) {
    const size_t row = element * (full.rank() == 2 ? full.shape[1] : 1);
    size_t written = 0;
    for (const auto& [begin, end] : rule.ranges) {
      copy(full_data + begin * row, local_data + written, (end - begin) * row);
      written += (end - begin) * row;
    }
    return;
  }
  const int64_t rows = full.shape[0];
  const size_t full_row = element * full.shape[1], local_row = element * local.shape[1];
  for (int64_t i = 0; i < rows; ++i) {
    size_t written = 0;
    for (const auto& [begin, end] : rule.ranges) {
      copy(full_data + i * full_row + begin * element, local_data + i * local_row + written,
           (end - begin) * element);
      written += (end - begin) * element;
    }
  }
}

}  // namespace

void check_tensor_parallel(const ModelConfig& config, const PeftSpec& peft, int tp) {
  (void)peft;  // every PEFT method shards with the model (prefix and LoRA follow its heads)
  const std::string model = config.name.empty() ? config.model_type : config.name;
  if (tp < 1) fail("parallel.tp = {}: expected at least 1", tp);
  if (tp == 1) return;
  if (config.num_heads % tp != 0)
    fail(
        "parallel.tp = {} does not divide the model's num_attention_heads = {} ({}): tensor "
        "parallelism splits the query heads evenly across ranks",
        tp, config.num_heads, model);
  if (config.num_kv_heads % tp != 0 && tp % config.num_kv_heads != 0)
    fail(
        "parallel.tp = {} and the model's num_key_value_heads = {} ({}): tp must divide the KV "
        "heads, or be a multiple of them (each KV head then replicated on tp / heads ranks)",
        tp, config.num_kv_heads, model);
  if (config.model_type == "gpt2" && config.num_kv_heads % tp != 0)
    fail(
        "parallel.tp = {} exceeds the model's num_key_value_heads = {} ({}): GPT-2's fused "
        "c_attn cannot replicate KV heads",
        tp, config.num_kv_heads, model);
  if (config.intermediate_size % tp != 0)
    fail(
        "parallel.tp = {} does not divide the model's intermediate_size = {} ({}): the MLP is "
        "split evenly across ranks",
        tp, config.intermediate_size, model);
  if (config.vocab_size < tp)
    fail(
        "parallel.tp = {} exceeds the model's vocab_size = {} ({}): every rank needs at least one "
        "vocabulary row",
        tp, config.vocab_size, model);
}

ShardRule shard_rule(const ParamSpec& spec, const ModelConfig& config, const PeftSpec& peft,
                     TensorParallelRank tp) {
  FT_CHECK(tp.size >= 1 && tp.rank >= 0 && tp.rank < tp.size, "tensor-parallel rank {} of {}",
           tp.rank, tp.size);
  std::optional<ShardRule> rule;
  if (tp.size == 1) {
    rule = ShardRule{};
  } else {
    const RankSlices s = rank_slices(config, tp);
    const bool rank0 = tp.rank == 0;
    const ModelParamNames names = model_param_names(config);
    const std::string& name = spec.name;
    if (name == names.token_embedding || name == names.lm_head)
      rule = split(0, s.vocab);
    else if (name == names.position_embedding || name == names.final_norm_weight ||
             name == names.final_norm_bias)
      rule = whole(GradSync::none, rank0);
    if (!rule) rule = layer_rule(name, config, s, rank0);
    if (!rule) rule = lora_rule(name, peft, s, rank0);
    if (!rule) rule = prompt_rule(name, peft, s, rank0);
    if (!rule)
      fail("parameter {} is not a parameter of the {} model with {}: no tensor-parallel rule", name,
           config.model_type, peft.summary());
  }
  check_rule_fits(spec.shape, *rule, spec.name.c_str());
  return *rule;
}

Shape local_shape(const Shape& full, const ShardRule& rule) {
  if (rule.axis < 0) return full;
  FT_CHECK(rule.axis < full.rank, "shard axis {} of a tensor of shape {}", rule.axis, full.str());
  Shape local = full;
  int64_t kept = 0;
  for (const auto& [begin, end] : rule.ranges) kept += end - begin;
  local.dims[rule.axis] = kept;
  return local;
}

std::pair<int64_t, int64_t> vocab_range(int64_t vocab_size, TensorParallelRank tp) {
  return {vocab_size * tp.rank / tp.size, vocab_size * (tp.rank + 1) / tp.size};
}

int kv_group(const ModelConfig& config, TensorParallelRank tp) {
  if (tp.size == 1 || config.num_kv_heads >= tp.size) return tp.rank;
  return tp.rank / static_cast<int>(tp.size / config.num_kv_heads);
}

ModelConfig local_model_config(const ModelConfig& config, TensorParallelRank tp) {
  if (tp.size == 1) return config;
  check_tensor_parallel(config, PeftSpec{}, tp.size);
  ModelConfig local = config;
  local.num_heads = config.num_heads / tp.size;
  local.num_kv_heads = config.num_kv_heads >= tp.size ? config.num_kv_heads / tp.size : 1;
  local.intermediate_size = config.intermediate_size / tp.size;
  const auto [begin, end] = vocab_range(config.vocab_size, tp);
  local.vocab_size = end - begin;
  return local;
}

PeftSpec local_peft_spec(const PeftSpec& peft, const ModelConfig& config, TensorParallelRank tp) {
  if (tp.size == 1) return peft;
  const ModelConfig local = local_model_config(config, tp);
  PeftSpec shard = peft;
  for (LoraTarget& target : shard.lora_targets) {
    switch (target.slot) {
      case LinearSlot::q:
        target.out_features = local.q_dim();
        break;
      case LinearSlot::k:
      case LinearSlot::v:
        target.out_features = local.kv_dim();
        break;
      case LinearSlot::qkv:
        target.out_features = local.q_dim() + 2 * local.kv_dim();
        break;
      case LinearSlot::gate:
      case LinearSlot::up:
        target.out_features = local.intermediate_size;
        break;
      case LinearSlot::o:
        target.in_features = local.q_dim();
        break;
      case LinearSlot::down:
        target.in_features = local.intermediate_size;
        break;
    }
  }
  return shard;
}

std::vector<ParamSpec> local_param_specs(const std::vector<ParamSpec>& full_specs,
                                         const ModelConfig& config, const PeftSpec& peft,
                                         TensorParallelRank tp) {
  std::vector<ParamSpec> local = full_specs;
  for (ParamSpec& spec : local)
    spec.shape = local_shape(spec.shape, shard_rule(spec, config, peft, tp));
  return local;
}

void extract_shard(const Tensor& full, const Tensor& local, const ShardRule& rule) {
  copy_shard(full, local, rule, /*to_local=*/true, "extract_shard");
}

void insert_shard(const Tensor& full, const Tensor& local, const ShardRule& rule) {
  copy_shard(full, local, rule, /*to_local=*/false, "insert_shard");
}

}  // namespace ft
