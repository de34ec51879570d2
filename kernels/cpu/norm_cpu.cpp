#include "kernels/cpu/norm_cpu.h"

#include <cmath>

#include "kernels/cpu/cpu_common.h"
#include "kernels/cpu/norm_gradients_cpu.h"

// Row statistics and row dot products are summed in double; elementwise work stays in scalar_t.
namespace ft::cpu {

template <typename scalar_t>
void rmsnorm_forward(scalar_t* out, scalar_t* rstd, const scalar_t* x, const scalar_t* weight,
                     int64_t rows, int64_t cols, double eps, int threads) {
  parallel_ranges(rows, threads, cols, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const scalar_t* x_row = x + i * cols;
      scalar_t* out_row = out + i * cols;
      double sum_squares = 0.0;
#pragma omp simd reduction(+ : sum_squares)
      for (int64_t j = 0; j < cols; ++j) {
        double value = x_row[j];
        sum_squares += value * value;
      }
      auto r = static_cast<scalar_t>(1.0 / std::sqrt(sum_squares / cols + eps));
      rstd[i] = r;
      for (int64_t j = 0; j < cols; ++j) out_row[j] = x_row[j] * r * weight[j];
    }
  });
}

template <typename scalar_t>
void rmsnorm_backward(scalar_t* dx, scalar_t* dweight, const scalar_t* dout, const scalar_t* x,
                      const scalar_t* weight, const scalar_t* rstd, int64_t rows, int64_t cols,
                      int threads) {
  // dx_j = r w_j g_j - x_j r^3 / C * sum_k g_k w_k x_k.
  parallel_ranges(rows, threads, cols, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const scalar_t* x_row = x + i * cols;
      const scalar_t* dout_row = dout + i * cols;
      scalar_t* dx_row = dx + i * cols;
      double dot = 0.0;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < cols; ++j) {
        dot += static_cast<double>(dout_row[j] * weight[j]) * x_row[j];
      }
      double r = rstd[i];
      auto coefficient = static_cast<scalar_t>(dot * r * r * r / cols);
      auto r_scalar = static_cast<scalar_t>(r);
      for (int64_t j = 0; j < cols; ++j) {
        dx_row[j] = r_scalar * weight[j] * dout_row[j] - x_row[j] * coefficient;
      }
    }
  });
  norm_gradients::add_rmsnorm(dweight, dout, x, rstd, rows, cols, threads);
}

template <typename scalar_t>
void layernorm_forward(scalar_t* out, scalar_t* mean, scalar_t* rstd, const scalar_t* x,
                       const scalar_t* weight, const scalar_t* bias, int64_t rows, int64_t cols,
                       double eps, int threads) {
  parallel_ranges(rows, threads, cols, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const scalar_t* x_row = x + i * cols;
      scalar_t* out_row = out + i * cols;
      double sum = 0.0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < cols; ++j) sum += x_row[j];
      double row_mean = sum / cols;
      double sum_squares = 0.0;  // two passes: no cancellation when |mean| >> std
#pragma omp simd reduction(+ : sum_squares)
      for (int64_t j = 0; j < cols; ++j) {
        double centered = x_row[j] - row_mean;
        sum_squares += centered * centered;
      }
      auto m = static_cast<scalar_t>(row_mean);
      auto r = static_cast<scalar_t>(1.0 / std::sqrt(sum_squares / cols + eps));
      mean[i] = m;
      rstd[i] = r;
      if (bias) {
        for (int64_t j = 0; j < cols; ++j) out_row[j] = (x_row[j] - m) * r * weight[j] + bias[j];
      } else {
        for (int64_t j = 0; j < cols; ++j) out_row[j] = (x_row[j] - m) * r * weight[j];
      }
    }
  });
}

template <typename scalar_t>
void layernorm_backward(scalar_t* dx, scalar_t* dweight, scalar_t* dbias, const scalar_t* dout,
                        const scalar_t* x, const scalar_t* weight, const scalar_t* mean,
                        const scalar_t* rstd, int64_t rows, int64_t cols, int threads) {
  // With xhat = (x - mean) r and g = dout * weight: dx = r (g - mean(g) - xhat mean(g xhat)).
  parallel_ranges(rows, threads, cols, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const scalar_t* x_row = x + i * cols;
      const scalar_t* dout_row = dout + i * cols;
      scalar_t* dx_row = dx + i * cols;
      scalar_t m = mean[i];
      scalar_t r = rstd[i];
      double sum_g = 0.0;
      double sum_g_xhat = 0.0;
#pragma omp simd reduction(+ : sum_g, sum_g_xhat)
      for (int64_t j = 0; j < cols; ++j) {
        scalar_t g = dout_row[j] * weight[j];
        sum_g += g;
        sum_g_xhat += static_cast<double>(g * ((x_row[j] - m) * r));
      }
      auto mean_g = static_cast<scalar_t>(sum_g / cols);
      auto mean_g_xhat = static_cast<scalar_t>(sum_g_xhat / cols);
      for (int64_t j = 0; j < cols; ++j) {
        scalar_t xhat = (x_row[j] - m) * r;
        dx_row[j] = r * (dout_row[j] * weight[j] - mean_g - xhat * mean_g_xhat);
      }
    }
  });
  norm_gradients::add_layernorm(dweight, dbias, dout, x, mean, rstd, rows, cols, threads);
}

#define FT_INSTANTIATE(scalar_t)                                                                   \
  template void rmsnorm_forward<scalar_t>(scalar_t*, scalar_t*, const scalar_t*, const scalar_t*,  \
                                          int64_t, int64_t, double, int);                          \
  template void rmsnorm_backward<scalar_t>(scalar_t*, scalar_t*, const scalar_t*, const scalar_t*, \
                                           const scalar_t*, const scalar_t*, int64_t, int64_t,     \
                                           int);                                                   \
  template void layernorm_forward<scalar_t>(scalar_t*, scalar_t*, scalar_t*, const scalar_t*,      \
                                            const scalar_t*, const scalar_t*, int64_t, int64_t,    \
                                            double, int);                                          \
  template void layernorm_backward<scalar_t>(scalar_t*, scalar_t*, scalar_t*, const scalar_t*,     \
                                             const scalar_t*, const scalar_t*, const scalar_t*,    \
                                             const scalar_t*, int64_t, int64_t, int);
FT_INSTANTIATE(float)
FT_INSTANTIATE(double)
#undef FT_INSTANTIATE

}  // namespace ft::cpu
