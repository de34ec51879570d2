// RMSNorm (Llama) and LayerNorm (GPT-2) over the last axis of (rows, cols) inputs.
#pragma once

#include <cstdint>

namespace ft::cpu {

// out = x * rstd * weight, rstd (rows) = 1 / sqrt(mean(x^2) + eps), saved for the backward.
template <typename scalar_t>
void rmsnorm_forward(scalar_t* out, scalar_t* rstd, const scalar_t* x, const scalar_t* weight,
                     int64_t rows, int64_t cols, double eps, int threads);
// dx overwritten; dweight accumulated, skipped when null.
template <typename scalar_t>
void rmsnorm_backward(scalar_t* dx, scalar_t* dweight, const scalar_t* dout, const scalar_t* x,
                      const scalar_t* weight, const scalar_t* rstd, int64_t rows, int64_t cols,
                      int threads);

// out = (x - mean) * rstd * weight + bias (bias may be null); mean, rstd (rows) saved.
template <typename scalar_t>
void layernorm_forward(scalar_t* out, scalar_t* mean, scalar_t* rstd, const scalar_t* x,
                       const scalar_t* weight, const scalar_t* bias, int64_t rows, int64_t cols,
                       double eps, int threads);
// dx overwritten; dweight and dbias accumulated, each skipped when null.
template <typename scalar_t>
void layernorm_backward(scalar_t* dx, scalar_t* dweight, scalar_t* dbias, const scalar_t* dout,
                        const scalar_t* x, const scalar_t* weight, const scalar_t* mean,
                        const scalar_t* rstd, int64_t rows, int64_t cols, int threads);

}  // namespace ft::cpu
