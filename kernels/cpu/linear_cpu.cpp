#include "kernels/cpu/linear_cpu.h"

#include <cblas.h>

#include <algorithm>

#include "kernels/cpu/cpu_common.h"

namespace ft::cpu {
namespace {

// Row-major C (m, n) = alpha op(A) op(B) + beta C, with op(A) (m, k) and op(B) (k, n).
void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans,
              transpose_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}
void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans,
              transpose_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

template <typename scalar_t>
void linear_forward(scalar_t* out, const scalar_t* x, const scalar_t* weight, const scalar_t* bias,
                    int64_t rows, int64_t in_features, int64_t out_features, int threads) {
  if (rows == 0 || out_features == 0) return;
  if (bias || in_features == 0) {
    // The bias goes in first so the product accumulates onto it (beta = 1).
    parallel_ranges(rows, threads, out_features, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        scalar_t* out_row = out + i * out_features;
        if (bias) {
          std::copy_n(bias, out_features, out_row);
        } else {
          std::fill_n(out_row, out_features, scalar_t{0});
        }
      }
    });
  }
  if (in_features == 0) return;
  gemm(false, true, rows, out_features, in_features, x, in_features, weight, in_features,
       bias ? scalar_t{1} : scalar_t{0}, out, out_features);
}

template <typename scalar_t>
void linear_backward_input(scalar_t* dx, const scalar_t* dout, const scalar_t* weight, int64_t rows,
                           int64_t in_features, int64_t out_features) {
  if (rows == 0 || in_features == 0) return;
  if (out_features == 0) {
    std::fill_n(dx, rows * in_features, scalar_t{0});
    return;
  }
  gemm(false, false, rows, in_features, out_features, dout, out_features, weight, in_features,
       scalar_t{0}, dx, in_features);
}

template <typename scalar_t>
void linear_backward_weight(scalar_t* dweight, const scalar_t* dout, const scalar_t* x,
                            int64_t rows, int64_t in_features, int64_t out_features) {
  if (rows == 0 || in_features == 0 || out_features == 0) return;
  gemm(true, false, out_features, in_features, rows, dout, out_features, x, in_features,
       scalar_t{1}, dweight, in_features);
}

template <typename scalar_t>
void linear_backward_bias(scalar_t* dbias, const scalar_t* dout, int64_t rows, int64_t out_features,
                          int threads) {
  accumulate_column_sums(dbias, rows, out_features, threads,
                         [&](int64_t i, int64_t j) { return dout[i * out_features + j]; });
}

#define FT_INSTANTIATE(scalar_t)                                                              \
  template void linear_forward<scalar_t>(scalar_t*, const scalar_t*, const scalar_t*,         \
                                         const scalar_t*, int64_t, int64_t, int64_t, int);    \
  template void linear_backward_input<scalar_t>(scalar_t*, const scalar_t*, const scalar_t*,  \
                                                int64_t, int64_t, int64_t);                   \
  template void linear_backward_weight<scalar_t>(scalar_t*, const scalar_t*, const scalar_t*, \
                                                 int64_t, int64_t, int64_t);                  \
  template void linear_backward_bias<scalar_t>(scalar_t*, const scalar_t*, int64_t, int64_t, int);
FT_INSTANTIATE(float)
FT_INSTANTIATE(double)
#undef FT_INSTANTIATE

}  // namespace ft::cpu
