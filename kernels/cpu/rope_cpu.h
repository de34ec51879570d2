// Rotary position embedding, Hugging Face's rotate_half layout: element i of a head pairs with
// element i + head_dim / 2.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/ops.h"

namespace ft::cpu {

// inv_freq[i] = theta^(-2i / head_dim) for i < head_dim / 2, then Llama 3 scaling when
// scaling.factor > 0 (transformers' _compute_llama3_parameters). In double.
std::vector<double> rope_inverse_frequencies(int64_t head_dim, double theta,
                                             const ops::RopeScaling& scaling);

// cos, sin (max_positions, half_dim) of pos * inv_freq[i], computed in double.
template <typename scalar_t>
void rope_build_tables(scalar_t* cos, scalar_t* sin, int64_t max_positions, int64_t half_dim,
                       double theta, const ops::RopeScaling& scaling, int threads);

// In place on x (rows, heads, 2 * half_dim): x = x cos + rotate_half(x) sin, with
// rotate_half(x) = [-x2, x1]. positions (rows) index the tables; one outside [0, max_positions)
// throws ft::Error naming it, before anything is written.
template <typename scalar_t>
void rope_forward(scalar_t* x, const int32_t* positions, const scalar_t* cos, const scalar_t* sin,
                  int64_t rows, int64_t heads, int64_t half_dim, int64_t max_positions,
                  int threads);
// The inverse (transpose) rotation, in place on dx.
template <typename scalar_t>
void rope_backward(scalar_t* dx, const int32_t* positions, const scalar_t* cos, const scalar_t* sin,
                   int64_t rows, int64_t heads, int64_t half_dim, int64_t max_positions,
                   int threads);

}  // namespace ft::cpu
