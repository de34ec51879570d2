// GPU RMSNorm and LayerNorm (kernels/cuda/norm_cuda.cu) against the CPU's f32, forward and
// backward, f32 and bf16 activations (statistics f32), parameter gradients accumulated in f32 or
// bf16. Odd sizes: 7 rows of 33 and 100 columns, 1000 rows of 4099. Skips without a GPU.
// Tolerances (relative L2): f32 1e-5; bf16 1e-2 for outputs and gradients, 1e-5 for the f32
// statistics (computed in fp32 from the same bf16 inputs).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernels/ops.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using namespace ft::testing;

constexpr double kEps = 1e-5;

struct NormCase {
  DType dtype;
  MatrixShape shape;
};
std::ostream& operator<<(std::ostream& out, const NormCase& c) {
  return out << dtype_name(c.dtype) << "_" << c.shape;
}

class CudaNorm : public ::testing::TestWithParam<NormCase> {};

// Inputs offset from zero so that LayerNorm's mean matters.
std::vector<float> norm_input(int64_t count, uint64_t seed, DType dtype) {
  std::vector<float> x = random_floats(count, seed, 2.0);
  for (float& value : x) value += 0.5f;
  return dtype == DType::bf16 ? round_to_bf16(x) : x;
}

TEST_P(CudaNorm, RmsnormForwardAndBackwardMatchTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  const DType dtype = GetParam().dtype;
  const int64_t rows = GetParam().shape.rows, cols = GetParam().shape.cols;
  const double tolerance = tolerance_for(dtype);
  std::vector<float> x = norm_input(rows * cols, 1, dtype);
  std::vector<float> weight = round_to_bf16(random_floats(cols, 2, 1.5));
  std::vector<float> dout = round_to_bf16(random_floats(rows * cols, 3));
  std::vector<float> dweight_initial = random_floats(cols, 4);
  std::vector<float> out(rows * cols), rstd(rows), dx(rows * cols), dweight = dweight_initial;
  const OpContext cpu = cpu_context();
  ops::rmsnorm_forward(cpu, view(out, {rows, cols}), view(rstd, {rows}), view(x, {rows, cols}),
                       view(weight, {cols}), kEps);
  ops::rmsnorm_backward(cpu, view(dx, {rows, cols}), view(dweight, {cols}),
                        view(dout, {rows, cols}), view(x, {rows, cols}), view(weight, {cols}),
                        view(rstd, {rows}));

  const OpContext gpu = cuda_context();
  DeviceTensor d_x = upload(x, {rows, cols}, dtype), d_weight = upload(weight, {cols}, dtype);
  DeviceTensor d_out = device_zeros(dtype, {rows, cols}), d_rstd = device_zeros(DType::f32, {rows});
  ops::rmsnorm_forward(gpu, d_out, d_rstd, d_x, d_weight, kEps);
  EXPECT_LT(relative_error(download(d_out), out), tolerance) << "out";
  EXPECT_LT(relative_error(download(d_rstd), rstd), kF32Tolerance) << "rstd";
  DeviceTensor d_dout = upload(dout, {rows, cols}, dtype), d_dx = device_zeros(dtype, {rows, cols});
  DeviceTensor d_dweight = upload(dweight_initial, {cols}, DType::f32);
  ops::rmsnorm_backward(gpu, d_dx, d_dweight, d_dout, d_x, d_weight, d_rstd);
  EXPECT_LT(relative_error(download(d_dx), dx), tolerance) << "dx";
  // f32 gradient accumulation: only the fp32 order of the sums differs from the CPU's double.
  EXPECT_LT(relative_error(download(d_dweight), dweight), 1e-5) << "dweight f32";
  // Frozen weight (no dweight) and, for bf16, a bf16 gradient.
  ops::rmsnorm_backward(gpu, d_dx, Tensor(), d_dout, d_x, d_weight, d_rstd);
  EXPECT_LT(relative_error(download(d_dx), dx), tolerance) << "dx, frozen weight";
  if (dtype == DType::bf16) {
    DeviceTensor bf16_dweight = upload(dweight_initial, {cols}, DType::bf16);
    ops::rmsnorm_backward(gpu, d_dx, bf16_dweight, d_dout, d_x, d_weight, d_rstd);
    EXPECT_LT(relative_error(download(bf16_dweight), dweight), kBf16Tolerance) << "dweight bf16";
  }
}

TEST_P(CudaNorm, LayernormForwardAndBackwardMatchTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  const DType dtype = GetParam().dtype;
  const int64_t rows = GetParam().shape.rows, cols = GetParam().shape.cols;
  const double tolerance = tolerance_for(dtype);
  std::vector<float> x = norm_input(rows * cols, 11, dtype);
  std::vector<float> weight = round_to_bf16(random_floats(cols, 12, 1.5));
  std::vector<float> bias = round_to_bf16(random_floats(cols, 13));
  std::vector<float> dout = round_to_bf16(random_floats(rows * cols, 14));
  std::vector<float> dweight_initial = random_floats(cols, 15);
  std::vector<float> dbias_initial = random_floats(cols, 16);
  std::vector<float> out(rows * cols), mean(rows), rstd(rows), dx(rows * cols);
  std::vector<float> dweight = dweight_initial, dbias = dbias_initial;
  const OpContext cpu = cpu_context();
  ops::layernorm_forward(cpu, view(out, {rows, cols}), view(mean, {rows}), view(rstd, {rows}),
                         view(x, {rows, cols}), view(weight, {cols}), view(bias, {cols}), kEps);
  ops::layernorm_backward(cpu, view(dx, {rows, cols}), view(dweight, {cols}), view(dbias, {cols}),
                          view(dout, {rows, cols}), view(x, {rows, cols}), view(weight, {cols}),
                          view(mean, {rows}), view(rstd, {rows}));

  const OpContext gpu = cuda_context();
  DeviceTensor d_x = upload(x, {rows, cols}, dtype), d_weight = upload(weight, {cols}, dtype);
  DeviceTensor d_bias = upload(bias, {cols}, dtype), d_out = device_zeros(dtype, {rows, cols});
  DeviceTensor d_mean = device_zeros(DType::f32, {rows}), d_rstd = device_zeros(DType::f32, {rows});
  ops::layernorm_forward(gpu, d_out, d_mean, d_rstd, d_x, d_weight, d_bias, kEps);
  EXPECT_LT(relative_error(download(d_out), out), tolerance) << "out";
  EXPECT_LT(relative_error(download(d_mean), mean), kF32Tolerance) << "mean";
  EXPECT_LT(relative_error(download(d_rstd), rstd), kF32Tolerance) << "rstd";
  DeviceTensor d_dout = upload(dout, {rows, cols}, dtype), d_dx = device_zeros(dtype, {rows, cols});
  DeviceTensor d_dweight = upload(dweight_initial, {cols}, DType::f32);
  DeviceTensor d_dbias = upload(dbias_initial, {cols}, DType::f32);
  ops::layernorm_backward(gpu, d_dx, d_dweight, d_dbias, d_dout, d_x, d_weight, d_mean, d_rstd);
  EXPECT_LT(relative_error(download(d_dx), dx), tolerance) << "dx";
  EXPECT_LT(relative_error(download(d_dweight), dweight), 1e-5) << "dweight";
  EXPECT_LT(relative_error(download(d_dbias), dbias), 1e-5) << "dbias";

  // Without a bias: out shifts by exactly the bias.
  std::vector<float> out_no_bias(rows * cols);
  ops::layernorm_forward(cpu, view(out_no_bias, {rows, cols}), view(mean, {rows}),
                         view(rstd, {rows}), view(x, {rows, cols}), view(weight, {cols}), Tensor(),
                         kEps);
  ops::layernorm_forward(gpu, d_out, d_mean, d_rstd, d_x, d_weight, Tensor(), kEps);
  EXPECT_LT(relative_error(download(d_out), out_no_bias), tolerance) << "out without bias";
}

TEST(CudaNormErrors, StatisticsOfBf16AreF32) {
  FT_SKIP_WITHOUT_CUDA();
  DeviceTensor x = upload(random_floats(6, 1), {2, 3}, DType::bf16);
  DeviceTensor weight = upload(random_floats(3, 2), {3}, DType::bf16);
  DeviceTensor out = device_zeros(DType::bf16, {2, 3}), rstd_bf16 = device_zeros(DType::bf16, {2});
  expect_error_mentioning(
      [&] { ops::rmsnorm_forward(cuda_context(), out, rstd_bf16, x, weight, kEps); },
      "argument rstd has dtype bf16, expected f32");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaNorm,
    ::testing::Values(NormCase{DType::f32, {7, 33}}, NormCase{DType::f32, {7, 100}},
                      NormCase{DType::f32, {1000, 4099}}, NormCase{DType::bf16, {7, 33}},
                      NormCase{DType::bf16, {7, 100}}, NormCase{DType::bf16, {1000, 4099}}),
    [](const ::testing::TestParamInfo<NormCase>& info) {
      return std::string(dtype_name(info.param.dtype)) + "_" +
             std::to_string(info.param.shape.rows) + "x" + std::to_string(info.param.shape.cols);
    });

}  // namespace
}  // namespace ft
