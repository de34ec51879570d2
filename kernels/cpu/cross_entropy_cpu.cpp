#include "kernels/cpu/cross_entropy_cpu.h"

#include <algorithm>
#include <cmath>
#include <string_view>

#include "kernels/cpu/cpu_common.h"
#include "kernels/ops.h"
#include "runtime/error.h"

namespace ft::cpu {
namespace {

void check_targets(std::string_view op, const int32_t* targets, int64_t rows, int64_t vocab) {
  for (int64_t i = 0; i < rows; ++i) {
    int32_t target = targets[i];
    if (target != ops::kIgnoreIndex && (target < 0 || target >= vocab)) {
      fail("op {}: targets[{}] = {} is outside [0, {}) and is not the ignore index {}", op, i,
           target, vocab, ops::kIgnoreIndex);
    }
  }
}

template <typename scalar_t>
FT_CPU_CLONES void forward_rows(scalar_t* losses, scalar_t* lse, const scalar_t* logits,
                                const int32_t* targets, const scalar_t* weights, int64_t vocab,
                                int64_t begin, int64_t end) {
  for (int64_t row = begin; row < end; ++row) {
    if (targets[row] == ops::kIgnoreIndex) {
      losses[row] = scalar_t{0};
      lse[row] = scalar_t{0};
      continue;
    }
    const scalar_t* z = logits + row * vocab;
    scalar_t max = z[0];
#pragma omp simd reduction(max : max)
    for (int64_t j = 0; j < vocab; ++j)
      max = z[j] > max ? z[j] : max;  // std::max does not vectorize
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < vocab; ++j) sum += exp_vectorizable(z[j] - max);
    double row_lse = static_cast<double>(max) + std::log(sum);
    double weight = weights ? static_cast<double>(weights[row]) : 1.0;
    lse[row] = static_cast<scalar_t>(row_lse);
    losses[row] = static_cast<scalar_t>(weight * (row_lse - z[targets[row]]));
  }
}

template <typename scalar_t>
FT_CPU_CLONES void backward_rows(scalar_t* dlogits, const scalar_t* logits, const scalar_t* lse,
                                 const int32_t* targets, const scalar_t* weights, double dloss,
                                 int64_t vocab, int64_t begin, int64_t end) {
  for (int64_t row = begin; row < end; ++row) {
    scalar_t* d = dlogits + row * vocab;
    int32_t target = targets[row];
    if (target == ops::kIgnoreIndex) {
      std::fill_n(d, vocab, scalar_t{0});
      continue;
    }
    const scalar_t* z = logits + row * vocab;  // may be d itself: each element is read first
    auto scale = static_cast<scalar_t>(dloss * (weights ? static_cast<double>(weights[row]) : 1.0));
    scalar_t row_lse = lse[row];
    for (int64_t j = 0; j < vocab; ++j) d[j] = scale * exp_vectorizable(z[j] - row_lse);
    d[target] -= scale;
  }
}

// exp of a whole row dominates: about 20 flops per logit.
constexpr int64_t kLogitCost = 20;

}  // namespace

template <typename scalar_t>
void cross_entropy_forward(scalar_t* losses, scalar_t* lse, const scalar_t* logits,
                           const int32_t* targets, const scalar_t* weights, int64_t rows,
                           int64_t vocab, int threads) {
  check_targets("cross_entropy_forward", targets, rows, vocab);
  parallel_ranges(rows, threads, vocab * kLogitCost, [&](int64_t begin, int64_t end) {
    forward_rows(losses, lse, logits, targets, weights, vocab, begin, end);
  });
}

template <typename scalar_t>
void cross_entropy_backward(scalar_t* dlogits, const scalar_t* logits, const scalar_t* lse,
                            const int32_t* targets, const scalar_t* weights, double dloss,
                            int64_t rows, int64_t vocab, int threads) {
  check_targets("cross_entropy_backward", targets, rows, vocab);
  parallel_ranges(rows, threads, vocab * kLogitCost, [&](int64_t begin, int64_t end) {
    backward_rows(dlogits, logits, lse, targets, weights, dloss, vocab, begin, end);
  });
}

#define FT_INSTANTIATE(scalar_t)                                                                   \
  template void cross_entropy_forward<scalar_t>(scalar_t*, scalar_t*, const scalar_t*,             \
                                                const int32_t*, const scalar_t*, int64_t, int64_t, \
                                                int);                                              \
  template void cross_entropy_backward<scalar_t>(scalar_t*, const scalar_t*, const scalar_t*,      \
                                                 const int32_t*, const scalar_t*, double, int64_t, \
                                                 int64_t, int);
FT_INSTANTIATE(float)
FT_INSTANTIATE(double)
#undef FT_INSTANTIATE

}  // namespace ft::cpu
