// The ops.h entry points (attention lives in attention_ops.cpp): check every argument's device,
// dtype and shape, naming the op and the argument, then run the implementation for ctx.device.
#include <string_view>

#include "kernels/arg_checks.h"
#include "kernels/cpu/activation_cpu.h"
#include "kernels/cpu/cross_entropy_cpu.h"
#include "kernels/cpu/elementwise_cpu.h"
#include "kernels/cpu/embedding_cpu.h"
#include "kernels/cpu/linear_cpu.h"
#include "kernels/cpu/norm_cpu.h"
#include "kernels/cpu/optimizer_cpu.h"
#include "kernels/cpu/rope_cpu.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"

#ifdef FT_WITH_CUDA
#include "kernels/cuda/activation_cuda.h"
#include "kernels/cuda/cross_entropy_cuda.h"
#include "kernels/cuda/elementwise_cuda.h"
#include "kernels/cuda/embedding_cuda.h"
#include "kernels/cuda/linear_cuda.h"
#include "kernels/cuda/norm_cuda.h"
#include "kernels/cuda/optimizer_cuda.h"
#include "kernels/cuda/reduction_cuda.h"
#include "kernels/cuda/rope_cuda.h"
#endif

namespace ft::ops {

// ---- embedding -------------------------------------------------------------------------------

void embedding_forward(const OpContext& ctx, Tensor out, Tensor ids, Tensor table) {
  const ArgChecks check{"embedding_forward", ctx};
  check.rank("ids", ids, 1);
  check.rank("table", table, 2);
  int64_t rows = ids.dim(0), vocab = table.dim(0), cols = table.dim(1);
  check.tensor("ids", ids, {rows}, DType::i32);
  check.tensor("table", table, {vocab, cols}, table.dtype);
  check.tensor("out", out, {rows, cols}, table.dtype);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::embedding_forward_shard(ctx, "embedding_forward", out, ids, table, 0, vocab);
  }
#endif
  check.cpu_only(table.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, table.dtype,
      cpu::embedding_forward(out.ptr<scalar_t>(), ids.ptr<int32_t>(), table.ptr<scalar_t>(), rows,
                             vocab, cols, ctx.num_threads));
}

void embedding_backward(const OpContext& ctx, Tensor dtable, Tensor ids, Tensor dout) {
  const ArgChecks check{"embedding_backward", ctx};
  if (dtable.empty()) return;  // frozen table
  check.rank("ids", ids, 1);
  check.rank("dtable", dtable, 2);
  int64_t rows = ids.dim(0), vocab = dtable.dim(0), cols = dtable.dim(1);
  check.tensor("dtable", dtable, {vocab, cols}, param_grad_dtype(dtable.dtype, dout.dtype));
  check.tensor("ids", ids, {rows}, DType::i32);
  check.tensor("dout", dout, {rows, cols}, dout.dtype);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::embedding_backward_shard(ctx, "embedding_backward", dtable, ids, dout, 0, vocab);
  }
#endif
  check.cpu_only(dtable.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, dtable.dtype,
      cpu::embedding_backward(dtable.ptr<scalar_t>(), ids.ptr<int32_t>(), dout.ptr<scalar_t>(),
                              rows, vocab, cols, ctx.num_threads));
}

// ---- normalization ---------------------------------------------------------------------------

void rmsnorm_forward(const OpContext& ctx, Tensor out, Tensor rstd, Tensor x, Tensor weight,
                     double eps) {
  const ArgChecks check{"rmsnorm_forward", ctx};
  check.rank("x", x, 2);
  int64_t rows = x.dim(0), cols = x.dim(1);
  check.tensor("x", x, {rows, cols}, x.dtype);
  check.tensor("weight", weight, {cols}, x.dtype);
  check.tensor("out", out, {rows, cols}, x.dtype);
  check.tensor("rstd", rstd, {rows}, stats_dtype(x.dtype));
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::rmsnorm_forward(ctx, out, rstd, x, weight, eps);
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, x.dtype,
      cpu::rmsnorm_forward(out.ptr<scalar_t>(), rstd.ptr<scalar_t>(), x.ptr<scalar_t>(),
                           weight.ptr<scalar_t>(), rows, cols, eps, ctx.num_threads));
}

void rmsnorm_backward(const OpContext& ctx, Tensor dx, Tensor dweight, Tensor dout, Tensor x,
                      Tensor weight, Tensor rstd) {
  const ArgChecks check{"rmsnorm_backward", ctx};
  check.rank("x", x, 2);
  int64_t rows = x.dim(0), cols = x.dim(1);
  check.tensor("x", x, {rows, cols}, x.dtype);
  check.tensor("dout", dout, {rows, cols}, x.dtype);
  check.tensor("weight", weight, {cols}, x.dtype);
  check.tensor("rstd", rstd, {rows}, stats_dtype(x.dtype));
  check.tensor("dx", dx, {rows, cols}, x.dtype);
  check.optional("dweight", dweight, {cols}, param_grad_dtype(dweight.dtype, x.dtype));
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::rmsnorm_backward(ctx, dx, dweight, dout, x, weight, rstd);
  }
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, x.dtype,
      cpu::rmsnorm_backward(dx.ptr<scalar_t>(), ptr_or_null<scalar_t>(dweight),
                            dout.ptr<scalar_t>(), x.ptr<scalar_t>(), weight.ptr<scalar_t>(),
                            rstd.ptr<scalar_t>(), rows, cols, ctx.num_threads));
}

void layernorm_forward(const OpContext& ctx, Tensor out, Tensor mean, Tensor rstd, Tensor x,
                       Tensor weight, Tensor bias, double eps) {
  const ArgChecks check{"layernorm_forward", ctx};
  check.rank("x", x, 2);
  int64_t rows = x.dim(0), cols = x.dim(1);
  check.tensor("x", x, {rows, cols}, x.dtype);
  check.tensor("weight", weight, {cols}, x.dtype);
  check.optional("bias", bias, {cols}, x.dtype);
  check.tensor("out", out, {rows, cols}, x.dtype);
  check.tensor("mean", mean, {rows}, stats_dtype(x.dtype));
  check.tensor("rstd", rstd, {rows}, stats_dtype(x.dtype));
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::layernorm_forward(ctx, out, mean, rstd, x, weight, bias, eps);
  }
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, x.dtype,
      cpu::layernorm_forward(out.ptr<scalar_t>(), mean.ptr<scalar_t>(), rstd.ptr<scalar_t>(),
                             x.ptr<scalar_t>(), weight.ptr<scalar_t>(), ptr_or_null<scalar_t>(bias),
                             rows, cols, eps, ctx.num_threads));
}

void layernorm_backward(const OpContext& ctx, Tensor dx, Tensor dweight, Tensor dbias, Tensor dout,
                        Tensor x, Tensor weight, Tensor mean, Tensor rstd) {
  const ArgChecks check{"layernorm_backward", ctx};
  check.rank("x", x, 2);
  int64_t rows = x.dim(0), cols = x.dim(1);
  check.tensor("x", x, {rows, cols}, x.dtype);
  check.tensor("dout", dout, {rows, cols}, x.dtype);
  check.tensor("weight", weight, {cols}, x.dtype);
  check.tensor("mean", mean, {rows}, stats_dtype(x.dtype));
  check.tensor("rstd", rstd, {rows}, stats_dtype(x.dtype));
  check.tensor("dx", dx, {rows, cols}, x.dtype);
  check.optional("dweight", dweight, {cols}, param_grad_dtype(dweight.dtype, x.dtype));
  check.optional("dbias", dbias, {cols}, param_grad_dtype(dbias.dtype, x.dtype));
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::layernorm_backward(ctx, dx, dweight, dbias, dout, x, weight, mean, rstd);
  }
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, x.dtype,
      cpu::layernorm_backward(dx.ptr<scalar_t>(), ptr_or_null<scalar_t>(dweight),
                              ptr_or_null<scalar_t>(dbias), dout.ptr<scalar_t>(), x.ptr<scalar_t>(),
                              weight.ptr<scalar_t>(), mean.ptr<scalar_t>(), rstd.ptr<scalar_t>(),
                              rows, cols, ctx.num_threads));
}

// ---- rotary position embedding ---------------------------------------------------------------

void rope_build_tables(const OpContext& ctx, Tensor cos, Tensor sin, double theta,
                       const RopeScaling& scaling) {
  const ArgChecks check{"rope_build_tables", ctx};
  check.rank("cos", cos, 2);
  int64_t max_positions = cos.dim(0), half_dim = cos.dim(1);
  check.tensor("sin", sin, {max_positions, half_dim}, cos.dtype);
  if (!(theta > 0)) fail("op {}: theta is {}, expected > 0", check.op, theta);
  if (scaling.factor > 0 && !(scaling.high_freq_factor > scaling.low_freq_factor)) {
    fail("op {}: llama3 scaling needs high_freq_factor ({}) > low_freq_factor ({})", check.op,
         scaling.high_freq_factor, scaling.low_freq_factor);
  }
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::rope_build_tables(ctx, cos, sin, theta, scaling);
#endif
  check.cpu_only(cos.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, cos.dtype,
      cpu::rope_build_tables(cos.ptr<scalar_t>(), sin.ptr<scalar_t>(), max_positions, half_dim,
                             theta, scaling, ctx.num_threads));
}

namespace {

// rope_forward and rope_backward share their arguments: x (N, H, D), positions (N), tables
// (max_positions, D / 2).
void check_rope(const ArgChecks& check, const Tensor& x, const Tensor& positions, const Tensor& cos,
                const Tensor& sin) {
  check.rank("x", x, 3);
  check.rank("cos", cos, 2);
  int64_t rows = x.dim(0), heads = x.dim(1), head_dim = x.dim(2);
  if (head_dim % 2 != 0) {
    fail("op {}: argument x has shape {}: head_dim must be even", check.op, x.shape.str());
  }
  check.tensor("x", x, {rows, heads, head_dim}, x.dtype);
  check.tensor("positions", positions, {rows}, DType::i32);
  check.tensor("cos", cos, {cos.dim(0), head_dim / 2}, x.dtype);
  check.tensor("sin", sin, {cos.dim(0), head_dim / 2}, x.dtype);
}

}  // namespace

void rope_forward(const OpContext& ctx, Tensor x, Tensor positions, Tensor cos, Tensor sin) {
  const ArgChecks check{"rope_forward", ctx};
  check_rope(check, x, positions, cos, sin);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::rope_rotate(ctx, "rope_forward", false, x, positions, cos, sin);
  }
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, x.dtype,
                        cpu::rope_forward(x.ptr<scalar_t>(), positions.ptr<int32_t>(),
                                          cos.ptr<scalar_t>(), sin.ptr<scalar_t>(), x.dim(0),
                                          x.dim(1), x.dim(2) / 2, cos.dim(0), ctx.num_threads));
}

void rope_backward(const OpContext& ctx, Tensor dx, Tensor positions, Tensor cos, Tensor sin) {
  const ArgChecks check{"rope_backward", ctx};
  check_rope(check, dx, positions, cos, sin);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::rope_rotate(ctx, "rope_backward", true, dx, positions, cos, sin);
  }
#endif
  check.cpu_only(dx.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, dx.dtype,
                        cpu::rope_backward(dx.ptr<scalar_t>(), positions.ptr<int32_t>(),
                                           cos.ptr<scalar_t>(), sin.ptr<scalar_t>(), dx.dim(0),
                                           dx.dim(1), dx.dim(2) / 2, cos.dim(0), ctx.num_threads));
}

// ---- linear ----------------------------------------------------------------------------------

void linear_forward(const OpContext& ctx, Tensor out, Tensor x, Tensor weight, Tensor bias) {
  const ArgChecks check{"linear_forward", ctx};
  check.rank("x", x, 2);
  check.rank("weight", weight, 2);
  int64_t rows = x.dim(0), in_features = x.dim(1), out_features = weight.dim(0);
  check.tensor("weight", weight, {out_features, in_features}, x.dtype);
  check.optional("bias", bias, {out_features}, x.dtype);
  check.tensor("out", out, {rows, out_features}, x.dtype);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    cuda::linear_forward(ctx, out, x, weight, bias);
    if (ctx.counters) ++ctx.counters->forward_products;
    return;
  }
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, x.dtype,
                        cpu::linear_forward(out.ptr<scalar_t>(), x.ptr<scalar_t>(),
                                            weight.ptr<scalar_t>(), ptr_or_null<scalar_t>(bias),
                                            rows, in_features, out_features, ctx.num_threads));
  if (ctx.counters) ++ctx.counters->forward_products;
}

void linear_backward(const OpContext& ctx, Tensor dx, Tensor dweight, Tensor dbias, Tensor dout,
                     Tensor x, Tensor weight) {
  const ArgChecks check{"linear_backward", ctx};
  check.rank("x", x, 2);
  check.rank("weight", weight, 2);
  int64_t rows = x.dim(0), in_features = x.dim(1), out_features = weight.dim(0);
  check.tensor("weight", weight, {out_features, in_features}, x.dtype);
  check.tensor("dout", dout, {rows, out_features}, x.dtype);
  check.optional("dx", dx, {rows, in_features}, x.dtype);
  check.optional("dweight", dweight, {out_features, in_features},
                 param_grad_dtype(dweight.dtype, x.dtype));
  check.optional("dbias", dbias, {out_features}, param_grad_dtype(dbias.dtype, x.dtype));
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    cuda::linear_backward(ctx, dx, dweight, dbias, dout, x, weight);
    if (ctx.counters) {
      if (!dx.empty()) ++ctx.counters->input_grad_products;
      if (!dweight.empty()) ++ctx.counters->weight_grad_products;
    }
    return;
  }
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, x.dtype, {
    if (!dx.empty()) {
      cpu::linear_backward_input(dx.ptr<scalar_t>(), dout.ptr<scalar_t>(), weight.ptr<scalar_t>(),
                                 rows, in_features, out_features);
    }
    if (!dweight.empty()) {
      cpu::linear_backward_weight(dweight.ptr<scalar_t>(), dout.ptr<scalar_t>(), x.ptr<scalar_t>(),
                                  rows, in_features, out_features);
    }
    if (!dbias.empty()) {
      cpu::linear_backward_bias(dbias.ptr<scalar_t>(), dout.ptr<scalar_t>(), rows, out_features,
                                ctx.num_threads);
    }
  });
  if (ctx.counters) {
    if (!dx.empty()) ++ctx.counters->input_grad_products;
    if (!dweight.empty()) ++ctx.counters->weight_grad_products;
  }
}

// ---- activations -----------------------------------------------------------------------------

void swiglu_forward(const OpContext& ctx, Tensor out, Tensor gate, Tensor up) {
  const ArgChecks check{"swiglu_forward", ctx};
  check.rank("gate", gate, 2);
  check.same("up", up, gate);
  check.same("out", out, gate);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::swiglu_forward(ctx, out, gate, up);
#endif
  check.cpu_only(gate.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, gate.dtype,
                        cpu::swiglu_forward(out.ptr<scalar_t>(), gate.ptr<scalar_t>(),
                                            up.ptr<scalar_t>(), gate.numel(), ctx.num_threads));
}

void swiglu_backward(const OpContext& ctx, Tensor dgate, Tensor dup, Tensor dout, Tensor gate,
                     Tensor up) {
  const ArgChecks check{"swiglu_backward", ctx};
  check.rank("gate", gate, 2);
  check.same("up", up, gate);
  check.same("dout", dout, gate);
  check.same("dgate", dgate, gate);
  check.same("dup", dup, gate);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::swiglu_backward(ctx, dgate, dup, dout, gate, up);
#endif
  check.cpu_only(gate.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, gate.dtype,
                        cpu::swiglu_backward(dgate.ptr<scalar_t>(), dup.ptr<scalar_t>(),
                                             dout.ptr<scalar_t>(), gate.ptr<scalar_t>(),
                                             up.ptr<scalar_t>(), gate.numel(), ctx.num_threads));
}

void gelu_forward(const OpContext& ctx, Tensor out, Tensor x) {
  const ArgChecks check{"gelu_forward", ctx};
  check.rank("x", x, 2);
  check.same("out", out, x);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::gelu_forward(ctx, out, x);
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, x.dtype,
      cpu::gelu_forward(out.ptr<scalar_t>(), x.ptr<scalar_t>(), x.numel(), ctx.num_threads));
}

void gelu_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor x) {
  const ArgChecks check{"gelu_backward", ctx};
  check.rank("x", x, 2);
  check.same("dout", dout, x);
  check.same("dx", dx, x);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::gelu_backward(ctx, dx, dout, x);
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, x.dtype,
                        cpu::gelu_backward(dx.ptr<scalar_t>(), dout.ptr<scalar_t>(),
                                           x.ptr<scalar_t>(), x.numel(), ctx.num_threads));
}

// ---- elementwise -----------------------------------------------------------------------------

void add(const OpContext& ctx, Tensor out, Tensor a, Tensor b) {
  const ArgChecks check{"add", ctx};
  check.tensor("a", a, a.shape, a.dtype);
  check.same("b", b, a);
  check.same("out", out, a);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::add(ctx, out, a, b);
#endif
  check.cpu_only(a.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, a.dtype,
                        cpu::add(out.ptr<scalar_t>(), a.ptr<scalar_t>(), b.ptr<scalar_t>(),
                                 a.numel(), ctx.num_threads));
}

void scale(const OpContext& ctx, Tensor x, double factor) {
  const ArgChecks check{"scale", ctx};
  check.tensor("x", x, x.shape, x.dtype);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::scale(ctx, x, factor);
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, x.dtype,
                        cpu::scale(x.ptr<scalar_t>(), factor, x.numel(), ctx.num_threads));
}

namespace {

// FT_DISPATCH_CPU_FLOAT's counterpart for cast, whose dtypes include bf16.
template <typename dst_t>
void cast_from(const ArgChecks& check, Tensor dst, Tensor src) {
  int64_t count = src.numel();
  int threads = check.ctx.num_threads;
  switch (src.dtype) {
    case DType::f32:
      return cpu::cast(dst.ptr<dst_t>(), src.ptr<float>(), count, threads);
    case DType::f64:
      return cpu::cast(dst.ptr<dst_t>(), src.ptr<double>(), count, threads);
    case DType::bf16:
      return cpu::cast(dst.ptr<dst_t>(), src.ptr<bf16>(), count, threads);
    default:
      unsupported(check.op, check.ctx.device, src.dtype);
  }
}

}  // namespace

void cast(const OpContext& ctx, Tensor dst, Tensor src) {
  const ArgChecks check{"cast", ctx};
  check.tensor("src", src, src.shape, src.dtype);
  check.tensor("dst", dst, dst.shape, dst.dtype);
  if (dst.numel() != src.numel()) {
    fail("op cast: argument dst has shape {} ({} elements), src has shape {} ({} elements)",
         dst.shape.str(), dst.numel(), src.shape.str(), src.numel());
  }
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::cast(ctx, dst, src);
#endif
  check.cpu_only(dst.dtype);
  switch (dst.dtype) {
    case DType::f32:
      return cast_from<float>(check, dst, src);
    case DType::f64:
      return cast_from<double>(check, dst, src);
    case DType::bf16:
      return cast_from<bf16>(check, dst, src);
    default:
      unsupported(check.op, ctx.device, dst.dtype);
  }
}

void zero(const OpContext& ctx, Tensor x) {
  const ArgChecks check{"zero", ctx};
  check.tensor("x", x, x.shape, x.dtype);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::zero(ctx, x);
#endif
  check.cpu_only(x.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, x.dtype,
                        cpu::zero(x.ptr<scalar_t>(), x.bytes(), ctx.num_threads));
}

// ---- loss ------------------------------------------------------------------------------------

void cross_entropy_forward(const OpContext& ctx, Tensor losses, Tensor lse, Tensor logits,
                           Tensor targets, Tensor weights, int64_t* correct) {
  const ArgChecks check{"cross_entropy_forward", ctx};
  check.rank("logits", logits, 2);
  int64_t rows = logits.dim(0), vocab = logits.dim(1);
  check.tensor("targets", targets, {rows}, DType::i32);
  check.optional("weights", weights, {rows}, stats_dtype(logits.dtype));
  check.tensor("losses", losses, {rows}, stats_dtype(logits.dtype));
  check.tensor("lse", lse, {rows}, stats_dtype(logits.dtype));
  if (vocab == 0)
    fail("op {}: argument logits has shape {}: no classes", check.op, logits.shape.str());
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::cross_entropy_forward(ctx, losses, lse, logits, targets, weights, correct);
  }
#endif
  check.cpu_only(logits.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, logits.dtype,
                        cpu::cross_entropy_forward(losses.ptr<scalar_t>(), lse.ptr<scalar_t>(),
                                                   logits.ptr<scalar_t>(), targets.ptr<int32_t>(),
                                                   ptr_or_null<scalar_t>(weights), rows, vocab,
                                                   ctx.num_threads, correct));
}

void cross_entropy_backward(const OpContext& ctx, Tensor dlogits, Tensor logits, Tensor lse,
                            Tensor targets, Tensor weights, double dloss) {
  const ArgChecks check{"cross_entropy_backward", ctx};
  check.rank("logits", logits, 2);
  int64_t rows = logits.dim(0), vocab = logits.dim(1);
  check.tensor("dlogits", dlogits, {rows, vocab}, logits.dtype);
  check.tensor("lse", lse, {rows}, stats_dtype(logits.dtype));
  check.tensor("targets", targets, {rows}, DType::i32);
  check.optional("weights", weights, {rows}, stats_dtype(logits.dtype));
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::cross_entropy_backward(ctx, dlogits, logits, lse, targets, weights, dloss);
  }
#endif
  check.cpu_only(logits.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, logits.dtype,
                        cpu::cross_entropy_backward(dlogits.ptr<scalar_t>(), logits.ptr<scalar_t>(),
                                                    lse.ptr<scalar_t>(), targets.ptr<int32_t>(),
                                                    ptr_or_null<scalar_t>(weights), dloss, rows,
                                                    vocab, ctx.num_threads));
}

// ---- optimizer -------------------------------------------------------------------------------

void adamw_update(const OpContext& ctx, Tensor params, Tensor grads, Tensor m, Tensor v,
                  const AdamWArgs& args, Tensor params_copy) {
  const ArgChecks check{"adamw_update", ctx};
  check.tensor("params", params, params.shape, params.dtype);
  check.same("grads", grads, params);
  check.same("m", m, params);
  check.same("v", v, params);
  if (!params_copy.empty()) {
    if (params_copy.dtype == DType::i32) {
      fail("op {}: argument params_copy has dtype i32, expected a float dtype", check.op);
    }
    check.tensor("params_copy", params_copy, params.shape, params_copy.dtype);
  }
  if (args.step < 1) fail("op {}: step is {}, expected >= 1 (1-based)", check.op, args.step);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda)
    return cuda::adamw_update(ctx, params, grads, m, v, args, params_copy);
#endif
  check.cpu_only(params.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, params.dtype,
      cpu::adamw_update(params.ptr<scalar_t>(), grads.ptr<scalar_t>(), m.ptr<scalar_t>(),
                        v.ptr<scalar_t>(), params.numel(), args, ctx.num_threads));
  if (!params_copy.empty()) cast(ctx, params_copy, params);  // the updated values, converted
}

double sum_squares(const OpContext& ctx, Tensor x) {
  const ArgChecks check{"sum_squares", ctx};
  check.tensor("x", x, x.shape, x.dtype);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::sum_squares(ctx, x);
#endif
  check.cpu_only(x.dtype);
  double total = 0.0;
  FT_DISPATCH_CPU_FLOAT(check.op, x.dtype,
                        total = cpu::sum_squares(x.ptr<scalar_t>(), x.numel(), ctx.num_threads));
  return total;
}

}  // namespace ft::ops
