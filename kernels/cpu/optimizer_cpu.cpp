#include "kernels/cpu/optimizer_cpu.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_common.h"

namespace ft::cpu {
namespace {

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
                static_cast<scalar_t>(args.beta1),
                static_cast<scalar_t>(args.beta2), step_size, bias_correction2_sqrt,
                static_cast<scalar_t>(args.eps), begin, end);
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
      double total = 0.0;
#pragma omp simd reduction(+ : total)
      for (int64_t i = c * chunk; i < end; ++i) {
        double value = x[i];
        total += value * value;
      }
      partial[c] = total;
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
