#include "kernels/dispatch.h"

#include <fmt/format.h>

namespace ft::ops {

bool supports(std::string_view op, Device device, DType dtype) {
  if (device == Device::cpu) return dtype == DType::f32 || dtype == DType::f64;
  // The CUDA training backend (bf16 with fp32 master weights) is not built yet: no op runs there.
  return false;
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
