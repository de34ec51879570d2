// Random bit patterns for the bit-exact round trips of the checkpoint formats (HDF5, safetensors):
// NaNs with payloads, infinities, denormals and -0 all included.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "runtime/tensor.h"

namespace ft::testing {

// `count` values of type T, each made of the low bits of a draw of mt19937_64(seed).
template <typename T, typename Bits>
std::vector<T> random_bit_patterns(size_t count, uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::vector<T> values(count);
  for (T& value : values) {
    Bits bits = static_cast<Bits>(generator());
    std::memcpy(static_cast<void*>(&value), &bits, sizeof(bits));
  }
  return values;
}

template <typename T>
std::vector<uint8_t> bytes_of(const std::vector<T>& values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(T));
  if (!bytes.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// For each shape, one tensor of each ft dtype (f32, f64, i32, bf16) of random bit patterns
// (seeds 10 + i, 20 + i, 30 + i and 40 + i for shape i), named "<prefix of its dtype><i>".
class RoundTripTensors {
 public:
  using Prefixes = std::map<DType, std::string>;
  using TensorCall = std::function<void(const std::string& name, const Tensor& tensor)>;

  RoundTripTensors(std::vector<Shape> shapes, Prefixes prefixes)
      : shapes_(std::move(shapes)), prefixes_(std::move(prefixes)) {
    for (size_t i = 0; i < shapes_.size(); ++i) {
      const size_t count = static_cast<size_t>(shapes_[i].numel());
      add(DType::f32, i, bytes_of(random_bit_patterns<float, uint32_t>(count, 10 + i)));
      add(DType::f64, i, bytes_of(random_bit_patterns<double, uint64_t>(count, 20 + i)));
      add(DType::i32, i, bytes_of(random_bit_patterns<int32_t, uint32_t>(count, 30 + i)));
      add(DType::bf16, i, bytes_of(random_bit_patterns<bf16, uint16_t>(count, 40 + i)));
    }
  }

  const std::vector<Shape>& shapes() const { return shapes_; }
  size_t size() const { return entries_.size(); }
  // The name of the tensor of `dtype` and shape i.
  std::string name(DType dtype, size_t i) const { return prefixes_.at(dtype) + std::to_string(i); }

  // Calls write(name, tensor) for every tensor, shape by shape (f32, f64, i32, bf16 for each).
  void write_each(const TensorCall& write) {
    for (Entry& entry : entries_)
      write(entry.name, Tensor(entry.source.data(), entry.dtype, shapes_[entry.shape_index]));
  }
  // Zeroes the tensors handed to write_each: a writer that kept pointers instead of copying
  // would then write zeros.
  void scribble_over_sources() {
    for (Entry& entry : entries_) std::fill(entry.source.begin(), entry.source.end(), 0);
  }
  // Calls read(name, dst) for every tensor with a fresh dst of its dtype and shape, and expects
  // dst's bytes to equal those written.
  void expect_each_read_back(const TensorCall& read) const {
    for (const Entry& entry : entries_) {
      const Shape& shape = shapes_[entry.shape_index];
      SCOPED_TRACE(entry.name + " of shape " + shape.str());
      std::vector<uint8_t> bytes(entry.expected.size());
      read(entry.name, Tensor(bytes.data(), entry.dtype, shape));
      EXPECT_EQ(bytes, entry.expected);
    }
  }

 private:
  struct Entry {
    std::string name;
    DType dtype;
    size_t shape_index;
    std::vector<uint8_t> expected;
    std::vector<uint8_t> source;  // what write_each hands out; scribble_over_sources zeroes it
  };

  void add(DType dtype, size_t i, std::vector<uint8_t> bytes) {
    entries_.push_back({name(dtype, i), dtype, i, bytes, bytes});
  }

  std::vector<Shape> shapes_;
  Prefixes prefixes_;
  std::vector<Entry> entries_;
};

}  // namespace ft::testing
