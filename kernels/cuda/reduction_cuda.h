// Reductions whose result the host reads: sum, sum of squares (global gradient norm) and the
// argmax accuracy count. Each call waits for ctx.stream once (the value must reach the host),
// then raises any recorded device error (check_device_errors). Deterministic: a fixed number of
// blocks for a given size, partial sums added in order.
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "runtime/tensor.h"

namespace ft::cuda {

// f32, bf16 or f64 x, summed in fp64.
double sum(const OpContext& ctx, Tensor x);
double sum_squares(const OpContext& ctx, Tensor x);
// Rows of logits (N, V) (f32 or bf16) whose first argmax equals targets (N), over non-ignored
// rows; NaNs never win the argmax, except a NaN in column 0 keeps the argmax at 0.
int64_t count_correct(const OpContext& ctx, Tensor logits, Tensor targets);

}  // namespace ft::cuda
