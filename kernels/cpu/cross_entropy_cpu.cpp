#include "kernels/cpu/cross_entropy_cpu.h"

#include <algorithm>
#include <atomic>
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

// The first index of the row's maximum, as a scalar loop "if (z[j] > z[best]) best = j" finds
// it: NaNs are never greater, a NaN in z[0] keeps index 0. max is the row's vectorized maximum,
// which skips NaNs the same way. The search over the row (still in L1) tests chunks with a
// vectorizable loop and scans only the chunk holding the first match.
template <typename scalar_t>
[[gnu::always_inline]] inline int64_t first_index_of_max(const scalar_t* z, int64_t vocab,
                                                         scalar_t max) {
  if (z[0] != z[0]) return 0;
  constexpr int64_t kChunk = 64;
  int64_t chunk = 0;
  for (; chunk + kChunk <= vocab; chunk += kChunk) {
    int found = 0;
    for (int64_t j = chunk; j < chunk + kChunk; ++j) found |= z[j] == max;
    if (found) break;
  }
  for (int64_t j = chunk; j < vocab; ++j)
    if (z[j] == max) return j;
  return 0;
}

// Returns the number of rows in [begin, end) whose argmax equals the target (counted only when
// count_correct is set).
template <typename scalar_t>
FT_CPU_CLONES int64_t forward_rows(scalar_t* losses, scalar_t* lse, const scalar_t* logits,
                                   const int32_t* targets, const scalar_t* weights, int64_t vocab,
                                   bool count_correct, int64_t begin, int64_t end) {
  int64_t correct = 0;
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
    if (count_correct) correct += first_index_of_max(z, vocab, max) == targets[row];
    // Lanes of scalar_t partial sums over short chunks, each chunk added into a double: as
    // accurate as summing in double (every term is <= 1) without converting every term.
    constexpr int64_t kSumChunk = 256;
    double sum = 0.0;
    for (int64_t chunk = 0; chunk < vocab; chunk += kSumChunk) {
      const int64_t stop = std::min(vocab, chunk + kSumChunk);
      scalar_t chunk_sum = 0;
#pragma omp simd reduction(+ : chunk_sum)
      for (int64_t j = chunk; j < stop; ++j) chunk_sum += exp_vectorizable(z[j] - max);
      sum += chunk_sum;
    }
    double row_lse = static_cast<double>(max) + std::log(sum);
    double weight = weights ? static_cast<double>(weights[row]) : 1.0;
    lse[row] = static_cast<scalar_t>(row_lse);
    losses[row] = static_cast<scalar_t>(weight * (row_lse - z[targets[row]]));
  }
  return correct;
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
                           int64_t vocab, int threads, int64_t* correct) {
  check_targets("cross_entropy_forward", targets, rows, vocab);
  std::atomic<int64_t> correct_rows{0};  // an integer sum: the same for any thread split
  parallel_ranges(rows, threads, vocab * kLogitCost, [&](int64_t begin, int64_t end) {
    correct_rows +=
        forward_rows(losses, lse, logits, targets, weights, vocab, correct != nullptr, begin, end);
  });
  if (correct) *correct = correct_rows.load();
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
                                                int, int64_t*);                                    \
  template void cross_entropy_backward<scalar_t>(scalar_t*, const scalar_t*, const scalar_t*,      \
                                                 const int32_t*, const scalar_t*, double, int64_t, \
                                                 int64_t, int);
FT_INSTANTIATE(float)
FT_INSTANTIATE(double)
#undef FT_INSTANTIATE

}  // namespace ft::cpu
