// Tensor views: a pointer, a dtype, a device and a shape. A Tensor never owns memory; Buffer
// and Arena (both in runtime/buffer.h) do. Views are always contiguous, row-major.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "runtime/error.h"

namespace ft {

// i8 and f8e4m3 are 1-byte storage types for quantized frozen weights
// (kernels/frozen_linear_ops.h): no op computes in them; they are read with a per-row f32 scale.
enum class DType : uint8_t { f32, f64, bf16, i32, i8, f8e4m3 };
enum class Device : uint8_t { cpu, cuda };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
const char* device_name(Device device);

// bf16 storage type: the upper half of an IEEE float, rounded to nearest even on conversion.
struct bf16 {
  uint16_t bits = 0;
};
float bf16_to_float(bf16 value);
bf16 float_to_bf16(float value);

// fp8 storage type, OCP E4M3 ("e4m3fn", as CUDA's __nv_fp8_e4m3 and safetensors' F8_E4M3): 4
// exponent bits (bias 7), 3 mantissa bits, no infinities, largest finite value 448. The conversions
// live in kernels/weight_quantization.h.
struct f8e4m3 {
  uint8_t bits = 0;
};

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::f64;
}
template <>
constexpr DType dtype_of<bf16>() {
  return DType::bf16;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::i32;
}
template <>
constexpr DType dtype_of<int8_t>() {
  return DType::i8;
}
template <>
constexpr DType dtype_of<f8e4m3>() {
  return DType::f8e4m3;
}

constexpr int kMaxRank = 4;

struct Shape {
  std::array<int64_t, kMaxRank> dims{};
  int rank = 0;

  Shape() = default;
  Shape(std::initializer_list<int64_t> values);
  int64_t operator[](int axis) const { return dims[axis]; }
  int64_t numel() const;
  bool operator==(const Shape& other) const;
  std::string str() const;  // "(2, 3, 4)"
};

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::f32;
  Device device = Device::cpu;
  Shape shape;

  Tensor() = default;
  Tensor(void* data, DType dtype, Shape shape, Device device = Device::cpu)
      : data(data), dtype(dtype), device(device), shape(shape) {}

  bool empty() const { return data == nullptr; }
  int rank() const { return shape.rank; }
  int64_t dim(int axis) const;  // negative axes count from the end
  int64_t numel() const { return shape.numel(); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }

  template <typename T>
  T* ptr() const {
    FT_CHECK(dtype == dtype_of<T>(), "tensor holds {}, accessed as {}", dtype_name(dtype),
             dtype_name(dtype_of<T>()));
    return static_cast<T*>(data);
  }

  // Same memory, another shape with the same element count.
  Tensor reshape(Shape new_shape) const;
  // Rows [begin, end) along the first axis.
  Tensor slice(int64_t begin, int64_t end) const;
  // The whole tensor as one dimension.
  Tensor flat() const { return reshape({numel()}); }
  std::string describe() const;  // "f32 cpu (2, 3)"
};

}  // namespace ft
