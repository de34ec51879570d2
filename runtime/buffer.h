// Owning memory. A Buffer is one allocation on one device (64-byte aligned and zeroed on the host);
// an Arena hands out tensor views from a Buffer by bumping an offset. Arenas are planned at
// start-up: run the same binding code once against Arena::measuring() to learn the size, then
// against a real Arena of that size. Nothing is allocated inside a training step.
#pragma once

#include <cstddef>

#include "runtime/tensor.h"

namespace ft {

class Buffer {
 public:
  Buffer() = default;
  Buffer(Device device, size_t bytes);
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  // A view of `shape` elements of `dtype` starting `offset_bytes` into the buffer.
  Tensor view(DType dtype, Shape shape, size_t offset_bytes = 0) const;

 private:
  void release();
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_ = Device::cpu;
};

class Arena {
 public:
  static constexpr size_t kAlignment = 64;

  // An arena that only counts: take() returns empty views and used() grows.
  static Arena measuring(Device device = Device::cpu);
  Arena(Device device, size_t capacity_bytes);

  // The next `shape` elements of `dtype`. Throws, naming `what`, if the plan was too small.
  Tensor take(DType dtype, Shape shape, const char* what = "activation");
  size_t used() const { return used_; }
  size_t capacity() const { return buffer_.bytes(); }
  Device device() const { return device_; }
  bool is_measuring() const { return measuring_; }
  // Forget every view handed out (the memory stays).
  void reset() { used_ = 0; }

 private:
  Arena() = default;
  Buffer buffer_;
  Device device_ = Device::cpu;
  size_t used_ = 0;
  bool measuring_ = false;
};

}  // namespace ft
