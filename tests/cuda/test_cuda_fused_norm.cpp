// GPU residual add + norm (kernels/cuda/fused_norm_cuda.cu) against the CPU's f32 and against the
// composed GPU ops, forward and backward, RMSNorm and LayerNorm, f32 and bf16 activations (f32
// statistics and weight gradients). Shapes: 1 x 7, 37 x 2048, 300 x 4097 (past the 4096 columns a
// block keeps in registers). Skips without a GPU.
// Tolerances (relative L2): against the CPU as tests/cuda/test_cuda_ops_norm.cpp (f32 1e-5, bf16
// 1e-2, statistics 1e-5, f32 weight gradients 1e-5); the CPU reference of a bf16 forward rounds
// the residual sum to bf16 as the GPU stores it. Against the composed GPU ops, whose arithmetic the
// kernels repeat in the same order and precision: 1e-6, which a single differently rounded bf16
// element of a large case already exceeds (expected: equal).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels/fused_norm_ops.h"
#include "kernels/ops.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using namespace ft::testing;

constexpr double kEps = 1e-5;
constexpr double kComposedTolerance = 1e-6;

struct FusedCase {
  DType dtype;
  MatrixShape shape;
  bool layernorm;
};

class CudaFusedNorm : public ::testing::TestWithParam<FusedCase> {};

std::vector<float> rounded_for(DType dtype, std::vector<float> values) {
  return dtype == DType::bf16 ? round_to_bf16(std::move(values)) : values;
}

// Norm inputs as `dtype` stores them: random_floats scaled by 2 and shifted by 0.5, a mean that
// matters for LayerNorm.
std::vector<float> shifted_values(DType dtype, int64_t count, uint64_t seed) {
  std::vector<float> values = random_floats(count, seed, 2.0);
  for (float& value : values) value += 0.5f;
  return rounded_for(dtype, std::move(values));
}

TEST_P(CudaFusedNorm, ForwardMatchesTheCpuAndTheComposedOps) {
  FT_SKIP_WITHOUT_CUDA();
  const auto [dtype, shape, layernorm] = GetParam();
  const int64_t rows = shape.rows, cols = shape.cols, count = rows * cols;
  const Shape matrix{rows, cols};
  const double tolerance = tolerance_for(dtype);
  const std::vector<float> residual_in = shifted_values(dtype, count, 1);
  const std::vector<float> delta = rounded_for(dtype, random_floats(count, 2));
  const std::vector<float> weight = round_to_bf16(random_floats(cols, 3, 1.5));
  const std::vector<float> bias = round_to_bf16(random_floats(cols, 4));

  // CPU: the sum (rounded as stored), then the norm in f32.
  const OpContext cpu = cpu_context();
  std::vector<float> in_copy = residual_in, delta_copy = delta, weight_copy = weight;
  std::vector<float> bias_copy = bias, sum(count), out(count), mean(rows), rstd(rows);
  ops::add(cpu, view(sum, matrix), view(in_copy, matrix), view(delta_copy, matrix));
  sum = rounded_for(dtype, sum);
  if (layernorm) {
    ops::layernorm_forward(cpu, view(out, matrix), view(mean, {rows}), view(rstd, {rows}),
                           view(sum, matrix), view(weight_copy, {cols}), view(bias_copy, {cols}),
                           kEps);
  } else {
    ops::rmsnorm_forward(cpu, view(out, matrix), view(rstd, {rows}), view(sum, matrix),
                         view(weight_copy, {cols}), kEps);
  }

  const OpContext gpu = cuda_context();
  DeviceTensor d_in = upload(residual_in, matrix, dtype), d_delta = upload(delta, matrix, dtype);
  DeviceTensor d_weight = upload(weight, {cols}, dtype), d_bias = upload(bias, {cols}, dtype);
  DeviceTensor d_mean = device_zeros(DType::f32, {rows}), d_rstd = device_zeros(DType::f32, {rows});
  auto run_norm = [&](Tensor out_tensor, Tensor x) {
    if (layernorm)
      ops::layernorm_forward(gpu, out_tensor, d_mean, d_rstd, x, d_weight, d_bias, kEps);
    else
      ops::rmsnorm_forward(gpu, out_tensor, d_rstd, x, d_weight, kEps);
  };
  auto run_fused = [&](Tensor residual_out, Tensor out_tensor, Tensor first, Tensor second) {
    if (layernorm)
      ops::residual_layernorm_forward(gpu, residual_out, out_tensor, d_mean, d_rstd, first, second,
                                      d_weight, d_bias, kEps);
    else
      ops::residual_rmsnorm_forward(gpu, residual_out, out_tensor, d_rstd, first, second, d_weight,
                                    kEps);
  };
  // Composed on the GPU.
  DeviceTensor d_sum = device_zeros(dtype, matrix), d_out = device_zeros(dtype, matrix);
  ops::add(gpu, d_sum, d_in, d_delta);
  run_norm(d_out, d_sum);
  const std::vector<float> composed_sum = download(d_sum), composed_out = download(d_out);
  const std::vector<float> composed_rstd = download(d_rstd);

  // Fused, into a separate residual_out.
  DeviceTensor f_sum = device_zeros(dtype, matrix), f_out = device_zeros(dtype, matrix);
  run_fused(f_sum, f_out, d_in, d_delta);
  EXPECT_LT(relative_error(download(f_sum), sum), tolerance) << "residual_out vs cpu";
  EXPECT_LT(relative_error(download(f_out), out), tolerance) << "out vs cpu";
  EXPECT_LT(relative_error(download(d_rstd), rstd), kF32Tolerance) << "rstd vs cpu";
  if (layernorm) EXPECT_LT(relative_error(download(d_mean), mean), kF32Tolerance) << "mean";
  EXPECT_LT(relative_error(download(f_sum), composed_sum), kComposedTolerance) << "residual_out";
  EXPECT_LT(relative_error(download(f_out), composed_out), kComposedTolerance) << "out";
  EXPECT_LT(relative_error(download(d_rstd), composed_rstd), kComposedTolerance) << "rstd";

  // In place over delta (the model adds position embeddings this way).
  DeviceTensor in_place = upload(delta, matrix, dtype);
  run_fused(in_place, f_out, d_in, in_place);
  EXPECT_LT(relative_error(download(in_place), composed_sum), kComposedTolerance) << "in place";
  EXPECT_LT(relative_error(download(f_out), composed_out), kComposedTolerance) << "in place out";
}

TEST_P(CudaFusedNorm, BackwardMatchesTheCpuAndTheComposedOps) {
  FT_SKIP_WITHOUT_CUDA();
  const auto [dtype, shape, layernorm] = GetParam();
  const int64_t rows = shape.rows, cols = shape.cols, count = rows * cols;
  const Shape matrix{rows, cols};
  const double tolerance = tolerance_for(dtype);
  std::vector<float> x = shifted_values(dtype, count, 11);
  std::vector<float> weight = round_to_bf16(random_floats(cols, 12, 1.5));
  std::vector<float> bias = round_to_bf16(random_floats(cols, 13));
  std::vector<float> dout = rounded_for(dtype, random_floats(count, 14));
  std::vector<float> above = rounded_for(dtype, random_floats(count, 15));
  const std::vector<float> dweight_initial = random_floats(cols, 16);
  const std::vector<float> dbias_initial = random_floats(cols, 17);

  // CPU: the norm's statistics and gradients in f32, then the residual gradient.
  const OpContext cpu = cpu_context();
  std::vector<float> out(count), mean(rows), rstd(rows), dx(count), dresidual(count);
  std::vector<float> dweight = dweight_initial, dbias = dbias_initial;
  if (layernorm) {
    ops::layernorm_forward(cpu, view(out, matrix), view(mean, {rows}), view(rstd, {rows}),
                           view(x, matrix), view(weight, {cols}), view(bias, {cols}), kEps);
    ops::layernorm_backward(cpu, view(dx, matrix), view(dweight, {cols}), view(dbias, {cols}),
                            view(dout, matrix), view(x, matrix), view(weight, {cols}),
                            view(mean, {rows}), view(rstd, {rows}));
  } else {
    ops::rmsnorm_forward(cpu, view(out, matrix), view(rstd, {rows}), view(x, matrix),
                         view(weight, {cols}), kEps);
    ops::rmsnorm_backward(cpu, view(dx, matrix), view(dweight, {cols}), view(dout, matrix),
                          view(x, matrix), view(weight, {cols}), view(rstd, {rows}));
  }
  ops::add(cpu, view(dresidual, matrix), view(above, matrix), view(dx, matrix));

  // The GPU's own statistics, so that fused and composed read the same ones.
  const OpContext gpu = cuda_context();
  DeviceTensor d_x = upload(x, matrix, dtype), d_weight = upload(weight, {cols}, dtype);
  DeviceTensor d_bias = upload(bias, {cols}, dtype), d_dout = upload(dout, matrix, dtype);
  DeviceTensor d_out = device_zeros(dtype, matrix);
  DeviceTensor d_mean = device_zeros(DType::f32, {rows}), d_rstd = device_zeros(DType::f32, {rows});
  if (layernorm)
    ops::layernorm_forward(gpu, d_out, d_mean, d_rstd, d_x, d_weight, d_bias, kEps);
  else
    ops::rmsnorm_forward(gpu, d_out, d_rstd, d_x, d_weight, kEps);

  // Composed on the GPU: dx, then the add.
  DeviceTensor c_dx = device_zeros(dtype, matrix), c_above = upload(above, matrix, dtype);
  DeviceTensor c_dweight = upload(dweight_initial, {cols}, DType::f32);
  DeviceTensor c_dbias = upload(dbias_initial, {cols}, DType::f32);
  if (layernorm)
    ops::layernorm_backward(gpu, c_dx, c_dweight, c_dbias, d_dout, d_x, d_weight, d_mean, d_rstd);
  else
    ops::rmsnorm_backward(gpu, c_dx, c_dweight, d_dout, d_x, d_weight, d_rstd);
  ops::add(gpu, c_above, c_above, c_dx);

  // Fused, in place over the residual gradient as the model runs it.
  DeviceTensor f_residual = upload(above, matrix, dtype);
  DeviceTensor f_dweight = upload(dweight_initial, {cols}, DType::f32);
  DeviceTensor f_dbias = upload(dbias_initial, {cols}, DType::f32);
  if (layernorm)
    ops::residual_layernorm_backward(gpu, f_residual, f_dweight, f_dbias, d_dout, f_residual, d_x,
                                     d_weight, d_mean, d_rstd);
  else
    ops::residual_rmsnorm_backward(gpu, f_residual, f_dweight, d_dout, f_residual, d_x, d_weight,
                                   d_rstd);
  const std::vector<float> fused = download(f_residual);
  EXPECT_LT(relative_error(fused, dresidual), tolerance) << "dresidual vs cpu";
  EXPECT_LT(relative_error(download(f_dweight), dweight), 1e-5) << "dweight vs cpu";
  if (layernorm) EXPECT_LT(relative_error(download(f_dbias), dbias), 1e-5) << "dbias vs cpu";
  EXPECT_LT(relative_error(fused, download(c_above)), kComposedTolerance) << "dresidual";
  EXPECT_LT(relative_error(download(f_dweight), download(c_dweight)), kComposedTolerance);

  // A separate output and a frozen weight.
  DeviceTensor separate = device_zeros(dtype, matrix), d_above = upload(above, matrix, dtype);
  if (layernorm)
    ops::residual_layernorm_backward(gpu, separate, Tensor(), Tensor(), d_dout, d_above, d_x,
                                     d_weight, d_mean, d_rstd);
  else
    ops::residual_rmsnorm_backward(gpu, separate, Tensor(), d_dout, d_above, d_x, d_weight, d_rstd);
  EXPECT_LT(relative_error(download(separate), fused), kComposedTolerance) << "separate output";
  EXPECT_EQ(download(d_above), rounded_for(dtype, above)) << "dresidual_above is only read";
}

std::vector<FusedCase> fused_cases() {
  std::vector<FusedCase> cases;
  for (DType dtype : {DType::f32, DType::bf16})
    for (MatrixShape shape : {MatrixShape{1, 7}, MatrixShape{37, 2048}, MatrixShape{300, 4097}})
      for (bool layernorm : {false, true}) cases.push_back({dtype, shape, layernorm});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaFusedNorm, ::testing::ValuesIn(fused_cases()),
                         [](const ::testing::TestParamInfo<FusedCase>& info) {
                           return std::string(info.param.layernorm ? "layernorm_" : "rmsnorm_") +
                                  dtype_name(info.param.dtype) + "_" +
                                  std::to_string(info.param.shape.rows) + "x" +
                                  std::to_string(info.param.shape.cols);
                         });

}  // namespace
}  // namespace ft
