// The vocabulary-parallel cross-entropy on the GPU (tensor parallelism): per-row statistics of a
// logits shard, their combination over shards, and the shard's gradient. logits and dlogits are
// f32 or bf16; stats, parts, lse and losses are f32 (ops::stats_dtype). The formulas and the
// NaN/argmax rules follow kernels/cpu/vocab_parallel_cpu.cpp. Arguments are checked by the ops.h
// entry points; a negative target other than the ignore index, or an argmax entry of parts that
// is not a column index, is recorded as a device error. (The embedding shards live in
// embedding_cuda.h.)
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "runtime/tensor.h"

namespace ft::cuda {

void cross_entropy_shard_stats(const OpContext& ctx, Tensor stats, Tensor logits, Tensor targets,
                               int64_t vocab_begin);
// correct, optional: counting waits for ctx.stream once and then raises any recorded device error.
void cross_entropy_combine_shards(const OpContext& ctx, Tensor losses, Tensor lse, Tensor parts,
                                  Tensor targets, int64_t* correct);
void cross_entropy_backward_shard(const OpContext& ctx, Tensor dlogits, Tensor logits, Tensor lse,
                                  Tensor targets, int64_t vocab_begin, double dloss);

}  // namespace ft::cuda
