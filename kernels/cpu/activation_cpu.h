// MLP activations, elementwise over `count` values. Outputs may alias inputs of the same index.
#pragma once

#include <cstdint>

namespace ft::cpu {

// SwiGLU: out = silu(gate) * up, silu(g) = g * sigmoid(g).
template <typename scalar_t>
void swiglu_forward(scalar_t* out, const scalar_t* gate, const scalar_t* up, int64_t count,
                    int threads);
// dgate, dup overwritten.
template <typename scalar_t>
void swiglu_backward(scalar_t* dgate, scalar_t* dup, const scalar_t* dout, const scalar_t* gate,
                     const scalar_t* up, int64_t count, int threads);

// GELU, tanh approximation (GPT-2's gelu_new).
template <typename scalar_t>
void gelu_forward(scalar_t* out, const scalar_t* x, int64_t count, int threads);
// dx overwritten.
template <typename scalar_t>
void gelu_backward(scalar_t* dx, const scalar_t* dout, const scalar_t* x, int64_t count,
                   int threads);

}  // namespace ft::cpu
