// GPU attention (kernels/cuda/attention_cuda.cu) against the CPU f32 reference: forward (out, lse)
// and backward (dq, dk, dv, dprefix_k, dprefix_v) on random inputs, f32 and bf16, with GQA, prefix
// rows, packed segments, both masks, odd sequence lengths (1, 37, 130: not multiples of the
// tiles) and head dims 8 to 256. Tolerances (relative L2 against the CPU's f32 on the same
// bf16-rounded inputs): f32 1e-5 for every output; bf16 1e-2 for out, dq, dk, dv and dprefix, and
// 1e-5 for lse (computed in fp32 from the same inputs). The GPU tests skip without a GPU; the
// argument checks of the CUDA path run everywhere (they fail before touching the device).
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/ops.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/gradcheck.h"
#include "tests/support/packed_segments.h"

namespace ft {
namespace {

using namespace ft::testing;

struct AttentionCase {
  const char* name;
  int64_t batch, seq_len, q_heads, kv_heads, head_dim, prefix_len;
  bool causal, segments;
  double scale = 0.0;  // 0: 1 / sqrt(D)
};
std::ostream& operator<<(std::ostream& out, const AttentionCase& c) {
  return out << c.name;
}

const AttentionCase kCases[] = {
    {"mha_t37_d64", 2, 37, 4, 4, 64, 0, true, false},
    {"gqa_t130_d128", 2, 130, 8, 2, 128, 0, true, false},
    {"mqa_t1_d16", 3, 1, 2, 1, 16, 0, true, false},
    {"prefix_t37_d64", 3, 37, 4, 2, 64, 5, true, false},
    {"segments_t130_d32", 2, 130, 4, 2, 32, 0, true, true},
    {"prefix_segments_noncausal_t67_d16", 2, 67, 6, 3, 16, 3, false, true, 0.25},
    {"prefix_t20_d8", 2, 20, 2, 2, 8, 2, true, false},
    {"prefix40_segments_t45_d256", 1, 45, 2, 1, 256, 40, true, true},
    {"prefix33_noncausal_t130_d128", 2, 130, 4, 4, 128, 33, false, false},
    {"gqa_t50_d80", 2, 50, 3, 1, 80, 0, true, false},
    {"prefix_t1_d64", 2, 1, 4, 2, 64, 7, true, true},
};

Shape q_shape(const AttentionCase& c) {
  return {c.batch, c.seq_len, c.q_heads, c.head_dim};
}
Shape kv_shape(const AttentionCase& c) {
  return {c.batch, c.seq_len, c.kv_heads, c.head_dim};
}
Shape prefix_shape(const AttentionCase& c) {
  return {c.prefix_len, c.kv_heads, c.head_dim};
}
Shape lse_shape(const AttentionCase& c) {
  return {c.batch, c.q_heads, c.seq_len};
}

// Inputs as the GPU sees them (rounded to bf16 for bf16 runs), shared with the CPU reference.
struct AttentionInputs {
  std::vector<float> q, k, v, prefix_k, prefix_v, dout;
  std::vector<int32_t> segments;
};

AttentionInputs random_inputs(const AttentionCase& c, DType dtype) {
  auto values = [&](const Shape& shape, uint64_t seed) {
    std::vector<float> x = random_floats(shape.numel(), seed);
    return dtype == DType::bf16 ? round_to_bf16(x) : x;
  };
  AttentionInputs in;
  in.q = values(q_shape(c), 11);
  in.k = values(kv_shape(c), 12);
  in.v = values(kv_shape(c), 13);
  in.dout = values(q_shape(c), 14);
  if (c.prefix_len > 0) {
    in.prefix_k = values(prefix_shape(c), 15);
    in.prefix_v = values(prefix_shape(c), 16);
  }
  if (c.segments) in.segments = packed_segments(c.batch, c.seq_len);
  return in;
}

struct AttentionOutputs {
  std::vector<float> out, lse, dq, dk, dv, dprefix_k, dprefix_v;
};

AttentionOutputs cpu_reference(const AttentionCase& c, AttentionInputs in) {
  OpContext ctx = cpu_context(2);
  std::vector<std::byte> workspace(ops::attention_workspace_bytes(
      ctx, DType::f32, c.batch, c.seq_len, c.q_heads, c.kv_heads, c.head_dim, c.prefix_len));
  ctx.workspace = {workspace.data(), workspace.size()};
  AttentionOutputs r;
  r.out.resize(q_shape(c).numel());
  r.lse.resize(lse_shape(c).numel());
  r.dq.resize(q_shape(c).numel());
  r.dk.resize(kv_shape(c).numel());
  r.dv.resize(kv_shape(c).numel());
  r.dprefix_k.resize(prefix_shape(c).numel());
  r.dprefix_v.resize(prefix_shape(c).numel());
  const bool prefix = c.prefix_len > 0;
  Tensor prefix_k = prefix ? view(in.prefix_k, prefix_shape(c)) : Tensor();
  Tensor prefix_v = prefix ? view(in.prefix_v, prefix_shape(c)) : Tensor();
  Tensor segments = c.segments ? view(in.segments, {c.batch, c.seq_len}) : Tensor();
  const ops::AttentionArgs args{c.causal, c.scale};
  ops::attention_forward(ctx, view(r.out, q_shape(c)), view(r.lse, lse_shape(c)),
                         view(in.q, q_shape(c)), view(in.k, kv_shape(c)), view(in.v, kv_shape(c)),
                         prefix_k, prefix_v, segments, args);
  ops::attention_backward(
      ctx, view(r.dq, q_shape(c)), view(r.dk, kv_shape(c)), view(r.dv, kv_shape(c)),
      prefix ? view(r.dprefix_k, prefix_shape(c)) : Tensor(),
      prefix ? view(r.dprefix_v, prefix_shape(c)) : Tensor(), view(in.dout, q_shape(c)),
      view(r.out, q_shape(c)), view(r.lse, lse_shape(c)), view(in.q, q_shape(c)),
      view(in.k, kv_shape(c)), view(in.v, kv_shape(c)), prefix_k, prefix_v, segments, args);
  return r;
}

// The device tensors of one GPU run.
struct DeviceAttention {
  DeviceTensor q, k, v, prefix_k, prefix_v, segments, dout, out, lse, workspace;
  OpContext ctx;

  DeviceAttention(const AttentionCase& c, const AttentionInputs& in, DType dtype)
      : q(upload(in.q, q_shape(c), dtype)),
        k(upload(in.k, kv_shape(c), dtype)),
        v(upload(in.v, kv_shape(c), dtype)),
        dout(upload(in.dout, q_shape(c), dtype)),
        out(device_zeros(dtype, q_shape(c))),
        lse(device_zeros(DType::f32, lse_shape(c))),
        ctx(cuda_context()) {
    if (c.prefix_len > 0) {
      prefix_k = upload(in.prefix_k, prefix_shape(c), dtype);
      prefix_v = upload(in.prefix_v, prefix_shape(c), dtype);
    }
    if (c.segments) segments = upload_ids(in.segments, {c.batch, c.seq_len});
    const size_t bytes = ops::attention_workspace_bytes(ctx, dtype, c.batch, c.seq_len, c.q_heads,
                                                        c.kv_heads, c.head_dim, c.prefix_len);
    workspace = device_zeros(DType::f32, {static_cast<int64_t>((bytes + 3) / 4)});
    ctx.workspace = {workspace.tensor.data, bytes};
  }

  void forward(const AttentionCase& c) {
    ops::attention_forward(ctx, out, lse, q, k, v, prefix_k, prefix_v, segments,
                           ops::AttentionArgs{c.causal, c.scale});
  }
  void backward(const AttentionCase& c, Tensor dq, Tensor dk, Tensor dv, Tensor dprefix_k,
                Tensor dprefix_v) {
    ops::attention_backward(ctx, dq, dk, dv, dprefix_k, dprefix_v, dout, out, lse, q, k, v,
                            prefix_k, prefix_v, segments, ops::AttentionArgs{c.causal, c.scale});
  }
};

class CudaAttention : public ::testing::TestWithParam<std::tuple<AttentionCase, DType>> {};

TEST_P(CudaAttention, ForwardAndBackwardMatchTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  const auto [c, dtype] = GetParam();
  const double tolerance = tolerance_for(dtype);
  const AttentionInputs in = random_inputs(c, dtype);
  const AttentionOutputs expected = cpu_reference(c, in);
  DeviceAttention gpu(c, in, dtype);

  gpu.forward(c);
  EXPECT_LT(relative_error(download(gpu.out), expected.out), tolerance) << "out";
  EXPECT_LT(relative_error(download(gpu.lse), expected.lse), kF32Tolerance) << "lse";

  // dq, dk, dv start as garbage (they are overwritten); the prefix gradients start at zero.
  DeviceTensor dq = upload(random_floats(q_shape(c).numel(), 21), q_shape(c), dtype);
  DeviceTensor dk = upload(random_floats(kv_shape(c).numel(), 22), kv_shape(c), dtype);
  DeviceTensor dv = upload(random_floats(kv_shape(c).numel(), 23), kv_shape(c), dtype);
  const bool prefix = c.prefix_len > 0;
  DeviceTensor dprefix_k = device_zeros(DType::f32, prefix_shape(c));
  DeviceTensor dprefix_v = device_zeros(DType::f32, prefix_shape(c));
  gpu.backward(c, dq, dk, dv, prefix ? dprefix_k.tensor : Tensor(),
               prefix ? dprefix_v.tensor : Tensor());
  const std::vector<float> dq_first = download(dq), dk_first = download(dk),
                           dv_first = download(dv);
  EXPECT_LT(relative_error(dq_first, expected.dq), tolerance) << "dq";
  EXPECT_LT(relative_error(dk_first, expected.dk), tolerance) << "dk";
  EXPECT_LT(relative_error(dv_first, expected.dv), tolerance) << "dv";
  if (!prefix) return;
  const std::vector<float> dprefix_k_first = download(dprefix_k);
  const std::vector<float> dprefix_v_first = download(dprefix_v);
  EXPECT_LT(relative_error(dprefix_k_first, expected.dprefix_k), tolerance) << "dprefix_k";
  EXPECT_LT(relative_error(dprefix_v_first, expected.dprefix_v), tolerance) << "dprefix_v";

  // A second backward: dq, dk, dv bit-identical (deterministic, overwritten), the prefix
  // gradients accumulated to exactly twice the first (x + x is exact).
  gpu.backward(c, dq, dk, dv, dprefix_k, dprefix_v);
  EXPECT_EQ(download(dq), dq_first);
  EXPECT_EQ(download(dk), dk_first);
  EXPECT_EQ(download(dv), dv_first);
  std::vector<float> twice_k = dprefix_k_first, twice_v = dprefix_v_first;
  for (float& x : twice_k) x *= 2;
  for (float& x : twice_v) x *= 2;
  EXPECT_EQ(download(dprefix_k), twice_k);
  EXPECT_EQ(download(dprefix_v), twice_v);

  // Only one prefix gradient wanted (the other frozen), in the activations' dtype.
  DeviceTensor dprefix_v_only = device_zeros(dtype, prefix_shape(c));
  gpu.backward(c, dq, dk, dv, Tensor(), dprefix_v_only);
  EXPECT_LT(relative_error(download(dprefix_v_only), expected.dprefix_v), tolerance)
      << "dprefix_v alone, " << dtype_name(dtype);
  EXPECT_EQ(download(dq), dq_first);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CudaAttention,
    ::testing::Combine(::testing::ValuesIn(kCases), ::testing::Values(DType::f32, DType::bf16)),
    [](const ::testing::TestParamInfo<std::tuple<AttentionCase, DType>>& info) {
      return std::string(std::get<0>(info.param).name) + "_" + dtype_name(std::get<1>(info.param));
    });

// Without prefix gradients the backward needs less workspace than attention_workspace_bytes says;
// a workspace of exactly that smaller size must do (the kernels skip the partials).
TEST(CudaAttentionWorkspace, BackwardWithoutPrefixGradientsNeedsNoPartials) {
  FT_SKIP_WITHOUT_CUDA();
  const AttentionCase c{"frozen_prefix", 2, 37, 4, 2, 64, 5, true, true};
  const AttentionInputs in = random_inputs(c, DType::f32);
  const AttentionOutputs expected = cpu_reference(c, in);
  DeviceAttention gpu(c, in, DType::f32);
  gpu.forward(c);
  const size_t delta_only = ((c.batch * c.q_heads * c.seq_len * 4 + 255) / 256) * 256;
  EXPECT_GT(gpu.ctx.workspace.bytes, delta_only);
  gpu.ctx.workspace.bytes = delta_only;
  DeviceTensor dq = device_zeros(DType::f32, q_shape(c));
  DeviceTensor dk = device_zeros(DType::f32, kv_shape(c));
  DeviceTensor dv = device_zeros(DType::f32, kv_shape(c));
  gpu.backward(c, dq, dk, dv, Tensor(), Tensor());
  EXPECT_LT(relative_error(download(dq), expected.dq), kF32Tolerance);
  EXPECT_LT(relative_error(download(dk), expected.dk), kF32Tolerance);
  EXPECT_LT(relative_error(download(dv), expected.dv), kF32Tolerance);
}

// ---- argument checks of the CUDA path: they fail before any device call, so they run without a
// GPU too (the tensors point at no memory).
Tensor fake_device(DType dtype, Shape shape) {
  return Tensor(reinterpret_cast<void*>(uintptr_t{4096}), dtype, shape, Device::cuda);
}

struct FakeAttention {
  int64_t batch = 2, seq_len = 9, q_heads = 4, kv_heads = 2, head_dim = 16, prefix_len = 3;
  DType dtype = DType::bf16;
  Tensor q() const { return fake_device(dtype, {batch, seq_len, q_heads, head_dim}); }
  Tensor kv() const { return fake_device(dtype, {batch, seq_len, kv_heads, head_dim}); }
  Tensor prefix(DType type) const { return fake_device(type, {prefix_len, kv_heads, head_dim}); }
  Tensor lse(DType type) const { return fake_device(type, {batch, q_heads, seq_len}); }
};

TEST(CudaAttentionArguments, LseIsF32BesideBf16) {
  const FakeAttention a;
  OpContext ctx = cuda_context();
  expect_error_naming(
      [&] {
        ops::attention_forward(ctx, a.q(), a.lse(DType::bf16), a.q(), a.kv(), a.kv(), Tensor(),
                               Tensor(), Tensor(), {});
      },
      {"attention_forward", "lse", "bf16", "f32"});
}

TEST(CudaAttentionArguments, HeadDimAboveTheKernelLimitIsRefused) {
  FakeAttention a;
  a.head_dim = 272;
  OpContext ctx = cuda_context();
  expect_error_naming(
      [&] {
        ops::attention_forward(ctx, a.q(), a.lse(DType::f32), a.q(), a.kv(), a.kv(), Tensor(),
                               Tensor(), Tensor(), {});
      },
      {"attention_forward", "head_dim 272", "256"});
}

TEST(CudaAttentionArguments, F64IsRefusedOnCuda) {
  FakeAttention a;
  a.dtype = DType::f64;
  OpContext ctx = cuda_context();
  expect_error_naming(
      [&] {
        ops::attention_forward(ctx, a.q(), a.lse(DType::f64), a.q(), a.kv(), a.kv(), Tensor(),
                               Tensor(), Tensor(), {});
      },
      {"attention_forward", "cuda", "f64"});
  expect_error_naming([&] { ops::attention_workspace_bytes(ctx, DType::f64, 2, 9, 4, 2, 16, 3); },
                      {"attention_workspace_bytes", "cuda", "f64"});
}

// The backward's workspace: delta (B, Hq, T) f32 always, plus two (B, P, Hkv, D) f32 partials
// with a prefix; too small a workspace is refused naming the sizes.
TEST(CudaAttentionArguments, BackwardWorkspaceIsCheckedAndReported) {
  const FakeAttention a;
  OpContext ctx = cuda_context();
  const size_t with_prefix = ops::attention_workspace_bytes(
      ctx, a.dtype, a.batch, a.seq_len, a.q_heads, a.kv_heads, a.head_dim, a.prefix_len);
  const size_t without_prefix = ops::attention_workspace_bytes(
      ctx, a.dtype, a.batch, a.seq_len, a.q_heads, a.kv_heads, a.head_dim, 0);
  EXPECT_GE(without_prefix, size_t(a.batch * a.q_heads * a.seq_len * 4));
  EXPECT_GE(with_prefix,
            without_prefix + 2 * size_t(a.batch * a.prefix_len * a.kv_heads * a.head_dim * 4));
  ctx.workspace = {reinterpret_cast<void*>(uintptr_t{8192}), with_prefix - 1};
  expect_error_naming(
      [&] {
        ops::attention_backward(ctx, a.q(), a.kv(), a.kv(), a.prefix(DType::f32),
                                a.prefix(DType::f32), a.q(), a.q(), a.lse(DType::f32), a.q(),
                                a.kv(), a.kv(), a.prefix(a.dtype), a.prefix(a.dtype), Tensor(), {});
      },
      {"attention_backward", "workspace", std::to_string(with_prefix)});
}

TEST(CudaAttentionArguments, PrefixGradientsAreF32OrTheActivationsDtype) {
  FakeAttention a;
  a.dtype = DType::f32;
  OpContext ctx = cuda_context();
  expect_error_naming(
      [&] {
        ops::attention_backward(ctx, a.q(), a.kv(), a.kv(), a.prefix(DType::bf16), Tensor(), a.q(),
                                a.q(), a.lse(DType::f32), a.q(), a.kv(), a.kv(), a.prefix(a.dtype),
                                a.prefix(a.dtype), Tensor(), {});
      },
      {"attention_backward", "dprefix_k", "bf16"});
}

}  // namespace
}  // namespace ft
