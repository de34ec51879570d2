// The AdamW update of one fp32 element and its per-step scalars, shared by the per-tensor kernel
// (optimizer_cuda.cu) and the multi-tensor one (multi_tensor_adamw_cuda.cu) so that both compute
// the same bits: kernels/cpu/optimizer_cpu.cpp's formula, in the same order and precision.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/cuda/common_cuda.cuh"
#include "kernels/ops.h"

namespace ft::cuda {

// One step's scalars, rounded to fp32 on the host. decay = 1 - lr * weight_decay.
struct AdamWScalars {
  float grad_scale, decay, beta1, beta2, step_size, bias_correction2_sqrt, eps;
};

inline AdamWScalars adamw_scalars(const ops::AdamWArgs& args) {
  const auto step = static_cast<double>(args.step);
  const double bias_correction1 = 1.0 - std::pow(args.beta1, step);
  const double bias_correction2 = 1.0 - std::pow(args.beta2, step);
  return {static_cast<float>(args.grad_scale),
          static_cast<float>(1.0 - args.lr * args.weight_decay),
          static_cast<float>(args.beta1),
          static_cast<float>(args.beta2),
          static_cast<float>(args.lr / bias_correction1),
          static_cast<float>(std::sqrt(bias_correction2)),
          static_cast<float>(args.eps)};
}

// Updates params[i], m[i], v[i] with the scaled gradient (grads itself is only read) and returns
// the new parameter. `decay` is s.decay, or 1 for a parameter that does not decay.
__device__ __forceinline__ float adamw_element(float* params, const float* grads, float* m,
                                               float* v, int64_t i, const AdamWScalars& s,
                                               float decay) {
  const float g = grads[i] * s.grad_scale;
  const float m_new = s.beta1 * m[i] + (1.0f - s.beta1) * g;
  const float v_new = s.beta2 * v[i] + (1.0f - s.beta2) * g * g;
  const float denominator = sqrtf(v_new) / s.bias_correction2_sqrt + s.eps;
  m[i] = m_new;
  v[i] = v_new;
  const float p = params[i] * decay - s.step_size * (m_new / denominator);
  params[i] = p;
  return p;
}

}  // namespace ft::cuda
