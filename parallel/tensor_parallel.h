// Megatron-style tensor-parallel sharding rules: which part of each parameter a tensor-parallel
// rank holds, and how its gradient is completed. A pure function of (parameter, model, PEFT
// method, tp rank, tp size), so any rank can compute any other rank's shard (checkpoint gathers).
//
//  - column-parallel (split by output rows): q/k/v projections (by head), gate/up, GPT-2's c_attn
//    (its q, k and v row blocks each split by head) and c_fc with their biases; LoRA B of those.
//  - row-parallel (split by input columns): attention output (by head) and down projections;
//    LoRA A of those. Their biases stay whole (added once, after the all-reduce).
//  - vocabulary-parallel: token embedding and LM head rows, split into contiguous ranges
//    (vocab_range; sizes may differ by one when tp does not divide the vocabulary).
//  - KV heads: split by head when tp divides num_kv_heads; when num_kv_heads < tp (tp a multiple
//    of it) each rank holds the one KV head its query heads use, replicated over tp / num_kv_heads
//    ranks whose partial gradients are summed over that kv group.
//  - prefix tuning: the prefix's per-layer key/value columns by KV head (with projection: the last
//    transform layer's rows; the embedding and first layer replicated, gradients partial).
//  - everything else (norms, GPT-2 position embedding, row-parallel biases, prompt embeddings,
//    the P-tuning encoder) is replicated with identical gradients on every tp rank.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "models/model_config.h"
#include "models/param_layout.h"
#include "models/peft/peft_spec.h"
#include "runtime/tensor.h"

namespace ft {

struct TensorParallelRank {
  int rank = 0;
  int size = 1;
};

// How a replicated tensor's gradient becomes complete on this rank.
enum class GradSync {
  none,          // a shard, or replicated with identical gradients: nothing to do
  tp_sum,        // replicated, each tp rank holds a partial gradient: sum over the tp group
  kv_group_sum,  // a replicated KV head: sum over the ranks holding the same KV head
};

struct ShardRule {
  int axis = -1;  // -1: the whole tensor; 0 or 1: kept ranges along this axis
  std::vector<std::pair<int64_t, int64_t>> ranges;  // [begin, end) in full coordinates, in order
  GradSync grad_sync = GradSync::none;
  // This rank counts the tensor in the global gradient norm: every shard, and for a replicated
  // tensor exactly one rank of each group of identical copies (tp rank 0, or the first rank of
  // each kv group).
  bool counts_in_norm = true;
};

// Errors (naming parallel.tp and the model field) before anything is built: tp must divide the
// query heads and the intermediate size, num_kv_heads % tp == 0 or tp % num_kv_heads == 0, and
// the vocabulary must have at least tp rows.
void check_tensor_parallel(const ModelConfig& config, const PeftSpec& peft, int tp);

// The rule for the full parameter `spec` (a name from run_param_specs(config, peft)).
ShardRule shard_rule(const ParamSpec& spec, const ModelConfig& config, const PeftSpec& peft,
                     TensorParallelRank tp);
Shape local_shape(const Shape& full, const ShardRule& rule);

// This rank's rows of the vocabulary: [begin, end).
std::pair<int64_t, int64_t> vocab_range(int64_t vocab_size, TensorParallelRank tp);
// The kv group a rank belongs to (ranks holding the same KV heads have the same group).
int kv_group(const ModelConfig& config, TensorParallelRank tp);

// The model as one rank sees it: num_heads / tp query heads, its KV heads, intermediate / tp,
// vocab_size = its vocabulary range's length. Names and every other field unchanged.
ModelConfig local_model_config(const ModelConfig& config, TensorParallelRank tp);
// The PEFT spec with LoRA targets' in/out features of this rank's shards.
PeftSpec local_peft_spec(const PeftSpec& peft, const ModelConfig& config, TensorParallelRank tp);
// run_param_specs(config, peft) with every shape replaced by this rank's shard shape.
std::vector<ParamSpec> local_param_specs(const std::vector<ParamSpec>& full_specs,
                                         const ModelConfig& config, const PeftSpec& peft,
                                         TensorParallelRank tp);

// Host tensors of the same dtype: local = full's kept ranges; full's kept ranges = local.
void extract_shard(const Tensor& full, const Tensor& local, const ShardRule& rule);
void insert_shard(const Tensor& full, const Tensor& local, const ShardRule& rule);

}  // namespace ft
