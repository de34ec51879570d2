#include "kernels/cpu/fused_norm_cpu.h"

#include <omp.h>

#include <algorithm>
#include <memory>

#include "kernels/cpu/cpu_common.h"
#include "kernels/cpu/norm_cpu.h"
#include "kernels/cpu/norm_gradients_cpu.h"

// Each thread takes a range of rows and calls norm_cpu.cpp's functions on it with one thread: the
// per-row arithmetic of those functions does not depend on the range, so the results are the
// composed ops' exactly (the column sums of dweight and dbias, which do depend on every row, run
// once over all rows with norm_gradients_cpu.h's terms, as in norm_cpu.cpp).
namespace ft::cpu {
namespace {

// Rows whose input gradient a thread holds at a time before adding it to the residual gradient.
constexpr int64_t kPieceRows = 4;

// out = a + b, elementwise as cpu::add (out may alias a or b).
template <typename scalar_t>
void add_values(scalar_t* out, const scalar_t* a, const scalar_t* b, int64_t count) {
  for (int64_t i = 0; i < count; ++i) out[i] = a[i] + b[i];
}

// dresidual = dresidual_above + dx over `rows` rows, with dx computed by norm_dx(dx, first, count)
// for pieces of kPieceRows rows into per-thread scratch (dresidual may be dresidual_above, so dx
// cannot go there first).
template <typename scalar_t, typename NormDx>
void add_input_gradient(scalar_t* dresidual, const scalar_t* dresidual_above, int64_t rows,
                        int64_t cols, int threads, NormDx&& norm_dx) {
  const int64_t slots = std::max(threads, 1);
  const std::unique_ptr<scalar_t[]> scratch(new scalar_t[slots * kPieceRows * cols]);
  parallel_ranges(rows, threads, cols, [&](int64_t begin, int64_t end) {
    scalar_t* dx = scratch.get() + omp_get_thread_num() * kPieceRows * cols;
    for (int64_t first = begin; first < end; first += kPieceRows) {
      const int64_t count = std::min(kPieceRows, end - first);
      norm_dx(dx, first, count);
      add_values(dresidual + first * cols, dresidual_above + first * cols, dx, count * cols);
    }
  });
}

}  // namespace

template <typename scalar_t>
void residual_rmsnorm_forward(scalar_t* residual_out, scalar_t* out, scalar_t* rstd,
                              const scalar_t* residual_in, const scalar_t* delta,
                              const scalar_t* weight, int64_t rows, int64_t cols, double eps,
                              int threads) {
  parallel_ranges(rows, threads, cols, [&](int64_t begin, int64_t end) {
    const int64_t at = begin * cols;
    add_values(residual_out + at, residual_in + at, delta + at, (end - begin) * cols);
    rmsnorm_forward(out + at, rstd + begin, residual_out + at, weight, end - begin, cols, eps, 1);
  });
}

template <typename scalar_t>
void residual_layernorm_forward(scalar_t* residual_out, scalar_t* out, scalar_t* mean,
                                scalar_t* rstd, const scalar_t* residual_in, const scalar_t* delta,
                                const scalar_t* weight, const scalar_t* bias, int64_t rows,
                                int64_t cols, double eps, int threads) {
  parallel_ranges(rows, threads, cols, [&](int64_t begin, int64_t end) {
    const int64_t at = begin * cols;
    add_values(residual_out + at, residual_in + at, delta + at, (end - begin) * cols);
    layernorm_forward(out + at, mean + begin, rstd + begin, residual_out + at, weight, bias,
                      end - begin, cols, eps, 1);
  });
}

template <typename scalar_t>
void residual_rmsnorm_backward(scalar_t* dresidual, scalar_t* dweight, const scalar_t* dout,
                               const scalar_t* dresidual_above, const scalar_t* x,
                               const scalar_t* weight, const scalar_t* rstd, int64_t rows,
                               int64_t cols, int threads) {
  if (rows == 0) return;
  add_input_gradient(dresidual, dresidual_above, rows, cols, threads,
                     [&](scalar_t* dx, int64_t first, int64_t count) {
                       const int64_t at = first * cols;
                       rmsnorm_backward(dx, static_cast<scalar_t*>(nullptr), dout + at, x + at,
                                        weight, rstd + first, count, cols, 1);
                     });
  norm_gradients::add_rmsnorm(dweight, dout, x, rstd, rows, cols, threads);
}

template <typename scalar_t>
void residual_layernorm_backward(scalar_t* dresidual, scalar_t* dweight, scalar_t* dbias,
                                 const scalar_t* dout, const scalar_t* dresidual_above,
                                 const scalar_t* x, const scalar_t* weight, const scalar_t* mean,
                                 const scalar_t* rstd, int64_t rows, int64_t cols, int threads) {
  if (rows == 0) return;
  add_input_gradient(dresidual, dresidual_above, rows, cols, threads,
                     [&](scalar_t* dx, int64_t first, int64_t count) {
                       const int64_t at = first * cols;
                       layernorm_backward(dx, static_cast<scalar_t*>(nullptr),
                                          static_cast<scalar_t*>(nullptr), dout + at, x + at,
                                          weight, mean + first, rstd + first, count, cols, 1);
                     });
  norm_gradients::add_layernorm(dweight, dbias, dout, x, mean, rstd, rows, cols, threads);
}

#define FT_INSTANTIATE(scalar_t)                                                                   \
  template void residual_rmsnorm_forward<scalar_t>(                                                \
      scalar_t*, scalar_t*, scalar_t*, const scalar_t*, const scalar_t*, const scalar_t*, int64_t, \
      int64_t, double, int);                                                                       \
  template void residual_layernorm_forward<scalar_t>(                                              \
      scalar_t*, scalar_t*, scalar_t*, scalar_t*, const scalar_t*, const scalar_t*,                \
      const scalar_t*, const scalar_t*, int64_t, int64_t, double, int);                            \
  template void residual_rmsnorm_backward<scalar_t>(                                               \
      scalar_t*, scalar_t*, const scalar_t*, const scalar_t*, const scalar_t*, const scalar_t*,    \
      const scalar_t*, int64_t, int64_t, int);                                                     \
  template void residual_layernorm_backward<scalar_t>(                                             \
      scalar_t*, scalar_t*, scalar_t*, const scalar_t*, const scalar_t*, const scalar_t*,          \
      const scalar_t*, const scalar_t*, const scalar_t*, int64_t, int64_t, int);
FT_INSTANTIATE(float)
FT_INSTANTIATE(double)
#undef FT_INSTANTIATE

}  // namespace ft::cpu
