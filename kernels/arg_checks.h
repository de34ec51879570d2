// Argument checks shared by the ops.h entry points (kernels/*_ops.cpp): each failure names the op
// and the argument and says what was expected. Also ptr_or_null, for passing optional tensors on.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kernels/context.h"
#include "kernels/dispatch.h"
#include "runtime/error.h"
#include "runtime/tensor.h"

namespace ft::ops {

// An optional tensor's data, or nullptr when it is absent (the implementations' convention).
template <typename T>
T* ptr_or_null(const Tensor& t) {
  return t.empty() ? nullptr : t.ptr<T>();
}

// Argument checks for one call of one op.
struct ArgChecks {
  std::string_view op;
  const OpContext& ctx;

  // A required tensor: present, on ctx.device, of this dtype and shape.
  void tensor(std::string_view arg, const Tensor& t, const Shape& shape, DType dtype) const {
    if (t.empty() && shape.numel() > 0) {
      fail("op {}: argument {} is empty, expected {} {}", op, arg, dtype_name(dtype), shape.str());
    }
    check_device(op, ctx, arg, t);
    check_dtype(op, arg, t, dtype);
    check_shape(op, arg, t, shape);
  }
  // An optional input or a parameter gradient that may be frozen: checked when present.
  void optional(std::string_view arg, const Tensor& t, const Shape& shape, DType dtype) const {
    if (!t.empty()) tensor(arg, t, shape, dtype);
  }
  // The input of an elementwise op: any shape.
  void input(std::string_view arg, const Tensor& t) const { tensor(arg, t, t.shape, t.dtype); }
  // Another argument of an elementwise op: shaped like the input.
  void same(std::string_view arg, const Tensor& t, const Tensor& reference) const {
    tensor(arg, t, reference.shape, reference.dtype);
  }
  // Run before reading dims from a tensor whose shape defines the others.
  void rank(std::string_view arg, const Tensor& t, int rank) const {
    if (t.empty() && t.rank() == 0) fail("op {}: argument {} is empty", op, arg);
    if (t.rank() != rank) {
      fail("op {}: argument {} has shape {}, expected rank {}", op, arg, t.shape.str(), rank);
    }
  }
  // Like rank(2), for ops whose messages name the layout, e.g. "(R, W)".
  void matrix(std::string_view arg, const Tensor& t, std::string_view layout) const {
    if (t.rank() != 2) {
      fail("op {}: argument {} must be {}, got {}", op, arg, layout,
           t.empty() && t.rank() == 0 ? std::string("an empty tensor") : t.shape.str());
    }
  }
  void probability(double p) const {
    if (!(p >= 0.0 && p < 1.0)) fail("op {}: argument p is {}, expected 0 <= p < 1", op, p);
  }
  // Columns [offset, offset + width) must lie within a block of `cols` columns.
  void column_range(int64_t offset, int64_t width, std::string_view block_arg, int64_t cols) const {
    if (offset < 0 || offset > cols - width) {
      fail("op {}: argument offset is {}: columns [{}, {}) do not fit in the {} columns of {}", op,
           offset, offset, offset + width, cols, block_arg);
    }
  }
  void cpu_only(DType dtype) const {
    if (ctx.device != Device::cpu) unsupported(op, ctx.device, dtype);
  }
};

}  // namespace ft::ops
