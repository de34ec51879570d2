// The ops.h entry points of the PEFT adapters (ReLU, tanh, dropout, column blocks): check every
// argument's device, dtype and shape, naming the op and the argument, then run the CPU kernels of
// kernels/cpu/adapter_cpu.h.
#include <string_view>

#include "kernels/arg_checks.h"
#include "kernels/cpu/adapter_cpu.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "runtime/error.h"

#ifdef FT_WITH_CUDA
#include "kernels/cuda/activation_cuda.h"
#include "kernels/cuda/dropout_cuda.h"
#include "kernels/cuda/elementwise_cuda.h"
#endif

namespace ft::ops {

// ---- adapter encoders ------------------------------------------------------------------------

void relu_forward(const OpContext& ctx, Tensor out, Tensor x) {
  const ArgChecks check{"relu_forward", ctx};
  check.input("x", x);
  check.same("out", out, x);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::relu_forward(ctx, out, x);
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, x.dtype,
      cpu::relu_forward(out.ptr<scalar_t>(), x.ptr<scalar_t>(), x.numel(), ctx.num_threads));
}

void relu_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor x) {
  const ArgChecks check{"relu_backward", ctx};
  check.input("x", x);
  check.same("dout", dout, x);
  check.same("dx", dx, x);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::relu_backward(ctx, dx, dout, x);
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, x.dtype,
                        cpu::relu_backward(dx.ptr<scalar_t>(), dout.ptr<scalar_t>(),
                                           x.ptr<scalar_t>(), x.numel(), ctx.num_threads));
}

void tanh_forward(const OpContext& ctx, Tensor out, Tensor x) {
  const ArgChecks check{"tanh_forward", ctx};
  check.input("x", x);
  check.same("out", out, x);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::tanh_forward(ctx, out, x);
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, x.dtype,
      cpu::tanh_forward(out.ptr<scalar_t>(), x.ptr<scalar_t>(), x.numel(), ctx.num_threads));
}

void tanh_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor out) {
  const ArgChecks check{"tanh_backward", ctx};
  check.input("out", out);
  check.same("dout", dout, out);
  check.same("dx", dx, out);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::tanh_backward(ctx, dx, dout, out);
#endif
  check.cpu_only(out.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, out.dtype,
                        cpu::tanh_backward(dx.ptr<scalar_t>(), dout.ptr<scalar_t>(),
                                           out.ptr<scalar_t>(), out.numel(), ctx.num_threads));
}

// ---- LoRA dropout ----------------------------------------------------------------------------

namespace {

// full_cols = 0: the whole tensor. Otherwise t (N, w) is columns [col_offset, col_offset + w) of an
// (N, full_cols) tensor.
void check_column_shard(const ArgChecks& check, std::string_view arg, const Tensor& t,
                        int64_t col_offset, int64_t full_cols) {
  if (full_cols < 0) fail("op {}: argument full_cols is {}, expected >= 0", check.op, full_cols);
  if (full_cols == 0) {
    if (col_offset != 0) {
      fail(
          "op {}: argument col_offset is {} but full_cols is 0 (no column shard); pass the full "
          "tensor's width as full_cols",
          check.op, col_offset);
    }
    return;
  }
  check.matrix(arg, t, "(N, w) for a column shard");
  const int64_t width = t.dim(1);
  if (col_offset < 0 || col_offset > full_cols - width) {
    fail("op {}: argument col_offset is {}: columns [{}, {}) of {} do not fit in full_cols {}",
         check.op, col_offset, col_offset, col_offset + width, arg, full_cols);
  }
}

template <typename scalar_t>
void run_dropout(Tensor out, Tensor x, double p, uint64_t seed, int64_t col_offset,
                 int64_t full_cols, int threads) {
  if (full_cols == 0) {
    cpu::dropout(out.ptr<scalar_t>(), x.ptr<scalar_t>(), p, seed, x.numel(), threads);
  } else {
    cpu::dropout_columns(out.ptr<scalar_t>(), x.ptr<scalar_t>(), p, seed, x.dim(0), x.dim(1),
                         col_offset, full_cols, threads);
  }
}

}  // namespace

void dropout_forward(const OpContext& ctx, Tensor out, Tensor x, double p, uint64_t seed,
                     int64_t col_offset, int64_t full_cols) {
  const ArgChecks check{"dropout_forward", ctx};
  check.input("x", x);
  check.same("out", out, x);
  check.probability(p);
  check_column_shard(check, "x", x, col_offset, full_cols);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::dropout(ctx, "dropout_forward", out, x, p, seed, col_offset, full_cols);
  }
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, x.dtype,
      run_dropout<scalar_t>(out, x, p, seed, col_offset, full_cols, ctx.num_threads));
}

void dropout_backward(const OpContext& ctx, Tensor dx, Tensor dout, double p, uint64_t seed,
                      int64_t col_offset, int64_t full_cols) {
  const ArgChecks check{"dropout_backward", ctx};
  check.input("dout", dout);
  check.same("dx", dx, dout);
  check.probability(p);
  check_column_shard(check, "dout", dout, col_offset, full_cols);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::dropout(ctx, "dropout_backward", dx, dout, p, seed, col_offset, full_cols);
  }
#endif
  check.cpu_only(dout.dtype);
  // The forward is linear in x: its backward applies the same mask and scale to dout.
  FT_DISPATCH_CPU_FLOAT(
      check.op, dout.dtype,
      run_dropout<scalar_t>(dx, dout, p, seed, col_offset, full_cols, ctx.num_threads));
}

// ---- column blocks ---------------------------------------------------------------------------

void copy_columns(const OpContext& ctx, Tensor dst, Tensor src, int64_t offset) {
  const ArgChecks check{"copy_columns", ctx};
  check.matrix("src", src, "(R, W)");
  check.matrix("dst", dst, "(R, w)");
  int64_t rows = src.dim(0), src_cols = src.dim(1), width = dst.dim(1);
  check.tensor("src", src, {rows, src_cols}, src.dtype);
  check.tensor("dst", dst, {rows, width}, src.dtype);
  check.column_range(offset, width, "src", src_cols);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::copy_columns(ctx, dst, src, offset);
#endif
  check.cpu_only(src.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, src.dtype,
                        cpu::copy_columns(dst.ptr<scalar_t>(), src.ptr<scalar_t>(), rows, width,
                                          src_cols, offset, ctx.num_threads));
}

void add_to_columns(const OpContext& ctx, Tensor dst, Tensor src, int64_t offset) {
  const ArgChecks check{"add_to_columns", ctx};
  check.matrix("dst", dst, "(R, W)");
  check.matrix("src", src, "(R, w)");
  int64_t rows = dst.dim(0), dst_cols = dst.dim(1), width = src.dim(1);
  check.tensor("dst", dst, {rows, dst_cols}, dst.dtype);
  check.tensor("src", src, {rows, width}, dst.dtype);
  check.column_range(offset, width, "dst", dst_cols);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::add_to_columns(ctx, dst, src, offset);
#endif
  check.cpu_only(dst.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, dst.dtype,
                        cpu::add_to_columns(dst.ptr<scalar_t>(), src.ptr<scalar_t>(), rows, width,
                                            dst_cols, offset, ctx.num_threads));
}

}  // namespace ft::ops
