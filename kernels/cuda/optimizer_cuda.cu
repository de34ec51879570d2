#include <cmath>

#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/optimizer_cuda.h"

namespace ft::cuda {
namespace {

// kernels/cpu/optimizer_cpu.cpp's update of one element, in the same order and precision.
template <typename C>
struct AdamW {
  float* params;
  const float* grads;
  float *m, *v;
  C* copy;  // null: no copy
  float grad_scale, decay, beta1, beta2, step_size, bias_correction2_sqrt, eps;
  __device__ void operator()(int64_t i) const {
    const float g = grads[i] * grad_scale;
    const float m_new = beta1 * m[i] + (1.0f - beta1) * g;
    const float v_new = beta2 * v[i] + (1.0f - beta2) * g * g;
    const float denominator = sqrtf(v_new) / bias_correction2_sqrt + eps;
    m[i] = m_new;
    v[i] = v_new;
    const float p = params[i] * decay - step_size * (m_new / denominator);
    params[i] = p;
    if (copy) copy[i] = from_float<C>(p);
  }
};

template <typename C>
void launch(const OpContext& ctx, Tensor params, Tensor grads, Tensor m, Tensor v,
            const ops::AdamWArgs& args, C* copy) {
  const auto step = static_cast<double>(args.step);
  const double bias_correction1 = 1.0 - std::pow(args.beta1, step);
  const double bias_correction2 = 1.0 - std::pow(args.beta2, step);
  const AdamW<C> update{data<float>(params),
                        data<float>(grads),
                        data<float>(m),
                        data<float>(v),
                        copy,
                        static_cast<float>(args.grad_scale),
                        static_cast<float>(1.0 - args.lr * args.weight_decay),
                        static_cast<float>(args.beta1),
                        static_cast<float>(args.beta2),
                        static_cast<float>(args.lr / bias_correction1),
                        static_cast<float>(std::sqrt(bias_correction2)),
                        static_cast<float>(args.eps)};
  launch_elementwise("adamw_update", ctx, params.numel(), update);
}

}  // namespace

void adamw_update(const OpContext& ctx, Tensor params, Tensor grads, Tensor m, Tensor v,
                  const ops::AdamWArgs& args, Tensor params_copy) {
  constexpr const char* op = "adamw_update";
  if (params.dtype != DType::f32) ops::unsupported(op, Device::cuda, params.dtype);
  if (params_copy.empty()) return launch<float>(ctx, params, grads, m, v, args, nullptr);
  switch (params_copy.dtype) {
    case DType::bf16:
      return launch(ctx, params, grads, m, v, args, data<bfloat>(params_copy));
    case DType::f32:
      return launch(ctx, params, grads, m, v, args, data<float>(params_copy));
    default:
      ops::unsupported(op, Device::cuda, params_copy.dtype);
  }
}

}  // namespace ft::cuda
