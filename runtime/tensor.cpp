#include "runtime/tensor.h"

#include <cstring>

namespace ft {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return 4;
    case DType::f64:
      return 8;
    case DType::bf16:
      return 2;
    case DType::i32:
      return 4;
    case DType::i8:
    case DType::f8e4m3:
      return 1;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "f32";
    case DType::f64:
      return "f64";
    case DType::bf16:
      return "bf16";
    case DType::i32:
      return "i32";
    case DType::i8:
      return "i8";
    case DType::f8e4m3:
      return "f8e4m3";
  }
  return "?";
}

const char* device_name(Device device) {
  return device == Device::cpu ? "cpu" : "cuda";
}

float bf16_to_float(bf16 value) {
  uint32_t bits = static_cast<uint32_t>(value.bits) << 16;
  float result;
  std::memcpy(&result, &bits, sizeof(result));
  return result;
}

bf16 float_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<uint16_t>((bits >> 16) | 0x40)};
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even
  return bf16{static_cast<uint16_t>(bits >> 16)};
}

Shape::Shape(std::initializer_list<int64_t> values) {
  FT_CHECK(values.size() <= kMaxRank, "rank {} exceeds {}", values.size(), kMaxRank);
  for (int64_t value : values) dims[rank++] = value;
}

int64_t Shape::numel() const {
  int64_t count = 1;
  for (int axis = 0; axis < rank; ++axis) count *= dims[axis];
  return count;
}

bool Shape::operator==(const Shape& other) const {
  if (rank != other.rank) return false;
  for (int axis = 0; axis < rank; ++axis)
    if (dims[axis] != other.dims[axis]) return false;
  return true;
}

std::string Shape::str() const {
  std::string text = "(";
  for (int axis = 0; axis < rank; ++axis) {
    if (axis) text += ", ";
    text += std::to_string(dims[axis]);
  }
  return text + ")";
}

int64_t Tensor::dim(int axis) const {
  if (axis < 0) axis += shape.rank;
  FT_CHECK(axis >= 0 && axis < shape.rank, "axis {} out of range for shape {}", axis, shape.str());
  return shape.dims[axis];
}

Tensor Tensor::reshape(Shape new_shape) const {
  FT_CHECK(new_shape.numel() == numel(), "cannot reshape {} to {}", shape.str(), new_shape.str());
  Tensor view = *this;
  view.shape = new_shape;
  return view;
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  FT_CHECK(shape.rank >= 1 && begin >= 0 && begin <= end && end <= shape.dims[0],
           "slice [{}, {}) out of range for shape {}", begin, end, shape.str());
  Tensor view = *this;
  int64_t row = numel() / (shape.dims[0] ? shape.dims[0] : 1);
  view.data = static_cast<char*>(data) + begin * row * dtype_size(dtype);
  view.shape.dims[0] = end - begin;
  return view;
}

std::string Tensor::describe() const {
  return std::string(dtype_name(dtype)) + " " + device_name(device) + " " + shape.str();
}

}  // namespace ft
