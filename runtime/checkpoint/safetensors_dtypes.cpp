#include "runtime/checkpoint/safetensors_dtypes.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <type_traits>

#include "runtime/checkpoint/float_convert.h"

namespace ft::checkpoint::detail {

namespace {

// In the order of the library's Dtype enum (safetensors 0.8). Its writer sorts tensors by this
// order, descending (widest first, so every tensor starts aligned to its element size), then by
// name; ft's writer does the same to produce identical files.
constexpr SafetensorsDType kDTypes[] = {
    {"BOOL", 8, 0},    {"F4", 4, 1},          {"F6_E2M3", 6, 2},      {"F6_E3M2", 6, 3},
    {"U8", 8, 4},      {"I8", 8, 5},          {"F8_E5M2", 8, 6},      {"F8_E4M3", 8, 7},
    {"F8_E8M0", 8, 8}, {"F8_E4M3FNUZ", 8, 9}, {"F8_E5M2FNUZ", 8, 10}, {"I16", 16, 11},
    {"U16", 16, 12},   {"F16", 16, 13},       {"BF16", 16, 14},       {"I32", 32, 15},
    {"U32", 32, 16},   {"F32", 32, 17},       {"C64", 64, 18},        {"F64", 64, 19},
    {"I64", 64, 20},   {"U64", 64, 21},
};

constexpr bool orders_match_positions() {
  for (size_t i = 0; i < std::size(kDTypes); ++i)
    if (kDTypes[i].order != static_cast<int>(i)) return false;
  return true;
}
static_assert(orders_match_positions(), "kDTypes: order must equal the position");

struct Half {  // binary16 bits, a distinct type for overloading
  uint16_t bits;
};

// Found by argument-dependent lookup from convert_float (float_convert.h).
inline double to_double(Half value) {
  return half_to_float(value.bits);
}

template <typename T>
T load(const unsigned char* bytes, int64_t index) {
  T value;
  std::memcpy(&value, bytes + index * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return value;
}

template <typename Source, typename Destination>
ElementConverter float_converter(Destination* destination) {
  return [destination](const unsigned char* bytes, int64_t first, int64_t count) {
    for (int64_t i = 0; i < count; ++i)
      destination[first + i] = convert_float<Destination>(load<Source>(bytes, i));
  };
}

template <typename Source>
ElementConverter float_converter_into(const Tensor& dst) {
  ElementConverter converter;  // stays empty for a non-float dst
  visit_float_data(dst,
                   [&](auto* destination) { converter = float_converter<Source>(destination); });
  return converter;
}

// Integers into i32, failing on a value out of range (BOOL: on a byte other than 0 or 1).
template <typename Source>
ElementConverter integer_converter(int32_t* destination, std::string_view stored,
                                   const std::string& file, const std::string& tensor) {
  bool is_bool = stored == "BOOL";
  return [=](const unsigned char* bytes, int64_t first, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      Source value = load<Source>(bytes, i);
      bool fits;
      if constexpr (std::is_signed_v<Source>)
        fits = static_cast<int64_t>(value) >= std::numeric_limits<int32_t>::min() &&
               static_cast<int64_t>(value) <= std::numeric_limits<int32_t>::max();
      else
        fits = static_cast<uint64_t>(value) <=
               (is_bool ? 1u : static_cast<uint64_t>(std::numeric_limits<int32_t>::max()));
      if (!fits)
        fail("safetensors {}: tensor '{}' ({}): element {} is {}, which does not fit in {}", file,
             tensor, stored, first + i, value, is_bool ? "a BOOL (0 or 1)" : "i32");
      destination[first + i] = static_cast<int32_t>(value);
    }
  };
}

}  // namespace

const SafetensorsDType* find_safetensors_dtype(std::string_view name) {
  for (const SafetensorsDType& dtype : kDTypes)
    if (name == dtype.name) return &dtype;
  return nullptr;
}

std::string known_safetensors_dtypes() {
  std::string list;
  for (const SafetensorsDType& dtype : kDTypes) {
    if (!list.empty()) list += ", ";
    list += dtype.name;
  }
  return list;
}

const SafetensorsDType& safetensors_dtype_of(DType dtype) {
  const char* name = nullptr;
  switch (dtype) {
    case DType::f32:
      name = "F32";
      break;
    case DType::f64:
      name = "F64";
      break;
    case DType::bf16:
      name = "BF16";
      break;
    case DType::i32:
      name = "I32";
      break;
    case DType::i8:
      name = "I8";
      break;
    case DType::f8e4m3:
      name = "F8_E4M3";
      break;
  }
  const SafetensorsDType* found = name ? find_safetensors_dtype(name) : nullptr;
  if (!found) fail("safetensors: no stored dtype for ft dtype {}", static_cast<int>(dtype));
  return *found;
}

ElementConverter make_element_converter(std::string_view stored, const Tensor& dst,
                                        const std::string& file, const std::string& tensor) {
  if (stored == "F32") return float_converter_into<float>(dst);
  if (stored == "F64") return float_converter_into<double>(dst);
  if (stored == "BF16") return float_converter_into<bf16>(dst);
  if (stored == "F16") return float_converter_into<Half>(dst);
  if (dst.dtype != DType::i32) return nullptr;
  int32_t* out = dst.ptr<int32_t>();
  if (stored == "BOOL" || stored == "U8")
    return integer_converter<uint8_t>(out, stored, file, tensor);
  if (stored == "I8") return integer_converter<int8_t>(out, stored, file, tensor);
  if (stored == "U16") return integer_converter<uint16_t>(out, stored, file, tensor);
  if (stored == "I16") return integer_converter<int16_t>(out, stored, file, tensor);
  if (stored == "I32") return integer_converter<int32_t>(out, stored, file, tensor);
  if (stored == "U32") return integer_converter<uint32_t>(out, stored, file, tensor);
  if (stored == "I64") return integer_converter<int64_t>(out, stored, file, tensor);
  if (stored == "U64") return integer_converter<uint64_t>(out, stored, file, tensor);
  return nullptr;
}

float half_to_float(uint16_t bits) {
  uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  uint32_t result = exponent == 31 ? sign | 0x7f800000u | (mantissa << 13)  // inf, NaN
                                   : sign | ((exponent + 112) << 23) | (mantissa << 13);
  return std::bit_cast<float>(result);
}

}  // namespace ft::checkpoint::detail
