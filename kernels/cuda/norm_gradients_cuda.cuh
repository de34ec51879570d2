// The parameter gradients of RMSNorm and LayerNorm, shared by the plain norms (norm_cuda.cu) and
// the fused residual norms (fused_norm_cuda.cu): column sums over the rows, added into dweight and
// dbias (each skipped when empty).
#pragma once

#include <cstdint>
#include <string_view>

#include "kernels/cuda/common_cuda.cuh"

namespace ft::cuda::norm_gradients {

// Rows per column in the column sums.
constexpr int kRowLanes = 16;

// dweight terms of RMSNorm: dout * x * rstd.
template <typename T>
struct RmsnormWeightTerm {
  const T *dout, *x;
  const float* rstd;
  int64_t cols;
  __device__ float operator()(int64_t i, int64_t j) const {
    return to_float(dout[i * cols + j]) * to_float(x[i * cols + j]) * rstd[i];
  }
};

// dweight terms of LayerNorm: dout * xhat.
template <typename T>
struct LayernormWeightTerm {
  const T *dout, *x;
  const float *mean, *rstd;
  int64_t cols;
  __device__ float operator()(int64_t i, int64_t j) const {
    return to_float(dout[i * cols + j]) * ((to_float(x[i * cols + j]) - mean[i]) * rstd[i]);
  }
};

// dout, x: (rows, cols) of T; rstd: (rows).
template <typename T>
void add_rmsnorm(std::string_view op, const OpContext& ctx, Tensor dweight, const T* dout,
                 const T* x, const float* rstd, int64_t rows, int64_t cols) {
  if (dweight.empty()) return;
  const RmsnormWeightTerm<T> term{dout, x, rstd, cols};
  FT_DISPATCH_CUDA_GRAD(
      op, dweight.dtype,
      launch_column_sum<kRowLanes>(op, ctx, data<grad_t>(dweight), rows, cols, term));
}

// dout, x: (rows, cols) of T; mean, rstd: (rows).
template <typename T>
void add_layernorm(std::string_view op, const OpContext& ctx, Tensor dweight, Tensor dbias,
                   const T* dout, const T* x, const float* mean, const float* rstd, int64_t rows,
                   int64_t cols) {
  if (!dweight.empty()) {
    const LayernormWeightTerm<T> term{dout, x, mean, rstd, cols};
    FT_DISPATCH_CUDA_GRAD(
        op, dweight.dtype,
        launch_column_sum<kRowLanes>(op, ctx, data<grad_t>(dweight), rows, cols, term));
  }
  if (!dbias.empty()) {
    const OutputGradientTerm<T> term{dout, cols};
    FT_DISPATCH_CUDA_GRAD(
        op, dbias.dtype,
        launch_column_sum<kRowLanes>(op, ctx, data<grad_t>(dbias), rows, cols, term));
  }
}

}  // namespace ft::cuda::norm_gradients
