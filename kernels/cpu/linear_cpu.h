// Fully connected layer on BLAS: x (rows, in), weight (out, in) in PyTorch's layout.
#pragma once

#include <cstdint>

namespace ft::cpu {

// out (rows, out_features) = x weight^T + bias; bias may be null.
template <typename scalar_t>
void linear_forward(scalar_t* out, const scalar_t* x, const scalar_t* weight, const scalar_t* bias,
                    int64_t rows, int64_t in_features, int64_t out_features, int threads);
// dx (rows, in) = dout weight, overwritten.
template <typename scalar_t>
void linear_backward_input(scalar_t* dx, const scalar_t* dout, const scalar_t* weight, int64_t rows,
                           int64_t in_features, int64_t out_features);
// dweight (out, in) += dout^T x.
template <typename scalar_t>
void linear_backward_weight(scalar_t* dweight, const scalar_t* dout, const scalar_t* x,
                            int64_t rows, int64_t in_features, int64_t out_features);
// dbias (out) += column sums of dout (rows, out).
template <typename scalar_t>
void linear_backward_bias(scalar_t* dbias, const scalar_t* dout, int64_t rows, int64_t out_features,
                          int threads);

}  // namespace ft::cpu
