#include "kernels/dispatch.h"

#include <fmt/format.h>

namespace ft::ops {

namespace {

#ifdef FT_WITH_CUDA
// Ops with a CUDA implementation (kernels/cuda/) for f32 and bf16 activations.
constexpr std::string_view kCudaFloatOps[] = {"attention_forward",
                                              "attention_backward",
                                              "linear_forward",
                                              "linear_backward",
                                              "embedding_forward",
                                              "embedding_backward",
                                              "rmsnorm_forward",
                                              "rmsnorm_backward",
                                              "layernorm_forward",
                                              "layernorm_backward",
                                              "rope_build_tables",
                                              "rope_forward",
                                              "rope_backward",
                                              "swiglu_forward",
                                              "swiglu_backward",
                                              "gelu_forward",
                                              "gelu_backward",
                                              "relu_forward",
                                              "relu_backward",
                                              "tanh_forward",
                                              "tanh_backward",
                                              "dropout_forward",
                                              "dropout_backward",
                                              "copy_columns",
                                              "add_to_columns",
                                              "add",
                                              "scale",
                                              "cross_entropy_forward",
                                              "cross_entropy_backward",
                                              "embedding_forward_shard",
                                              "embedding_backward_shard",
                                              "cross_entropy_shard_stats",
                                              "cross_entropy_backward_shard",
                                              "sum_squares",
                                              "sum",
                                              "count_correct",
                                              "residual_rmsnorm_forward",
                                              "residual_rmsnorm_backward",
                                              "residual_layernorm_forward",
                                              "residual_layernorm_backward"};
// Ops whose CUDA implementation takes bf16 activations only (the hand-written tensor-core
// kernels); quantize_weight_per_channel reads f32 or bf16 weights.
constexpr std::string_view kCudaBf16Ops[] = {"frozen_linear_forward",
                                             "frozen_linear_backward_input"};
// Ops whose CUDA implementation takes f32 only: the fp32 master weights, f32 shard stats.
constexpr std::string_view kCudaF32Ops[] = {"adamw_update", "multi_tensor_adamw",
                                            "cross_entropy_combine_shards"};

bool listed(std::string_view op, const auto& names) {
  for (std::string_view name : names)
    if (name == op) return true;
  return false;
}

bool cuda_supports(std::string_view op, DType dtype) {
  if (op == "cast") return dtype == DType::f32 || dtype == DType::bf16 || dtype == DType::f64;
  if (op == "zero") return true;
  if (listed(op, kCudaF32Ops)) return dtype == DType::f32;
  if (listed(op, kCudaBf16Ops)) return dtype == DType::bf16;
  if (op == "quantize_weight_per_channel") return dtype == DType::f32 || dtype == DType::bf16;
  if (listed(op, kCudaFloatOps)) return dtype == DType::f32 || dtype == DType::bf16;
  return false;
}
#endif

}  // namespace

bool supports(std::string_view op, Device device, DType dtype) {
  if (device == Device::cpu) return dtype == DType::f32 || dtype == DType::f64;
#ifdef FT_WITH_CUDA
  return cuda_supports(op, dtype);
#else
  return false;  // a build without CUDA runs no op there
#endif
}

void unsupported(std::string_view op, Device device, DType dtype) {
  throw Error(fmt::format("op {} has no {} implementation for dtype {}", op, device_name(device),
                          dtype_name(dtype)));
}

void check_device(std::string_view op, const OpContext& ctx, std::string_view arg,
                  const Tensor& t) {
  if (!t.empty() && t.device != ctx.device) {
    throw Error(fmt::format("op {}: argument {} is on {}, the op runs on {}", op, arg,
                            device_name(t.device), device_name(ctx.device)));
  }
}

void check_shape(std::string_view op, std::string_view arg, const Tensor& t,
                 const Shape& expected) {
  if (!(t.shape == expected)) {
    throw Error(fmt::format("op {}: argument {} has shape {}, expected {}", op, arg, t.shape.str(),
                            expected.str()));
  }
}

void check_dtype(std::string_view op, std::string_view arg, const Tensor& t, DType expected) {
  if (t.dtype != expected) {
    throw Error(fmt::format("op {}: argument {} has dtype {}, expected {}", op, arg,
                            dtype_name(t.dtype), dtype_name(expected)));
  }
}

}  // namespace ft::ops
