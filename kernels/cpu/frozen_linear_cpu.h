// The frozen-weight matmul on the CPU (the reference of kernels/frozen_linear_ops.h): products on
// BLAS with a dequantized weight, the epilogue in plain loops. f32 and f64.
#pragma once

#include <cstdint>

#include "kernels/frozen_linear_ops.h"
#include "runtime/tensor.h"

namespace ft::cpu {

// w (rows, cols) = scale[r] * q[r, c]. Stored: int8_t or f8e4m3.
template <typename scalar_t, typename Stored>
void dequantize_rows(scalar_t* w, const Stored* q, const float* scale, int64_t rows, int64_t cols,
                     int threads);

// q (rows, cols) and scale (rows) from w (rows, cols) per row (kernels/weight_quantization.h).
// Source: float or bf16; Stored: int8_t or f8e4m3.
template <typename Stored, typename Source>
void quantize_rows(Stored* q, float* scale, const Source* w, int64_t rows, int64_t cols,
                   int threads);

// One forward, the weights already dequantized. Optional pointers are null when absent.
template <typename scalar_t>
struct FrozenForward {
  scalar_t* out;             // (rows, out_features)
  scalar_t* pre_activation;  // gelu (rows, out_features); swiglu (2, rows, out_features)
  const scalar_t* x;         // (rows, in_features)
  const scalar_t* weight;    // (out_features, in_features)
  const scalar_t* up_weight;
  const scalar_t* bias;      // (out_features)
  const scalar_t* residual;  // (rows, out_features), may equal out
  const scalar_t* lora_xa;   // (rows, rank)
  const scalar_t* lora_b;    // (out_features, rank)
  double lora_scale;
  ops::FrozenEpilogue epilogue;
  int64_t rows, in_features, out_features, rank;
};
template <typename scalar_t>
void frozen_linear_forward(const FrozenForward<scalar_t>& f, int threads);

// dx (rows, in) = dout (rows, out) weight (out, in) [+ up_dout up_weight when up_dout is not null],
// overwritten.
template <typename scalar_t>
void frozen_linear_backward_input(scalar_t* dx, const scalar_t* dout, const scalar_t* weight,
                                  const scalar_t* up_dout, const scalar_t* up_weight, int64_t rows,
                                  int64_t in_features, int64_t out_features);

}  // namespace ft::cpu
