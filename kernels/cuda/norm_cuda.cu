#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/norm_cuda.h"
#include "kernels/cuda/norm_gradients_cuda.cuh"

// The formulas and their order follow kernels/cpu/norm_cpu.cpp; row sums are fp32 here (double
// on the CPU).
namespace ft::cuda {
namespace {

// Rows are spread over the blocks (grid-stride), one row per block at a time.
template <typename T>
__global__ void rmsnorm_forward_kernel(T* out, float* rstd, const T* x, const T* weight,
                                       int64_t rows, int64_t cols, float eps) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* x_row = x + row * cols;
    T* out_row = out + row * cols;
    const float sum_squares = block_row_sum(cols, [&](int64_t j) {
      const float value = to_float(x_row[j]);
      return value * value;
    });
    const float r = 1.0f / sqrtf(sum_squares / static_cast<float>(cols) + eps);
    if (threadIdx.x == 0) rstd[row] = r;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      out_row[j] = from_float<T>(to_float(x_row[j]) * r * to_float(weight[j]));
    }
  }
}

// dx_j = r w_j g_j - x_j r^3 / C * sum_k g_k w_k x_k.
template <typename T>
__global__ void rmsnorm_backward_kernel(T* dx, const T* dout, const T* x, const T* weight,
                                        const float* rstd, int64_t rows, int64_t cols) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* x_row = x + row * cols;
    const T* dout_row = dout + row * cols;
    T* dx_row = dx + row * cols;
    const float dot = block_row_sum(cols, [&](int64_t j) {
      return to_float(dout_row[j]) * to_float(weight[j]) * to_float(x_row[j]);
    });
    const float r = rstd[row];
    const float coefficient = dot * r * r * r / static_cast<float>(cols);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      dx_row[j] = from_float<T>(r * to_float(weight[j]) * to_float(dout_row[j]) -
                                to_float(x_row[j]) * coefficient);
    }
  }
}

template <typename T>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, const T* x,
                                         const T* weight, const T* bias, int64_t rows, int64_t cols,
                                         float eps) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* x_row = x + row * cols;
    T* out_row = out + row * cols;
    const float m = block_row_sum(cols, [&](int64_t j) { return to_float(x_row[j]); }) /
                    static_cast<float>(cols);
    // Two passes: no cancellation when |mean| >> std.
    const float sum_squares = block_row_sum(cols, [&](int64_t j) {
      const float centered = to_float(x_row[j]) - m;
      return centered * centered;
    });
    const float r = 1.0f / sqrtf(sum_squares / static_cast<float>(cols) + eps);
    if (threadIdx.x == 0) {
      mean[row] = m;
      rstd[row] = r;
    }
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      float value = (to_float(x_row[j]) - m) * r * to_float(weight[j]);
      if (bias) value += to_float(bias[j]);
      out_row[j] = from_float<T>(value);
    }
  }
}

// With xhat = (x - mean) r and g = dout * weight: dx = r (g - mean(g) - xhat mean(g xhat)).
template <typename T>
__global__ void layernorm_backward_kernel(T* dx, const T* dout, const T* x, const T* weight,
                                          const float* mean, const float* rstd, int64_t rows,
                                          int64_t cols) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* x_row = x + row * cols;
    const T* dout_row = dout + row * cols;
    T* dx_row = dx + row * cols;
    const float m = mean[row], r = rstd[row];
    // Both sums in one pass over the row (block_row_sum would read it twice).
    float sum_g = 0.0f, sum_g_xhat = 0.0f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const float g = to_float(dout_row[j]) * to_float(weight[j]);
      sum_g += g;
      sum_g_xhat += g * ((to_float(x_row[j]) - m) * r);
    }
    const float mean_g = block_sum(sum_g) / static_cast<float>(cols);
    const float mean_g_xhat = block_sum(sum_g_xhat) / static_cast<float>(cols);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const float xhat = (to_float(x_row[j]) - m) * r;
      dx_row[j] = from_float<T>(
          r * (to_float(dout_row[j]) * to_float(weight[j]) - mean_g - xhat * mean_g_xhat));
    }
  }
}

}  // namespace

void rmsnorm_forward(const OpContext& ctx, Tensor out, Tensor rstd, Tensor x, Tensor weight,
                     double eps) {
  constexpr const char* op = "rmsnorm_forward";
  const int64_t rows = x.dim(0), cols = x.dim(1);
  if (rows == 0) return;
  FT_DISPATCH_CUDA_FLOAT(
      op, x.dtype,
      launch_per_row(op, ctx, rmsnorm_forward_kernel<scalar_t>, rows, data<scalar_t>(out),
                     data<float>(rstd), data<scalar_t>(x), data<scalar_t>(weight), rows, cols,
                     static_cast<float>(eps)));
}

void rmsnorm_backward(const OpContext& ctx, Tensor dx, Tensor dweight, Tensor dout, Tensor x,
                      Tensor weight, Tensor rstd) {
  constexpr const char* op = "rmsnorm_backward";
  const int64_t rows = x.dim(0), cols = x.dim(1);
  if (rows == 0) return;
  FT_DISPATCH_CUDA_FLOAT(op, x.dtype, {
    launch_per_row(op, ctx, rmsnorm_backward_kernel<scalar_t>, rows, data<scalar_t>(dx),
                   data<scalar_t>(dout), data<scalar_t>(x), data<scalar_t>(weight),
                   data<float>(rstd), rows, cols);
    norm_gradients::add_rmsnorm(op, ctx, dweight, data<scalar_t>(dout), data<scalar_t>(x),
                                data<float>(rstd), rows, cols);
  });
}

void layernorm_forward(const OpContext& ctx, Tensor out, Tensor mean, Tensor rstd, Tensor x,
                       Tensor weight, Tensor bias, double eps) {
  constexpr const char* op = "layernorm_forward";
  const int64_t rows = x.dim(0), cols = x.dim(1);
  if (rows == 0) return;
  FT_DISPATCH_CUDA_FLOAT(
      op, x.dtype,
      launch_per_row(op, ctx, layernorm_forward_kernel<scalar_t>, rows, data<scalar_t>(out),
                     data<float>(mean), data<float>(rstd), data<scalar_t>(x),
                     data<scalar_t>(weight), data_or_null<scalar_t>(bias), rows, cols,
                     static_cast<float>(eps)));
}

void layernorm_backward(const OpContext& ctx, Tensor dx, Tensor dweight, Tensor dbias, Tensor dout,
                        Tensor x, Tensor weight, Tensor mean, Tensor rstd) {
  constexpr const char* op = "layernorm_backward";
  const int64_t rows = x.dim(0), cols = x.dim(1);
  if (rows == 0) return;
  FT_DISPATCH_CUDA_FLOAT(op, x.dtype, {
    launch_per_row(op, ctx, layernorm_backward_kernel<scalar_t>, rows, data<scalar_t>(dx),
                   data<scalar_t>(dout), data<scalar_t>(x), data<scalar_t>(weight),
                   data<float>(mean), data<float>(rstd), rows, cols);
    norm_gradients::add_layernorm(op, ctx, dweight, dbias, data<scalar_t>(dout), data<scalar_t>(x),
                                  data<float>(mean), data<float>(rstd), rows, cols);
  });
}

}  // namespace ft::cuda
