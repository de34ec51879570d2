// Fused softmax cross-entropy on the GPU: the forward keeps only lse (N) and the losses (N), the
// backward writes dlogits directly (never a probability matrix besides it). logits and dlogits
// are f32 or bf16; losses, lse and weights are f32 (ops::stats_dtype). Arguments are checked by
// the ops.h entry points; a target outside [0, V) that is not the ignore index is recorded as a
// device error (its row gets loss 0 and gradient 0).
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "runtime/tensor.h"

namespace ft::cuda {

// correct, optional: the rows whose first argmax is the target (count_correct's rule). Counting
// waits for ctx.stream once to hand the count back and then raises any recorded device error;
// without it the op is asynchronous.
void cross_entropy_forward(const OpContext& ctx, Tensor losses, Tensor lse, Tensor logits,
                           Tensor targets, Tensor weights, int64_t* correct);
void cross_entropy_backward(const OpContext& ctx, Tensor dlogits, Tensor logits, Tensor lse,
                            Tensor targets, Tensor weights, double dloss);
// The gradient of a block of logit columns whose first is vocabulary column vocab_begin, for op
// `op`: the fused loss (vocab_begin 0, whole_vocab: targets must lie in the block) and a
// vocabulary shard (not whole_vocab: targets need only be non-negative; weights empty).
void cross_entropy_backward_rows(const OpContext& ctx, const char* op, Tensor dlogits,
                                 Tensor logits, Tensor lse, Tensor targets, Tensor weights,
                                 int64_t vocab_begin, bool whole_vocab, double dloss);

}  // namespace ft::cuda
