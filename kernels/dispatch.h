// Helpers for the op dispatch (kernels/*_ops.cpp): choose the implementation by device and dtype,
// and fail naming the op when a combination is not supported.
#pragma once

#include <string_view>

#include "kernels/context.h"
#include "runtime/tensor.h"

namespace ft::ops {

// Which (op, device, dtype) combinations have an implementation. The CPU backend supports f32
// and f64 for every op of ops.h; the CUDA backend (builds with FT_WITH_CUDA) f32 and bf16 for the
// ops kernels/cuda/ implements (kernels/dispatch.cpp lists them).
bool supports(std::string_view op, Device device, DType dtype);

[[noreturn]] void unsupported(std::string_view op, Device device, DType dtype);

// Checks that every non-empty tensor lives on ctx.device; names the op and the argument.
void check_device(std::string_view op, const OpContext& ctx, std::string_view arg, const Tensor& t);
// Checks a tensor's shape; names the op and the argument and prints expected vs. actual.
void check_shape(std::string_view op, std::string_view arg, const Tensor& t, const Shape& expected);
void check_dtype(std::string_view op, std::string_view arg, const Tensor& t, DType expected);

}  // namespace ft::ops

// FT_DISPATCH_CPU_FLOAT(op, dtype, call): runs `call` with `scalar_t` = float or double.
#define FT_DISPATCH_CPU_FLOAT(op, dtype, ...)                 \
  do {                                                        \
    switch (dtype) {                                          \
      case ::ft::DType::f32: {                                \
        using scalar_t = float;                               \
        __VA_ARGS__;                                          \
        break;                                                \
      }                                                       \
      case ::ft::DType::f64: {                                \
        using scalar_t = double;                              \
        __VA_ARGS__;                                          \
        break;                                                \
      }                                                       \
      default:                                                \
        ::ft::ops::unsupported(op, ::ft::Device::cpu, dtype); \
    }                                                         \
  } while (0)
