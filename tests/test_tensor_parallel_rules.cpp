// Tensor-parallel sharding rules, in one process: for Llama-style models (GQA with KV heads split
// and replicated), Qwen2 (q/k/v biases), GPT-2 (fused c_attn) and every fine-tuning method, the
// shards of all tp ranks reassemble every parameter exactly, counts_in_norm picks one copy of each
// element, local shapes are the shapes a model of the local configuration declares, and the
// rules follow the heads (each rank's KV heads are the ones its query heads read).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "models/model_config.h"
#include "models/param_layout.h"
#include "models/peft/peft_spec.h"
#include "parallel/tensor_parallel.h"
#include "support/gradcheck.h"
#include "support/peft_cases.h"

namespace ft {
namespace {

using Ranges = std::vector<std::pair<int64_t, int64_t>>;

using testing::expect_error_naming;

config::PeftConfig peft_config(const std::string& method) {
  return testing::small_peft_config(method);
}

std::vector<std::pair<std::string, config::PeftConfig>> every_method() {
  std::vector<std::pair<std::string, config::PeftConfig>> methods;
  for (const testing::PeftCase& method : testing::peft_cases())
    methods.push_back({method.name, method.peft});
  return methods;
}

// tiny-llama: 4 query heads, 2 KV heads (split at tp 2, replicated at tp 4); tiny-mistral: one KV
// head; tiny-qwen2: q/k/v biases and tied embeddings; tiny-gpt2: fused c_attn, biases.
const std::vector<std::string> kPresets = {"tiny-llama", "tiny-mistral", "tiny-qwen2", "tiny-gpt2"};

// For every parameter: each rank's shard has the local spec's shape; inserting every rank's
// shard rebuilds the tensor bit for bit; every element is held by the expected number of ranks
// and counted in the norm by exactly one.
void check_reassembly(const ModelConfig& config, const PeftSpec& peft, int tp) {
  const std::vector<ParamSpec> specs = run_param_specs(config, peft);
  std::vector<std::vector<ParamSpec>> local_specs;
  for (int r = 0; r < tp; ++r)
    local_specs.push_back(local_param_specs(specs, config, peft, {r, tp}));
  for (size_t i = 0; i < specs.size(); ++i) {
    const ParamSpec& spec = specs[i];
    SCOPED_TRACE(spec.name);
    const int64_t n = spec.shape.numel();
    std::vector<double> original(n), rebuilt(n, std::nan("")), marks(n);
    for (int64_t k = 0; k < n; ++k) original[k] = static_cast<double>(i) * 1e6 + k + 0.25;
    std::vector<int> copies(n, 0), counted(n, 0);
    const Tensor full(original.data(), DType::f64, spec.shape);
    for (int r = 0; r < tp; ++r) {
      const ShardRule rule = shard_rule(spec, config, peft, {r, tp});
      const ParamSpec& local = local_specs[r][i];
      EXPECT_EQ(local.name, spec.name);
      EXPECT_EQ(local.trainable, spec.trainable);
      EXPECT_EQ(local.decay, spec.decay);
      EXPECT_EQ(local.init, spec.init);
      EXPECT_EQ(local.init_std, spec.init_std);
      EXPECT_EQ(local.init_bound, spec.init_bound);
      ASSERT_EQ(local.shape, local_shape(spec.shape, rule)) << "rank " << r;
      std::vector<double> shard(local.shape.numel());
      const Tensor shard_tensor(shard.data(), DType::f64, local.shape);
      extract_shard(full, shard_tensor, rule);
      insert_shard(Tensor(rebuilt.data(), DType::f64, spec.shape), shard_tensor, rule);
      // Which elements this rank holds: insert ones into zeros.
      std::fill(marks.begin(), marks.end(), 0.0);
      std::vector<double> ones(local.shape.numel(), 1.0);
      insert_shard(Tensor(marks.data(), DType::f64, spec.shape),
                   Tensor(ones.data(), DType::f64, local.shape), rule);
      for (int64_t k = 0; k < n; ++k) {
        copies[k] += marks[k] != 0.0;
        counted[k] += marks[k] != 0.0 && rule.counts_in_norm;
      }
      // Partial sums complete a whole tensor; a kv group completes a shard of KV heads.
      EXPECT_NE(rule.grad_sync, rule.axis < 0 ? GradSync::kv_group_sum : GradSync::tp_sum);
    }
    EXPECT_EQ(std::memcmp(original.data(), rebuilt.data(), n * sizeof(double)), 0);
    const ShardRule rule0 = shard_rule(spec, config, peft, {0, tp});
    int expected_copies = 1;
    if (rule0.axis < 0) expected_copies = tp;
    if (rule0.grad_sync == GradSync::kv_group_sum)
      expected_copies = tp / static_cast<int>(config.num_kv_heads);
    for (int64_t k = 0; k < n; ++k) {
      ASSERT_EQ(copies[k], expected_copies) << "element " << k;
      ASSERT_EQ(counted[k], 1) << "element " << k;
    }
  }
}

TEST(TensorParallelRules, ShardsReassembleEveryParameter) {
  for (const std::string& preset : kPresets) {
    const ModelConfig config = model_config_preset(preset);
    for (const auto& [method, peft_cfg] : every_method()) {
      const PeftSpec peft = resolve_peft_spec(peft_cfg, config, 8);
      for (int tp : {1, 2, 4}) {
        SCOPED_TRACE(fmt::format("{}, {}, tp {}", preset, method, tp));
        check_tensor_parallel(config, peft, tp);
        check_reassembly(config, peft, tp);
      }
    }
  }
}

// The local shapes are those a model of local_model_config (and an adapter of local_peft_spec)
// declares, so the model code runs on a shard unchanged. Prefix tuning with projection is the
// exception: its embedding and first layer stay whole (replicated), only the last layer splits.
TEST(TensorParallelRules, LocalShapesAreTheLocalModelsShapes) {
  for (const std::string& preset : kPresets) {
    const ModelConfig config = model_config_preset(preset);
    for (const auto& [method, peft_cfg] : every_method()) {
      const PeftSpec peft = resolve_peft_spec(peft_cfg, config, 8);
      for (int tp : {1, 2, 4}) {
        for (int r = 0; r < tp; ++r) {
          SCOPED_TRACE(fmt::format("{}, {}, tp {} rank {}", preset, method, tp, r));
          const TensorParallelRank rank{r, tp};
          const ModelConfig local = local_model_config(config, rank);
          const std::vector<ParamSpec> shards =
              local_param_specs(run_param_specs(config, peft), config, peft, rank);
          std::vector<ParamSpec> declared = transformer_param_specs(local);
          const std::vector<ParamSpec> adapter =
              peft_param_specs(local_peft_spec(peft, config, rank), local);
          declared.insert(declared.end(), adapter.begin(), adapter.end());
          ASSERT_EQ(shards.size(), declared.size());
          for (size_t i = 0; i < shards.size(); ++i) {
            EXPECT_EQ(shards[i].name, declared[i].name);
            const bool whole_encoder =
                peft.prefix_projection && (shards[i].name == "prompt_encoder.embedding.weight" ||
                                           shards[i].name == "prompt_encoder.transform.0.weight");
            if (whole_encoder) {
              EXPECT_EQ(shards[i].shape[1], config.kv_dim()) << shards[i].name;
            } else {
              EXPECT_EQ(shards[i].shape, declared[i].shape) << shards[i].name;
            }
          }
        }
      }
    }
  }
}

TEST(TensorParallelRules, LocalModelConfig) {
  const ModelConfig llama = model_config_preset("tiny-llama");  // 4 heads, 2 KV, F 40, V 61
  const ModelConfig at2 = local_model_config(llama, {1, 2});
  EXPECT_EQ(at2.num_heads, 2);
  EXPECT_EQ(at2.num_kv_heads, 1);
  EXPECT_EQ(at2.intermediate_size, 20);
  EXPECT_EQ(at2.vocab_size, 31);  // [30, 61)
  EXPECT_EQ(at2.hidden_size, llama.hidden_size);
  EXPECT_EQ(at2.head_dim, llama.head_dim);
  EXPECT_EQ(at2.num_layers, llama.num_layers);
  EXPECT_EQ(at2.name, llama.name);
  EXPECT_EQ(at2.q_dim(), 12);
  EXPECT_EQ(at2.kv_dim(), 6);
  const ModelConfig at4 = local_model_config(llama, {3, 4});
  EXPECT_EQ(at4.num_heads, 1);
  EXPECT_EQ(at4.num_kv_heads, 1);  // one replicated head
  EXPECT_EQ(at4.intermediate_size, 10);
  EXPECT_EQ(at4.vocab_size, 16);  // [45, 61)
  const ModelConfig gpt2 = model_config_preset("tiny-gpt2");
  const ModelConfig gpt2_at4 = local_model_config(gpt2, {0, 4});
  EXPECT_EQ(gpt2_at4.num_heads, 1);
  EXPECT_EQ(gpt2_at4.num_kv_heads, 1);
  EXPECT_EQ(gpt2_at4.intermediate_size, 24);
  EXPECT_EQ(gpt2_at4.max_position_embeddings, gpt2.max_position_embeddings);
  const ModelConfig whole = local_model_config(llama, {0, 1});
  EXPECT_EQ(whole.num_heads, llama.num_heads);
  EXPECT_EQ(whole.vocab_size, llama.vocab_size);
}

TEST(TensorParallelRules, VocabRangesCoverTheVocabulary) {
  for (int64_t vocab : {61, 7, 4, 64}) {
    for (int tp : {1, 2, 3, 4}) {
      if (vocab < tp) continue;
      int64_t next = 0, smallest = vocab, largest = 0;
      for (int r = 0; r < tp; ++r) {
        const auto [begin, end] = vocab_range(vocab, {r, tp});
        EXPECT_EQ(begin, next) << vocab << " over " << tp;
        EXPECT_GT(end, begin);
        smallest = std::min(smallest, end - begin);
        largest = std::max(largest, end - begin);
        next = end;
      }
      EXPECT_EQ(next, vocab);
      EXPECT_LE(largest - smallest, 1);
    }
  }
  EXPECT_EQ(vocab_range(61, {0, 4}), (std::pair<int64_t, int64_t>{0, 15}));
  EXPECT_EQ(vocab_range(61, {3, 4}), (std::pair<int64_t, int64_t>{45, 61}));
}

// The rows and columns each rank keeps follow its heads: query heads in contiguous blocks, the KV
// heads those query heads read (GQA), o_proj's input columns for the same heads, one block of the
// intermediate size for gate, up and down, and LoRA and prefix parameters like their modules.
TEST(TensorParallelRules, RulesFollowTheHeads) {
  for (const char* preset : {"tiny-llama", "tiny-mistral", "tiny-qwen2"}) {
    const ModelConfig config = model_config_preset(preset);
    config::PeftConfig lora_cfg = peft_config("lora");
    lora_cfg.set_target_modules("all-linear");
    const PeftSpec lora = resolve_peft_spec(lora_cfg, config, 8);
    const PeftSpec prefix = resolve_peft_spec(peft_config("prefix_tuning"), config, 8);
    const std::vector<ParamSpec> lora_specs = run_param_specs(config, lora);
    const std::vector<ParamSpec> prefix_specs = run_param_specs(config, prefix);
    auto find = [](const std::vector<ParamSpec>& specs, const std::string& name) {
      for (const ParamSpec& spec : specs)
        if (spec.name == name) return spec;
      ADD_FAILURE() << "no parameter " << name;
      return ParamSpec{};
    };
    const int64_t D = config.head_dim, group = config.num_heads / config.num_kv_heads;
    for (int tp : {2, 4}) {
      for (int r = 0; r < tp; ++r) {
        SCOPED_TRACE(fmt::format("{}, tp {} rank {}", preset, tp, r));
        const TensorParallelRank rank{r, tp};
        auto rule = [&](const std::string& name) {
          return shard_rule(find(lora_specs, name), config, lora, rank);
        };
        const LayerParamNames n = layer_param_names(config, 1);
        const ShardRule q = rule(n.q_weight), k = rule(n.k_weight), v = rule(n.v_weight);
        ASSERT_EQ(q.axis, 0);
        ASSERT_EQ(q.ranges.size(), 1u);
        ASSERT_EQ(k.ranges.size(), 1u);
        std::set<int64_t> wanted_kv;
        for (int64_t row = q.ranges[0].first; row < q.ranges[0].second; row += D)
          wanted_kv.insert(row / D / group);
        std::set<int64_t> held_kv;
        for (int64_t row = k.ranges[0].first; row < k.ranges[0].second; row += D)
          held_kv.insert(row / D);
        EXPECT_EQ(held_kv, wanted_kv);
        EXPECT_EQ(v.ranges, k.ranges);
        EXPECT_EQ(static_cast<int64_t>(held_kv.size()),
                  local_model_config(config, rank).num_kv_heads);
        const bool replicated = config.num_kv_heads < tp;
        EXPECT_EQ(k.grad_sync, replicated ? GradSync::kv_group_sum : GradSync::none);
        EXPECT_EQ(kv_group(config, rank),
                  *held_kv.begin() / std::max<int64_t>(1, config.num_kv_heads / tp));
        if (config.qkv_bias) {
          EXPECT_EQ(rule(n.q_bias).ranges, q.ranges);
          EXPECT_EQ(rule(n.k_bias).ranges, k.ranges);
          EXPECT_EQ(rule(n.k_bias).grad_sync, k.grad_sync);
        }
        const ShardRule o = rule(n.o_weight);
        EXPECT_EQ(o.axis, 1);
        EXPECT_EQ(o.ranges, q.ranges);
        const ShardRule gate = rule(n.gate_weight);
        EXPECT_EQ(gate.axis, 0);
        EXPECT_EQ(rule(n.up_weight).ranges, gate.ranges);
        EXPECT_EQ(rule(n.down_weight).axis, 1);
        EXPECT_EQ(rule(n.down_weight).ranges, gate.ranges);
        EXPECT_EQ(rule(n.attn_norm_weight).axis, -1);
        EXPECT_EQ(rule(n.attn_norm_weight).counts_in_norm, r == 0);
        const ModelParamNames m = model_param_names(config);
        const ShardRule embedding = rule(m.token_embedding);
        EXPECT_EQ(embedding.axis, 0);
        EXPECT_EQ(embedding.ranges, (Ranges{vocab_range(config.vocab_size, rank)}));
        EXPECT_EQ(rule(m.lm_head).ranges, embedding.ranges);

        const std::string p = "model.layers.1.";
        // LoRA on column-parallel modules: A whole with partial gradients, B like the rows.
        for (const auto& [module, base] :
             {std::pair{"self_attn.q_proj", q}, {"self_attn.k_proj", k}, {"mlp.gate_proj", gate}}) {
          const ShardRule a = rule(p + module + ".lora_A.weight");
          const ShardRule b = rule(p + module + ".lora_B.weight");
          EXPECT_EQ(a.axis, -1);
          EXPECT_EQ(a.grad_sync, GradSync::tp_sum);
          EXPECT_EQ(a.counts_in_norm, r == 0);
          EXPECT_EQ(b.axis, 0);
          EXPECT_EQ(b.ranges, base.ranges);
          EXPECT_EQ(b.grad_sync, base.grad_sync);
          EXPECT_EQ(b.counts_in_norm, base.counts_in_norm);
        }
        // On row-parallel modules: A like the input columns, B whole with partial gradients.
        for (const auto& [module, base] :
             {std::pair{"self_attn.o_proj", o}, {"mlp.down_proj", rule(n.down_weight)}}) {
          const ShardRule a = rule(p + module + ".lora_A.weight");
          const ShardRule b = rule(p + module + ".lora_B.weight");
          EXPECT_EQ(a.axis, 1);
          EXPECT_EQ(a.ranges, base.ranges);
          EXPECT_EQ(b.axis, -1);
          EXPECT_EQ(b.grad_sync, GradSync::tp_sum);
        }
        // The prefix's columns: in each (layer, K/V) block, this rank's KV heads.
        const ShardRule table =
            shard_rule(find(prefix_specs, "prompt_embeddings"), config, prefix, rank);
        EXPECT_EQ(table.axis, 1);
        ASSERT_EQ(table.ranges.size(), static_cast<size_t>(2 * config.num_layers));
        for (size_t block = 0; block < table.ranges.size(); ++block) {
          const int64_t offset = static_cast<int64_t>(block) * config.kv_dim();
          EXPECT_EQ(table.ranges[block],
                    (std::pair{offset + k.ranges[0].first, offset + k.ranges[0].second}));
        }
        EXPECT_EQ(table.grad_sync, k.grad_sync);
        EXPECT_EQ(table.counts_in_norm, k.counts_in_norm);
      }
    }
  }
}

TEST(TensorParallelRules, ReplicatedKvHeadsAndExplicitRanges) {
  const ModelConfig llama = model_config_preset("tiny-llama");  // D 6, q 24, kv 12
  const PeftSpec full = resolve_peft_spec(peft_config("full"), llama, 8);
  const ParamSpec k{"model.layers.0.self_attn.k_proj.weight", Shape{12, 24}};
  const int groups[4] = {0, 0, 1, 1};
  for (int r = 0; r < 4; ++r) {
    const ShardRule rule = shard_rule(k, llama, full, {r, 4});
    EXPECT_EQ(rule.ranges, (Ranges{{groups[r] * 6, groups[r] * 6 + 6}}));
    EXPECT_EQ(rule.grad_sync, GradSync::kv_group_sum);
    EXPECT_EQ(rule.counts_in_norm, r % 2 == 0);
    EXPECT_EQ(kv_group(llama, {r, 4}), groups[r]);
  }
  const ShardRule at2 = shard_rule(k, llama, full, {1, 2});
  EXPECT_EQ(at2.ranges, (Ranges{{6, 12}}));
  EXPECT_EQ(at2.grad_sync, GradSync::none);
  EXPECT_TRUE(at2.counts_in_norm);
  EXPECT_EQ(kv_group(llama, {1, 2}), 1);
  const ModelConfig mistral = model_config_preset("tiny-mistral");  // one KV head
  for (int r = 0; r < 4; ++r) EXPECT_EQ(kv_group(mistral, {r, 4}), 0);
  // tp 1: every parameter whole, nothing to complete.
  const ShardRule single = shard_rule(k, llama, full, {0, 1});
  EXPECT_EQ(single.axis, -1);
  EXPECT_EQ(single.grad_sync, GradSync::none);
  EXPECT_TRUE(single.counts_in_norm);

  // Prefix without projection at tp 4, rank 3: KV head 1 of each of the 4 (layer, K/V) blocks.
  const PeftSpec prefix = resolve_peft_spec(peft_config("prefix_tuning"), llama, 8);
  const ShardRule table = shard_rule({"prompt_embeddings", Shape{3, 48}}, llama, prefix, {3, 4});
  EXPECT_EQ(table.axis, 1);
  EXPECT_EQ(table.ranges, (Ranges{{6, 12}, {18, 24}, {30, 36}, {42, 48}}));
  EXPECT_EQ(table.grad_sync, GradSync::kv_group_sum);
  EXPECT_FALSE(table.counts_in_norm);
  // With projection: the last layer's rows by the same pattern, the rest whole and partial.
  config::PeftConfig projected_cfg = peft_config("prefix_tuning");
  projected_cfg.set_prefix_projection(true);
  const PeftSpec projected = resolve_peft_spec(projected_cfg, llama, 8);
  for (const ParamSpec& spec : peft_param_specs(projected, llama)) {
    const ShardRule rule = shard_rule(spec, llama, projected, {2, 4});
    if (spec.name.find("transform.2") != std::string::npos) {
      EXPECT_EQ(rule.axis, 0) << spec.name;
      EXPECT_EQ(rule.ranges, (Ranges{{6, 12}, {18, 24}, {30, 36}, {42, 48}})) << spec.name;
      EXPECT_EQ(rule.grad_sync, GradSync::kv_group_sum) << spec.name;
      EXPECT_TRUE(rule.counts_in_norm) << spec.name;
    } else {
      EXPECT_EQ(rule.axis, -1) << spec.name;
      EXPECT_EQ(rule.grad_sync, GradSync::tp_sum) << spec.name;
      EXPECT_FALSE(rule.counts_in_norm) << spec.name;
    }
  }
  // Prompt tuning and the P-tuning encoder: whole, identical gradients everywhere.
  const PeftSpec ptuning = resolve_peft_spec(peft_config("p_tuning"), llama, 8);
  for (const ParamSpec& spec : peft_param_specs(ptuning, llama)) {
    const ShardRule rule = shard_rule(spec, llama, ptuning, {0, 2});
    EXPECT_EQ(rule.axis, -1) << spec.name;
    EXPECT_EQ(rule.grad_sync, GradSync::none) << spec.name;
    EXPECT_TRUE(rule.counts_in_norm) << spec.name;
    EXPECT_FALSE(shard_rule(spec, llama, ptuning, {1, 2}).counts_in_norm) << spec.name;
  }
}

// GPT-2's c_attn keeps its q, k and v row blocks' shares of this rank's heads, in that order, so
// the local c_attn is [q_local | k_local | v_local] as a model with the local heads expects.
TEST(TensorParallelRules, Gpt2FusedAttentionAndBiases) {
  const ModelConfig gpt2 = model_config_preset("tiny-gpt2");  // C 24, 4 heads of 6, F 96
  config::PeftConfig lora_cfg = peft_config("lora");
  lora_cfg.set_target_modules("all-linear");
  const PeftSpec lora = resolve_peft_spec(lora_cfg, gpt2, 8);
  std::vector<ParamSpec> specs = run_param_specs(gpt2, lora);
  auto rule = [&](const std::string& name) {
    for (const ParamSpec& spec : specs)
      if (spec.name == name) return shard_rule(spec, gpt2, lora, {1, 2});
    ADD_FAILURE() << "no parameter " << name;
    return ShardRule{};
  };
  const Ranges qkv{{12, 24}, {36, 48}, {60, 72}};
  const std::string p = "transformer.h.0.";
  EXPECT_EQ(rule(p + "attn.c_attn.weight").ranges, qkv);
  EXPECT_EQ(rule(p + "attn.c_attn.bias").ranges, qkv);
  EXPECT_EQ(rule(p + "attn.c_attn.lora_B.weight").ranges, qkv);
  EXPECT_EQ(rule(p + "attn.c_attn.lora_A.weight").grad_sync, GradSync::tp_sum);
  EXPECT_EQ(rule(p + "attn.c_proj.weight").axis, 1);
  EXPECT_EQ(rule(p + "attn.c_proj.weight").ranges, (Ranges{{12, 24}}));
  EXPECT_EQ(rule(p + "mlp.c_fc.weight").ranges, (Ranges{{48, 96}}));
  EXPECT_EQ(rule(p + "mlp.c_fc.bias").ranges, (Ranges{{48, 96}}));
  EXPECT_EQ(rule(p + "mlp.c_proj.weight").axis, 1);
  EXPECT_EQ(rule(p + "mlp.c_proj.weight").ranges, (Ranges{{48, 96}}));
  EXPECT_EQ(rule(p + "mlp.c_proj.lora_A.weight").ranges, (Ranges{{48, 96}}));
  for (const std::string& bias :
       {p + "attn.c_proj.bias", p + "mlp.c_proj.bias", std::string("transformer.wpe.weight")}) {
    const ShardRule replicated = rule(bias);
    EXPECT_EQ(replicated.axis, -1) << bias;
    EXPECT_EQ(replicated.grad_sync, GradSync::none) << bias;
    EXPECT_FALSE(replicated.counts_in_norm) << bias;  // rank 1
  }
  EXPECT_EQ(rule("transformer.wte.weight").ranges, (Ranges{{30, 61}}));
  const PeftSpec local = local_peft_spec(lora, gpt2, {1, 2});
  EXPECT_EQ(local.lora_targets[0].out_features, 36);  // c_attn: 12 + 12 + 12
  EXPECT_EQ(local.lora_targets[0].in_features, 24);
  EXPECT_EQ(local.lora_targets[1].in_features, 12);  // attn.c_proj
  EXPECT_EQ(local.lora_targets[3].in_features, 48);  // mlp.c_proj
}

TEST(TensorParallelRules, ConfigurationErrorsNameTheField) {
  const PeftSpec full;
  const ModelConfig llama = model_config_preset("tiny-llama");
  expect_error_naming([&] { check_tensor_parallel(llama, full, 3); },
                      {"parallel.tp = 3", "num_attention_heads", "tiny-llama"});
  ModelConfig six = llama;
  six.name = "six-heads";
  six.num_heads = 6;
  six.num_kv_heads = 3;
  six.head_dim = 4;
  expect_error_naming([&] { check_tensor_parallel(six, full, 2); },
                      {"parallel.tp = 2", "num_key_value_heads", "six-heads"});
  ModelConfig wide = llama;
  wide.intermediate_size = 42;
  expect_error_naming([&] { check_tensor_parallel(wide, full, 4); },
                      {"parallel.tp = 4", "intermediate_size = 42", "tiny-llama"});
  ModelConfig small = llama;
  small.vocab_size = 3;
  expect_error_naming([&] { check_tensor_parallel(small, full, 4); },
                      {"parallel.tp = 4", "vocab_size = 3", "tiny-llama"});
  expect_error_naming([&] { check_tensor_parallel(llama, full, 0); }, {"parallel.tp = 0"});
  // tp 1 fits every model; tp 4 replicates tiny-mistral's single KV head.
  check_tensor_parallel(six, full, 1);
  check_tensor_parallel(small, full, 1);
  check_tensor_parallel(model_config_preset("tiny-mistral"), full, 4);
  // A name the run does not have.
  expect_error_naming(
      [&] {
        shard_rule({"model.layers.0.self_attn.qkv_proj.weight", Shape{4, 4}}, llama, full, {0, 2});
      },
      {"model.layers.0.self_attn.qkv_proj.weight"});
}

TEST(TensorParallelRules, ExtractAndInsertMoveBytesOfAnyDtype) {
  const ShardRule columns{1, {{1, 2}, {3, 5}}};
  std::vector<int32_t> full(12);
  for (int i = 0; i < 12; ++i) full[i] = i;
  std::vector<int32_t> local(6, -1);
  const Tensor full_tensor(full.data(), DType::i32, Shape{2, 6});
  const Tensor local_tensor(local.data(), DType::i32, Shape{2, 3});
  extract_shard(full_tensor, local_tensor, columns);
  EXPECT_EQ(local, (std::vector<int32_t>{1, 3, 4, 7, 9, 10}));
  std::vector<int32_t> back(12, 0);
  insert_shard(Tensor(back.data(), DType::i32, Shape{2, 6}), local_tensor, columns);
  EXPECT_EQ(back, (std::vector<int32_t>{0, 1, 0, 3, 4, 0, 0, 7, 0, 9, 10, 0}));

  std::vector<bf16> half(5), half_local(2);
  for (int i = 0; i < 5; ++i) half[i] = float_to_bf16(static_cast<float>(i));
  extract_shard(Tensor(half.data(), DType::bf16, Shape{5}),
                Tensor(half_local.data(), DType::bf16, Shape{2}), ShardRule{0, {{3, 5}}});
  EXPECT_EQ(bf16_to_float(half_local[0]), 3.0f);
  EXPECT_EQ(bf16_to_float(half_local[1]), 4.0f);

  std::vector<float> wrong(4);
  expect_error_naming(
      [&] {
        extract_shard(full_tensor, Tensor(wrong.data(), DType::f32, Shape{2, 3}), columns);
      },
      {"extract_shard", "dtype"});
  expect_error_naming(
      [&] {
        extract_shard(full_tensor, Tensor(local.data(), DType::i32, Shape{3, 2}), columns);
      },
      {"extract_shard", "(2, 3)"});
  expect_error_naming(
      [&] {
        insert_shard(full_tensor, local_tensor, ShardRule{1, {{3, 5}, {1, 2}}});
      },
      {"insert_shard", "in order"});
}

}  // namespace
}  // namespace ft
