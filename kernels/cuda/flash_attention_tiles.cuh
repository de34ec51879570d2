// Building blocks of the tensor-core flash attention (flash_attention_cuda.cu: forward,
// flash_attention_backward_cuda.cu: dq and dk/dv): the problem's sizes and pointers, key tiles
// and the visibility rule, cp.async tile copies into padded shared rows, and ldmatrix loads of
// mma.sync fragments (layouts in mma_cuda.cuh). bf16 only, head_dim 64 or 128, sm_80 and later.
//
// Keys come in tiles: first the prefix rows [0, P) in tiles of their own, then the sequence keys
// [0, T), so that sequence tiles start at multiples of the tile size like the query tiles (the
// causal diagonal is one tile). Shared rows are padded by 8 bf16 (16 bytes): rows of 144 or 272
// bytes put the 8 rows one ldmatrix phase reads into 8 distinct groups of 4 banks.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string_view>
#include <utility>

#include "kernels/cpu/attention_cpu.h"
#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/mma_cuda.cuh"

namespace ft::cuda::flash {

using bfloat = __nv_bfloat16;
using mma::FragmentA;
using mma::FragmentB;
using mma::FragmentC;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kWarpRows = 16;                   // one mma strip per warp
constexpr int kBlockRows = kWarps * kWarpRows;  // query rows (forward, dq) or key rows (dk/dv)
constexpr int kRowPad = 8;                      // bf16 elements of padding per shared row
constexpr unsigned kFullMask = 0xffffffffu;

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <int kHeadDim>
constexpr int row_stride() {
  return kHeadDim + kRowPad;
}

__host__ __device__ constexpr int ceil_div(int a, int b) {
  return (a + b - 1) / b;
}

struct Params {
  const bfloat* q;         // (B, T, Hq, D)
  const bfloat* k;         // (B, T, Hkv, D)
  const bfloat* v;         // (B, T, Hkv, D)
  const bfloat* prefix_k;  // (P, Hkv, D), null when P == 0
  const bfloat* prefix_v;
  const int32_t* segments;  // (B, T) or null
  int seq_len, q_heads, kv_heads, prefix_len, group;
  bool causal;
  float scale;       // of the scores
  float scale_log2;  // scale * log2(e): scores in base-2 units, for exp2f
};

// Rows [first, first + tile rows) of the prefix (prefix = true) or of the sequence.
struct KeyTile {
  bool prefix;
  int first;
};

// Tile t of `prefix_tiles` prefix tiles followed by the sequence tiles, kKeys keys each.
template <int kKeys>
__device__ __forceinline__ KeyTile key_tile(int t, int prefix_tiles) {
  return t < prefix_tiles ? KeyTile{true, t * kKeys} : KeyTile{false, (t - prefix_tiles) * kKeys};
}

// The query rows of a forward or dq CTA (blockIdx: row tile, query head, batch row): with the
// causal mask the last row tiles have the most keys, so they start first. rows[half] are the
// fragment rows g and g + 8 of lane 4 g + q in warp `warp`'s 16-row strip.
struct QueryTile {
  int row0, h, b, kv_head;
  int rows[2];
};

__device__ __forceinline__ QueryTile query_tile(const Params& p, int warp, int lane) {
  QueryTile t;
  const int row_tile =
      p.causal ? static_cast<int>(gridDim.x - 1 - blockIdx.x) : static_cast<int>(blockIdx.x);
  t.row0 = row_tile * kBlockRows;
  t.h = static_cast<int>(blockIdx.y);
  t.b = static_cast<int>(blockIdx.z);
  t.kv_head = t.h / p.group;
  t.rows[0] = t.row0 + warp * kWarpRows + (lane >> 2);
  t.rows[1] = t.row0 + warp * kWarpRows + (lane >> 2) + 8;
  return t;
}

// The segment id of sequence position j of batch row b; 0 past the end or without segments.
__device__ __forceinline__ int32_t segment_at(const Params& p, int b, int j) {
  return p.segments != nullptr && j < p.seq_len
             ? p.segments[static_cast<int64_t>(b) * p.seq_len + j]
             : 0;
}

// Whether query i (of segment query_segment) sees row r of `tile`. key_segment() gives the key's
// segment id; it is called only for sequence keys with segment ids. Prefix rows are never masked;
// rows past the prefix or the sequence always are.
template <typename KeySegment>
__device__ __forceinline__ bool visible(const Params& p, const KeyTile& tile, int r, int i,
                                        KeySegment key_segment, int32_t query_segment) {
  const int index = tile.first + r;
  if (tile.prefix) return index < p.prefix_len;
  if (index >= p.seq_len) return false;
  if (p.causal && index > i) return false;
  return p.segments == nullptr || key_segment() == query_segment;
}

// The saved natural-log lse in base-2 units for exp2f; a row that saw nothing (-inf) gives +inf,
// so that its recomputed probabilities are 0 (as on the CPU).
__device__ __forceinline__ float lse_log2(float lse) {
  return lse == -INFINITY ? INFINITY : lse * kLog2e;
}

// Row `index` of head `head` of batch row b of a (B, T, heads, kHeadDim) tensor; null past T.
template <int kHeadDim>
__device__ __forceinline__ const bfloat* sequence_row(const bfloat* base, const Params& p, int b,
                                                      int index, int heads, int head) {
  if (index >= p.seq_len) return nullptr;
  return base + ((static_cast<int64_t>(b) * p.seq_len + index) * heads + head) * kHeadDim;
}

// Row r of `tile` of kv head kv_head: a prefix row or a sequence row of batch row b; null past
// the prefix or the sequence.
template <int kHeadDim>
__device__ __forceinline__ const bfloat* key_row(const bfloat* sequence, const bfloat* prefix,
                                                 const Params& p, const KeyTile& tile, int b,
                                                 int kv_head, int r) {
  const int index = tile.first + r;
  if (tile.prefix) {
    if (index >= p.prefix_len) return nullptr;
    return prefix + (static_cast<int64_t>(index) * p.kv_heads + kv_head) * kHeadDim;
  }
  return sequence_row<kHeadDim>(sequence, p, b, index, p.kv_heads, kv_head);
}

// Shared tile (kRows, kHeadDim), row stride row_stride<kHeadDim>(), = global rows row_of(r), copied
// by all kThreads threads in 16-byte cp.async chunks; a null row is zero-filled. `fallback` is a
// valid global address, passed (never read) for zero-filled chunks. The caller commits.
template <int kRows, int kHeadDim, typename RowOf>
__device__ __forceinline__ void copy_tile_async(bfloat* tile, RowOf row_of, const void* fallback) {
  constexpr int kChunks = kHeadDim / 8;
  static_assert(kRows * kChunks % kThreads == 0, "whole chunks per thread");
#pragma unroll
  for (int n = 0; n < kRows * kChunks / kThreads; ++n) {
    const int e = static_cast<int>(threadIdx.x) + n * kThreads;
    const int r = e / kChunks, chunk = e % kChunks;
    const bfloat* row = row_of(r);
    mma::copy_async_16(tile + r * row_stride<kHeadDim>() + chunk * 8,
                       row != nullptr ? static_cast<const void*>(row + chunk * 8) : fallback,
                       row != nullptr);
  }
}

// The key tiles (kKeys rows each) that query rows [row0, row0 + kBlockRows) walk: the prefix
// tiles, then the sequence tiles (up to the diagonal with the causal mask).
template <int kKeys>
__device__ __forceinline__ int key_tile_count(const Params& p, int prefix_tiles, int row0) {
  const int last_row = min(row0 + kBlockRows, p.seq_len) - 1;
  const int sequence_tiles = p.causal ? last_row / kKeys + 1 : ceil_div(p.seq_len, kKeys);
  return prefix_tiles + sequence_tiles;
}

// Key tile t of kv head kv_head, batch row b, into stage `stage` of the double buffers:
// kv_tiles [stage][K, V] (kKeys, row_stride) and, for sequence tiles, key_segments [stage][key].
// Commits its copy group.
template <int kKeys, int kHeadDim>
__device__ __forceinline__ void load_key_tile(bfloat* kv_tiles, int32_t* key_segments,
                                              const Params& p, int prefix_tiles, int b, int kv_head,
                                              int t, int stage) {
  constexpr int kTileElements = kKeys * row_stride<kHeadDim>();
  const KeyTile tile = key_tile<kKeys>(t, prefix_tiles);
  bfloat* k_tile = kv_tiles + 2 * stage * kTileElements;
  copy_tile_async<kKeys, kHeadDim>(
      k_tile, [&](int r) { return key_row<kHeadDim>(p.k, p.prefix_k, p, tile, b, kv_head, r); },
      p.k);
  copy_tile_async<kKeys, kHeadDim>(
      k_tile + kTileElements,
      [&](int r) { return key_row<kHeadDim>(p.v, p.prefix_v, p, tile, b, kv_head, r); }, p.v);
  if (threadIdx.x < kKeys && !tile.prefix) {
    key_segments[stage * kKeys + threadIdx.x] =
        segment_at(p, b, tile.first + static_cast<int>(threadIdx.x));
  }
  mma::copy_async_commit();
}

// One step of a double-buffered walk over tile_count tiles (key tiles, or the dk/dv kernel's query
// steps): issues tile t + 1 into the other stage with load(t + 1, stage), whose buffers were last
// read before the previous tile's barrier, then makes tile t (stage t & 1) visible to the CTA.
template <typename LoadTile>
__device__ __forceinline__ void next_tile(int t, int tile_count, const LoadTile& load) {
  if (t + 1 < tile_count) {
    load(t + 1, (t & 1) ^ 1);
    mma::copy_async_wait<1>();
  } else {
    mma::copy_async_wait<0>();
  }
  __syncthreads();
}

// ---- ldmatrix fragment loads (mma::ldmatrix_x4) ----------------------------------------------
// The A fragment of rows [row0, row0 + 16) x columns [col0, col0 + 16) of a row-major shared
// matrix. Matrices: 0 = (rows +0, cols +0) -> a[0], 1 = (+8, +0) -> a[1], 2 = (+0, +8) -> a[2],
// 3 = (+8, +8) -> a[3]; lane l addresses row l % 8 of matrix l / 8.
__device__ __forceinline__ FragmentA load_a(const bfloat* m, int stride, int row0, int col0) {
  const int lane = static_cast<int>(threadIdx.x & 31), matrix = lane >> 3;
  const bfloat* row =
      m + (row0 + (lane & 7) + (matrix & 1) * 8) * stride + col0 + (matrix >> 1) * 8;
  FragmentA a;
  mma::ldmatrix_x4(a.reg[0], a.reg[1], a.reg[2], a.reg[3], row);
  return a;
}

// The B fragments of B = M^T (B[k][n] = M[n][k], M row-major (n, k) in shared memory) for the n
// tiles [n0, n0 + 8) (lo) and [n0 + 8, n0 + 16) (hi), k in [k0, k0 + 16): b[0] holds k pairs
// 2q, 2q + 1 of row n0 + g of M, b[1] pairs 8 + 2q, 9 + 2q. Matrices: 0 = (n +0, k +0) -> lo[0],
// 1 = (+0, +8) -> lo[1], 2 = (+8, +0) -> hi[0], 3 = (+8, +8) -> hi[1].
__device__ __forceinline__ void load_b_transposed_pair(const bfloat* m, int stride, int n0, int k0,
                                                       FragmentB& lo, FragmentB& hi) {
  const int lane = static_cast<int>(threadIdx.x & 31), matrix = lane >> 3;
  const bfloat* row = m + (n0 + (lane & 7) + (matrix >> 1) * 8) * stride + k0 + (matrix & 1) * 8;
  mma::ldmatrix_x4(lo.reg[0], lo.reg[1], hi.reg[0], hi.reg[1], row);
}

// The B fragments of B = M (M row-major (k, n) in shared memory) for the n tiles [n0, n0 + 8)
// (lo) and [n0 + 8, n0 + 16) (hi), k rows [k0, k0 + 16): the transposing ldmatrix gives lane
// 4 g + q the column g, rows 2q and 2q + 1 of each 8x8 matrix. Matrices: 0 = (k +0, n +0) ->
// lo[0], 1 = (+8, +0) -> lo[1], 2 = (+0, +8) -> hi[0], 3 = (+8, +8) -> hi[1].
__device__ __forceinline__ void load_b_pair(const bfloat* m, int stride, int k0, int n0,
                                            FragmentB& lo, FragmentB& hi) {
  const int lane = static_cast<int>(threadIdx.x & 31), matrix = lane >> 3;
  const bfloat* row = m + (k0 + (lane & 7) + (matrix & 1) * 8) * stride + n0 + (matrix >> 1) * 8;
  mma::ldmatrix_x4_trans(lo.reg[0], lo.reg[1], hi.reg[0], hi.reg[1], row);
}

// acc[0 .. kNTiles) (a 16 x 8 kNTiles strip) += A B over k in [0, kDepth): a_slice(s) gives the
// A fragment of k columns [16 s, 16 s + 16), load_b_pair(s, pair, lo, hi) the B fragments of those
// k rows and n tiles 2 pair, 2 pair + 1.
template <int kNTiles, int kDepth, typename ASlice, typename LoadBPair>
__device__ __forceinline__ void multiply(FragmentC (&acc)[kNTiles], ASlice a_slice,
                                         LoadBPair load_b_pair) {
  static_assert(kNTiles % 2 == 0 && kDepth % 16 == 0, "whole fragment pairs");
#pragma unroll
  for (int slice = 0; slice < kDepth / 16; ++slice) {
    const FragmentA fragment = a_slice(slice);
#pragma unroll
    for (int pair = 0; pair < kNTiles / 2; ++pair) {
      FragmentB lo, hi;
      load_b_pair(slice, pair, lo, hi);
      mma::mma_bf16(acc[2 * pair], fragment, lo);
      mma::mma_bf16(acc[2 * pair + 1], fragment, hi);
    }
  }
}

// acc += A M^T: the S = Q K^T pattern. a_slice(s) gives the A fragment of k columns
// [16 s, 16 s + 16) (from registers or shared memory); M is a shared row-major (8 kNTiles, kDepth)
// matrix.
template <int kNTiles, int kDepth, typename ASlice>
__device__ __forceinline__ void multiply_by_transposed(FragmentC (&acc)[kNTiles], ASlice a_slice,
                                                       const bfloat* m, int m_stride) {
  multiply<kNTiles, kDepth>(acc, a_slice, [&](int slice, int pair, FragmentB& lo, FragmentB& hi) {
    load_b_transposed_pair(m, m_stride, pair * 16, slice * 16, lo, hi);
  });
}

// acc += P M, P (16 x kDepth) given as C fragments p[0 .. kDepth / 8) (rounded to bf16 here) and M
// a shared row-major (kDepth, 8 kNTiles) matrix: the O += P V pattern.
template <int kNTiles, int kDepth>
__device__ __forceinline__ void multiply_probabilities(FragmentC (&acc)[kNTiles],
                                                       const FragmentC (&p)[kDepth / 8],
                                                       const bfloat* m, int m_stride) {
  multiply<kNTiles, kDepth>(
      acc, [&](int slice) { return mma::c_pair_as_a(p[2 * slice], p[2 * slice + 1]); },
      [&](int slice, int pair, FragmentB& lo, FragmentB& hi) {
        load_b_pair(m, m_stride, slice * 16, pair * 16, lo, hi);
      });
}

// ---- host side --------------------------------------------------------------------------------
inline Params make_params(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& prefix_k,
                          const Tensor& prefix_v, const Tensor& segment_ids,
                          const cpu::AttentionDims& dims, bool causal, double scale) {
  Params p;
  p.q = data<bfloat>(q);
  p.k = data<bfloat>(k);
  p.v = data<bfloat>(v);
  p.prefix_k = dims.prefix_len > 0 ? data<bfloat>(prefix_k) : nullptr;
  p.prefix_v = dims.prefix_len > 0 ? data<bfloat>(prefix_v) : nullptr;
  p.segments = data_or_null<int32_t>(segment_ids);
  p.seq_len = static_cast<int>(dims.seq_len);
  p.q_heads = static_cast<int>(dims.q_heads);
  p.kv_heads = static_cast<int>(dims.kv_heads);
  p.prefix_len = static_cast<int>(dims.prefix_len);
  p.group = static_cast<int>(dims.q_heads / dims.kv_heads);
  p.causal = causal;
  p.scale = static_cast<float>(scale);
  p.scale_log2 = static_cast<float>(scale * 1.4426950408889634);
  return p;
}

// Grid limits of the launches: batch rows and heads are grid z and y.
inline void check_grid(std::string_view op, const cpu::AttentionDims& dims) {
  if (dims.batch > 65535 || dims.q_heads > 65535) {
    fail("op {}: batch {} and q_heads {} must each be at most 65535 on CUDA (grid limits)", op,
         dims.batch, dims.q_heads);
  }
}

}  // namespace ft::cuda::flash
