// The parameter gradients of RMSNorm and LayerNorm, shared by the plain norms (norm_cpu.cpp) and
// the fused residual norms (fused_norm_cpu.cpp): column sums over the rows, added into dweight and
// dbias (each skipped when null).
#pragma once

#include <cstdint>

#include "kernels/cpu/cpu_common.h"

namespace ft::cpu::norm_gradients {

// dweight += sum over rows of dout * x * rstd; dout, x: (rows, cols), rstd: (rows).
template <typename scalar_t>
void add_rmsnorm(scalar_t* dweight, const scalar_t* dout, const scalar_t* x, const scalar_t* rstd,
                 int64_t rows, int64_t cols, int threads) {
  if (!dweight) return;
  accumulate_column_sums(dweight, rows, cols, threads, [&](int64_t i, int64_t j) {
    return dout[i * cols + j] * x[i * cols + j] * rstd[i];
  });
}

// dweight += sum over rows of dout * xhat, dbias += sum over rows of dout; xhat = (x - mean) rstd.
template <typename scalar_t>
void add_layernorm(scalar_t* dweight, scalar_t* dbias, const scalar_t* dout, const scalar_t* x,
                   const scalar_t* mean, const scalar_t* rstd, int64_t rows, int64_t cols,
                   int threads) {
  if (dweight) {
    accumulate_column_sums(dweight, rows, cols, threads, [&](int64_t i, int64_t j) {
      return dout[i * cols + j] * ((x[i * cols + j] - mean[i]) * rstd[i]);
    });
  }
  if (dbias) {
    accumulate_column_sums(dbias, rows, cols, threads,
                           [&](int64_t i, int64_t j) { return dout[i * cols + j]; });
  }
}

}  // namespace ft::cpu::norm_gradients
