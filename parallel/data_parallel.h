// The optimizer step under a parallel layout:
//  1. complete the gradients: replicated tensors whose tensor-parallel ranks hold partial
//     gradients (GradSync::tp_sum, kv_group_sum) are summed over their group, then every trainable
//     gradient is summed over the data-parallel ranks — all-reduced in buckets, or with ZeRO-1
//     reduce-scattered so each rank holds the sum for its slice of the flat trainable buffer;
//  2. clip by the global gradient norm (each element counted once over the whole layout);
//  3. AdamW: on every trainable element — one multi-tensor step (kernels/multi_tensor_ops.h: one
//     launch on a GPU, one adamw_update per tensor on the CPU) — or with ZeRO-1 on this rank's
//     slice only, one adamw_update per parameter piece, whose moments (and, on the CPU, master
//     weights: the parameters themselves) only this rank holds, followed by an all-gather of the
//     updated slices.
// Losses are normalized by the global batch's target tokens, so a sum over ranks is the gradient
// of the global batch's mean loss. Only trainable parameters are communicated. With one rank this
// is plain AdamW with clipping.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/context.h"
#include "kernels/multi_tensor_ops.h"
#include "parallel/parameter_distribution.h"
#include "parallel/process_groups.h"
#include "parallel/tensor_parallel.h"
#include "runtime/buffer.h"
#include "runtime/parameters.h"
#include "runtime/train/optimizer.h"

namespace ft {

struct DataParallelOptions {
  bool zero1 = false;
  int64_t bucket_bytes = 25ll << 20;  // data-parallel all-reduce granularity (PyTorch DDP's 25 MB)
};

class DataParallelOptimizer {
 public:
  // `rules`: shard_rule of each of `params`' parameters, in order (one rule, whole tensors, per
  // parameter without tensor parallelism). `kv_group`: the communicator of the ranks sharing KV
  // heads (nullptr when no rule asks for kv_group_sum). With ZeRO-1, `params` must have been
  // built without moments and with trainable_multiple = dp.
  DataParallelOptimizer(const ParameterStore& params, std::vector<ShardRule> rules,
                        const ProcessGroups& groups, Communicator* kv_group, AdamWConfig adamw,
                        DataParallelOptions options);

  void reduce_gradients(const OpContext& ctx);
  // The global gradient norm; when it exceeds grad_clip the next update uses the gradients
  // scaled down to it (fused into the update, the gradient buffers keep their values).
  double clip_gradients(const OpContext& ctx);
  void update(const OpContext& ctx, double lr, int64_t step);

  bool zero1() const { return options_.zero1; }
  // The moments over the local trainable layout, for a checkpoint: the store's own, or with
  // ZeRO-1 all-gathered over the data-parallel group into `scratch` (collective: every rank calls
  // it).
  FlatMoments moments_for_checkpoint(Buffer& scratch);
  // Flat moment buffers to load a checkpoint into (the store's own, or `scratch` with ZeRO-1);
  // afterwards load_moments keeps this rank's slice.
  FlatMoments moments_to_load(Buffer& scratch);
  void load_moments(const FlatMoments& moments);
  // Bytes of optimizer state this rank holds.
  size_t state_bytes() const;

 private:
  struct Range {  // [begin, end) in the flat trainable buffer
    int64_t begin = 0, end = 0;
  };
  void sum_partials(const OpContext& ctx, const std::vector<size_t>& members, Communicator& group,
                    Tensor staging);
  Range shard() const;

  const ParameterStore& params_;
  std::vector<ShardRule> rules_;
  const ProcessGroups& groups_;
  Communicator* kv_group_;
  AdamWConfig adamw_;
  DataParallelOptions options_;
  std::vector<size_t> tp_partials_, kv_partials_;  // indices of parameters with partial gradients
  Buffer staging_;                                 // packs partial gradients for one all-reduce
  Tensor tp_staging_, kv_staging_;
  // ZeRO-1: this rank's slice of the summed gradients, its moments, and an all-gather source.
  Buffer shard_buffer_;
  Tensor shard_grads_, shard_m_, shard_v_, shard_values_;
  // Without ZeRO-1: every trainable parameter with its moments and bf16 working copy, tabled once.
  std::unique_ptr<ops::MultiTensorAdamW> multi_tensor_;
  double grad_scale_ = 1.0;
};

}  // namespace ft
