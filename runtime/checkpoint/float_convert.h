// Internal to runtime/checkpoint: conversion between the floating-point element types that
// checkpoints store and ft tensors hold, shared by the HDF5 and safetensors readers. Every value
// goes through double; f64 -> bf16 rounds through f32 (to nearest even).
#pragma once

#include <cstdint>

#include "runtime/tensor.h"

namespace ft::checkpoint::detail {

inline double to_double(float value) {
  return value;
}
inline double to_double(double value) {
  return value;
}
inline double to_double(bf16 value) {
  return bf16_to_float(value);
}

template <typename T>
T from_double(double value);
template <>
inline float from_double<float>(double value) {
  return static_cast<float>(value);
}
template <>
inline double from_double<double>(double value) {
  return value;
}
template <>
inline bf16 from_double<bf16>(double value) {
  return float_to_bf16(static_cast<float>(value));
}

// One element. A stored type with a to_double overload of its own (found by argument-dependent
// lookup, e.g. safetensors' F16) converts as well.
template <typename Destination, typename Source>
Destination convert_float(Source value) {
  return from_double<Destination>(to_double(value));
}

// Calls visit(t.ptr<T>()) with T = float, double or bf16 as t.dtype says, and returns true; a
// non-float dtype calls nothing and returns false.
template <typename Visit>
bool visit_float_data(const Tensor& t, Visit&& visit) {
  switch (t.dtype) {
    case DType::f32:
      visit(t.ptr<float>());
      return true;
    case DType::f64:
      visit(t.ptr<double>());
      return true;
    case DType::bf16:
      visit(t.ptr<bf16>());
      return true;
    case DType::i32:
    case DType::i8:
    case DType::f8e4m3:  // quantized weights: no conversions to or from them here
      break;
  }
  return false;
}

}  // namespace ft::checkpoint::detail
