// The tensor-core flash attention (kernels/cuda/flash_attention_*.cu), reached through ops.h with
// bf16 activations and head_dim 64 or 128, against the CPU reference in f64 computed from the same
// bf16-rounded inputs: forward (out, lse) and backward (dq, dk, dv, dprefix_k, dprefix_v) over
// head_dim {64, 128} x T {1, 17, 64, 130, 257} x causal or not x Hq/Hkv {4/4, 4/2, 4/1} x
// P {0, 5, 70} x segment ids or not, B = 2; plus the agreement of the flash and SIMT paths.
//
// Tolerances. The kernels round P and dS to bf16 before their second products (relative error up
// to 2^-8 per term, ~1.5e-3 rms, averaging over the terms of each sum) and write bf16 outputs
// (up to 2^-8 relative), so a correct kernel lands near 3e-3 in relative L2; the bound is 1e-2
// (the SIMT kernels' bf16 bound). Element-wise, |error| <= 2e-2 max|expected| + 1e-2 |expected|:
// ~4x the largest deviation expected among ~10^5 elements, while a missing, stale or misplaced
// row (garbage or a wrong sum) exceeds it. lse is fp32 from exact bf16 products: 1e-5 relative L2
// and 2e-5 (max|lse| + |lse|) per element.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cpu/attention_cpu.h"
#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/flash_attention_cuda.h"
#include "kernels/ops.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/gradcheck.h"
#include "tests/support/packed_segments.h"

namespace ft {
namespace {

using namespace ft::testing;

constexpr double kRelativeL2 = 1e-2;
constexpr double kElementOfMax = 2e-2;
constexpr double kElementOfValue = 1e-2;
constexpr double kLseRelativeL2 = 1e-5;
constexpr double kLseElement = 2e-5;

// Compute capability 8.0 or later on the current device: where the flash path must be taken.
bool device_is_sm80_or_later() {
  int device = 0, major = 0;
  return cudaGetDevice(&device) == cudaSuccess &&
         cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
         major >= 8;
}

#define FT_SKIP_BELOW_SM80()                                           \
  do {                                                                 \
    FT_SKIP_WITHOUT_CUDA();                                            \
    if (!device_is_sm80_or_later())                                    \
      GTEST_SKIP() << "the device is older than sm_80: no flash path"; \
  } while (0)

struct FlashCase {
  int64_t head_dim, seq_len, kv_heads, prefix_len;
  bool causal, segments;
  double scale = 0.0;  // 0: 1 / sqrt(D)
  int64_t batch = 2, q_heads = 4;

  Shape q_shape() const { return {batch, seq_len, q_heads, head_dim}; }
  Shape kv_shape() const { return {batch, seq_len, kv_heads, head_dim}; }
  Shape prefix_shape() const { return {prefix_len, kv_heads, head_dim}; }
  Shape lse_shape() const { return {batch, q_heads, seq_len}; }
  cpu::AttentionDims dims() const {
    return {batch, seq_len, q_heads, kv_heads, head_dim, prefix_len};
  }
  double resolved_scale() const {
    return scale != 0.0 ? scale : 1.0 / std::sqrt(static_cast<double>(head_dim));
  }
};

// Inputs as the GPU sees them (rounded to bf16); the CPU reference reads the same values. q is
// drawn from [-3, 3] so that the scores have a standard deviation near 1 (peaked rows).
struct Inputs {
  std::vector<float> q, k, v, prefix_k, prefix_v, dout;
  std::vector<int32_t> segments;
};

Inputs random_inputs(const FlashCase& c) {
  auto values = [](const Shape& shape, uint64_t seed, double scale) {
    return round_to_bf16(random_floats(shape.numel(), seed, scale));
  };
  Inputs in;
  in.q = values(c.q_shape(), 31, 3.0);
  in.k = values(c.kv_shape(), 32, 1.0);
  in.v = values(c.kv_shape(), 33, 1.0);
  in.dout = values(c.q_shape(), 34, 1.0);
  if (c.prefix_len > 0) {
    in.prefix_k = values(c.prefix_shape(), 35, 1.0);
    in.prefix_v = values(c.prefix_shape(), 36, 1.0);
  }
  if (c.segments) in.segments = packed_segments(c.batch, c.seq_len);
  return in;
}

struct Reference {
  std::vector<double> out, lse, dq, dk, dv, dprefix_k, dprefix_v;
};

std::vector<double> wide(const std::vector<float>& values) {
  return std::vector<double>(values.begin(), values.end());
}

// The CPU attention in f64 on the bf16-rounded inputs.
Reference cpu_reference(const FlashCase& c, const Inputs& in) {
  OpContext ctx = cpu_context(2);
  std::vector<std::byte> workspace(ops::attention_workspace_bytes(
      ctx, DType::f64, c.batch, c.seq_len, c.q_heads, c.kv_heads, c.head_dim, c.prefix_len));
  ctx.workspace = {workspace.data(), workspace.size()};
  std::vector<double> q = wide(in.q), k = wide(in.k), v = wide(in.v), dout = wide(in.dout);
  std::vector<double> prefix_k = wide(in.prefix_k), prefix_v = wide(in.prefix_v);
  std::vector<int32_t> segments = in.segments;
  Reference r;
  r.out.resize(c.q_shape().numel());
  r.lse.resize(c.lse_shape().numel());
  r.dq.resize(c.q_shape().numel());
  r.dk.resize(c.kv_shape().numel());
  r.dv.resize(c.kv_shape().numel());
  r.dprefix_k.resize(c.prefix_shape().numel());
  r.dprefix_v.resize(c.prefix_shape().numel());
  const bool prefix = c.prefix_len > 0;
  const Tensor prefix_k_view = prefix ? view(prefix_k, c.prefix_shape()) : Tensor();
  const Tensor prefix_v_view = prefix ? view(prefix_v, c.prefix_shape()) : Tensor();
  const Tensor segment_view = c.segments ? view(segments, {c.batch, c.seq_len}) : Tensor();
  const ops::AttentionArgs args{c.causal, c.scale};
  ops::attention_forward(ctx, view(r.out, c.q_shape()), view(r.lse, c.lse_shape()),
                         view(q, c.q_shape()), view(k, c.kv_shape()), view(v, c.kv_shape()),
                         prefix_k_view, prefix_v_view, segment_view, args);
  ops::attention_backward(ctx, view(r.dq, c.q_shape()), view(r.dk, c.kv_shape()),
                          view(r.dv, c.kv_shape()),
                          prefix ? view(r.dprefix_k, c.prefix_shape()) : Tensor(),
                          prefix ? view(r.dprefix_v, c.prefix_shape()) : Tensor(),
                          view(dout, c.q_shape()), view(r.out, c.q_shape()),
                          view(r.lse, c.lse_shape()), view(q, c.q_shape()), view(k, c.kv_shape()),
                          view(v, c.kv_shape()), prefix_k_view, prefix_v_view, segment_view, args);
  return r;
}

// The device tensors of one GPU run, bf16 activations.
struct DeviceRun {
  DeviceTensor q, k, v, prefix_k, prefix_v, segments, dout, out, lse, workspace;
  OpContext ctx;

  DeviceRun(const FlashCase& c, const Inputs& in)
      : q(upload(in.q, c.q_shape(), DType::bf16)),
        k(upload(in.k, c.kv_shape(), DType::bf16)),
        v(upload(in.v, c.kv_shape(), DType::bf16)),
        dout(upload(in.dout, c.q_shape(), DType::bf16)),
        out(device_zeros(DType::bf16, c.q_shape())),
        lse(device_zeros(DType::f32, c.lse_shape())),
        ctx(cuda_context()) {
    if (c.prefix_len > 0) {
      prefix_k = upload(in.prefix_k, c.prefix_shape(), DType::bf16);
      prefix_v = upload(in.prefix_v, c.prefix_shape(), DType::bf16);
    }
    if (c.segments) segments = upload_ids(in.segments, {c.batch, c.seq_len});
    const size_t bytes = ops::attention_workspace_bytes(
        ctx, DType::bf16, c.batch, c.seq_len, c.q_heads, c.kv_heads, c.head_dim, c.prefix_len);
    workspace = device_zeros(DType::f32, {static_cast<int64_t>((bytes + 3) / 4)});
    ctx.workspace = {workspace.tensor.data, bytes};
  }

  // Whether these tensors take the tensor-core path (the backward's are aligned alike).
  bool takes_flash(const FlashCase& c) const {
    return cuda::flash_attention_applies(
        c.dims(), DType::bf16,
        {q.tensor.data, k.tensor.data, v.tensor.data, out.tensor.data, prefix_k.tensor.data,
         prefix_v.tensor.data, dout.tensor.data, ctx.workspace.data});
  }
  void forward(const FlashCase& c) {
    ops::attention_forward(ctx, out, lse, q, k, v, prefix_k, prefix_v, segments,
                           ops::AttentionArgs{c.causal, c.scale});
  }
  void backward(const FlashCase& c, Tensor dq, Tensor dk, Tensor dv, Tensor dprefix_k,
                Tensor dprefix_v) {
    ops::attention_backward(ctx, dq, dk, dv, dprefix_k, dprefix_v, dout, out, lse, q, k, v,
                            prefix_k, prefix_v, segments, ops::AttentionArgs{c.causal, c.scale});
  }
};

// Relative L2 below `l2_bound`, and every element within element_of_max max|expected| +
// element_of_value |expected| (NaN fails both). Gradients that vanish exactly (T = 1 without a
// prefix: each query sees one key, so dS = 0) leave only rounding noise: magnitudes are floored
// at kMagnitudeFloor, and the relative L2 is skipped below it.
constexpr double kMagnitudeFloor = 1e-3;

void expect_close(const std::string& what, const std::vector<float>& actual,
                  const std::vector<double>& expected, double l2_bound, double element_of_max,
                  double element_of_value) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  ASSERT_FALSE(expected.empty()) << what;
  double difference = 0.0, reference = 0.0, largest = 0.0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double delta = actual[i] - expected[i];
    difference += delta * delta;
    reference += expected[i] * expected[i];
    largest = std::max(largest, std::abs(expected[i]));
  }
  if (std::sqrt(reference / static_cast<double>(expected.size())) >= kMagnitudeFloor) {
    EXPECT_LT(std::sqrt(difference / reference), l2_bound) << what << ": relative L2 error";
  }
  const double magnitude = std::max(largest, kMagnitudeFloor);
  size_t worst = 0;
  double worst_excess = 0.0;
  bool any_bad = false;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double error = std::abs(actual[i] - expected[i]);
    const double allowed = element_of_max * magnitude + element_of_value * std::abs(expected[i]);
    if (!(error <= allowed) && (!any_bad || error - allowed > worst_excess)) {
      any_bad = true;
      worst = i;
      worst_excess = error - allowed;
    }
  }
  EXPECT_FALSE(any_bad) << what << ": element " << worst << " is " << actual[worst] << ", expected "
                        << expected[worst] << " (max |expected| " << largest << ")";
}
void expect_close(const std::string& what, const std::vector<float>& actual,
                  const std::vector<double>& expected) {
  expect_close(what, actual, expected, kRelativeL2, kElementOfMax, kElementOfValue);
}
void expect_close_lse(const std::vector<float>& actual, const std::vector<double>& expected) {
  expect_close("lse", actual, expected, kLseRelativeL2, kLseElement, kLseElement);
}

std::vector<double> twice(std::vector<float> values) {
  std::vector<double> result(values.begin(), values.end());
  for (double& x : result) x *= 2;
  return result;
}

using CaseParams = std::tuple<int64_t, int64_t, bool, int64_t, int64_t, bool>;

FlashCase case_of(const CaseParams& params) {
  const auto [head_dim, seq_len, causal, kv_heads, prefix_len, segments] = params;
  return FlashCase{head_dim, seq_len, kv_heads, prefix_len, causal, segments};
}

class CudaFlashAttention : public ::testing::TestWithParam<CaseParams> {};

TEST_P(CudaFlashAttention, ForwardAndBackwardMatchTheF64Cpu) {
  FT_SKIP_BELOW_SM80();
  const FlashCase c = case_of(GetParam());
  const Inputs in = random_inputs(c);
  DeviceRun gpu(c, in);
  ASSERT_TRUE(gpu.takes_flash(c));
  const Reference expected = cpu_reference(c, in);

  gpu.forward(c);
  expect_close("out", download(gpu.out), expected.out);
  expect_close_lse(download(gpu.lse), expected.lse);

  // dq, dk, dv start as garbage (they are overwritten); the prefix gradients start at zero.
  DeviceTensor dq = upload(random_floats(c.q_shape().numel(), 41), c.q_shape(), DType::bf16);
  DeviceTensor dk = upload(random_floats(c.kv_shape().numel(), 42), c.kv_shape(), DType::bf16);
  DeviceTensor dv = upload(random_floats(c.kv_shape().numel(), 43), c.kv_shape(), DType::bf16);
  const bool prefix = c.prefix_len > 0;
  DeviceTensor dprefix_k = device_zeros(DType::f32, c.prefix_shape());
  DeviceTensor dprefix_v = device_zeros(DType::f32, c.prefix_shape());
  gpu.backward(c, dq, dk, dv, prefix ? dprefix_k.tensor : Tensor(),
               prefix ? dprefix_v.tensor : Tensor());
  const std::vector<float> dq_first = download(dq), dk_first = download(dk),
                           dv_first = download(dv);
  expect_close("dq", dq_first, expected.dq);
  expect_close("dk", dk_first, expected.dk);
  expect_close("dv", dv_first, expected.dv);
  std::vector<float> dprefix_k_first, dprefix_v_first;
  if (prefix) {
    dprefix_k_first = download(dprefix_k);
    dprefix_v_first = download(dprefix_v);
    expect_close("dprefix_k", dprefix_k_first, expected.dprefix_k);
    expect_close("dprefix_v", dprefix_v_first, expected.dprefix_v);
  }

  // Again: dq, dk, dv bit-identical (deterministic, overwritten); the prefix gradients
  // accumulate to exactly twice the first (x + x is exact).
  gpu.backward(c, dq, dk, dv, prefix ? dprefix_k.tensor : Tensor(),
               prefix ? dprefix_v.tensor : Tensor());
  EXPECT_EQ(download(dq), dq_first);
  EXPECT_EQ(download(dk), dk_first);
  EXPECT_EQ(download(dv), dv_first);
  if (!prefix) return;
  const std::vector<float> dprefix_k_second = download(dprefix_k);
  const std::vector<float> dprefix_v_second = download(dprefix_v);
  EXPECT_EQ(wide(dprefix_k_second), twice(dprefix_k_first));
  EXPECT_EQ(wide(dprefix_v_second), twice(dprefix_v_first));

  // Only dprefix_v wanted (prefix_k frozen), in bf16: the dk/dv kernel writes one partial.
  DeviceTensor dprefix_v_only = device_zeros(DType::bf16, c.prefix_shape());
  gpu.backward(c, dq, dk, dv, Tensor(), dprefix_v_only);
  expect_close("dprefix_v alone (bf16)", download(dprefix_v_only), expected.dprefix_v);
  EXPECT_EQ(download(dk), dk_first);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaFlashAttention,
                         ::testing::Combine(::testing::Values<int64_t>(64, 128),
                                            ::testing::Values<int64_t>(1, 17, 64, 130, 257),
                                            ::testing::Bool(), ::testing::Values<int64_t>(4, 2, 1),
                                            ::testing::Values<int64_t>(0, 5, 70),
                                            ::testing::Bool()),
                         [](const ::testing::TestParamInfo<CaseParams>& info) {
                           const FlashCase c = case_of(info.param);
                           return "d" + std::to_string(c.head_dim) + "_t" +
                                  std::to_string(c.seq_len) + (c.causal ? "_causal" : "_full") +
                                  "_kv" + std::to_string(c.kv_heads) + "_p" +
                                  std::to_string(c.prefix_len) + (c.segments ? "_segments" : "");
                         });

// On a shape both paths take, the flash kernels and the SIMT kernels (forced through
// attention_*_simt) agree with each other and with the CPU, with a scale that is not 1/sqrt(D).
TEST(CudaFlashAttentionPaths, FlashAndSimtAgree) {
  FT_SKIP_BELOW_SM80();
  const FlashCase c{64, 130, 2, 5, true, true, 0.2};
  const Inputs in = random_inputs(c);
  DeviceRun flash(c, in), simt(c, in);
  ASSERT_TRUE(flash.takes_flash(c));
  const Reference expected = cpu_reference(c, in);
  const cpu::AttentionDims dims = c.dims();

  flash.forward(c);
  cuda::attention_forward_simt(simt.ctx, simt.out, simt.lse, simt.q, simt.k, simt.v, simt.prefix_k,
                               simt.prefix_v, simt.segments, dims, c.causal, c.resolved_scale());
  const std::vector<float> flash_out = download(flash.out), simt_out = download(simt.out);
  expect_close("flash out", flash_out, expected.out);
  expect_close("simt out", simt_out, expected.out);
  expect_close("flash out against simt", flash_out, wide(simt_out));
  expect_close_lse(download(flash.lse), wide(download(simt.lse)));

  auto gradients = [&](DeviceRun& run, bool use_flash) {
    std::vector<DeviceTensor> grads;
    grads.push_back(device_zeros(DType::bf16, c.q_shape()));
    grads.push_back(device_zeros(DType::bf16, c.kv_shape()));
    grads.push_back(device_zeros(DType::bf16, c.kv_shape()));
    grads.push_back(device_zeros(DType::f32, c.prefix_shape()));
    grads.push_back(device_zeros(DType::f32, c.prefix_shape()));
    if (use_flash) {
      run.backward(c, grads[0], grads[1], grads[2], grads[3], grads[4]);
    } else {
      cuda::attention_backward_simt(run.ctx, grads[0], grads[1], grads[2], grads[3], grads[4],
                                    run.dout, run.out, run.lse, run.q, run.k, run.v, run.prefix_k,
                                    run.prefix_v, run.segments, dims, c.causal, c.resolved_scale());
    }
    std::vector<std::vector<float>> values;
    for (const DeviceTensor& grad : grads) values.push_back(download(grad));
    return values;
  };
  const auto flash_grads = gradients(flash, true);
  const auto simt_grads = gradients(simt, false);
  const char* names[] = {"dq", "dk", "dv", "dprefix_k", "dprefix_v"};
  const std::vector<double>* references[] = {&expected.dq, &expected.dk, &expected.dv,
                                             &expected.dprefix_k, &expected.dprefix_v};
  for (int g = 0; g < 5; ++g) {
    expect_close(std::string("flash ") + names[g], flash_grads[g], *references[g]);
    expect_close(std::string("simt ") + names[g], simt_grads[g], *references[g]);
    expect_close(std::string("flash against simt ") + names[g], flash_grads[g],
                 wide(simt_grads[g]));
  }
}

// The selection rule's refusals need no device: they come before the device query.
TEST(FlashAttentionApplies, OnlyBf16WithHeadDim64Or128AndAlignedData) {
  const cpu::AttentionDims dims{2, 17, 4, 2, 64, 5};
  alignas(16) static char storage[64];
  EXPECT_FALSE(cuda::flash_attention_applies(dims, DType::f32, {storage}));
  cpu::AttentionDims head_80 = dims;
  head_80.head_dim = 80;
  EXPECT_FALSE(cuda::flash_attention_applies(head_80, DType::bf16, {storage}));
  EXPECT_FALSE(cuda::flash_attention_applies(dims, DType::bf16, {storage, storage + 8}));
}

}  // namespace
}  // namespace ft
