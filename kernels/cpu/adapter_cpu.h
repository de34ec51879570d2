// Kernels of the PEFT adapters: ReLU and tanh (the prefix and prompt encoders), LoRA's inverted
// dropout with a counter-based mask, and column-block copies (prefix tuning's per-layer slices).
// Elementwise kernels run over `count` contiguous values; outputs may alias inputs of the same
// index.
#pragma once

#include <cmath>
#include <cstdint>

namespace ft::cpu {

// out = max(x, 0); NaN stays NaN.
template <typename scalar_t>
void relu_forward(scalar_t* out, const scalar_t* x, int64_t count, int threads);
// dx = dout where x > 0, else 0 (overwritten).
template <typename scalar_t>
void relu_backward(scalar_t* dx, const scalar_t* dout, const scalar_t* x, int64_t count,
                   int threads);

// out = tanh(x).
template <typename scalar_t>
void tanh_forward(scalar_t* out, const scalar_t* x, int64_t count, int threads);
// dx = dout * (1 - out^2) (overwritten), from the saved forward output.
template <typename scalar_t>
void tanh_backward(scalar_t* dx, const scalar_t* dout, const scalar_t* out, int64_t count,
                   int threads);

// ---- the dropout mask ----------------------------------------------------------------------
// Element i of a tensor is kept iff u(seed, i) >= p, with u in [0, 1) the 53 high bits of the
// (i + 1)-th output of a splitmix64 generator whose state starts at mix64(seed). Every backend
// must compute exactly these functions: the backward recomputes the forward's mask from the seed.

// splitmix64's output function (Steele, Lea and Flood 2014).
constexpr uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
constexpr uint64_t kSplitmix64Increment = 0x9e3779b97f4a7c15ull;

// The per-call generator state, computed once per call rather than once per element.
constexpr uint64_t dropout_stream(uint64_t seed) {
  return splitmix64_mix(seed);
}
// u(seed, i) * 2^53, an integer in [0, 2^53).
constexpr uint64_t dropout_draw(uint64_t stream, uint64_t index) {
  return splitmix64_mix(stream + kSplitmix64Increment * (index + 1)) >> 11;
}
// u >= p exactly when draw >= ceil(p * 2^53) (p * 2^53 is exact in double), so the mask needs
// only integer compares. p in [0, 1).
inline uint64_t dropout_threshold(double p) {
  return static_cast<uint64_t>(std::ceil(std::ldexp(p, 53)));
}
inline bool dropout_keeps(uint64_t stream, uint64_t threshold, uint64_t index) {
  return dropout_draw(stream, index) >= threshold;
}

// out = x / (1 - p) where the mask keeps the element, else 0. Also the backward (dx from dout):
// the op is linear in x with the same mask.
template <typename scalar_t>
void dropout(scalar_t* out, const scalar_t* x, double p, uint64_t seed, int64_t count, int threads);
// dropout of a column shard: x, out (rows, width) hold columns [col_offset, col_offset + width) of
// a (rows, full_cols) tensor and get its mask (element index row * full_cols + col_offset + j).
template <typename scalar_t>
void dropout_columns(scalar_t* out, const scalar_t* x, double p, uint64_t seed, int64_t rows,
                     int64_t width, int64_t col_offset, int64_t full_cols, int threads);

// ---- column blocks -------------------------------------------------------------------------
// dst (rows, width) = src (rows, src_cols)[:, offset : offset + width].
template <typename scalar_t>
void copy_columns(scalar_t* dst, const scalar_t* src, int64_t rows, int64_t width, int64_t src_cols,
                  int64_t offset, int threads);
// dst (rows, dst_cols)[:, offset : offset + width] += src (rows, width).
template <typename scalar_t>
void add_to_columns(scalar_t* dst, const scalar_t* src, int64_t rows, int64_t width,
                    int64_t dst_cols, int64_t offset, int threads);

}  // namespace ft::cpu
