// Attention entry points: argument checks naming the argument, the workspace check, then the CPU
// kernels of kernels/cpu/attention_cpu.h or the CUDA ones of kernels/cuda/attention_cuda.h.
// dtypes: CPU f32/f64 with everything in q's dtype; CUDA f32/bf16 with lse in f32 (a bf16 lse
// would put a 2^-8 relative error into every recomputed probability) and dprefix_k/v in f32 or
// q's dtype (fp32 gradients of trainable bf16 prefixes).
#include <cmath>
#include <initializer_list>
#include <string_view>
#include <utility>

#include "kernels/cpu/attention_cpu.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"

#ifdef FT_WITH_CUDA
#include "kernels/cuda/attention_cuda.h"
#endif

namespace ft::ops {
namespace {

using NamedTensors = std::initializer_list<std::pair<const char*, const Tensor*>>;

void check_rank(std::string_view op, std::string_view arg, const Tensor& t, int rank,
                std::string_view layout) {
  if (t.empty() || t.rank() != rank) {
    fail("op {}: argument {} must be {}, got {}", op, arg, layout,
         t.empty() ? std::string("an empty tensor") : t.shape.str());
  }
}

// Reads (B, T, Hq, Hkv, D, P) off q, k and prefix_k, checking how they fit together.
cpu::AttentionDims attention_dims(std::string_view op, const Tensor& q, const Tensor& k,
                                  const Tensor& prefix_k) {
  check_rank(op, "q", q, 4, "(B, T, Hq, D)");
  check_rank(op, "k", k, 4, "(B, T, Hkv, D)");
  cpu::AttentionDims dims;
  dims.batch = q.dim(0);
  dims.seq_len = q.dim(1);
  dims.q_heads = q.dim(2);
  dims.head_dim = q.dim(3);
  dims.kv_heads = k.dim(2);
  if (dims.kv_heads <= 0 || dims.q_heads % dims.kv_heads != 0) {
    fail("op {}: q has {} heads and k has {}: the query heads must be a multiple of the kv heads",
         op, dims.q_heads, dims.kv_heads);
  }
  check_shape(op, "k", k, Shape{dims.batch, dims.seq_len, dims.kv_heads, dims.head_dim});
  if (!prefix_k.empty()) {
    check_rank(op, "prefix_k", prefix_k, 3, "(P, Hkv, D)");
    dims.prefix_len = prefix_k.dim(0);
    check_shape(op, "prefix_k", prefix_k, Shape{dims.prefix_len, dims.kv_heads, dims.head_dim});
  }
  return dims;
}

// Device, dtype and shape of everything the forward and the backward both read.
void check_common(std::string_view op, const OpContext& ctx, const cpu::AttentionDims& dims,
                  const Tensor& q, const Tensor& v, const Tensor& out, const Tensor& lse,
                  const Tensor& prefix_k, const Tensor& prefix_v, const Tensor& segment_ids) {
  const Shape q_shape{dims.batch, dims.seq_len, dims.q_heads, dims.head_dim};
  const Shape kv_shape{dims.batch, dims.seq_len, dims.kv_heads, dims.head_dim};
  check_shape(op, "v", v, kv_shape);
  check_shape(op, "out", out, q_shape);
  check_shape(op, "lse", lse, Shape{dims.batch, dims.q_heads, dims.seq_len});
  for (auto [name, tensor] : NamedTensors{{"v", &v}, {"out", &out}}) {
    check_dtype(op, name, *tensor, q.dtype);
  }
  check_dtype(op, "lse", lse, stats_dtype(q.dtype));
  if (prefix_k.empty() != prefix_v.empty()) {
    fail(
        "op {}: prefix_k and prefix_v must both be given or both be empty (prefix_k {}, "
        "prefix_v {})",
        op, prefix_k.empty() ? "empty" : prefix_k.describe(),
        prefix_v.empty() ? "empty" : prefix_v.describe());
  }
  if (!prefix_k.empty()) {
    check_shape(op, "prefix_v", prefix_v, prefix_k.shape);
    check_dtype(op, "prefix_k", prefix_k, q.dtype);
    check_dtype(op, "prefix_v", prefix_v, q.dtype);
  }
  if (!segment_ids.empty()) {
    check_dtype(op, "segment_ids", segment_ids, DType::i32);
    check_shape(op, "segment_ids", segment_ids, Shape{dims.batch, dims.seq_len});
  }
}

// needed: the bytes this call uses (the CPU's for its dtype and threads unless given).
void check_workspace(std::string_view op, const OpContext& ctx, DType dtype,
                     const cpu::AttentionDims& dims, size_t needed) {
  if (needed > 0 && (ctx.workspace.data == nullptr || ctx.workspace.bytes < needed)) {
    fail(
        "op {}: ctx.workspace holds {} bytes, needs {} bytes (attention_workspace_bytes for "
        "{} B={} T={} Hq={} Hkv={} D={} P={} threads={})",
        op, ctx.workspace.data == nullptr ? 0 : ctx.workspace.bytes, needed, dtype_name(dtype),
        dims.batch, dims.seq_len, dims.q_heads, dims.kv_heads, dims.head_dim, dims.prefix_len,
        ctx.num_threads);
  }
}
void check_workspace(std::string_view op, const OpContext& ctx, DType dtype,
                     const cpu::AttentionDims& dims) {
  check_workspace(op, ctx, dtype, dims,
                  cpu::attention_workspace_bytes(dims, dtype_size(dtype), ctx.num_threads));
}

double resolved_scale(const AttentionArgs& args, int64_t head_dim) {
  return args.scale != 0.0 ? args.scale : 1.0 / std::sqrt(static_cast<double>(head_dim));
}

#ifdef FT_WITH_CUDA
// The dtypes the CUDA kernels take; others are refused naming the op.
void check_cuda_dtype(std::string_view op, DType dtype) {
  if (dtype != DType::f32 && dtype != DType::bf16) unsupported(op, Device::cuda, dtype);
}
#endif

template <typename T>
cpu::AttentionInputs<T> attention_inputs(const Tensor& q, const Tensor& k, const Tensor& v,
                                         const Tensor& prefix_k, const Tensor& prefix_v,
                                         const Tensor& segment_ids, const AttentionArgs& args,
                                         int64_t head_dim) {
  cpu::AttentionInputs<T> in;
  in.q = q.ptr<T>();
  in.k = k.ptr<T>();
  in.v = v.ptr<T>();
  in.prefix_k = prefix_k.empty() ? nullptr : prefix_k.ptr<T>();
  in.prefix_v = prefix_v.empty() ? nullptr : prefix_v.ptr<T>();
  in.segment_ids = segment_ids.empty() ? nullptr : segment_ids.ptr<int32_t>();
  in.causal = args.causal;
  in.scale = resolved_scale(args, head_dim);
  return in;
}

}  // namespace

void attention_forward(const OpContext& ctx, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v,
                       Tensor prefix_k, Tensor prefix_v, Tensor segment_ids,
                       const AttentionArgs& args) {
  constexpr std::string_view op = "attention_forward";
  for (auto [name, tensor] : NamedTensors{{"out", &out},
                                          {"lse", &lse},
                                          {"q", &q},
                                          {"k", &k},
                                          {"v", &v},
                                          {"prefix_k", &prefix_k},
                                          {"prefix_v", &prefix_v},
                                          {"segment_ids", &segment_ids}}) {
    check_device(op, ctx, name, *tensor);
  }
  const cpu::AttentionDims dims = attention_dims(op, q, k, prefix_k);
  check_dtype(op, "k", k, q.dtype);
  check_common(op, ctx, dims, q, v, out, lse, prefix_k, prefix_v, segment_ids);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    check_cuda_dtype(op, q.dtype);
    if (q.numel() == 0) return;
    cuda::attention_forward(ctx, out, lse, q, k, v, prefix_k, prefix_v, segment_ids, dims,
                            args.causal, resolved_scale(args, dims.head_dim));
    return;
  }
#endif
  if (ctx.device != Device::cpu) unsupported(op, ctx.device, q.dtype);
  if (q.numel() == 0) return;
  FT_DISPATCH_CPU_FLOAT(op, q.dtype, {
    check_workspace(op, ctx, q.dtype, dims);
    cpu::attention_forward(
        out.ptr<scalar_t>(), lse.ptr<scalar_t>(),
        attention_inputs<scalar_t>(q, k, v, prefix_k, prefix_v, segment_ids, args, dims.head_dim),
        dims, ctx.num_threads, ctx.workspace.data);
  });
}

void attention_backward(const OpContext& ctx, Tensor dq, Tensor dk, Tensor dv, Tensor dprefix_k,
                        Tensor dprefix_v, Tensor dout, Tensor out, Tensor lse, Tensor q, Tensor k,
                        Tensor v, Tensor prefix_k, Tensor prefix_v, Tensor segment_ids,
                        const AttentionArgs& args) {
  constexpr std::string_view op = "attention_backward";
  for (auto [name, tensor] : NamedTensors{{"dq", &dq},
                                          {"dk", &dk},
                                          {"dv", &dv},
                                          {"dprefix_k", &dprefix_k},
                                          {"dprefix_v", &dprefix_v},
                                          {"dout", &dout},
                                          {"out", &out},
                                          {"lse", &lse},
                                          {"q", &q},
                                          {"k", &k},
                                          {"v", &v},
                                          {"prefix_k", &prefix_k},
                                          {"prefix_v", &prefix_v},
                                          {"segment_ids", &segment_ids}}) {
    check_device(op, ctx, name, *tensor);
  }
  const cpu::AttentionDims dims = attention_dims(op, q, k, prefix_k);
  check_dtype(op, "k", k, q.dtype);
  check_common(op, ctx, dims, q, v, out, lse, prefix_k, prefix_v, segment_ids);
  check_shape(op, "dq", dq, q.shape);
  check_shape(op, "dk", dk, k.shape);
  check_shape(op, "dv", dv, k.shape);
  check_shape(op, "dout", dout, q.shape);
  for (auto [name, tensor] : NamedTensors{{"dq", &dq}, {"dk", &dk}, {"dv", &dv}, {"dout", &dout}}) {
    check_dtype(op, name, *tensor, q.dtype);
  }
  for (auto [name, tensor] : NamedTensors{{"dprefix_k", &dprefix_k}, {"dprefix_v", &dprefix_v}}) {
    if (tensor->empty()) continue;
    if (prefix_k.empty()) fail("op {}: {} is given but there is no prefix_k/prefix_v", op, name);
    check_shape(op, name, *tensor, prefix_k.shape);
    check_dtype(op, name, *tensor, param_grad_dtype(tensor->dtype, q.dtype));
  }
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    check_cuda_dtype(op, q.dtype);
    if (q.numel() == 0) return;
    const bool prefix_grads = dims.prefix_len > 0 && (!dprefix_k.empty() || !dprefix_v.empty());
    check_workspace(op, ctx, q.dtype, dims,
                    cuda::attention_backward_workspace_bytes(dims, prefix_grads));
    cuda::attention_backward(ctx, dq, dk, dv, dprefix_k, dprefix_v, dout, out, lse, q, k, v,
                             prefix_k, prefix_v, segment_ids, dims, args.causal,
                             resolved_scale(args, dims.head_dim));
    return;
  }
#endif
  if (ctx.device != Device::cpu) unsupported(op, ctx.device, q.dtype);
  if (q.numel() == 0) return;
  FT_DISPATCH_CPU_FLOAT(op, q.dtype, {
    check_workspace(op, ctx, q.dtype, dims);
    cpu::attention_backward(
        dq.ptr<scalar_t>(), dk.ptr<scalar_t>(), dv.ptr<scalar_t>(),
        dprefix_k.empty() ? nullptr : dprefix_k.ptr<scalar_t>(),
        dprefix_v.empty() ? nullptr : dprefix_v.ptr<scalar_t>(), dout.ptr<scalar_t>(),
        out.ptr<scalar_t>(), lse.ptr<scalar_t>(),
        attention_inputs<scalar_t>(q, k, v, prefix_k, prefix_v, segment_ids, args, dims.head_dim),
        dims, ctx.num_threads, ctx.workspace.data);
  });
}

size_t attention_workspace_bytes(const OpContext& ctx, DType dtype, int64_t batch, int64_t seq_len,
                                 int64_t q_heads, int64_t kv_heads, int64_t head_dim,
                                 int64_t prefix_len) {
  constexpr std::string_view op = "attention_workspace_bytes";
#ifdef FT_WITH_CUDA
  const bool on_cuda = ctx.device == Device::cuda;
  if (on_cuda) check_cuda_dtype(op, dtype);
#else
  constexpr bool on_cuda = false;
#endif
  if (!on_cuda &&
      (ctx.device != Device::cpu || !supports("attention_forward", ctx.device, dtype))) {
    unsupported(op, ctx.device, dtype);
  }
  if (batch < 0 || seq_len < 0 || head_dim < 0 || prefix_len < 0 || kv_heads <= 0 ||
      q_heads % kv_heads != 0) {
    fail(
        "op {}: invalid shape B={} T={} Hq={} Hkv={} D={} P={} (sizes must be >= 0 and Hq a "
        "multiple of Hkv > 0)",
        op, batch, seq_len, q_heads, kv_heads, head_dim, prefix_len);
  }
  const cpu::AttentionDims dims{batch, seq_len, q_heads, kv_heads, head_dim, prefix_len};
#ifdef FT_WITH_CUDA
  // The forward needs none; the backward's delta and prefix partials, with prefix gradients.
  if (on_cuda) return cuda::attention_backward_workspace_bytes(dims, prefix_len > 0);
#endif
  return cpu::attention_workspace_bytes(dims, dtype_size(dtype), ctx.num_threads);
}

}  // namespace ft::ops
