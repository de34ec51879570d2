// Internal to runtime/checkpoint: the element types a safetensors file can hold, and the
// conversion of stored elements into ft tensors (used by SafetensorsReader::read).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "runtime/tensor.h"

namespace ft::checkpoint::detail {

struct SafetensorsDType {
  const char* name;  // as in the file: "F32", "BF16", "F8_E4M3", ...
  int bits;          // per element; F4 and F6 are narrower than a byte
  int order;         // position in the library's Dtype enum; its writer puts higher orders first
};

// The entry for a stored dtype name, or nullptr when the name is unknown.
const SafetensorsDType* find_safetensors_dtype(std::string_view name);
// "BOOL, F4, ..., U64", for error messages.
std::string known_safetensors_dtypes();
// The stored name of an ft dtype: f32 -> "F32", f64 -> "F64", bf16 -> "BF16", i32 -> "I32".
const SafetensorsDType& safetensors_dtype_of(DType dtype);

// Converts `count` stored elements (raw little-endian bytes) into destination elements
// [first, first + count).
using ElementConverter =
    std::function<void(const unsigned char* bytes, int64_t first, int64_t count)>;

// A converter from `stored` elements into dst (CPU): F32, F64, BF16 and F16 into f32, f64 or bf16
// (rounding to nearest even; F64 -> bf16 rounds through f32); BOOL, U8..U64 and I8..I64 into i32.
// nullptr when the pair is not supported. A value out of i32 range (or a BOOL byte other than 0
// and 1) throws ft::Error naming `file`, `tensor` and the element index.
ElementConverter make_element_converter(std::string_view stored, const Tensor& dst,
                                        const std::string& file, const std::string& tensor);

// IEEE binary16 bits -> float (exact).
float half_to_float(uint16_t bits);

}  // namespace ft::checkpoint::detail
