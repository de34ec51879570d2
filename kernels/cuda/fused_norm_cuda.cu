#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/fused_norm_cuda.h"
#include "kernels/cuda/norm_gradients_cuda.cuh"

// The arithmetic of kernels/cuda/elementwise_cuda.cu's add and kernels/cuda/norm_cuda.cu's norms,
// in the same order: the sum residual_in + delta and the norm's input gradient are rounded to the
// activation dtype (as the composed ops store them) before the norm reads the sum or the residual
// gradient adds the input gradient. Each thread walks the columns threadIdx.x + k * kThreads in
// increasing k, as block_row_sum does, so the row sums add in the same order too.
namespace ft::cuda {
namespace {

// A thread keeps the values of its first kCachedPerThread columns of the row in registers between
// the passes (4096 columns); the loops over them are fully unrolled so the arrays stay in
// registers. Columns beyond are read again from memory (L2-resident for one row). Blocks have
// exactly kThreads threads (launch_per_row), a compile-time stride: the cached columns' addresses
// are then constant offsets from the thread's first one.
constexpr int kCachedPerThread = 16;
// At least two blocks per SM (at most 128 registers a thread), so that one block's loads overlap
// another's reductions.
constexpr int kBlocksPerSm = 2;

__device__ __forceinline__ int64_t cached_column(int k) {
  return threadIdx.x + static_cast<int64_t>(k) * kThreads;
}
__device__ __forceinline__ int64_t first_uncached_column() {
  return threadIdx.x + static_cast<int64_t>(kCachedPerThread) * kThreads;
}

// residual_in[i] + delta[i], rounded to T as the composed add stores it.
template <typename T>
__device__ __forceinline__ float rounded_sum(const T* residual_in, const T* delta, int64_t i) {
  return to_float(from_float<T>(to_float(residual_in[i]) + to_float(delta[i])));
}

// above + dx, with dx rounded to T first (where the composed ops store it). __fadd_rn: the add is
// a rounded add of its own, as in the composed add kernel; nvcc may not fuse dx's products into
// it (with f32 nothing else separates them).
template <typename T>
__device__ __forceinline__ T add_input_gradient(float above, float dx) {
  return from_float<T>(__fadd_rn(above, to_float(from_float<T>(dx))));
}

// residual_out = residual_in + delta (rounded to T) over this thread's columns of the row at
// base, keeping the cached columns' sums in `cached` (0 past cols); returns the thread's sum of
// term(sum) over all its columns, in increasing column order.
template <typename T, typename Term>
__device__ __forceinline__ float store_residual_sum(float (&cached)[kCachedPerThread],
                                                    T* residual_out, const T* residual_in,
                                                    const T* delta, int64_t base, int64_t cols,
                                                    Term term) {
#pragma unroll
  for (int k = 0; k < kCachedPerThread; ++k) {
    const int64_t j = cached_column(k);
    cached[k] = j < cols ? rounded_sum(residual_in, delta, base + j) : 0.0f;
  }
  float total = 0.0f;
#pragma unroll
  for (int k = 0; k < kCachedPerThread; ++k) {
    const int64_t j = cached_column(k);
    if (j < cols) {
      residual_out[base + j] = from_float<T>(cached[k]);  // exact: cached[k] is a T value
      total += term(cached[k]);
    }
  }
  for (int64_t j = first_uncached_column(); j < cols; j += kThreads) {
    const float value = rounded_sum(residual_in, delta, base + j);
    residual_out[base + j] = from_float<T>(value);
    total += term(value);
  }
  return total;
}

// residual_out may be residual_in or delta, and dresidual may be dresidual_above: each thread
// reads all its cached columns before it writes any of them, so the loads can be issued together
// (a store between them could alias the next load and would serialize them); the uncached columns
// are read and written one at a time. Tensors that may not overlap anything are __restrict__.

template <typename T>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    residual_rmsnorm_forward_kernel(T* residual_out, T* __restrict__ out, float* __restrict__ rstd,
                                    const T* residual_in, const T* delta,
                                    const T* __restrict__ weight, int64_t rows, int64_t cols,
                                    float eps) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * cols;
    float cached[kCachedPerThread];
    const float sum_squares = store_residual_sum(cached, residual_out, residual_in, delta, base,
                                                 cols, [](float value) { return value * value; });
    const float r = 1.0f / sqrtf(block_sum(sum_squares) / static_cast<float>(cols) + eps);
    if (threadIdx.x == 0) rstd[row] = r;
#pragma unroll
    for (int k = 0; k < kCachedPerThread; ++k) {
      const int64_t j = cached_column(k);
      if (j < cols) out[base + j] = from_float<T>(cached[k] * r * to_float(weight[j]));
    }
    // This thread wrote these columns of residual_out above.
    for (int64_t j = first_uncached_column(); j < cols; j += kThreads) {
      out[base + j] = from_float<T>(to_float(residual_out[base + j]) * r * to_float(weight[j]));
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    residual_layernorm_forward_kernel(T* residual_out, T* __restrict__ out,
                                      float* __restrict__ mean, float* __restrict__ rstd,
                                      const T* residual_in, const T* delta,
                                      const T* __restrict__ weight, const T* __restrict__ bias,
                                      int64_t rows, int64_t cols, float eps) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * cols;
    float cached[kCachedPerThread];
    const float sum = store_residual_sum(cached, residual_out, residual_in, delta, base, cols,
                                         [](float value) { return value; });
    const float m = block_sum(sum) / static_cast<float>(cols);
    // Two passes: no cancellation when |mean| >> std.
    float sum_squares = 0.0f;
#pragma unroll
    for (int k = 0; k < kCachedPerThread; ++k) {
      if (cached_column(k) < cols) {
        const float centered = cached[k] - m;
        sum_squares += centered * centered;
      }
    }
    for (int64_t j = first_uncached_column(); j < cols; j += kThreads) {
      const float centered = to_float(residual_out[base + j]) - m;
      sum_squares += centered * centered;
    }
    const float r = 1.0f / sqrtf(block_sum(sum_squares) / static_cast<float>(cols) + eps);
    if (threadIdx.x == 0) {
      mean[row] = m;
      rstd[row] = r;
    }
#pragma unroll
    for (int k = 0; k < kCachedPerThread; ++k) {
      const int64_t j = cached_column(k);
      if (j < cols) {
        float value = (cached[k] - m) * r * to_float(weight[j]);
        if (bias) value += to_float(bias[j]);
        out[base + j] = from_float<T>(value);
      }
    }
    for (int64_t j = first_uncached_column(); j < cols; j += kThreads) {
      float value = (to_float(residual_out[base + j]) - m) * r * to_float(weight[j]);
      if (bias) value += to_float(bias[j]);
      out[base + j] = from_float<T>(value);
    }
  }
}

// Writes dresidual = dresidual_above + dx for the thread's cached columns, dx in `dx`: all loads
// of dresidual_above first (dresidual may be it), then the stores.
template <typename T>
__device__ __forceinline__ void store_residual_gradient(T* dresidual, const T* dresidual_above,
                                                        int64_t base, int64_t cols,
                                                        const float (&dx)[kCachedPerThread]) {
  float above[kCachedPerThread];
#pragma unroll
  for (int k = 0; k < kCachedPerThread; ++k) {
    const int64_t j = cached_column(k);
    above[k] = j < cols ? to_float(dresidual_above[base + j]) : 0.0f;
  }
#pragma unroll
  for (int k = 0; k < kCachedPerThread; ++k) {
    const int64_t j = cached_column(k);
    if (j < cols) dresidual[base + j] = add_input_gradient<T>(above[k], dx[k]);
  }
}

// Loads the thread's cached columns of x and dout (0 past cols) and calls accumulate(j, x_j,
// dout_j) for each column in the row, in increasing column order.
template <typename T, typename Accumulate>
__device__ __forceinline__ void load_cached_x_and_dout(float (&cached_x)[kCachedPerThread],
                                                       float (&cached_g)[kCachedPerThread],
                                                       const T* __restrict__ x,
                                                       const T* __restrict__ dout, int64_t base,
                                                       int64_t cols, Accumulate accumulate) {
#pragma unroll
  for (int k = 0; k < kCachedPerThread; ++k) {
    const int64_t j = cached_column(k);
    cached_x[k] = 0.0f;
    cached_g[k] = 0.0f;
    if (j < cols) {
      cached_x[k] = to_float(x[base + j]);
      cached_g[k] = to_float(dout[base + j]);
      accumulate(j, cached_x[k], cached_g[k]);
    }
  }
}

// dx_j = r w_j g_j - x_j r^3 / C * sum_k g_k w_k x_k; dresidual = dresidual_above + dx.
template <typename T>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    residual_rmsnorm_backward_kernel(T* dresidual, const T* __restrict__ dout,
                                     const T* dresidual_above, const T* __restrict__ x,
                                     const T* __restrict__ weight, const float* __restrict__ rstd,
                                     int64_t rows, int64_t cols) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * cols;
    float cached_x[kCachedPerThread], cached_g[kCachedPerThread];
    float dot = 0.0f;
    load_cached_x_and_dout(
        cached_x, cached_g, x, dout, base, cols,
        [&](int64_t j, float x_j, float dout_j) { dot += dout_j * to_float(weight[j]) * x_j; });
    for (int64_t j = first_uncached_column(); j < cols; j += kThreads) {
      dot += to_float(dout[base + j]) * to_float(weight[j]) * to_float(x[base + j]);
    }
    dot = block_sum(dot);
    const float r = rstd[row];
    const float coefficient = dot * r * r * r / static_cast<float>(cols);
    float dx[kCachedPerThread];
#pragma unroll
    for (int k = 0; k < kCachedPerThread; ++k) {
      const int64_t j = cached_column(k);
      dx[k] = j < cols ? r * to_float(weight[j]) * cached_g[k] - cached_x[k] * coefficient : 0.0f;
    }
    store_residual_gradient(dresidual, dresidual_above, base, cols, dx);
    for (int64_t j = first_uncached_column(); j < cols; j += kThreads) {
      const float dx_j =
          r * to_float(weight[j]) * to_float(dout[base + j]) - to_float(x[base + j]) * coefficient;
      dresidual[base + j] = add_input_gradient<T>(to_float(dresidual_above[base + j]), dx_j);
    }
  }
}

// With xhat = (x - mean) r and g = dout * weight: dx = r (g - mean(g) - xhat mean(g xhat)).
template <typename T>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    residual_layernorm_backward_kernel(T* dresidual, const T* __restrict__ dout,
                                       const T* dresidual_above, const T* __restrict__ x,
                                       const T* __restrict__ weight, const float* __restrict__ mean,
                                       const float* __restrict__ rstd, int64_t rows, int64_t cols) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * cols;
    const float m = mean[row], r = rstd[row];
    float cached_x[kCachedPerThread], cached_g[kCachedPerThread];
    float sum_g = 0.0f, sum_g_xhat = 0.0f;
    load_cached_x_and_dout(cached_x, cached_g, x, dout, base, cols,
                           [&](int64_t j, float x_j, float dout_j) {
                             const float g = dout_j * to_float(weight[j]);
                             sum_g += g;
                             sum_g_xhat += g * ((x_j - m) * r);
                           });
    for (int64_t j = first_uncached_column(); j < cols; j += kThreads) {
      const float g = to_float(dout[base + j]) * to_float(weight[j]);
      sum_g += g;
      sum_g_xhat += g * ((to_float(x[base + j]) - m) * r);
    }
    const float mean_g = block_sum(sum_g) / static_cast<float>(cols);
    const float mean_g_xhat = block_sum(sum_g_xhat) / static_cast<float>(cols);
    float dx[kCachedPerThread];
#pragma unroll
    for (int k = 0; k < kCachedPerThread; ++k) {
      const int64_t j = cached_column(k);
      const float xhat = (cached_x[k] - m) * r;
      dx[k] =
          j < cols ? r * (cached_g[k] * to_float(weight[j]) - mean_g - xhat * mean_g_xhat) : 0.0f;
    }
    store_residual_gradient(dresidual, dresidual_above, base, cols, dx);
    for (int64_t j = first_uncached_column(); j < cols; j += kThreads) {
      const float xhat = (to_float(x[base + j]) - m) * r;
      const float dx_j =
          r * (to_float(dout[base + j]) * to_float(weight[j]) - mean_g - xhat * mean_g_xhat);
      dresidual[base + j] = add_input_gradient<T>(to_float(dresidual_above[base + j]), dx_j);
    }
  }
}

}  // namespace

void residual_rmsnorm_forward(const OpContext& ctx, Tensor residual_out, Tensor out, Tensor rstd,
                              Tensor residual_in, Tensor delta, Tensor weight, double eps) {
  constexpr const char* op = "residual_rmsnorm_forward";
  const int64_t rows = residual_in.dim(0), cols = residual_in.dim(1);
  if (rows == 0) return;
  FT_DISPATCH_CUDA_FLOAT(
      op, residual_in.dtype,
      launch_per_row(op, ctx, residual_rmsnorm_forward_kernel<scalar_t>, rows,
                     data<scalar_t>(residual_out), data<scalar_t>(out), data<float>(rstd),
                     data<scalar_t>(residual_in), data<scalar_t>(delta), data<scalar_t>(weight),
                     rows, cols, static_cast<float>(eps)));
}

void residual_layernorm_forward(const OpContext& ctx, Tensor residual_out, Tensor out, Tensor mean,
                                Tensor rstd, Tensor residual_in, Tensor delta, Tensor weight,
                                Tensor bias, double eps) {
  constexpr const char* op = "residual_layernorm_forward";
  const int64_t rows = residual_in.dim(0), cols = residual_in.dim(1);
  if (rows == 0) return;
  FT_DISPATCH_CUDA_FLOAT(
      op, residual_in.dtype,
      launch_per_row(op, ctx, residual_layernorm_forward_kernel<scalar_t>, rows,
                     data<scalar_t>(residual_out), data<scalar_t>(out), data<float>(mean),
                     data<float>(rstd), data<scalar_t>(residual_in), data<scalar_t>(delta),
                     data<scalar_t>(weight), data_or_null<scalar_t>(bias), rows, cols,
                     static_cast<float>(eps)));
}

void residual_rmsnorm_backward(const OpContext& ctx, Tensor dresidual, Tensor dweight, Tensor dout,
                               Tensor dresidual_above, Tensor x, Tensor weight, Tensor rstd) {
  constexpr const char* op = "residual_rmsnorm_backward";
  const int64_t rows = x.dim(0), cols = x.dim(1);
  if (rows == 0) return;
  FT_DISPATCH_CUDA_FLOAT(op, x.dtype, {
    launch_per_row(op, ctx, residual_rmsnorm_backward_kernel<scalar_t>, rows,
                   data<scalar_t>(dresidual), data<scalar_t>(dout), data<scalar_t>(dresidual_above),
                   data<scalar_t>(x), data<scalar_t>(weight), data<float>(rstd), rows, cols);
    norm_gradients::add_rmsnorm(op, ctx, dweight, data<scalar_t>(dout), data<scalar_t>(x),
                                data<float>(rstd), rows, cols);
  });
}

void residual_layernorm_backward(const OpContext& ctx, Tensor dresidual, Tensor dweight,
                                 Tensor dbias, Tensor dout, Tensor dresidual_above, Tensor x,
                                 Tensor weight, Tensor mean, Tensor rstd) {
  constexpr const char* op = "residual_layernorm_backward";
  const int64_t rows = x.dim(0), cols = x.dim(1);
  if (rows == 0) return;
  FT_DISPATCH_CUDA_FLOAT(op, x.dtype, {
    launch_per_row(op, ctx, residual_layernorm_backward_kernel<scalar_t>, rows,
                   data<scalar_t>(dresidual), data<scalar_t>(dout), data<scalar_t>(dresidual_above),
                   data<scalar_t>(x), data<scalar_t>(weight), data<float>(mean), data<float>(rstd),
                   rows, cols);
    norm_gradients::add_layernorm(op, ctx, dweight, dbias, data<scalar_t>(dout), data<scalar_t>(x),
                                  data<float>(mean), data<float>(rstd), rows, cols);
  });
}

}  // namespace ft::cuda
