#include "kernels/cpu/rope_cpu.h"

#include <cmath>
#include <numbers>
#include <string_view>

#include "kernels/cpu/cpu_common.h"
#include "runtime/error.h"

namespace ft::cpu {
namespace {

void check_positions(std::string_view op, const int32_t* positions, int64_t rows,
                     int64_t max_positions) {
  for (int64_t i = 0; i < rows; ++i) {
    if (positions[i] < 0 || positions[i] >= max_positions) {
      fail("op {}: positions[{}] = {} is outside the rope tables' [0, {})", op, i, positions[i],
           max_positions);
    }
  }
}

// inverse = false: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s); inverse = true rotates by -angle.
template <bool inverse, typename scalar_t>
void rotate(scalar_t* x, const int32_t* positions, const scalar_t* cos, const scalar_t* sin,
            int64_t rows, int64_t heads, int64_t half_dim, int threads) {
  int64_t head_dim = 2 * half_dim;
  parallel_ranges(rows, threads, heads * head_dim, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const scalar_t* c = cos + static_cast<int64_t>(positions[row]) * half_dim;
      const scalar_t* s = sin + static_cast<int64_t>(positions[row]) * half_dim;
      for (int64_t h = 0; h < heads; ++h) {
        scalar_t* first = x + (row * heads + h) * head_dim;
        scalar_t* second = first + half_dim;
        for (int64_t i = 0; i < half_dim; ++i) {
          scalar_t x1 = first[i];
          scalar_t x2 = second[i];
          if constexpr (inverse) {
            first[i] = x1 * c[i] + x2 * s[i];
            second[i] = x2 * c[i] - x1 * s[i];
          } else {
            first[i] = x1 * c[i] - x2 * s[i];
            second[i] = x2 * c[i] + x1 * s[i];
          }
        }
      }
    }
  });
}

}  // namespace

std::vector<double> rope_inverse_frequencies(int64_t head_dim, double theta,
                                             const ops::RopeScaling& scaling) {
  int64_t half_dim = head_dim / 2;
  std::vector<double> inv_freq(half_dim);
  for (int64_t i = 0; i < half_dim; ++i) {
    inv_freq[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / head_dim);
  }
  if (scaling.factor <= 0) return inv_freq;
  double old_context = static_cast<double>(scaling.original_max_position_embeddings);
  double low_freq_wavelen = old_context / scaling.low_freq_factor;
  double high_freq_wavelen = old_context / scaling.high_freq_factor;
  for (double& frequency : inv_freq) {
    double wavelen = 2 * std::numbers::pi / frequency;
    if (wavelen > low_freq_wavelen) {
      frequency /= scaling.factor;
    } else if (wavelen >= high_freq_wavelen) {  // medium band: interpolate the two
      double smooth = (old_context / wavelen - scaling.low_freq_factor) /
                      (scaling.high_freq_factor - scaling.low_freq_factor);
      frequency = (1 - smooth) * frequency / scaling.factor + smooth * frequency;
    }
  }
  return inv_freq;
}

template <typename scalar_t>
void rope_build_tables(scalar_t* cos, scalar_t* sin, int64_t max_positions, int64_t half_dim,
                       double theta, const ops::RopeScaling& scaling, int threads) {
  std::vector<double> inv_freq = rope_inverse_frequencies(2 * half_dim, theta, scaling);
  // Long contexts (Llama 3: 131072 positions) make this start-up loop worth splitting.
  parallel_ranges(max_positions, threads, half_dim * 64, [&](int64_t begin, int64_t end) {
    for (int64_t position = begin; position < end; ++position) {
      for (int64_t i = 0; i < half_dim; ++i) {
        double angle = static_cast<double>(position) * inv_freq[i];
        cos[position * half_dim + i] = static_cast<scalar_t>(std::cos(angle));
        sin[position * half_dim + i] = static_cast<scalar_t>(std::sin(angle));
      }
    }
  });
}

template <typename scalar_t>
void rope_forward(scalar_t* x, const int32_t* positions, const scalar_t* cos, const scalar_t* sin,
                  int64_t rows, int64_t heads, int64_t half_dim, int64_t max_positions,
                  int threads) {
  check_positions("rope_forward", positions, rows, max_positions);
  rotate<false>(x, positions, cos, sin, rows, heads, half_dim, threads);
}

template <typename scalar_t>
void rope_backward(scalar_t* dx, const int32_t* positions, const scalar_t* cos, const scalar_t* sin,
                   int64_t rows, int64_t heads, int64_t half_dim, int64_t max_positions,
                   int threads) {
  check_positions("rope_backward", positions, rows, max_positions);
  rotate<true>(dx, positions, cos, sin, rows, heads, half_dim, threads);
}

#define FT_INSTANTIATE(scalar_t)                                                                  \
  template void rope_build_tables<scalar_t>(scalar_t*, scalar_t*, int64_t, int64_t, double,       \
                                            const ops::RopeScaling&, int);                        \
  template void rope_forward<scalar_t>(scalar_t*, const int32_t*, const scalar_t*,                \
                                       const scalar_t*, int64_t, int64_t, int64_t, int64_t, int); \
  template void rope_backward<scalar_t>(scalar_t*, const int32_t*, const scalar_t*,               \
                                        const scalar_t*, int64_t, int64_t, int64_t, int64_t, int);
FT_INSTANTIATE(float)
FT_INSTANTIATE(double)
#undef FT_INSTANTIATE

}  // namespace ft::cpu
