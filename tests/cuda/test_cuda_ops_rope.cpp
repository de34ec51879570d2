// GPU RoPE (kernels/cuda/rope_cuda.cu) against the CPU: the tables (plain and Llama 3 scaled),
// the rotation and its inverse on odd head counts, f32 and bf16, bad positions raised. Skips
// without a GPU. Tolerances (relative L2): f32 1e-5 (tables 1e-6); bf16 1e-2.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernels/ops.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using namespace ft::testing;

constexpr int64_t kPositions = 301, kRows = 23, kHeads = 5, kHeadDim = 18;

class CudaRope : public ::testing::TestWithParam<DType> {};

TEST_P(CudaRope, TablesMatchTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  const DType dtype = GetParam();
  ops::RopeScaling llama3;
  llama3.factor = 8.0;
  llama3.original_max_position_embeddings = 64;
  for (const ops::RopeScaling& scaling : {ops::RopeScaling{}, llama3}) {
    std::vector<float> cos(kPositions * kHeadDim / 2), sin(kPositions * kHeadDim / 2);
    ops::rope_build_tables(cpu_context(), view(cos, {kPositions, kHeadDim / 2}),
                           view(sin, {kPositions, kHeadDim / 2}), 10000.0, scaling);
    DeviceTensor d_cos = device_zeros(dtype, {kPositions, kHeadDim / 2});
    DeviceTensor d_sin = device_zeros(dtype, {kPositions, kHeadDim / 2});
    ops::rope_build_tables(cuda_context(), d_cos, d_sin, 10000.0, scaling);
    const double tolerance = dtype == DType::bf16 ? kBf16Tolerance : 1e-6;
    EXPECT_LT(relative_error(download(d_cos), cos), tolerance) << "factor " << scaling.factor;
    EXPECT_LT(relative_error(download(d_sin), sin), tolerance) << "factor " << scaling.factor;
  }
}

TEST_P(CudaRope, ForwardAndBackwardMatchTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  const DType dtype = GetParam();
  const int64_t half = kHeadDim / 2, count = kRows * kHeads * kHeadDim;
  std::vector<float> cos(kPositions * half), sin(kPositions * half);
  ops::rope_build_tables(cpu_context(), view(cos, {kPositions, half}),
                         view(sin, {kPositions, half}), 500000.0, {});
  cos = round_to_bf16(cos);  // the GPU sees the same tables in both dtypes
  sin = round_to_bf16(sin);
  std::vector<int32_t> positions(kRows);
  for (int64_t i = 0; i < kRows; ++i) positions[i] = static_cast<int32_t>((i * 37) % kPositions);
  positions[kRows - 1] = kPositions - 1;
  std::vector<float> x = round_to_bf16(random_floats(count, 1));
  std::vector<float> rotated = x, unrotated = x;
  ops::rope_forward(cpu_context(), view(rotated, {kRows, kHeads, kHeadDim}),
                    view(positions, {kRows}), view(cos, {kPositions, half}),
                    view(sin, {kPositions, half}));
  ops::rope_backward(cpu_context(), view(unrotated, {kRows, kHeads, kHeadDim}),
                     view(positions, {kRows}), view(cos, {kPositions, half}),
                     view(sin, {kPositions, half}));
  DeviceTensor d_cos = upload(cos, {kPositions, half}, dtype);
  DeviceTensor d_sin = upload(sin, {kPositions, half}, dtype);
  DeviceTensor d_positions = upload_ids(positions, {kRows});
  DeviceTensor d_x = upload(x, {kRows, kHeads, kHeadDim}, dtype);
  ops::rope_forward(cuda_context(), d_x, d_positions, d_cos, d_sin);
  EXPECT_LT(relative_error(download(d_x), rotated), tolerance_for(dtype)) << "forward";
  DeviceTensor d_dx = upload(x, {kRows, kHeads, kHeadDim}, dtype);
  ops::rope_backward(cuda_context(), d_dx, d_positions, d_cos, d_sin);
  EXPECT_LT(relative_error(download(d_dx), unrotated), tolerance_for(dtype)) << "backward";
}

TEST_P(CudaRope, BadPositionsAreRaised) {
  FT_SKIP_WITHOUT_CUDA();
  const DType dtype = GetParam();
  DeviceTensor cos = upload(random_floats(4 * 2, 1), {4, 2}, dtype);
  DeviceTensor sin = upload(random_floats(4 * 2, 2), {4, 2}, dtype);
  DeviceTensor x = upload(random_floats(3 * 4, 3), {3, 1, 4}, dtype);
  const OpContext ctx = cuda_context();
  ops::rope_forward(ctx, x, upload_ids({0, 4, 1}, {3}), cos, sin);
  expect_error_mentioning([&] { ops::check_device_errors(ctx); },
                          "op rope_forward: positions[1] = 4 is outside [0, 4)");
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaRope, ::testing::Values(DType::f32, DType::bf16),
                         dtype_test_name);

}  // namespace
}  // namespace ft
