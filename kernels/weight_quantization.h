// Per-output-channel weight quantization for frozen weights (kernels/frozen_linear_ops.h), shared
// by the CPU (kernels/cpu/frozen_linear_cpu.cpp) and the GPU (kernels/cuda/frozen_linear_cuda.cu)
// so both produce the same bytes: every step is an IEEE-exact f32 operation (max, a correctly
// rounded division, round-to-nearest-even) or integer bit manipulation.
//
// A row w of W (Out, In) is stored as q = quantize(w / scale) with scale = absmax(w) / qmax, and
// read back as scale * q:
//   int8:  qmax = 127, q = round-to-nearest-even, clamped to [-127, 127];
//   e4m3:  qmax = 448, q = the nearest E4M3 value (ties to even), saturated to +-448.
// A row of zeros gets scale 0 and q = 0. NaN elements quantize to 0 (int8) or E4M3 NaN.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define FT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FT_HOST_DEVICE inline
#endif

namespace ft::quant {

constexpr float kInt8Max = 127.0f;
constexpr float kE4m3Max = 448.0f;
constexpr uint8_t kE4m3MaxBits = 0x7e;  // 0 1111 110 = 1.75 * 2^8 = 448
constexpr uint8_t kE4m3NanBits = 0x7f;  // 0 1111 111

// a / b, correctly rounded on both sides (nvcc's default division is too, but not under
// --use_fast_math).
FT_HOST_DEVICE float divide(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
// Round to the nearest integer, ties to even (the default rounding mode on the host).
FT_HOST_DEVICE float round_even(float value) {
#if defined(__CUDA_ARCH__)
  return rintf(value);
#else
  return std::nearbyint(value);
#endif
}
// The bits of `value` read as a To (std::bit_cast, which device code lacks; memcpy of a register
// compiles to a move on both sides).
template <typename To, typename From>
FT_HOST_DEVICE To bit_cast(From value) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast between types of different sizes");
  To result;
  std::memcpy(&result, &value, sizeof result);
  return result;
}

// The scale of a row with largest magnitude `absmax` (>= 0).
FT_HOST_DEVICE float int8_scale(float absmax) {
  return divide(absmax, kInt8Max);
}
FT_HOST_DEVICE float e4m3_scale(float absmax) {
  return divide(absmax, kE4m3Max);
}

// v = w / scale rounded to int8. scale == 0 (a zero row) gives 0.
FT_HOST_DEVICE int8_t quantize_int8(float w, float scale) {
  if (scale == 0.0f) return 0;
  float q = round_even(divide(w, scale));
  if (!(q == q)) return 0;  // NaN
  q = q > kInt8Max ? kInt8Max : q;
  q = q < -kInt8Max ? -kInt8Max : q;
  return static_cast<int8_t>(q);
}

// The E4M3 bits nearest to v (ties to even), saturated to +-448; NaN gives the NaN code.
FT_HOST_DEVICE uint8_t float_to_e4m3(float v) {
  const uint32_t bits = bit_cast<uint32_t>(v);
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return sign | kE4m3NanBits;
  const float a = bit_cast<float>(magnitude);
  if (a >= kE4m3Max) return sign | kE4m3MaxBits;  // includes infinity (saturation)
  if (a < 0.015625f) {
    // Below 2^-6, E4M3 is subnormal: code m (0..8) means m * 2^-9, and m = 8 is exactly the
    // smallest normal's code (exponent 1, mantissa 0). a * 512 is exact.
    return sign | static_cast<uint8_t>(round_even(a * 512.0f));
  }
  // Normal: keep 3 of the 23 mantissa bits, ties to even; a carry runs into the exponent, which
  // is right. Then rebias the exponent from 127 to 7: (e + 127) << 3 minus 120 << 3.
  const uint32_t rounded = (magnitude + 0x7ffffu + ((magnitude >> 20) & 1u)) >> 20;
  uint32_t code = rounded - (120u << 3);
  code = code > kE4m3MaxBits ? kE4m3MaxBits : code;  // a < 448 never rounds past 448; kept safe
  return sign | static_cast<uint8_t>(code);
}

FT_HOST_DEVICE uint8_t quantize_e4m3(float w, float scale) {
  if (scale == 0.0f) return 0;
  return float_to_e4m3(divide(w, scale));
}

// The value of E4M3 bits (exact in f32 and in bf16).
FT_HOST_DEVICE float e4m3_to_float(uint8_t code) {
  const uint32_t exponent = (code >> 3) & 0xfu, mantissa = code & 7u;
  float magnitude;
  if (exponent == 0) {
    magnitude = static_cast<float>(mantissa) * 0.001953125f;  // m * 2^-9
  } else if (exponent == 15 && mantissa == 7) {
    magnitude = bit_cast<float>(0x7fc00000u);  // NaN
  } else {
    magnitude = bit_cast<float>(((exponent + 120u) << 23) | (mantissa << 20));
  }
  return (code & 0x80u) ? -magnitude : magnitude;
}

}  // namespace ft::quant

#undef FT_HOST_DEVICE
