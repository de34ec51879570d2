// The CUDA device layer (kernels/cuda/device.cu): discovery, device buffers and copies. Skips
// itself where no GPU is present; compiled whenever CUDA is.
#include <gtest/gtest.h>

#include <vector>

#include "runtime/buffer.h"
#include "runtime/device.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

TEST(CudaDevice, ReportsDevicesOrWhyNone) {
  const int count = cuda_device_count();
  EXPECT_GE(count, 0);
  EXPECT_FALSE(cuda_device_description(0).empty());
  if (count == 0) GTEST_SKIP() << "no CUDA device: " << cuda_device_description(0);
  EXPECT_NE(cuda_device_description(0).find("sm_"), std::string::npos);
}

TEST(CudaDevice, BufferRoundTripThroughDeviceMemory) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  std::vector<float> host = testing::random_floats(1000, 3), back(1000, 0.0f);
  Buffer device_buffer(Device::cuda, host.size() * sizeof(float));
  Tensor on_device = device_buffer.view(DType::f32, Shape{1000});
  EXPECT_EQ(on_device.device, Device::cuda);
  copy_tensor(on_device, Tensor(host.data(), DType::f32, Shape{1000}));
  copy_tensor(Tensor(back.data(), DType::f32, Shape{1000}), on_device);
  EXPECT_EQ(host, back);
}

}  // namespace
}  // namespace ft
