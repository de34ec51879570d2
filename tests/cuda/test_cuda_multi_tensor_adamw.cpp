// GPU multi-tensor AdamW (kernels/cuda/multi_tensor_adamw_cuda.cu) against the per-tensor GPU op
// (ops::adamw_update), bit for bit: 50 tensors of odd sizes (0 and 1 elements, chunk multiples and
// one past, several chunks), with and without weight decay, bf16 / f32 / no working copy, over
// steps with a clipped gradient scale, with the trainer's chunk size and with tiny chunks (many
// chunks per tensor, the binary search over hundreds of chunks). Both kernels run
// kernels/cuda/adamw_cuda.cuh's update, so the results must be equal, not close. Skips without a
// GPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/multi_tensor_ops.h"
#include "kernels/ops.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using namespace ft::testing;

// One parameter tensor on the GPU: master weights, gradient, moments and an optional copy.
struct GpuTensor {
  DeviceTensor params, grads, m, v, copy;
  bool has_copy = false;
  bool decay = true;
};

std::vector<int64_t> tensor_sizes() {
  std::vector<int64_t> sizes = {0, 1, 2, 3, 7, 0, 1, 255, 256, 257, 16383, 16384, 16385, 40000};
  for (int64_t i = 0; sizes.size() < 50; ++i) sizes.push_back(1 + (i * 7919) % 5003);
  return sizes;
}

GpuTensor make_tensor(int64_t count, size_t index) {
  const uint64_t seed = 100 * (index + 1);
  std::vector<float> v = random_floats(count, seed + 4, 0.01);
  for (float& value : v) value = value < 0 ? -value : value;
  GpuTensor t;
  t.params = upload(random_floats(count, seed + 1), {count}, DType::f32);
  t.grads = upload(random_floats(count, seed + 2, 0.5), {count}, DType::f32);
  t.m = upload(random_floats(count, seed + 3, 0.1), {count}, DType::f32);
  t.v = upload(v, {count}, DType::f32);
  t.has_copy = index % 3 != 2;
  t.copy = device_zeros(index % 3 == 0 ? DType::bf16 : DType::f32, {count});
  t.decay = index % 4 != 1;
  return t;
}

void expect_equal_to_per_tensor_updates(int64_t chunk_elements) {
  const std::vector<int64_t> sizes = tensor_sizes();
  std::vector<GpuTensor> multi, single;
  for (size_t i = 0; i < sizes.size(); ++i) {
    multi.push_back(make_tensor(sizes[i], i));
    single.push_back(make_tensor(sizes[i], i));
  }
  std::vector<ops::AdamWTensor> table;
  for (size_t i = 0; i < multi.size(); ++i) {
    const GpuTensor& t = multi[i];
    table.push_back({"tensor" + std::to_string(i), t.params, t.grads, t.m, t.v,
                     t.has_copy ? Tensor(t.copy) : Tensor(), t.decay});
  }
  const OpContext gpu = cuda_context();
  const ops::MultiTensorAdamW update(gpu, table, chunk_elements);
  EXPECT_EQ(update.tensor_count(), sizes.size());
  ops::AdamWArgs args;
  args.lr = 3e-3;
  args.beta2 = 0.95;
  args.weight_decay = 0.1;
  for (int64_t step = 1; step <= 4; ++step) {
    args.step = step;
    args.grad_scale = step == 3 ? 0.37 : 1.0;  // a clipped step
    update.step(gpu, args);
    for (GpuTensor& t : single) {
      ops::AdamWArgs one = args;
      one.weight_decay = t.decay ? args.weight_decay : 0.0;
      ops::adamw_update(gpu, t.params, t.grads, t.m, t.v, one,
                        t.has_copy ? Tensor(t.copy) : Tensor());
    }
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "tensor " << i << " of " << sizes[i] << " elements");
    EXPECT_EQ(download(multi[i].params), download(single[i].params)) << "params";
    EXPECT_EQ(download(multi[i].m), download(single[i].m)) << "m";
    EXPECT_EQ(download(multi[i].v), download(single[i].v)) << "v";
    EXPECT_EQ(download(multi[i].grads), download(single[i].grads)) << "grads are only read";
    if (multi[i].has_copy) EXPECT_EQ(download(multi[i].copy), download(single[i].copy)) << "copy";
  }
}

TEST(CudaMultiTensorAdamW, EqualsPerTensorUpdatesBitForBit) {
  FT_SKIP_WITHOUT_CUDA();
  expect_equal_to_per_tensor_updates(multi_tensor::kChunkElements);
}

TEST(CudaMultiTensorAdamW, EqualsPerTensorUpdatesWithTinyChunks) {
  FT_SKIP_WITHOUT_CUDA();
  expect_equal_to_per_tensor_updates(37);
}

TEST(CudaMultiTensorAdamW, RefusesWhatTheKernelDoesNotTake) {
  FT_SKIP_WITHOUT_CUDA();
  DeviceTensor bf16 = upload(random_floats(8, 1), {8}, DType::bf16);
  DeviceTensor f32 = upload(random_floats(8, 2), {8}, DType::f32);
  DeviceTensor f64 = upload(random_floats(8, 3), {8}, DType::f64);
  const OpContext gpu = cuda_context();
  expect_error_mentioning(
      [&] {
        ops::MultiTensorAdamW(gpu, {{"w", bf16, bf16, bf16, bf16, Tensor(), true}});
      },
      "op multi_tensor_adamw has no cuda implementation for dtype bf16");
  expect_error_mentioning(
      [&] {
        ops::MultiTensorAdamW(gpu, {{"w", f32, f32, f32, f32, f64, true}});
      },
      "op multi_tensor_adamw has no cuda implementation for dtype f64");
}

}  // namespace
}  // namespace ft
