// Residual add + RMSNorm / LayerNorm (kernels/fused_norm_ops.h) on the CPU. The reference: each
// range of rows is added and then normalized by kernels/cpu/norm_cpu.cpp's own functions, so every
// value equals the composed ops' bit for bit (only the rows a thread touches stay in cache).
#pragma once

#include <cstdint>

namespace ft::cpu {

// residual_out = residual_in + delta (residual_out may be either input); then rmsnorm_forward.
template <typename scalar_t>
void residual_rmsnorm_forward(scalar_t* residual_out, scalar_t* out, scalar_t* rstd,
                              const scalar_t* residual_in, const scalar_t* delta,
                              const scalar_t* weight, int64_t rows, int64_t cols, double eps,
                              int threads);
template <typename scalar_t>
void residual_layernorm_forward(scalar_t* residual_out, scalar_t* out, scalar_t* mean,
                                scalar_t* rstd, const scalar_t* residual_in, const scalar_t* delta,
                                const scalar_t* weight, const scalar_t* bias, int64_t rows,
                                int64_t cols, double eps, int threads);

// dresidual = dresidual_above + the norm's dx (dresidual may be dresidual_above); dweight and
// dbias accumulated, each skipped when null.
template <typename scalar_t>
void residual_rmsnorm_backward(scalar_t* dresidual, scalar_t* dweight, const scalar_t* dout,
                               const scalar_t* dresidual_above, const scalar_t* x,
                               const scalar_t* weight, const scalar_t* rstd, int64_t rows,
                               int64_t cols, int threads);
template <typename scalar_t>
void residual_layernorm_backward(scalar_t* dresidual, scalar_t* dweight, scalar_t* dbias,
                                 const scalar_t* dout, const scalar_t* dresidual_above,
                                 const scalar_t* x, const scalar_t* weight, const scalar_t* mean,
                                 const scalar_t* rstd, int64_t rows, int64_t cols, int threads);

}  // namespace ft::cpu
