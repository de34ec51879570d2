// The optimizer step and the gradient-norm reduction over flat parameter spans.
#pragma once

#include <cstdint>

#include "kernels/ops.h"

namespace ft::cpu {

// One AdamW step in PyTorch's order: params *= 1 - lr * weight_decay; m, v updated; then
// params -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
template <typename scalar_t>
void adamw_update(scalar_t* params, const scalar_t* grads, scalar_t* m, scalar_t* v, int64_t count,
                  const ops::AdamWArgs& args, int threads);

// sum(x^2) in double. Partial sums over fixed chunks are added in order, so the result does not
// depend on the thread count.
template <typename scalar_t>
double sum_squares(const scalar_t* x, int64_t count, int threads);

}  // namespace ft::cpu
