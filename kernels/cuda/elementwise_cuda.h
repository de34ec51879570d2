// Elementwise and column-block ops on the GPU: add, scale, cast, zero, copy_columns and
// add_to_columns. f32 and bf16 (cast also f64, zero any dtype). Arguments are checked by the ops.h
// entry points.
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "runtime/tensor.h"

namespace ft::cuda {

// out = a + b (out may alias a or b).
void add(const OpContext& ctx, Tensor out, Tensor a, Tensor b);
// x *= factor, the factor rounded to float once (as the CPU's f32 path).
void scale(const OpContext& ctx, Tensor x, double factor);
// dst = src in dst's dtype: any of f32, f64, bf16 to any; f64 -> bf16 rounds via float (as the
// CPU and PyTorch).
void cast(const OpContext& ctx, Tensor dst, Tensor src);
// x = 0 (an asynchronous memset on the stream).
void zero(const OpContext& ctx, Tensor x);
// dst (R, w) = src (R, W)[:, offset : offset + w].
void copy_columns(const OpContext& ctx, Tensor dst, Tensor src, int64_t offset);
// dst (R, W)[:, offset : offset + w] += src (R, w).
void add_to_columns(const OpContext& ctx, Tensor dst, Tensor src, int64_t offset);

}  // namespace ft::cuda
