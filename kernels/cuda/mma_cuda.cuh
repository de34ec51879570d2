// Tensor-core building blocks shared by the hand-written kernels (flash attention, the
// frozen-weight matmul): the warp-level bf16 mma.sync m16n8k16 with fp32 accumulation, bf16 pair
// packing, ldmatrix and cp.async. They need sm_80 or later; every architecture ft builds for has
// them (the Hopper build, sm_90a, runs them too).
//
// Fragment layouts of mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (PTX ISA, "Matrix
// Fragments for mma.m16n8k16"), with lane = 4 * group + quad (group = lane / 4 in [0, 8), quad =
// lane % 4):
//   A (16 x 16, row-major), 4 registers of 2 bf16:
//     a[0] = A[group    ][2 quad, 2 quad + 1]     a[1] = A[group + 8][2 quad, 2 quad + 1]
//     a[2] = A[group    ][2 quad + 8, + 9]        a[3] = A[group + 8][2 quad + 8, + 9]
//   B (16 x 8, k x n, "col": each column's k pairs are contiguous), 2 registers:
//     b[0] = B[2 quad, 2 quad + 1][group]         b[1] = B[2 quad + 8, + 9][group]
//   C, D (16 x 8, f32), 4 floats:
//     c[0], c[1] = C[group    ][2 quad, 2 quad + 1]
//     c[2], c[3] = C[group + 8][2 quad, 2 quad + 1]
// So a row-major (rows, k) matrix M gives A fragments from M directly, and B fragments of M^T
// (B[k][n] = M[n][k]) from M directly as well: both read 32-bit pairs along k. Two C tiles side by
// side (n 0..7 and 8..15) are, after packing to bf16, exactly one A fragment with k = 16: the
// flash-attention trick that feeds the probabilities back into the second product without
// shared memory.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace ft::cuda::mma {

struct FragmentA {
  uint32_t reg[4];
};
struct FragmentB {
  uint32_t reg[2];
};
struct FragmentC {
  float value[4] = {0.0f, 0.0f, 0.0f, 0.0f};
};

__device__ __forceinline__ int lane_group() {
  return (threadIdx.x & 31) >> 2;
}
__device__ __forceinline__ int lane_quad() {
  return threadIdx.x & 3;
}

// Two floats as a bf16 pair (lo in the low half: the element with the smaller index).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&pair);
}
__device__ __forceinline__ float2 unpack_bf16(uint32_t pair) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&pair));
}
// Two bf16 values at unrelated addresses (a strided column) as one pair.
__device__ __forceinline__ uint32_t pack_bf16_raw(__nv_bfloat16 lo, __nv_bfloat16 hi) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(lo)) |
         (static_cast<uint32_t>(__bfloat16_as_ushort(hi)) << 16);
}

// d = a b + d.
__device__ __forceinline__ void mma_bf16(FragmentC& d, const FragmentA& a, const FragmentB& b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d.value[0]), "+f"(d.value[1]), "+f"(d.value[2]), "+f"(d.value[3])
      : "r"(a.reg[0]), "r"(a.reg[1]), "r"(a.reg[2]), "r"(a.reg[3]), "r"(b.reg[0]), "r"(b.reg[1]));
#else
  __trap();  // never launched: the host selects these kernels only on sm_80 or later
#endif
}

// The A fragment of rows [row0, row0 + 16) x k columns [k0, k0 + 16) of a row-major bf16 matrix in
// shared memory with `stride` elements per row (stride even).
__device__ __forceinline__ FragmentA load_a(const __nv_bfloat16* m, int stride, int row0, int k0) {
  const int g = lane_group(), q = lane_quad();
  const __nv_bfloat16* top = m + (row0 + g) * stride + k0 + 2 * q;
  const __nv_bfloat16* bottom = top + 8 * stride;
  FragmentA a;
  a.reg[0] = *reinterpret_cast<const uint32_t*>(top);
  a.reg[1] = *reinterpret_cast<const uint32_t*>(bottom);
  a.reg[2] = *reinterpret_cast<const uint32_t*>(top + 8);
  a.reg[3] = *reinterpret_cast<const uint32_t*>(bottom + 8);
  return a;
}

// The B fragment for B = M^T restricted to n rows [n0, n0 + 8) of M and k columns [k0, k0 + 16),
// M row-major (n, k) in shared memory: B[k][n] = M[n][k].
__device__ __forceinline__ FragmentB load_b_transposed(const __nv_bfloat16* m, int stride, int n0,
                                                       int k0) {
  const int g = lane_group(), q = lane_quad();
  const __nv_bfloat16* row = m + (n0 + g) * stride + k0 + 2 * q;
  FragmentB b;
  b.reg[0] = *reinterpret_cast<const uint32_t*>(row);
  b.reg[1] = *reinterpret_cast<const uint32_t*>(row + 8);
  return b;
}

// The B fragment for B = M itself: M row-major (k, n) in shared memory, k rows [k0, k0 + 16), n
// columns [n0, n0 + 8). The k pairs are a column of M, so they are gathered element by element.
__device__ __forceinline__ FragmentB load_b(const __nv_bfloat16* m, int stride, int k0, int n0) {
  const int g = lane_group(), q = lane_quad();
  const __nv_bfloat16* column = m + (k0 + 2 * q) * stride + n0 + g;
  FragmentB b;
  b.reg[0] = pack_bf16_raw(column[0], column[stride]);
  b.reg[1] = pack_bf16_raw(column[8 * stride], column[9 * stride]);
  return b;
}

// Two C tiles of one 16-row strip, columns [0, 8) and [8, 16), as the A fragment of a k = 16 slice
// (each value rounded to bf16).
__device__ __forceinline__ FragmentA c_pair_as_a(const FragmentC& left, const FragmentC& right) {
  FragmentA a;
  a.reg[0] = pack_bf16(left.value[0], left.value[1]);
  a.reg[1] = pack_bf16(left.value[2], left.value[3]);
  a.reg[2] = pack_bf16(right.value[0], right.value[1]);
  a.reg[3] = pack_bf16(right.value[2], right.value[3]);
  return a;
}

// ldmatrix.x4: lanes 8m .. 8m + 7 give the addresses of the 8 rows (16 bytes each, 16-byte
// aligned) of 8x8 matrix m; register m receives matrix m in the mma layout: lane 4 g + q holds
// row g, columns 2q and 2q + 1 (the lower column in the low half). With .trans it holds rows 2q
// and 2q + 1 of column g instead (the transpose).
__device__ __forceinline__ void ldmatrix_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                                            const __nv_bfloat16* row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(address));
#else
  __trap();
#endif
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t& r0, uint32_t& r1, uint32_t& r2,
                                                  uint32_t& r3, const __nv_bfloat16* row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(address));
#else
  __trap();
#endif
}

// 16-byte asynchronous global -> shared copy (cp.async.cg: bypasses L1). When `valid` is false
// the 16 shared bytes are zero-filled and global memory is not read.
__device__ __forceinline__ void copy_async_16(void* shared, const void* global, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(shared));
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(address), "l"(global),
               "r"(bytes));
#else
  __trap();
#endif
}
__device__ __forceinline__ void copy_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
// Waits until at most `pending` committed groups are still in flight.
template <int pending>
__device__ __forceinline__ void copy_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending));
#endif
}

}  // namespace ft::cuda::mma
