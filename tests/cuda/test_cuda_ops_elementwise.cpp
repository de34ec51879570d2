// GPU elementwise ops against the CPU: SwiGLU, GELU, ReLU, tanh (forward and backward), dropout
// (masks identical to the CPU's, whole tensors and column shards), copy_columns, add_to_columns,
// add, scale, cast and zero, f32 and bf16 on odd sizes. Skips without a GPU.
// Tolerances (relative L2): f32 1e-5; bf16 1e-2 (inputs rounded to bf16, outputs rounded once).
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/ops.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using namespace ft::testing;

constexpr int64_t kRows = 7, kCols = 1001;

class CudaElementwise : public ::testing::TestWithParam<DType> {
 protected:
  DType dtype() const { return GetParam(); }
  // Random inputs in [-scale, scale], rounded to bf16 (exact in both dtypes).
  std::vector<float> input(uint64_t seed, double scale = 3.0) const {
    return round_to_bf16(random_floats(kRows * kCols, seed, scale));
  }
  DeviceTensor up(const std::vector<float>& values) const {
    return upload(values, {kRows, kCols}, dtype());
  }
  DeviceTensor empty() const { return device_zeros(dtype(), {kRows, kCols}); }
  Tensor host(std::vector<float>& values) const { return view(values, {kRows, kCols}); }
  void expect_close(const Tensor& gpu, const std::vector<float>& cpu, const char* what) const {
    EXPECT_LT(relative_error(download(gpu), cpu), tolerance_for(dtype())) << what;
  }
};

TEST_P(CudaElementwise, SwigluMatchesTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  std::vector<float> gate = input(1), up_values = input(2), dout = input(3);
  std::vector<float> out(gate.size()), dgate(gate.size()), dup(gate.size());
  ops::swiglu_forward(cpu_context(), host(out), host(gate), host(up_values));
  ops::swiglu_backward(cpu_context(), host(dgate), host(dup), host(dout), host(gate),
                       host(up_values));
  DeviceTensor d_gate = up(gate), d_up = up(up_values), d_dout = up(dout);
  DeviceTensor d_out = empty(), d_dgate = empty(), d_dup = empty();
  ops::swiglu_forward(cuda_context(), d_out, d_gate, d_up);
  ops::swiglu_backward(cuda_context(), d_dgate, d_dup, d_dout, d_gate, d_up);
  expect_close(d_out, out, "out");
  expect_close(d_dgate, dgate, "dgate");
  expect_close(d_dup, dup, "dup");
}

TEST_P(CudaElementwise, GeluMatchesTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  std::vector<float> x = input(4), dout = input(5), out(x.size()), dx(x.size());
  ops::gelu_forward(cpu_context(), host(out), host(x));
  ops::gelu_backward(cpu_context(), host(dx), host(dout), host(x));
  DeviceTensor d_x = up(x), d_dout = up(dout), d_out = empty(), d_dx = empty();
  ops::gelu_forward(cuda_context(), d_out, d_x);
  ops::gelu_backward(cuda_context(), d_dx, d_dout, d_x);
  expect_close(d_out, out, "out");
  expect_close(d_dx, dx, "dx");
}

TEST_P(CudaElementwise, ReluAndTanhMatchTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  std::vector<float> x = input(6), dout = input(7);
  std::vector<float> relu(x.size()), drelu(x.size()), tanh_out(x.size()), dtanh(x.size());
  ops::relu_forward(cpu_context(), host(relu), host(x));
  ops::relu_backward(cpu_context(), host(drelu), host(dout), host(x));
  ops::tanh_forward(cpu_context(), host(tanh_out), host(x));
  // The backward reads the saved output: give both backends the same (bf16-exact) values.
  std::vector<float> saved = round_to_bf16(tanh_out);
  ops::tanh_backward(cpu_context(), host(dtanh), host(dout), host(saved));
  DeviceTensor d_x = up(x), d_dout = up(dout), d_out = empty(), d_dx = empty();
  ops::relu_forward(cuda_context(), d_out, d_x);
  EXPECT_EQ(download(d_out), relu) << "relu: exact";
  ops::relu_backward(cuda_context(), d_dx, d_dout, d_x);
  EXPECT_EQ(download(d_dx), drelu) << "relu backward: exact";
  ops::tanh_forward(cuda_context(), d_out, d_x);
  expect_close(d_out, tanh_out, "tanh");
  ops::tanh_backward(cuda_context(), d_dx, d_dout, up(saved));
  expect_close(d_dx, dtanh, "tanh backward");
}

// The mask is a function of (seed, element index) on both backends: the kept elements must be
// the same ones, and in f32 the values bit for bit.
TEST_P(CudaElementwise, DropoutMasksAreTheCpuMasks) {
  FT_SKIP_WITHOUT_CUDA();
  std::vector<float> x = input(8);
  for (float& value : x) value = value == 0.0f ? 1.0f : value;  // zeros would hide the mask
  for (double p : {0.1, 0.5, 0.9}) {
    for (uint64_t seed : {uint64_t{0}, uint64_t{12345}, ~uint64_t{0}}) {
      std::vector<float> out(x.size()), dx(x.size());
      ops::dropout_forward(cpu_context(), host(out), host(x), p, seed);
      ops::dropout_backward(cpu_context(), host(dx), host(x), p, seed);
      DeviceTensor d_out = empty(), d_x = up(x);
      ops::dropout_forward(cuda_context(), d_out, d_x, p, seed);
      const std::vector<float> gpu = download(d_out);
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_EQ(gpu[i] == 0.0f, out[i] == 0.0f) << "p " << p << " seed " << seed << " i " << i;
      }
      if (dtype() == DType::f32) EXPECT_EQ(gpu, out);
      expect_close(d_out, out, "dropout");
      ops::dropout_backward(cuda_context(), d_x, d_x, p, seed);  // in place, dx aliases dout
      expect_close(d_x, dx, "dropout backward");
    }
  }
}

TEST_P(CudaElementwise, DropoutColumnShardsGetTheFullTensorsMask) {
  FT_SKIP_WITHOUT_CUDA();
  std::vector<float> x = input(9);
  for (float& value : x) value = value == 0.0f ? 1.0f : value;
  const int64_t offset = 300, width = 411, full = 2000;
  std::vector<float> shard(kRows * width), out(kRows * width);
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t j = 0; j < width; ++j) shard[r * width + j] = x[r * kCols + j];
  ops::dropout_forward(cpu_context(), view(out, {kRows, width}), view(shard, {kRows, width}), 0.3,
                       77, offset, full);
  DeviceTensor d_shard = upload(shard, {kRows, width}, dtype());
  DeviceTensor d_out = device_zeros(dtype(), {kRows, width});
  ops::dropout_forward(cuda_context(), d_out, d_shard, 0.3, 77, offset, full);
  const std::vector<float> gpu = download(d_out);
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(gpu[i] == 0.0f, out[i] == 0.0f) << i;
  if (dtype() == DType::f32) EXPECT_EQ(gpu, out);
}

TEST_P(CudaElementwise, ColumnBlocksMatchTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  const int64_t width = 129, offset = 517;
  std::vector<float> src = input(10), block(kRows * width);
  ops::copy_columns(cpu_context(), view(block, {kRows, width}), host(src), offset);
  DeviceTensor d_src = up(src), d_block = device_zeros(dtype(), {kRows, width});
  ops::copy_columns(cuda_context(), d_block, d_src, offset);
  EXPECT_EQ(download(d_block), block) << "copy: exact";
  std::vector<float> dst = input(11), addend = round_to_bf16(random_floats(kRows * width, 12));
  std::vector<float> expected = dst;
  ops::add_to_columns(cpu_context(), host(expected), view(addend, {kRows, width}), offset);
  DeviceTensor d_dst = up(dst);
  ops::add_to_columns(cuda_context(), d_dst, upload(addend, {kRows, width}, dtype()), offset);
  expect_close(d_dst, expected, "add_to_columns");
}

TEST_P(CudaElementwise, AddScaleZeroMatchTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  std::vector<float> a = input(13), b = input(14), sum(a.size());
  ops::add(cpu_context(), host(sum), host(a), host(b));
  DeviceTensor d_a = up(a), d_b = up(b), d_out = empty();
  ops::add(cuda_context(), d_out, d_a, d_b);
  expect_close(d_out, sum, "add");
  ops::add(cuda_context(), d_a, d_a, d_b);  // out aliases a
  expect_close(d_a, sum, "add in place");
  std::vector<float> scaled = b;
  ops::scale(cpu_context(), host(scaled), -0.37);
  ops::scale(cuda_context(), d_b, -0.37);
  expect_close(d_b, scaled, "scale");
  ops::zero(cuda_context(), d_b);
  EXPECT_EQ(download(d_b), std::vector<float>(b.size(), 0.0f));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaElementwise, ::testing::Values(DType::f32, DType::bf16),
                         dtype_test_name);

// Casts between f32, bf16 and f64: the same values as the CPU's casts (bf16 rounding to nearest
// even, f64 -> bf16 via float), bit for bit.
TEST(CudaCast, EveryPairMatchesTheCpuExactly) {
  FT_SKIP_WITHOUT_CUDA();
  const int64_t count = 1003;
  std::vector<float> values = random_floats(count, 21, 100.0);
  values[0] = 1.00390625f;  // a bf16 tie: rounds to even
  values[1] = -0.0f;
  for (DType from : {DType::f32, DType::bf16, DType::f64}) {
    for (DType to : {DType::f32, DType::bf16, DType::f64}) {
      std::vector<float> source = from == DType::bf16 ? round_to_bf16(values) : values;
      std::vector<float> expected = to == DType::bf16 ? round_to_bf16(source) : source;
      DeviceTensor src = upload(source, {count}, from), dst = device_zeros(to, {count});
      ops::cast(cuda_context(), dst, src);
      EXPECT_EQ(download(dst), expected) << dtype_name(from) << " -> " << dtype_name(to);
    }
  }
}

TEST(CudaElementwiseErrors, UnsupportedDtypesAreRefusedNamingTheOp) {
  FT_SKIP_WITHOUT_CUDA();
  DeviceTensor x = upload(random_floats(6, 1), {2, 3}, DType::f64);
  DeviceTensor out = device_zeros(DType::f64, {2, 3});
  expect_error_mentioning([&] { ops::gelu_forward(cuda_context(), out, x); },
                          "op gelu_forward has no cuda implementation for dtype f64");
}

}  // namespace
}  // namespace ft
