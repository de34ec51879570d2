// GPU AdamW (kernels/cuda/optimizer_cuda.cu) against the CPU over fp32 master weights: several
// steps with weight decay and a fused gradient scale, and the bf16 copy written in the same pass.
// Skips without a GPU. Tolerances: params, m, v relative L2 1e-6 (same fp32 formula; only
// contraction differs); the bf16 copy equals the rounded f32 params exactly.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernels/ops.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using namespace ft::testing;

TEST(CudaAdamW, StepsMatchTheCpuAndWriteTheBf16Copy) {
  FT_SKIP_WITHOUT_CUDA();
  const int64_t count = 100003;
  std::vector<float> params = random_floats(count, 1), m(count, 0.0f), v(count, 0.0f);
  DeviceTensor d_params = upload(params, {count}, DType::f32);
  DeviceTensor d_m = upload(m, {count}, DType::f32), d_v = upload(v, {count}, DType::f32);
  DeviceTensor d_copy = device_zeros(DType::bf16, {count});
  ops::AdamWArgs args;
  args.lr = 1e-2;
  args.weight_decay = 0.1;
  for (int64_t step = 1; step <= 4; ++step) {
    args.step = step;
    args.grad_scale = step == 3 ? 0.5 : 1.0;  // a clipped step
    std::vector<float> grads = random_floats(count, 10 + step);
    ops::adamw_update(cpu_context(), view(params, {count}), view(grads, {count}), view(m, {count}),
                      view(v, {count}), args);
    ops::adamw_update(cuda_context(), d_params, upload(grads, {count}, DType::f32), d_m, d_v, args,
                      d_copy);
  }
  const std::vector<float> gpu_params = download(d_params);
  EXPECT_LT(relative_error(gpu_params, params), 1e-6) << "params";
  EXPECT_LT(relative_error(download(d_m), m), 1e-6) << "m";
  EXPECT_LT(relative_error(download(d_v), v), 1e-6) << "v";
  EXPECT_EQ(download(d_copy), round_to_bf16(gpu_params)) << "the copy is the rounded params";
}

TEST(CudaAdamW, RefusesBf16MasterWeights) {
  FT_SKIP_WITHOUT_CUDA();
  DeviceTensor p = upload(random_floats(8, 1), {8}, DType::bf16);
  expect_error_mentioning([&] { ops::adamw_update(cuda_context(), p, p, p, p, {}); },
                          "op adamw_update has no cuda implementation for dtype bf16");
}

}  // namespace
}  // namespace ft
