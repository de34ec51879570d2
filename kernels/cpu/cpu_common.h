// Helpers shared by the CPU kernels: splitting work over OpenMP threads, per-ISA clones of hot
// loops, vectorizable exp/tanh, and race-free column sums.
#pragma once

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace ft::cpu {

// Below about this many element-operations a parallel region costs more than it saves.
constexpr int64_t kParallelGrain = 1 << 15;

// Splits [0, count) into one contiguous range per thread and runs body(begin, end) on each; runs
// on the calling thread alone when count * cost_per_item is small. The split never changes what
// an element's result is, so results do not depend on the thread count; for that the serial case
// also runs through the parallel region (if clause), so body is compiled once: two inlined copies
// could be vectorized differently and sum in different orders. body must not throw.
template <typename Body>
void parallel_ranges(int64_t count, int threads, int64_t cost_per_item, Body&& body) {
  if (count <= 0) return;
  bool split = threads > 1 && count > 1 && count * cost_per_item >= kParallelGrain;
#pragma omp parallel num_threads(split ? threads : 1) if (split)
  {
    int64_t parts = omp_get_num_threads();
    int64_t part = omp_get_thread_num();
    int64_t begin = count * part / parts;
    int64_t end = count * (part + 1) / parts;
    if (begin < end) body(begin, end);
  }
}

// Hot loops get AVX-512 and AVX2+FMA clones picked at load time, since the default build targets
// baseline x86-64 (SSE2); on CPUs with full-width AVX-512 (Zen 5) the exp-bound loops (GELU,
// softmax) run twice as fast as with AVX2. A clone is its own function: OpenMP regions call into
// it, never contain it.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX2__)
#define FT_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FT_CPU_CLONES
#endif

// exp for float that loops can vectorize (std::exp is a scalar libm call and the build keeps
// -ffast-math off): Cephes' expf polynomial, relative error below 1e-7. Arguments are clamped to
// [-87, 88] with integer operations (float compares would block if-conversion under
// -ftrapping-math), so the result saturates at ~1.6e38 and bottoms at ~1.6e-38 instead of inf and
// 0, which softmax, sigmoid and tanh never notice. NaN stays NaN.
inline float exp_vectorizable(float x) {
  constexpr int32_t kLower = std::bit_cast<int32_t>(87.0f);  // magnitude limits, as float bits
  constexpr int32_t kUpper = std::bit_cast<int32_t>(88.0f);
  int32_t bits = std::bit_cast<int32_t>(x);
  int32_t negative = bits >> 31;  // all ones when x < 0 (arithmetic shift)
  int32_t magnitude = bits & INT32_MAX;
  int32_t limit = kUpper - (negative & (kUpper - kLower));
  int32_t clamped = std::min(magnitude, limit) | (bits & INT32_MIN);
  float y = std::bit_cast<float>(clamped);
  // y = n ln2 + r with n = round(y / ln2) (adding and removing 1.5 * 2^23 rounds to nearest).
  float n = (y * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = y - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  int32_t result =
      std::bit_cast<int32_t>(p * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23));
  // A select here would become a branch around the float math, which blocks vectorization.
  int32_t nan_mask = (0x7f800000 - magnitude) >> 31;  // all ones when x is NaN
  return std::bit_cast<float>((bits & nan_mask) | (result & ~nan_mask));
}
// fp64 is the gradient-check precision: use libm.
inline double exp_vectorizable(double x) {
  return std::exp(x);
}

// tanh through exp: 1 - 2 / (e^2x + 1). Absolute error ~1e-7 (relative error grows near 0, which
// GELU's 1 + tanh(...) does not see).
inline float tanh_vectorizable(float x) {
  return 1.0f - 2.0f / (exp_vectorizable(2.0f * x) + 1.0f);
}
inline double tanh_vectorizable(double x) {
  return std::tanh(x);
}

inline float sigmoid_vectorizable(float x) {
  return 1.0f / (1.0f + exp_vectorizable(-x));
}
inline double sigmoid_vectorizable(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

// total[j] += sum over rows i of term(i, j), for a (rows, cols) term. Threads own disjoint blocks
// of columns (no races), each column sums its rows in order in double before touching total, so
// the result is deterministic and a large total does not swallow small terms.
template <typename scalar_t, typename Term>
void accumulate_column_sums(scalar_t* total, int64_t rows, int64_t cols, int threads, Term&& term) {
  constexpr int64_t kBlock = 64;
  int64_t blocks = (cols + kBlock - 1) / kBlock;
  parallel_ranges(blocks, threads, rows * kBlock, [&](int64_t first_block, int64_t end_block) {
    for (int64_t block = first_block; block < end_block; ++block) {
      int64_t begin = block * kBlock;
      int64_t width = std::min(kBlock, cols - begin);
      double sums[kBlock] = {};
      for (int64_t i = 0; i < rows; ++i) {
        for (int64_t j = 0; j < width; ++j) sums[j] += static_cast<double>(term(i, begin + j));
      }
      for (int64_t j = 0; j < width; ++j) {
        total[begin + j] = static_cast<scalar_t>(total[begin + j] + sums[j]);
      }
    }
  });
}

}  // namespace ft::cpu
