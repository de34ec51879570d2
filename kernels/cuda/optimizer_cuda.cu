#include "kernels/cuda/adamw_cuda.cuh"
#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/optimizer_cuda.h"

namespace ft::cuda {
namespace {

// One element per thread; the update itself is adamw_cuda.cuh's, shared with the multi-tensor
// kernel.
template <typename C>
struct AdamW {
  float* params;
  const float* grads;
  float *m, *v;
  C* copy;  // null: no copy
  AdamWScalars scalars;
  __device__ void operator()(int64_t i) const {
    const float p = adamw_element(params, grads, m, v, i, scalars, scalars.decay);
    if (copy) copy[i] = from_float<C>(p);
  }
};

template <typename C>
void launch(const OpContext& ctx, Tensor params, Tensor grads, Tensor m, Tensor v,
            const ops::AdamWArgs& args, C* copy) {
  const AdamW<C> update{
      data<float>(params), data<float>(grads), data<float>(m), data<float>(v), copy,
      adamw_scalars(args)};
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
