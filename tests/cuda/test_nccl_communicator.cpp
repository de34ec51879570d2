// The NCCL communicator on one GPU (one rank: several ranks on one GPU are refused by NCCL, so
// multi-rank logic is tested through the MPI communicator): collectives on device memory in f32,
// f64 and bf16, host values through the scratch buffer, text, groups from split, stats, and the
// errors for host tensors. Skips itself where no GPU is present.
#include <gtest/gtest.h>

#include <vector>

#include "parallel/nccl_communicator.h"
#include "runtime/buffer.h"
#include "runtime/device.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

template <typename T>
std::vector<T> to_host(const Tensor& device_tensor) {
  std::vector<T> host(device_tensor.numel());
  copy_tensor(Tensor(host.data(), dtype_of<T>(), device_tensor.shape), device_tensor);
  return host;
}

template <typename T>
Tensor to_device(Buffer& buffer, const std::vector<T>& host) {
  buffer = Buffer(Device::cuda, host.size() * sizeof(T));
  const Tensor tensor = buffer.view(dtype_of<T>(), Shape{static_cast<int64_t>(host.size())});
  copy_tensor(tensor, Tensor(const_cast<T*>(host.data()), dtype_of<T>(), tensor.shape));
  return tensor;
}

class NcclCommunicatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda_device_description(0);
  }
};

TEST_F(NcclCommunicatorTest, OneRankCollectivesOnDeviceMemory) {
  NcclCommunicator comm(0);
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.size(), 1);
  EXPECT_STREQ(comm.kind(), "nccl");
  EXPECT_EQ(comm.device(), 0);

  const std::vector<float> f32 = {1.5f, -2.25f, 3.0f, 0.125f};
  const std::vector<double> f64 = {1e-3, -7.5, 2.0};
  Buffer f32_buffer, f64_buffer;
  const Tensor f32_tensor = to_device(f32_buffer, f32);
  const Tensor f64_tensor = to_device(f64_buffer, f64);
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::average, ReduceOp::max}) {
    comm.all_reduce(f32_tensor, op);
    comm.all_reduce(f64_tensor, op);
  }
  EXPECT_EQ(to_host<float>(f32_tensor), f32);
  EXPECT_EQ(to_host<double>(f64_tensor), f64);

  std::vector<bf16> half(3);
  for (int i = 0; i < 3; ++i) half[i] = float_to_bf16(0.5f * (i + 1));
  Buffer half_buffer;
  const Tensor half_tensor = to_device(half_buffer, half);
  comm.all_reduce(half_tensor, ReduceOp::sum);
  const std::vector<bf16> half_back = to_host<bf16>(half_tensor);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(bf16_to_float(half_back[i]), 0.5f * (i + 1));

  // All-gather and reduce-scatter over one rank copy; broadcast from rank 0 keeps the values.
  Buffer gathered_buffer(Device::cuda, f32.size() * sizeof(float));
  const Tensor gathered = gathered_buffer.view(DType::f32, f32_tensor.shape);
  comm.all_gather(gathered, f32_tensor);
  EXPECT_EQ(to_host<float>(gathered), f32);
  Buffer scattered_buffer(Device::cuda, f64.size() * sizeof(double));
  const Tensor scattered = scattered_buffer.view(DType::f64, f64_tensor.shape);
  comm.reduce_scatter(scattered, f64_tensor, ReduceOp::sum);
  EXPECT_EQ(to_host<double>(scattered), f64);
  comm.broadcast(f64_tensor, 0);
  EXPECT_EQ(to_host<double>(f64_tensor), f64);
  comm.barrier();
}

TEST_F(NcclCommunicatorTest, HostValuesTextSplitAndStats) {
  NcclCommunicator comm(0);
  std::vector<double> values = {2.5, -1.0, 1e10};
  comm.all_reduce(std::span<double>(values), ReduceOp::sum);
  EXPECT_EQ(values, (std::vector<double>{2.5, -1.0, 1e10}));
  std::string text = "the run config";
  comm.broadcast(text, 0);
  EXPECT_EQ(text, "the run config");
  std::string empty;
  comm.broadcast(empty, 0);
  EXPECT_EQ(empty, "");
  EXPECT_EQ(comm.stats().calls, 3);
  EXPECT_EQ(comm.stats().bytes, 3 * 8 + 14);

  std::unique_ptr<Communicator> child = comm.split(0, 0);
  EXPECT_EQ(child->size(), 1);
  EXPECT_STREQ(child->kind(), "nccl");
  Buffer buffer;
  const Tensor tensor = to_device(buffer, std::vector<float>{4.0f, 5.0f});
  child->all_reduce(tensor, ReduceOp::max);
  EXPECT_EQ(to_host<float>(tensor), (std::vector<float>{4.0f, 5.0f}));
}

TEST_F(NcclCommunicatorTest, RefusesHostTensorsAndBadShapes) {
  NcclCommunicator comm(0);
  std::vector<float> host(4);
  const Tensor on_host(host.data(), DType::f32, Shape{4});
  testing::expect_error_mentioning([&] { comm.all_reduce(on_host, ReduceOp::sum); },
                                   "device buffers");
  Buffer buffer(Device::cuda, 8 * sizeof(float));
  const Tensor eight = buffer.view(DType::f32, Shape{8});
  testing::expect_error_mentioning(
      [&] { comm.reduce_scatter(eight.slice(0, 3), eight.slice(3, 8), ReduceOp::sum); },
      "reduce_scatter: the input");
  testing::expect_error_mentioning([&] { comm.send(eight, 0); }, "send: peer 0");
}

TEST(NcclFactory, BuildsOverAHostCommunicatorOrSaysWhyNot) {
  SingleProcessCommunicator host;
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  std::unique_ptr<Communicator> comm = make_nccl_communicator(host, 0);
  EXPECT_EQ(comm->size(), 1);
  EXPECT_STREQ(comm->kind(), "nccl");
}

}  // namespace
}  // namespace ft
