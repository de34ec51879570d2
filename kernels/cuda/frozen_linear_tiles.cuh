// Tile machinery of the frozen-weight matmul (kernels/cuda/frozen_linear_cuda.cu): a CTA computes
// a 128 x 128 block of C = A B with 8 warps (2 along M x 4 along N, 64 x 32 each = 4 x 4 tiles of
// mma.sync m16n8k16), stepping k by 32 through a 3-stage cp.async pipeline. A is always a
// row-major bf16 (M, K) matrix (x, lora_xa, dout). B comes in two layouts:
//   "nk": B^T stored row-major (n, k), k contiguous: the forward's W (Out, In) and lora_b (Out, r);
//   "kn": B stored row-major (k, n), n contiguous: the backward's W (Out, In) with k = Out.
// Quantized weights (i8, E4M3) are copied as bytes into a staging tile and widened to bf16 in
// shared memory before the products (both formats are exact in bf16), optionally times a per-k-row
// scale (the backward folds the per-output-channel scale in there).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/cuda/mma_cuda.cuh"
#include "kernels/weight_quantization.h"

namespace ft::cuda::frozen {

using bfloat = __nv_bfloat16;

constexpr int kTileM = 128, kTileN = 128, kTileK = 32, kStages = 3;
constexpr int kWarps = 8, kThreads = kWarps * 32;
constexpr int kWarpM = 64,
              kWarpN = 32;  // warp (w / 4, w % 4) owns rows 64 (w / 4), cols 32 (w % 4)
// Padded row strides (elements). 80-byte rows ("nk" tiles, 128 x 32) and 272-byte rows ("kn"
// tiles, 32 x 128) put the 8 rows an ldmatrix phase reads in 8 distinct groups of 4 banks, and
// keep every 16-byte chunk 16-byte aligned for cp.async and ldmatrix.
constexpr int kNkStride = kTileK + 8;              // 40
constexpr int kKnStride = kTileN + 8;              // 136
constexpr int kTileElements = kTileM * kNkStride;  // 5120, >= kTileK * kKnStride (4352)
constexpr int kTileBytes = kTileElements * 2;      // one bf16 tile slot
constexpr int kStagingBytes = kTileN * kTileK;     // one byte-weight tile (either layout)
// Dynamic shared memory: A slots, B slots (bf16), then byte staging slots (quantized weights).
constexpr int kSharedBytesBf16 = 2 * kStages * kTileBytes;                         // 61440
constexpr int kSharedBytesQuantized = kSharedBytesBf16 + kStages * kStagingBytes;  // 73728

enum class WeightKind { bf16, i8, e4m3 };

__device__ __forceinline__ bfloat* a_slot(char* smem, int slot) {
  return reinterpret_cast<bfloat*>(smem + slot * kTileBytes);
}
__device__ __forceinline__ bfloat* b_slot(char* smem, int slot) {
  return reinterpret_cast<bfloat*>(smem + (kStages + slot) * kTileBytes);
}
__device__ __forceinline__ uint8_t* staging_slot(char* smem, int slot) {
  return reinterpret_cast<uint8_t*>(smem + kSharedBytesBf16 + slot * kStagingBytes);
}

// Which global row a tile row reads. interleaved (SwiGLU): tile rows alternate in groups of 8
// between two matrices (gate, up) over the same 64 rows, so that n-tiles 2j and 2j + 1 of a warp
// hold gate and up of the same output columns: tile row r -> matrix (r / 8) % 2, row
// row0 + 8 (r / 16) + r % 8.
struct TileRows {
  int64_t row0, rows;
  bool interleaved;
  __device__ __forceinline__ bool map(int r, int64_t& row, int& which) const {
    if (interleaved) {
      which = (r >> 3) & 1;
      row = row0 + (r >> 4) * 8 + (r & 7);
    } else {
      which = 0;
      row = row0 + r;
    }
    return row < rows;
  }
};

// cp.async of a tile of kRows rows of kChunksPerRow 16-byte chunks (kChunkElements elements of
// kElementBytes each) into dst rows of kDstStrideBytes, each thread taking every kThreads-th chunk:
// source(r, e, valid) gives the global address of tile row r's chunk starting at element e and
// sets valid (false: the chunk is zero-filled, the address only has to be mapped).
template <int kRows, int kChunksPerRow, int kElementBytes, int kDstStrideBytes, typename Source>
__device__ __forceinline__ void load_tile_chunks(void* dst, Source source) {
  constexpr int kChunkElements = 16 / kElementBytes;
  constexpr int kChunks = kRows * kChunksPerRow;
  static_assert(kChunks % kThreads == 0, "whole chunks per thread");
#pragma unroll
  for (int i = 0; i < kChunks / kThreads; ++i) {
    const int c = static_cast<int>(threadIdx.x) + i * kThreads;
    const int r = c / kChunksPerRow, e = (c % kChunksPerRow) * kChunkElements;
    bool valid;
    const char* src = source(r, e, valid);
    mma::copy_async_16(static_cast<char*>(dst) + r * kDstStrideBytes + e * kElementBytes, src,
                       valid);
  }
}

// cp.async of a 128 x 32 "nk" tile: tile row r, k [k0, k0 + 32) of the row-major (rows, ld)
// matrix `first` (or `second` for interleaved odd groups), elements of kElementBytes (2: bf16, 1:
// bytes) into dst rows of kDstStrideBytes. Rows past the end and k >= k_end are zero-filled;
// k_end must be a multiple of the 16-byte chunk (8 bf16, 16 bytes) so chunks are whole.
template <int kElementBytes, int kDstStrideBytes>
__device__ __forceinline__ void load_nk_tile(void* dst, const void* first, const void* second,
                                             int64_t ld, TileRows rows, int64_t k0, int64_t k_end) {
  load_tile_chunks<kTileN, kTileK * kElementBytes / 16, kElementBytes, kDstStrideBytes>(
      dst, [&](int r, int kc, bool& valid) {
        int64_t row;
        int which;
        valid = rows.map(r, row, which) && k0 + kc < k_end;
        const char* base = static_cast<const char*>(which ? second : first);
        return valid ? base + (row * ld + k0 + kc) * kElementBytes : base;
      });
}

// cp.async of a 32 x 128 "kn" tile: rows k [k0, k0 + 32) (< k_end), columns [n0, n0 + 128)
// (< n_end, a multiple of the chunk) of the row-major (k_end, ld) matrix.
template <int kElementBytes, int kDstStrideBytes>
__device__ __forceinline__ void load_kn_tile(void* dst, const void* matrix, int64_t ld, int64_t k0,
                                             int64_t k_end, int64_t n0, int64_t n_end) {
  load_tile_chunks<kTileK, kTileN * kElementBytes / 16, kElementBytes, kDstStrideBytes>(
      dst, [&](int r, int nc, bool& valid) {
        valid = k0 + r < k_end && n0 + nc < n_end;
        const char* base = static_cast<const char*>(matrix);
        return valid ? base + ((k0 + r) * ld + n0 + nc) * kElementBytes : base;
      });
}

template <WeightKind kind>
__device__ __forceinline__ float stored_value(uint32_t byte) {
  if constexpr (kind == WeightKind::i8) {
    return static_cast<float>(static_cast<int8_t>(static_cast<uint8_t>(byte)));
  } else {
    return quant::e4m3_to_float(static_cast<uint8_t>(byte));
  }
}

// 16 stored bytes at src -> 16 bf16 (value * scale, rounded to nearest) at dst (16-byte aligned).
// Byte i is element i (little-endian words).
template <WeightKind kind>
__device__ __forceinline__ void widen_16(bfloat* dst, const uint8_t* src, float scale) {
  const uint4 raw = *reinterpret_cast<const uint4*>(src);
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
  uint32_t packed[8];
#pragma unroll
  for (int w = 0; w < 4; ++w) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const uint32_t lo = (words[w] >> (16 * half)) & 0xffu;
      const uint32_t hi = (words[w] >> (16 * half + 8)) & 0xffu;
      packed[2 * w + half] =
          mma::pack_bf16(stored_value<kind>(lo) * scale, stored_value<kind>(hi) * scale);
    }
  }
  uint4* out = reinterpret_cast<uint4*>(dst);
  out[0] = make_uint4(packed[0], packed[1], packed[2], packed[3]);
  out[1] = make_uint4(packed[4], packed[5], packed[6], packed[7]);
}

using Accumulators = mma::FragmentC[4][4];  // [m16 tile][n8 tile] of a warp's 64 x 32

// acc += A (tile rows of this warp) B for one 32-deep k step. A matrices (rows 0-7, k 0-7),
// (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15) are a[0..3] of the fragment layout.
// B from an "nk" tile (kKnB false, 128 x 32, B^T rows n): matrices (n 0-7, k 0-7), (n 0-7,
// k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) are b[0], b[1] of n-tile 2p and b[0], b[1] of n-tile
// 2p + 1. B from a "kn" tile (kKnB true, 32 x 128): ldmatrix.trans of row-major (k, n) 8x8 blocks
// gives B fragments directly; matrices (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15),
// (k 8-15, n 8-15).
template <bool kKnB>
__device__ __forceinline__ void mma_step(Accumulators& acc, const bfloat* a_tile,
                                         const bfloat* b_tile, int warp_m, int warp_n) {
  const int lane = threadIdx.x & 31;
  const int a_row = (lane & 7) + ((lane >> 3) & 1) * 8, a_col = (lane >> 4) * 8;
  const int b_row = kKnB ? a_row : (lane & 7) + (lane >> 4) * 8;
  const int b_col = kKnB ? a_col : ((lane >> 3) & 1) * 8;
#pragma unroll
  for (int ks = 0; ks < kTileK; ks += 16) {
    mma::FragmentA a[4];
    mma::FragmentB b[4];
#pragma unroll
    for (int mi = 0; mi < 4; ++mi) {
      uint32_t(&reg)[4] = a[mi].reg;
      mma::ldmatrix_x4(reg[0], reg[1], reg[2], reg[3],
                       a_tile + (warp_m * kWarpM + mi * 16 + a_row) * kNkStride + ks + a_col);
    }
#pragma unroll
    for (int p = 0; p < 2; ++p) {
      uint32_t(&lo)[2] = b[2 * p].reg;
      uint32_t(&hi)[2] = b[2 * p + 1].reg;
      if constexpr (kKnB) {
        mma::ldmatrix_x4_trans(
            lo[0], lo[1], hi[0], hi[1],
            b_tile + (ks + b_row) * kKnStride + warp_n * kWarpN + p * 16 + b_col);
      } else {
        mma::ldmatrix_x4(lo[0], lo[1], hi[0], hi[1],
                         b_tile + (warp_n * kWarpN + p * 16 + b_row) * kNkStride + ks + b_col);
      }
    }
#pragma unroll
    for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) mma::mma_bf16(acc[mi][ni], a[mi], b[ni]);
    }
  }
}

// The k loop: acc += A B over k tiles [0, ceil(k_end / 32)), through the pipeline. The policy
// issues a stage's copies (load), returns the bf16 B tile of a landed stage (b_tile: for byte
// weights it widens the staging tile into B slot 0 and synchronizes) and runs the products
// (multiply). Ends with every copy landed and every thread past its last read of shared memory,
// so the caller may reuse it.
template <typename Policy>
__device__ __forceinline__ void k_loop(Accumulators& acc, char* smem, const Policy& policy,
                                       int64_t k_end) {
  const int64_t tiles = (k_end + kTileK - 1) / kTileK;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < tiles) policy.load(smem, s, s * kTileK);
    mma::copy_async_commit();  // empty groups too: the wait below counts groups
  }
  for (int64_t t = 0; t < tiles; ++t) {
    mma::copy_async_wait<kStages - 2>();  // this thread's copies of tile t have landed
    __syncthreads();  // everyone's have; everyone is done with tile t - 1's slot
    const int64_t next = t + kStages - 1;
    if (next < tiles) policy.load(smem, static_cast<int>(next % kStages), next * kTileK);
    mma::copy_async_commit();
    const int slot = static_cast<int>(t % kStages);
    policy.multiply(acc, a_slot(smem, slot), policy.b_tile(smem, slot, t * kTileK));
  }
  mma::copy_async_wait<0>();
  __syncthreads();
}

}  // namespace ft::cuda::frozen
