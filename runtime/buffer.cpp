#include "runtime/buffer.h"

#include <cstdlib>
#include <cstring>
#include <utility>

#include "runtime/device.h"

namespace ft {

Buffer::Buffer(Device device, size_t bytes) : bytes_(bytes), device_(device) {
  if (bytes == 0) return;
  if (device == Device::cpu) {
    size_t rounded = (bytes + Arena::kAlignment - 1) / Arena::kAlignment * Arena::kAlignment;
    data_ = std::aligned_alloc(Arena::kAlignment, rounded);
    FT_CHECK(data_ != nullptr, "out of host memory allocating {} bytes", bytes);
    std::memset(data_, 0, rounded);
  } else {
    data_ = device_allocate(bytes);
  }
}

Buffer::~Buffer() {
  release();
}

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)),
      device_(other.device_) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    device_ = other.device_;
  }
  return *this;
}

void Buffer::release() {
  if (!data_) return;
  if (device_ == Device::cpu) {
    std::free(data_);
  } else {
    device_free(data_);
  }
  data_ = nullptr;
  bytes_ = 0;
}

Tensor Buffer::view(DType dtype, Shape shape, size_t offset_bytes) const {
  size_t need = offset_bytes + static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  FT_CHECK(need <= bytes_, "view of {} {} at offset {} exceeds buffer of {} bytes",
           dtype_name(dtype), shape.str(), offset_bytes, bytes_);
  return Tensor(static_cast<char*>(data_) + offset_bytes, dtype, shape, device_);
}

Arena Arena::measuring(Device device) {
  Arena arena;
  arena.device_ = device;
  arena.measuring_ = true;
  return arena;
}

Arena::Arena(Device device, size_t capacity_bytes)
    : buffer_(device, capacity_bytes), device_(device) {}

Tensor Arena::take(DType dtype, Shape shape, const char* what) {
  size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  size_t offset = used_;
  used_ += (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (measuring_) return Tensor(nullptr, dtype, shape, device_);
  FT_CHECK(used_ <= buffer_.bytes(), "arena plan too small: {} {} {} needs {} bytes, {} left", what,
           dtype_name(dtype), shape.str(), bytes, buffer_.bytes() - offset);
  return buffer_.view(dtype, shape, offset);
}

}  // namespace ft
