// Helpers for the GPU op tests (tests/cuda/): device tensors filled from host vectors in f32 or
// bf16, downloads back to float, bf16 rounding of CPU reference inputs, and the relative L2 error
// the tests bound. Tests call FT_SKIP_WITHOUT_CUDA() first: without a GPU they skip.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/context.h"
#include "runtime/buffer.h"
#include "runtime/device.h"
#include "runtime/tensor.h"

#define FT_SKIP_WITHOUT_CUDA()                                                            \
  do {                                                                                    \
    if (::ft::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine"; \
  } while (0)

namespace ft::testing {

// An op context on the GPU, on the default stream (the ops need no cuBLASLt handle here).
inline OpContext cuda_context() {
  OpContext ctx;
  ctx.device = Device::cuda;
  return ctx;
}

// Device memory and a view of it. Zero-sized tensors get one byte so that the view is not empty.
struct DeviceTensor {
  Buffer buffer;
  Tensor tensor;
  operator Tensor() const { return tensor; }
};

inline DeviceTensor device_zeros(DType dtype, Shape shape) {
  const size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  DeviceTensor result{Buffer(Device::cuda, bytes > 0 ? bytes : 1), Tensor()};
  result.tensor = result.buffer.view(dtype, shape);
  return result;
}

// values rounded to bf16 (nearest even) and back: the inputs a bf16 GPU op sees, for the CPU
// reference to see the same.
inline std::vector<float> round_to_bf16(std::vector<float> values) {
  for (float& value : values) value = bf16_to_float(float_to_bf16(value));
  return values;
}

// A device tensor of `dtype` (f32, bf16 or f64) holding `values` (rounded for bf16).
inline DeviceTensor upload(const std::vector<float>& values, Shape shape, DType dtype) {
  EXPECT_EQ(static_cast<int64_t>(values.size()), shape.numel());
  DeviceTensor result = device_zeros(dtype, shape);
  std::vector<unsigned char> bytes(values.size() * dtype_size(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::f32) {
      std::memcpy(bytes.data() + 4 * i, &values[i], 4);
    } else if (dtype == DType::bf16) {
      const bf16 rounded = float_to_bf16(values[i]);
      std::memcpy(bytes.data() + 2 * i, &rounded, 2);
    } else if (dtype == DType::f64) {
      const double wide = values[i];
      std::memcpy(bytes.data() + 8 * i, &wide, 8);
    } else {
      ADD_FAILURE() << "upload: unsupported dtype " << dtype_name(dtype);
    }
  }
  if (!bytes.empty()) {
    copy_bytes(result.tensor.data, Device::cuda, bytes.data(), Device::cpu, bytes.size());
  }
  return result;
}

inline DeviceTensor upload_ids(const std::vector<int32_t>& values, Shape shape) {
  DeviceTensor result = device_zeros(DType::i32, shape);
  if (!values.empty()) {
    copy_bytes(result.tensor.data, Device::cuda, values.data(), Device::cpu,
               values.size() * sizeof(int32_t));
  }
  return result;
}

// A device tensor's values as floats (f32, bf16 or f64; waits for the copy).
inline std::vector<float> download(const Tensor& t) {
  const size_t count = static_cast<size_t>(t.numel());
  std::vector<unsigned char> bytes(count * dtype_size(t.dtype));
  if (!bytes.empty()) copy_bytes(bytes.data(), Device::cpu, t.data, Device::cuda, bytes.size());
  std::vector<float> values(count);
  for (size_t i = 0; i < count; ++i) {
    if (t.dtype == DType::f32) {
      std::memcpy(&values[i], bytes.data() + 4 * i, 4);
    } else if (t.dtype == DType::bf16) {
      bf16 stored;
      std::memcpy(&stored, bytes.data() + 2 * i, 2);
      values[i] = bf16_to_float(stored);
    } else if (t.dtype == DType::f64) {
      double wide;
      std::memcpy(&wide, bytes.data() + 8 * i, 8);
      values[i] = static_cast<float>(wide);
    } else {
      ADD_FAILURE() << "download: unsupported dtype " << dtype_name(t.dtype);
    }
  }
  return values;
}

// ||actual - expected|| / ||expected|| in double (expected must not be all zeros).
inline double relative_error(const std::vector<float>& actual, const std::vector<float>& expected) {
  EXPECT_EQ(actual.size(), expected.size());
  double difference = 0.0, reference = 0.0;
  for (size_t i = 0; i < actual.size() && i < expected.size(); ++i) {
    const double delta = static_cast<double>(actual[i]) - expected[i];
    difference += delta * delta;
    reference += static_cast<double>(expected[i]) * expected[i];
  }
  EXPECT_GT(reference, 0.0) << "the reference is all zeros: the comparison would prove nothing";
  return std::sqrt(difference / (reference > 0.0 ? reference : 1.0));
}

// Relative L2 bounds of the GPU tests: f32 kernels against the CPU's f32, bf16 kernels (inputs
// rounded to bf16, fp32 math, bf16 outputs) against the CPU's f32 on the same rounded inputs.
constexpr double kF32Tolerance = 1e-5;
constexpr double kBf16Tolerance = 1e-2;
inline double tolerance_for(DType dtype) {
  return dtype == DType::bf16 ? kBf16Tolerance : kF32Tolerance;
}

// The dtype's name for parameterized test names ("f32", "bf16").
inline std::string dtype_test_name(const ::testing::TestParamInfo<DType>& info) {
  return dtype_name(info.param);
}

}  // namespace ft::testing
