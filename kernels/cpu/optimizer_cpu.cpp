#include "kernels/cpu/optimizer_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/cpu/cpu_common.h"

namespace ft::cpu {
namespace {

// The update of one element, shared by every path so an element's result does not depend on
// where a thread's range starts.
template <typename scalar_t>
FT_CPU_CLONES void adamw_range(scalar_t* params, const scalar_t* grads, scalar_t* m, scalar_t* v,
                               scalar_t grad_scale, scalar_t decay, scalar_t beta1, scalar_t beta2,
                               scalar_t step_size, scalar_t bias_correction2_sqrt, scalar_t eps,
                               int64_t begin, int64_t end) {
  scalar_t one = 1;
  for (int64_t i = begin; i < end; ++i) {
    // The same rounding as scaling the gradient in place first (ops::scale) would give.
    scalar_t g = grads[i] * grad_scale;
    scalar_t m_new = beta1 * m[i] + (one - beta1) * g;
    scalar_t v_new = beta2 * v[i] + (one - beta2) * g * g;
    scalar_t denominator = std::sqrt(v_new) / bias_correction2_sqrt + eps;
    m[i] = m_new;
    v[i] = v_new;
    params[i] = params[i] * decay - step_size * (m_new / denominator);
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// f32 on x86-64: the loop above stays scalar because std::sqrt keeps its errno path (the build
// does not pass -fno-math-errno), which made AdamW compute-bound. Here sqrt is the SSE
// instruction (baseline x86-64), 4 lanes at a time; a range's last < 4 elements go through the
// same vector code via a padded copy, so every element gets the same operations.
using Float4 = float __attribute__((vector_size(16)));

FT_CPU_CLONES void adamw_block(float* params, const float* grads, float* m, float* v,
                               float grad_scale, float decay, float beta1, float beta2,
                               float step_size, float bias_correction2_sqrt, float eps,
                               int64_t count) {
  const float one = 1;
  for (int64_t i = 0; i < count; i += 4) {
    Float4 p, g, m_old, v_old;
    std::memcpy(&p, params + i, sizeof p);
    std::memcpy(&g, grads + i, sizeof g);
    std::memcpy(&m_old, m + i, sizeof m_old);
    std::memcpy(&v_old, v + i, sizeof v_old);
    g = g * grad_scale;
    const Float4 m_new = beta1 * m_old + (one - beta1) * g;
    const Float4 v_new = beta2 * v_old + (one - beta2) * g * g;
    const Float4 root = reinterpret_cast<Float4>(_mm_sqrt_ps(reinterpret_cast<__m128>(v_new)));
    const Float4 denominator = root / bias_correction2_sqrt + eps;
    p = p * decay - step_size * (m_new / denominator);
    std::memcpy(params + i, &p, sizeof p);
    std::memcpy(m + i, &m_new, sizeof m_new);
    std::memcpy(v + i, &v_new, sizeof v_new);
  }
}

void adamw_range(float* params, const float* grads, float* m, float* v, float grad_scale,
                 float decay, float beta1, float beta2, float step_size,
                 float bias_correction2_sqrt, float eps, int64_t begin, int64_t end) {
  const int64_t whole = (end - begin) / 4 * 4;
  adamw_block(params + begin, grads + begin, m + begin, v + begin, grad_scale, decay, beta1, beta2,
              step_size, bias_correction2_sqrt, eps, whole);
  const int64_t tail = end - begin - whole;
  if (tail == 0) return;
  float p_tail[4] = {}, g_tail[4] = {}, m_tail[4] = {}, v_tail[4] = {};
  const int64_t first = begin + whole;
  std::copy_n(params + first, tail, p_tail);
  std::copy_n(grads + first, tail, g_tail);
  std::copy_n(m + first, tail, m_tail);
  std::copy_n(v + first, tail, v_tail);
  adamw_block(p_tail, g_tail, m_tail, v_tail, grad_scale, decay, beta1, beta2, step_size,
              bias_correction2_sqrt, eps, 4);
  std::copy_n(p_tail, tail, params + first);
  std::copy_n(m_tail, tail, m + first);
  std::copy_n(v_tail, tail, v + first);
}
#endif

// Sum of squares of one chunk: 16 independent partial sums (one double add chain would make the
// loop latency-bound), added in a fixed order.
template <typename scalar_t>
FT_CPU_CLONES double chunk_sum_squares(const scalar_t* x, int64_t count) {
  constexpr int64_t kPartials = 16;
  double partial[kPartials] = {};
  int64_t i = 0;
  for (; i + kPartials <= count; i += kPartials) {
    for (int64_t k = 0; k < kPartials; ++k) {
      double value = x[i + k];
      partial[k] += value * value;
    }
  }
  for (int64_t k = 0; i + k < count; ++k) {
    double value = x[i + k];
    partial[k] += value * value;
  }
  double total = 0.0;
  for (double value : partial) total += value;
  return total;
}

}  // namespace

template <typename scalar_t>
void adamw_update(scalar_t* params, const scalar_t* grads, scalar_t* m, scalar_t* v, int64_t count,
                  const ops::AdamWArgs& args, int threads) {
  auto step = static_cast<double>(args.step);
  double bias_correction1 = 1.0 - std::pow(args.beta1, step);
  double bias_correction2 = 1.0 - std::pow(args.beta2, step);
  auto decay = static_cast<scalar_t>(1.0 - args.lr * args.weight_decay);
  auto step_size = static_cast<scalar_t>(args.lr / bias_correction1);
  auto bias_correction2_sqrt = static_cast<scalar_t>(std::sqrt(bias_correction2));
  parallel_ranges(count, threads, 8, [&](int64_t begin, int64_t end) {
    adamw_range(params, grads, m, v, static_cast<scalar_t>(args.grad_scale), decay,
                static_cast<scalar_t>(args.beta1), static_cast<scalar_t>(args.beta2), step_size,
                bias_correction2_sqrt, static_cast<scalar_t>(args.eps), begin, end);
  });
}

template <typename scalar_t>
double sum_squares(const scalar_t* x, int64_t count, int threads) {
  constexpr int64_t kMaxChunks = 256;
  constexpr int64_t kMinChunk = 1 << 14;
  int64_t chunk = std::max((count + kMaxChunks - 1) / kMaxChunks, kMinChunk);
  int64_t chunks = (count + chunk - 1) / chunk;
  double partial[kMaxChunks] = {};
  parallel_ranges(chunks, threads, chunk, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) {
      int64_t end = std::min(count, (c + 1) * chunk);
      partial[c] = chunk_sum_squares(x + c * chunk, end - c * chunk);
    }
  });
  double total = 0.0;
  for (int64_t c = 0; c < chunks; ++c) total += partial[c];
  return total;
}

template void adamw_update<float>(float*, const float*, float*, float*, int64_t,
                                  const ops::AdamWArgs&, int);
template void adamw_update<double>(double*, const double*, double*, double*, int64_t,
                                   const ops::AdamWArgs&, int);
template double sum_squares<float>(const float*, int64_t, int);
template double sum_squares<double>(const double*, int64_t, int);

}  // namespace ft::cpu
