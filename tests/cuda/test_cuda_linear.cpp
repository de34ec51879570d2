// GPU linear (kernels/cuda/linear_cuda.cu, cuBLASLt) against the CPU f32 reference: forward with
// and without bias, backward with every combination of dx / dweight / dbias (the skipped weight
// gradient is not counted), f32 and bf16 activations with f32 or bf16 parameter gradients, odd
// sizes. Tolerances (relative L2 against the CPU's f32 on the same bf16-rounded inputs): f32 1e-5,
// bf16 1e-2 for out, dx, dweight and dbias. The GPU tests skip without a GPU; the argument checks
// of the CUDA path run everywhere.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cuda/op_resources_cuda.h"
#include "kernels/ops.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using namespace ft::testing;

struct LinearCase {
  const char* name;
  int64_t rows, in_features, out_features;
};
std::ostream& operator<<(std::ostream& out, const LinearCase& c) {
  return out << c.name;
}

const LinearCase kCases[] = {
    {"n37_in64_out48", 37, 64, 48},   {"n1_in16_out8", 1, 16, 8},
    {"n130_in33_out65", 130, 33, 65}, {"n256_in128_out96", 256, 128, 96},
    {"n7_in5_out3", 7, 5, 3},         {"n300_in512_out1000", 300, 512, 1000},
};

std::vector<float> inputs(int64_t count, uint64_t seed, DType dtype, double scale = 1.0) {
  std::vector<float> values = random_floats(count, seed, scale);
  return dtype == DType::bf16 ? round_to_bf16(values) : values;
}

class CudaLinear : public ::testing::TestWithParam<std::tuple<LinearCase, DType>> {};

TEST_P(CudaLinear, ForwardMatchesTheCpuWithAndWithoutBias) {
  FT_SKIP_WITHOUT_CUDA();
  const auto [c, dtype] = GetParam();
  const int64_t n = c.rows, in = c.in_features, out = c.out_features;
  std::vector<float> x = inputs(n * in, 1, dtype), weight = inputs(out * in, 2, dtype),
                     bias = inputs(out, 3, dtype);
  cuda::CudaOpResources resources;
  OpCounters counters;
  OpContext ctx = resources.context();
  ctx.counters = &counters;
  DeviceTensor device_x = upload(x, {n, in}, dtype),
               device_weight = upload(weight, {out, in}, dtype),
               device_bias = upload(bias, {out}, dtype);
  for (const bool with_bias : {false, true}) {
    std::vector<float> expected(n * out);
    ops::linear_forward(cpu_context(), view(expected, {n, out}), view(x, {n, in}),
                        view(weight, {out, in}), with_bias ? view(bias, {out}) : Tensor());
    // out starts as garbage: it is overwritten.
    DeviceTensor device_out = upload(random_floats(n * out, 4), {n, out}, dtype);
    ops::linear_forward(ctx, device_out, device_x, device_weight,
                        with_bias ? device_bias.tensor : Tensor());
    EXPECT_LT(relative_error(download(device_out), expected), tolerance_for(dtype))
        << (with_bias ? "with bias" : "without bias");
  }
  EXPECT_EQ(counters.forward_products, 2);
  EXPECT_EQ(counters.input_grad_products, 0);
  EXPECT_EQ(counters.weight_grad_products, 0);
}

// Every combination of wanted gradients; dweight and dbias accumulate onto small random values
// (so the gradient dominates the comparison) in `grad_dtype`.
void check_backward(const LinearCase& c, DType dtype, DType grad_dtype) {
  const int64_t n = c.rows, in = c.in_features, out = c.out_features;
  std::vector<float> x = inputs(n * in, 5, dtype), weight = inputs(out * in, 6, dtype),
                     dout = inputs(n * out, 7, dtype);
  std::vector<float> dweight_initial = inputs(out * in, 8, grad_dtype, 0.05),
                     dbias_initial = inputs(out, 9, grad_dtype, 0.05);
  std::vector<float> expected_dx(n * in), expected_dweight = dweight_initial,
                                          expected_dbias = dbias_initial;
  ops::linear_backward(cpu_context(), view(expected_dx, {n, in}), view(expected_dweight, {out, in}),
                       view(expected_dbias, {out}), view(dout, {n, out}), view(x, {n, in}),
                       view(weight, {out, in}));
  DeviceTensor device_x = upload(x, {n, in}, dtype),
               device_weight = upload(weight, {out, in}, dtype),
               device_dout = upload(dout, {n, out}, dtype);
  cuda::CudaOpResources resources;
  // grad_tolerance: a bf16 gradient is rounded where it is stored.
  const double tolerance = tolerance_for(dtype);
  const double grad_tolerance = std::max(tolerance, tolerance_for(grad_dtype));
  for (int wanted = 0; wanted < 8; ++wanted) {
    const bool want_dx = wanted & 1, want_dweight = wanted & 2, want_dbias = wanted & 4;
    SCOPED_TRACE(::testing::Message()
                 << "dx " << want_dx << " dweight " << want_dweight << " dbias " << want_dbias);
    OpCounters counters;
    OpContext ctx = resources.context();
    ctx.counters = &counters;
    DeviceTensor dx = upload(random_floats(n * in, 10), {n, in}, dtype);  // overwritten
    DeviceTensor dweight = upload(dweight_initial, {out, in}, grad_dtype);
    DeviceTensor dbias = upload(dbias_initial, {out}, grad_dtype);
    ops::linear_backward(
        ctx, want_dx ? dx.tensor : Tensor(), want_dweight ? dweight.tensor : Tensor(),
        want_dbias ? dbias.tensor : Tensor(), device_dout, device_x, device_weight);
    EXPECT_EQ(counters.input_grad_products, want_dx ? 1 : 0);
    EXPECT_EQ(counters.weight_grad_products, want_dweight ? 1 : 0);
    EXPECT_EQ(counters.forward_products, 0);
    if (want_dx) EXPECT_LT(relative_error(download(dx), expected_dx), tolerance) << "dx";
    // Skipped gradients are left alone (the initial values are exact in grad_dtype).
    const std::vector<float> got_dweight = download(dweight), got_dbias = download(dbias);
    if (want_dweight) {
      EXPECT_LT(relative_error(got_dweight, expected_dweight), grad_tolerance) << "dweight";
    } else {
      EXPECT_EQ(got_dweight, dweight_initial);
    }
    if (want_dbias) {
      EXPECT_LT(relative_error(got_dbias, expected_dbias), grad_tolerance) << "dbias";
    } else {
      EXPECT_EQ(got_dbias, dbias_initial);
    }
  }
}

TEST_P(CudaLinear, BackwardMatchesTheCpuWithF32Gradients) {
  FT_SKIP_WITHOUT_CUDA();
  const auto [c, dtype] = GetParam();
  check_backward(c, dtype, DType::f32);
}

TEST_P(CudaLinear, BackwardMatchesTheCpuWithGradientsInTheActivationsDtype) {
  FT_SKIP_WITHOUT_CUDA();
  const auto [c, dtype] = GetParam();
  check_backward(c, dtype, dtype);
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaLinear,
                         ::testing::Combine(::testing::ValuesIn(kCases),
                                            ::testing::Values(DType::f32, DType::bf16)),
                         [](const ::testing::TestParamInfo<std::tuple<LinearCase, DType>>& info) {
                           return std::string(std::get<0>(info.param).name) + "_" +
                                  dtype_name(std::get<1>(info.param));
                         });

// Views into one buffer at odd element offsets: cuBLASLt must be told the real alignment.
TEST(CudaLinearAlignment, OperandsAtOddOffsetsMatchTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  const int64_t n = 19, in = 24, out = 40;
  for (const DType dtype : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dtype));
    std::vector<float> x = inputs(n * in, 11, dtype), weight = inputs(out * in, 12, dtype);
    std::vector<float> expected(n * out);
    ops::linear_forward(cpu_context(), view(expected, {n, out}), view(x, {n, in}),
                        view(weight, {out, in}), Tensor());
    // One buffer: [1 pad][x][1 pad][weight][1 pad][out].
    std::vector<float> packed(3 + n * in + out * in + n * out, 0.5f);
    std::copy(x.begin(), x.end(), packed.begin() + 1);
    std::copy(weight.begin(), weight.end(), packed.begin() + 2 + n * in);
    DeviceTensor buffer = upload(packed, {static_cast<int64_t>(packed.size())}, dtype);
    const Tensor flat = buffer.tensor;
    const Tensor device_x = flat.slice(1, 1 + n * in).reshape({n, in});
    const Tensor device_weight = flat.slice(2 + n * in, 2 + n * in + out * in).reshape({out, in});
    const int64_t out_begin = 3 + n * in + out * in;
    const Tensor device_out = flat.slice(out_begin, out_begin + n * out).reshape({n, out});
    cuda::CudaOpResources resources;
    ops::linear_forward(resources.context(), device_out, device_x, device_weight, Tensor());
    const std::vector<float> all = download(flat);
    const std::vector<float> got(all.begin() + out_begin, all.end());
    EXPECT_LT(relative_error(got, expected), tolerance_for(dtype));
  }
}

// ---- argument checks of the CUDA path (no device call is reached: they run without a GPU).
Tensor fake_device(DType dtype, Shape shape) {
  return Tensor(reinterpret_cast<void*>(uintptr_t{4096}), dtype, shape, Device::cuda);
}

TEST(CudaLinearArguments, ACudaContextWithoutBlasIsRefused) {
  OpContext ctx = cuda_context();  // no CudaOpResources: ctx.blas is null
  expect_error_naming(
      [&] {
        ops::linear_forward(ctx, fake_device(DType::bf16, {4, 3}), fake_device(DType::bf16, {4, 8}),
                            fake_device(DType::bf16, {3, 8}), Tensor());
      },
      {"linear_forward", "ctx.blas", "CudaOpResources"});
}

TEST(CudaLinearArguments, F64IsRefusedOnCuda) {
  OpContext ctx = cuda_context();
  expect_error_naming(
      [&] {
        ops::linear_forward(ctx, fake_device(DType::f64, {4, 3}), fake_device(DType::f64, {4, 8}),
                            fake_device(DType::f64, {3, 8}), Tensor());
      },
      {"linear_forward", "cuda", "f64"});
}

TEST(CudaLinearArguments, WeightGradientIsF32OrTheActivationsDtype) {
  OpContext ctx = cuda_context();
  expect_error_naming(
      [&] {
        ops::linear_backward(ctx, Tensor(), fake_device(DType::bf16, {3, 8}), Tensor(),
                             fake_device(DType::f32, {4, 3}), fake_device(DType::f32, {4, 8}),
                             fake_device(DType::f32, {3, 8}));
      },
      {"linear_backward", "dweight", "bf16", "f32"});
}

}  // namespace
}  // namespace ft
