// The ops.h entry points of the PEFT adapters (ReLU, tanh, dropout, column blocks): check every
// argument's device, dtype and shape, naming the op and the argument, then run the CPU kernels of
// kernels/cpu/adapter_cpu.h.
#include <string_view>

#include "kernels/cpu/adapter_cpu.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"

namespace ft::ops {
namespace {

// Argument checks for one call of one op.
struct AdapterChecks {
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
  // The input of an elementwise op: any shape.
  void input(std::string_view arg, const Tensor& t) const { tensor(arg, t, t.shape, t.dtype); }
  // Another argument of an elementwise op: shaped like the input.
  void same(std::string_view arg, const Tensor& t, const Tensor& reference) const {
    tensor(arg, t, reference.shape, reference.dtype);
  }
  // Run before reading dims from a tensor whose shape defines the others.
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

}  // namespace

// ---- adapter encoders ------------------------------------------------------------------------

void relu_forward(const OpContext& ctx, Tensor out, Tensor x) {
  const AdapterChecks check{"relu_forward", ctx};
  check.input("x", x);
  check.same("out", out, x);
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, x.dtype,
      cpu::relu_forward(out.ptr<scalar_t>(), x.ptr<scalar_t>(), x.numel(), ctx.num_threads));
}

void relu_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor x) {
  const AdapterChecks check{"relu_backward", ctx};
  check.input("x", x);
  check.same("dout", dout, x);
  check.same("dx", dx, x);
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, x.dtype,
                        cpu::relu_backward(dx.ptr<scalar_t>(), dout.ptr<scalar_t>(),
                                           x.ptr<scalar_t>(), x.numel(), ctx.num_threads));
}

void tanh_forward(const OpContext& ctx, Tensor out, Tensor x) {
  const AdapterChecks check{"tanh_forward", ctx};
  check.input("x", x);
  check.same("out", out, x);
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, x.dtype,
      cpu::tanh_forward(out.ptr<scalar_t>(), x.ptr<scalar_t>(), x.numel(), ctx.num_threads));
}

void tanh_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor out) {
  const AdapterChecks check{"tanh_backward", ctx};
  check.input("out", out);
  check.same("dout", dout, out);
  check.same("dx", dx, out);
  check.cpu_only(out.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, out.dtype,
                        cpu::tanh_backward(dx.ptr<scalar_t>(), dout.ptr<scalar_t>(),
                                           out.ptr<scalar_t>(), out.numel(), ctx.num_threads));
}

// ---- LoRA dropout ----------------------------------------------------------------------------

void dropout_forward(const OpContext& ctx, Tensor out, Tensor x, double p, uint64_t seed) {
  const AdapterChecks check{"dropout_forward", ctx};
  check.input("x", x);
  check.same("out", out, x);
  check.probability(p);
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, x.dtype,
      cpu::dropout(out.ptr<scalar_t>(), x.ptr<scalar_t>(), p, seed, x.numel(), ctx.num_threads));
}

void dropout_backward(const OpContext& ctx, Tensor dx, Tensor dout, double p, uint64_t seed) {
  const AdapterChecks check{"dropout_backward", ctx};
  check.input("dout", dout);
  check.same("dx", dx, dout);
  check.probability(p);
  check.cpu_only(dout.dtype);
  // The forward is linear in x: its backward applies the same mask and scale to dout.
  FT_DISPATCH_CPU_FLOAT(check.op, dout.dtype,
                        cpu::dropout(dx.ptr<scalar_t>(), dout.ptr<scalar_t>(), p, seed,
                                     dout.numel(), ctx.num_threads));
}

// ---- column blocks ---------------------------------------------------------------------------

void copy_columns(const OpContext& ctx, Tensor dst, Tensor src, int64_t offset) {
  const AdapterChecks check{"copy_columns", ctx};
  check.matrix("src", src, "(R, W)");
  check.matrix("dst", dst, "(R, w)");
  int64_t rows = src.dim(0), src_cols = src.dim(1), width = dst.dim(1);
  check.tensor("src", src, {rows, src_cols}, src.dtype);
  check.tensor("dst", dst, {rows, width}, src.dtype);
  check.column_range(offset, width, "src", src_cols);
  check.cpu_only(src.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, src.dtype,
                        cpu::copy_columns(dst.ptr<scalar_t>(), src.ptr<scalar_t>(), rows, width,
                                          src_cols, offset, ctx.num_threads));
}

void add_to_columns(const OpContext& ctx, Tensor dst, Tensor src, int64_t offset) {
  const AdapterChecks check{"add_to_columns", ctx};
  check.matrix("dst", dst, "(R, W)");
  check.matrix("src", src, "(R, w)");
  int64_t rows = dst.dim(0), dst_cols = dst.dim(1), width = src.dim(1);
  check.tensor("dst", dst, {rows, dst_cols}, dst.dtype);
  check.tensor("src", src, {rows, width}, dst.dtype);
  check.column_range(offset, width, "dst", dst_cols);
  check.cpu_only(dst.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, dst.dtype,
                        cpu::add_to_columns(dst.ptr<scalar_t>(), src.ptr<scalar_t>(), rows, width,
                                            dst_cols, offset, ctx.num_threads));
}

}  // namespace ft::ops
