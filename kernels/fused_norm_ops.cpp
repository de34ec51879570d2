// The kernels/fused_norm_ops.h entry points: argument checks naming the op and the argument
// (shapes, dtypes, devices, and which tensors may share memory), then the implementation for
// ctx.device.
#include "kernels/fused_norm_ops.h"

#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <utility>

#include "kernels/arg_checks.h"
#include "kernels/cpu/fused_norm_cpu.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"

#ifdef FT_WITH_CUDA
#include "kernels/cuda/fused_norm_cuda.h"
#endif

namespace ft::ops {
namespace {

bool overlap(const Tensor& a, const Tensor& b) {
  if (a.empty() || b.empty() || a.bytes() == 0 || b.bytes() == 0) return false;
  const auto* a_begin = static_cast<const char*>(a.data);
  const auto* b_begin = static_cast<const char*>(b.data);
  return a_begin < b_begin + b.bytes() && b_begin < a_begin + a.bytes();
}

// `a` must not share memory with `b`.
void check_disjoint(const ArgChecks& check, std::string_view a_name, const Tensor& a,
                    std::string_view b_name, const Tensor& b) {
  if (overlap(a, b)) {
    fail("op {}: argument {} overlaps argument {} in memory, expected separate tensors", check.op,
         a_name, b_name);
  }
}

// `a` must be exactly `b` (an in-place update) or share no memory with it: a partial overlap
// would read elements after another row or thread has rewritten them.
void check_same_or_disjoint(const ArgChecks& check, std::string_view a_name, const Tensor& a,
                            std::string_view b_name, const Tensor& b) {
  if (a.data == b.data && a.shape == b.shape && a.dtype == b.dtype) return;
  if (overlap(a, b)) {
    fail(
        "op {}: argument {} partly overlaps argument {}: expected the same tensor (in place) or "
        "separate ones",
        check.op, a_name, b_name);
  }
}

// Every (N, C) tensor of a forward or backward, the first of which defines the shape, and the
// weight (C), all in the first's dtype.
void check_rows_and_weight(const ArgChecks& check,
                           std::initializer_list<std::pair<std::string_view, const Tensor*>> rows,
                           const Tensor& weight) {
  const auto& [first_arg, first] = *rows.begin();
  check.rank(first_arg, *first, 2);
  const Shape matrix{first->dim(0), first->dim(1)};
  for (const auto& [arg, t] : rows) check.tensor(arg, *t, matrix, first->dtype);
  check.tensor("weight", weight, {matrix[1]}, first->dtype);
}

// The forward's tensors: residual_in (N, C) defines the shape.
void check_forward(const ArgChecks& check, const Tensor& residual_out, const Tensor& out,
                   const Tensor& residual_in, const Tensor& delta, const Tensor& weight) {
  check_rows_and_weight(check,
                        {{"residual_in", &residual_in},
                         {"delta", &delta},
                         {"residual_out", &residual_out},
                         {"out", &out}},
                        weight);
  check_same_or_disjoint(check, "residual_out", residual_out, "residual_in", residual_in);
  check_same_or_disjoint(check, "residual_out", residual_out, "delta", delta);
  check_disjoint(check, "out", out, "residual_out", residual_out);
  check_disjoint(check, "out", out, "residual_in", residual_in);
  check_disjoint(check, "out", out, "delta", delta);
  check_disjoint(check, "out", out, "weight", weight);
  check_disjoint(check, "residual_out", residual_out, "weight", weight);
}

// The backward's tensors: x (N, C), the norm's saved input, defines the shape.
void check_backward(const ArgChecks& check, const Tensor& dresidual, const Tensor& dout,
                    const Tensor& dresidual_above, const Tensor& x, const Tensor& weight) {
  check_rows_and_weight(check,
                        {{"x", &x},
                         {"dout", &dout},
                         {"dresidual_above", &dresidual_above},
                         {"dresidual", &dresidual}},
                        weight);
  check_same_or_disjoint(check, "dresidual", dresidual, "dresidual_above", dresidual_above);
  check_disjoint(check, "dresidual", dresidual, "dout", dout);
  check_disjoint(check, "dresidual", dresidual, "x", x);
  check_disjoint(check, "dresidual", dresidual, "weight", weight);
}

}  // namespace

void residual_rmsnorm_forward(const OpContext& ctx, Tensor residual_out, Tensor out, Tensor rstd,
                              Tensor residual_in, Tensor delta, Tensor weight, double eps) {
  const ArgChecks check{"residual_rmsnorm_forward", ctx};
  check_forward(check, residual_out, out, residual_in, delta, weight);
  const int64_t rows = residual_in.dim(0), cols = residual_in.dim(1);
  check.tensor("rstd", rstd, {rows}, stats_dtype(residual_in.dtype));
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::residual_rmsnorm_forward(ctx, residual_out, out, rstd, residual_in, delta, weight,
                                          eps);
  }
#endif
  check.cpu_only(residual_in.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, residual_in.dtype,
                        cpu::residual_rmsnorm_forward(
                            residual_out.ptr<scalar_t>(), out.ptr<scalar_t>(), rstd.ptr<scalar_t>(),
                            residual_in.ptr<scalar_t>(), delta.ptr<scalar_t>(),
                            weight.ptr<scalar_t>(), rows, cols, eps, ctx.num_threads));
}

void residual_layernorm_forward(const OpContext& ctx, Tensor residual_out, Tensor out, Tensor mean,
                                Tensor rstd, Tensor residual_in, Tensor delta, Tensor weight,
                                Tensor bias, double eps) {
  const ArgChecks check{"residual_layernorm_forward", ctx};
  check_forward(check, residual_out, out, residual_in, delta, weight);
  const int64_t rows = residual_in.dim(0), cols = residual_in.dim(1);
  check.optional("bias", bias, {cols}, residual_in.dtype);
  check_disjoint(check, "out", out, "bias", bias);
  check_disjoint(check, "residual_out", residual_out, "bias", bias);
  check.tensor("mean", mean, {rows}, stats_dtype(residual_in.dtype));
  check.tensor("rstd", rstd, {rows}, stats_dtype(residual_in.dtype));
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::residual_layernorm_forward(ctx, residual_out, out, mean, rstd, residual_in, delta,
                                            weight, bias, eps);
  }
#endif
  check.cpu_only(residual_in.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, residual_in.dtype,
      cpu::residual_layernorm_forward(
          residual_out.ptr<scalar_t>(), out.ptr<scalar_t>(), mean.ptr<scalar_t>(),
          rstd.ptr<scalar_t>(), residual_in.ptr<scalar_t>(), delta.ptr<scalar_t>(),
          weight.ptr<scalar_t>(), ptr_or_null<scalar_t>(bias), rows, cols, eps, ctx.num_threads));
}

void residual_rmsnorm_backward(const OpContext& ctx, Tensor dresidual, Tensor dweight, Tensor dout,
                               Tensor dresidual_above, Tensor x, Tensor weight, Tensor rstd) {
  const ArgChecks check{"residual_rmsnorm_backward", ctx};
  check_backward(check, dresidual, dout, dresidual_above, x, weight);
  const int64_t rows = x.dim(0), cols = x.dim(1);
  check.tensor("rstd", rstd, {rows}, stats_dtype(x.dtype));
  check.optional("dweight", dweight, {cols}, param_grad_dtype(dweight.dtype, x.dtype));
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::residual_rmsnorm_backward(ctx, dresidual, dweight, dout, dresidual_above, x,
                                           weight, rstd);
  }
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, x.dtype,
      cpu::residual_rmsnorm_backward(dresidual.ptr<scalar_t>(), ptr_or_null<scalar_t>(dweight),
                                     dout.ptr<scalar_t>(), dresidual_above.ptr<scalar_t>(),
                                     x.ptr<scalar_t>(), weight.ptr<scalar_t>(),
                                     rstd.ptr<scalar_t>(), rows, cols, ctx.num_threads));
}

void residual_layernorm_backward(const OpContext& ctx, Tensor dresidual, Tensor dweight,
                                 Tensor dbias, Tensor dout, Tensor dresidual_above, Tensor x,
                                 Tensor weight, Tensor mean, Tensor rstd) {
  const ArgChecks check{"residual_layernorm_backward", ctx};
  check_backward(check, dresidual, dout, dresidual_above, x, weight);
  const int64_t rows = x.dim(0), cols = x.dim(1);
  check.tensor("mean", mean, {rows}, stats_dtype(x.dtype));
  check.tensor("rstd", rstd, {rows}, stats_dtype(x.dtype));
  check.optional("dweight", dweight, {cols}, param_grad_dtype(dweight.dtype, x.dtype));
  check.optional("dbias", dbias, {cols}, param_grad_dtype(dbias.dtype, x.dtype));
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::residual_layernorm_backward(ctx, dresidual, dweight, dbias, dout, dresidual_above,
                                             x, weight, mean, rstd);
  }
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, x.dtype,
      cpu::residual_layernorm_backward(dresidual.ptr<scalar_t>(), ptr_or_null<scalar_t>(dweight),
                                       ptr_or_null<scalar_t>(dbias), dout.ptr<scalar_t>(),
                                       dresidual_above.ptr<scalar_t>(), x.ptr<scalar_t>(),
                                       weight.ptr<scalar_t>(), mean.ptr<scalar_t>(),
                                       rstd.ptr<scalar_t>(), rows, cols, ctx.num_threads));
}

}  // namespace ft::ops
