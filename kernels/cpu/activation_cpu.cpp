#include "kernels/cpu/activation_cpu.h"

#include "kernels/cpu/cpu_common.h"

namespace ft::cpu {
namespace {

// Elementwise work per value, for the parallel split: a few dozen flops around one exp.
constexpr int64_t kActivationCost = 16;

template <typename scalar_t>
FT_CPU_CLONES void swiglu_forward_range(scalar_t* out, const scalar_t* gate, const scalar_t* up,
                                        int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    scalar_t g = gate[i];
    out[i] = g * sigmoid_vectorizable(g) * up[i];
  }
}

template <typename scalar_t>
FT_CPU_CLONES void swiglu_backward_range(scalar_t* dgate, scalar_t* dup, const scalar_t* dout,
                                         const scalar_t* gate, const scalar_t* up, int64_t begin,
                                         int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    scalar_t g = gate[i];
    scalar_t u = up[i];
    scalar_t d = dout[i];
    scalar_t s = sigmoid_vectorizable(g);
    // d silu / dg = s + g s (1 - s)
    dgate[i] = d * u * (s * (scalar_t{1} + g * (scalar_t{1} - s)));
    dup[i] = d * g * s;
  }
}

template <typename scalar_t>
struct GeluConstants {
  static constexpr auto kSqrt2OverPi = static_cast<scalar_t>(0.7978845608028654);
  static constexpr auto kCubic = static_cast<scalar_t>(0.044715);
};

template <typename scalar_t>
FT_CPU_CLONES void gelu_forward_range(scalar_t* out, const scalar_t* x, int64_t begin,
                                      int64_t end) {
  using K = GeluConstants<scalar_t>;
  for (int64_t i = begin; i < end; ++i) {
    scalar_t v = x[i];
    scalar_t t = tanh_vectorizable(K::kSqrt2OverPi * (v + K::kCubic * v * v * v));
    out[i] = scalar_t{0.5} * v * (scalar_t{1} + t);
  }
}

template <typename scalar_t>
FT_CPU_CLONES void gelu_backward_range(scalar_t* dx, const scalar_t* dout, const scalar_t* x,
                                       int64_t begin, int64_t end) {
  using K = GeluConstants<scalar_t>;
  for (int64_t i = begin; i < end; ++i) {
    scalar_t v = x[i];
    scalar_t t = tanh_vectorizable(K::kSqrt2OverPi * (v + K::kCubic * v * v * v));
    scalar_t du_dx = K::kSqrt2OverPi * (scalar_t{1} + scalar_t{3} * K::kCubic * v * v);
    scalar_t derivative =
        scalar_t{0.5} * (scalar_t{1} + t) + scalar_t{0.5} * v * (scalar_t{1} - t * t) * du_dx;
    dx[i] = dout[i] * derivative;
  }
}

}  // namespace

template <typename scalar_t>
void swiglu_forward(scalar_t* out, const scalar_t* gate, const scalar_t* up, int64_t count,
                    int threads) {
  parallel_ranges(count, threads, kActivationCost, [&](int64_t begin, int64_t end) {
    swiglu_forward_range(out, gate, up, begin, end);
  });
}

template <typename scalar_t>
void swiglu_backward(scalar_t* dgate, scalar_t* dup, const scalar_t* dout, const scalar_t* gate,
                     const scalar_t* up, int64_t count, int threads) {
  parallel_ranges(count, threads, kActivationCost, [&](int64_t begin, int64_t end) {
    swiglu_backward_range(dgate, dup, dout, gate, up, begin, end);
  });
}

template <typename scalar_t>
void gelu_forward(scalar_t* out, const scalar_t* x, int64_t count, int threads) {
  parallel_ranges(count, threads, kActivationCost,
                  [&](int64_t begin, int64_t end) { gelu_forward_range(out, x, begin, end); });
}

template <typename scalar_t>
void gelu_backward(scalar_t* dx, const scalar_t* dout, const scalar_t* x, int64_t count,
                   int threads) {
  parallel_ranges(count, threads, kActivationCost, [&](int64_t begin, int64_t end) {
    gelu_backward_range(dx, dout, x, begin, end);
  });
}

#define FT_INSTANTIATE(scalar_t)                                                                  \
  template void swiglu_forward<scalar_t>(scalar_t*, const scalar_t*, const scalar_t*, int64_t,    \
                                         int);                                                    \
  template void swiglu_backward<scalar_t>(scalar_t*, scalar_t*, const scalar_t*, const scalar_t*, \
                                          const scalar_t*, int64_t, int);                         \
  template void gelu_forward<scalar_t>(scalar_t*, const scalar_t*, int64_t, int);                 \
  template void gelu_backward<scalar_t>(scalar_t*, const scalar_t*, const scalar_t*, int64_t, int);
FT_INSTANTIATE(float)
FT_INSTANTIATE(double)
#undef FT_INSTANTIATE

}  // namespace ft::cpu
