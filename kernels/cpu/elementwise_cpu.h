// Elementwise arithmetic and dtype conversion over `count` contiguous values.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ft::cpu {

// out = a + b; out may alias a or b.
template <typename scalar_t>
void add(scalar_t* out, const scalar_t* a, const scalar_t* b, int64_t count, int threads);
// x *= factor.
template <typename scalar_t>
void scale(scalar_t* x, double factor, int64_t count, int threads);
// dst = src converted; dst_t and src_t among float, double, bf16 (rounded to nearest even).
template <typename dst_t, typename src_t>
void cast(dst_t* dst, const src_t* src, int64_t count, int threads);
// All `bytes` bytes set to zero (0.0 in every float format).
void zero(void* data, size_t bytes, int threads);

}  // namespace ft::cpu
