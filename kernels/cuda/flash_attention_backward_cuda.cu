// Tensor-core flash attention, backward: the dq kernel and the dk/dv kernel (design in
// flash_attention_cuda.h). Both recompute P = exp(S * scale - lse) from Q, K and the saved lse and
// take dS = P * (dP - delta), dP = dO V^T, delta = rowsum(dO * O) from the caller.
#include <cstdint>
#include <string_view>

#include "kernels/cuda/flash_attention_cuda.h"
#include "kernels/cuda/flash_attention_tiles.cuh"

namespace ft::cuda {
namespace flash {
namespace {

// Keys per tile of the dq kernel and query rows per step of the dk/dv kernel: 64 for head_dim 64;
// 32 for head_dim 128, where the (16, 128) fp32 accumulators (two of them in dk/dv) already take
// 64 registers each and 64-wide score strips would spill.
template <int kHeadDim>
constexpr int kInnerTile = kHeadDim == 64 ? 64 : 32;

template <int kHeadDim>
constexpr size_t dq_shared_bytes() {
  constexpr int kStride = row_stride<kHeadDim>();
  // Q and dO (64 rows), two stages of (K, V) tiles, two stages of key segment ids.
  return sizeof(bfloat) * (2 * kBlockRows + 4 * kInnerTile<kHeadDim>)*kStride +
         2 * sizeof(int32_t) * kInnerTile<kHeadDim>;
}
template <int kHeadDim>
constexpr size_t dkdv_shared_bytes() {
  constexpr int kStride = row_stride<kHeadDim>();
  // K and V (64 rows), two stages of (Q, dO) tiles, two stages of (lse, delta, segment ids).
  return sizeof(bfloat) * (2 * kBlockRows + 4 * kInnerTile<kHeadDim>)*kStride +
         2 * 3 * sizeof(float) * kInnerTile<kHeadDim>;
}

// Row `index` of the (B, Hq, T) statistics of head h, batch row b.
__device__ __forceinline__ int64_t stat_index(const Params& p, int b, int h, int index) {
  return (static_cast<int64_t>(b) * p.q_heads + h) * p.seq_len + index;
}

// One CTA per (64 query rows, query head, batch row), laid out as the forward's; walks the key
// tiles (kKeys each) with Q and dO in shared memory: dQ = scale sum dS K.
template <int kHeadDim, int kKeys>
__global__ void __launch_bounds__(kThreads)
    flash_dq_kernel(Params p, bfloat* dq, const bfloat* dout, const float* lse,
                    const float* delta) {
  constexpr int kStride = row_stride<kHeadDim>();
  constexpr int kRowElements = kBlockRows * kStride;
  constexpr int kTileElements = kKeys * kStride;
  constexpr int kKeyFragments = kKeys / 8;
  constexpr int kDimFragments = kHeadDim / 8;
  extern __shared__ __align__(16) unsigned char shared[];
  bfloat* q_rows = reinterpret_cast<bfloat*>(shared);
  bfloat* dout_rows = q_rows + kRowElements;
  bfloat* kv_tiles = dout_rows + kRowElements;  // [stage][K, V] (kKeys, kStride)
  int32_t* key_segments = reinterpret_cast<int32_t*>(kv_tiles + 4 * kTileElements);  // [stage][key]

  const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
  const int quad = lane & 3;
  const QueryTile query = query_tile(p, warp, lane);
  const int row0 = query.row0, h = query.h, b = query.b, kv_head = query.kv_head;
  const int(&rows)[2] = query.rows;
  int32_t query_segments[2];
  float row_lse[2], row_delta[2];  // lse in base-2 units
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const bool inside = rows[half] < p.seq_len;
    query_segments[half] = segment_at(p, b, rows[half]);
    // Rows past T get probability 0 (+inf lse): their dq is neither needed nor written.
    row_lse[half] = inside ? lse_log2(lse[stat_index(p, b, h, rows[half])]) : INFINITY;
    row_delta[half] = inside ? delta[stat_index(p, b, h, rows[half])] : 0.0f;
  }

  const int prefix_tiles = ceil_div(p.prefix_len, kKeys);
  const int tile_count = key_tile_count<kKeys>(p, prefix_tiles, row0);
  auto load = [&](int t, int stage) {
    load_key_tile<kKeys, kHeadDim>(kv_tiles, key_segments, p, prefix_tiles, b, kv_head, t, stage);
  };

  // Q and dO rows join the first key tile's copy group.
  copy_tile_async<kBlockRows, kHeadDim>(
      q_rows, [&](int r) { return sequence_row<kHeadDim>(p.q, p, b, row0 + r, p.q_heads, h); },
      p.q);
  copy_tile_async<kBlockRows, kHeadDim>(
      dout_rows, [&](int r) { return sequence_row<kHeadDim>(dout, p, b, row0 + r, p.q_heads, h); },
      dout);
  load(0, 0);

  FragmentC dq_acc[kDimFragments];
  const int strip = warp * kWarpRows;
  for (int t = 0; t < tile_count; ++t) {
    const int stage = t & 1;
    next_tile(t, tile_count, load);
    const bfloat* k_tile = kv_tiles + 2 * stage * kTileElements;
    const bfloat* v_tile = k_tile + kTileElements;
    const int32_t* tile_segments = key_segments + stage * kKeys;
    const KeyTile tile = key_tile<kKeys>(t, prefix_tiles);

    FragmentC s[kKeyFragments], dp[kKeyFragments];
    multiply_by_transposed<kKeyFragments, kHeadDim>(
        s, [&](int slice) { return load_a(q_rows, kStride, strip, slice * 16); }, k_tile, kStride);
    multiply_by_transposed<kKeyFragments, kHeadDim>(
        dp, [&](int slice) { return load_a(dout_rows, kStride, strip, slice * 16); }, v_tile,
        kStride);
    // s becomes dS = P * (dP - delta); masked keys 0.
#pragma unroll
    for (int n = 0; n < kKeyFragments; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int half = e >> 1, r = n * 8 + 2 * quad + (e & 1);
        const bool seen = visible(
            p, tile, r, rows[half], [&] { return tile_segments[r]; }, query_segments[half]);
        const float prob = seen ? exp2f(s[n].value[e] * p.scale_log2 - row_lse[half]) : 0.0f;
        s[n].value[e] = prob * (dp[n].value[e] - row_delta[half]);
      }
    }
    multiply_probabilities<kDimFragments, kKeys>(dq_acc, s, k_tile, kStride);
    __syncthreads();
  }

#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int i = rows[half];
    if (i >= p.seq_len) continue;
    bfloat* dq_row = dq + ((static_cast<int64_t>(b) * p.seq_len + i) * p.q_heads + h) * kHeadDim;
#pragma unroll
    for (int n = 0; n < kDimFragments; ++n) {
      *reinterpret_cast<uint32_t*>(dq_row + n * 8 + 2 * quad) = mma::pack_bf16(
          dq_acc[n].value[2 * half] * p.scale, dq_acc[n].value[2 * half + 1] * p.scale);
    }
  }
}

// One CTA per (64 keys, kv head, batch row): the first prefix_tiles tiles are prefix rows, the
// rest sequence keys. Warp w owns keys 16 w .. 16 w + 15 and computes the transposed products
// S^T = K Q^T and dP^T = V dO^T, so that P^T and dS^T come out as A fragments for
// dV += P^T dO and dK += dS^T Q. Steps walk (query head of the group, tile of kQueries queries),
// double-buffered. Sequence keys go to dk, dv (bf16); prefix rows to the f32 partials.
template <int kHeadDim, int kQueries>
__global__ void __launch_bounds__(kThreads)
    flash_dkdv_kernel(Params p, bfloat* dk, bfloat* dv, float* partial_dk, float* partial_dv,
                      const bfloat* dout, const float* lse, const float* delta, int prefix_tiles) {
  constexpr int kStride = row_stride<kHeadDim>();
  constexpr int kKeyElements = kBlockRows * kStride;
  constexpr int kStepElements = kQueries * kStride;
  constexpr int kQueryFragments = kQueries / 8;
  constexpr int kDimFragments = kHeadDim / 8;
  extern __shared__ __align__(16) unsigned char shared[];
  bfloat* k_rows = reinterpret_cast<bfloat*>(shared);
  bfloat* v_rows = k_rows + kKeyElements;
  bfloat* steps_tiles = v_rows + kKeyElements;  // [stage][Q, dO] (kQueries, kStride)
  // [stage][lse (base 2), delta, segment ids] of the step's queries.
  float* step_stats = reinterpret_cast<float*>(steps_tiles + 4 * kStepElements);

  const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
  const int quad = lane & 3;
  const KeyTile tile = key_tile<kBlockRows>(static_cast<int>(blockIdx.x), prefix_tiles);
  const int kv_head = static_cast<int>(blockIdx.y), b = static_cast<int>(blockIdx.z);
  const int strip = warp * kWarpRows;
  const int key_rows[2] = {strip + (lane >> 2), strip + (lane >> 2) + 8};  // within the tile
  const int32_t key_segments[2] = {tile.prefix ? 0 : segment_at(p, b, tile.first + key_rows[0]),
                                   tile.prefix ? 0 : segment_at(p, b, tile.first + key_rows[1])};

  // Queries that can see the keys: all for prefix rows and without the causal mask; else from
  // the tile's first key on (tile.first is a multiple of 64, so of kQueries).
  const int query_tiles = ceil_div(p.seq_len, kQueries);
  const int first_query_tile = !tile.prefix && p.causal ? tile.first / kQueries : 0;
  const int tiles_per_head = query_tiles - first_query_tile;
  const int steps = p.group * tiles_per_head;

  auto load = [&](int step, int stage) {
    const int h = kv_head * p.group + step / tiles_per_head;
    const int q0 = (first_query_tile + step % tiles_per_head) * kQueries;
    bfloat* q_tile = steps_tiles + 2 * stage * kStepElements;
    copy_tile_async<kQueries, kHeadDim>(
        q_tile, [&](int r) { return sequence_row<kHeadDim>(p.q, p, b, q0 + r, p.q_heads, h); },
        p.q);
    copy_tile_async<kQueries, kHeadDim>(
        q_tile + kStepElements,
        [&](int r) { return sequence_row<kHeadDim>(dout, p, b, q0 + r, p.q_heads, h); }, dout);
    if (threadIdx.x < kQueries) {
      const int x = static_cast<int>(threadIdx.x), i = q0 + x;
      const bool inside = i < p.seq_len;
      float* stats = step_stats + stage * 3 * kQueries;
      stats[x] = inside ? lse_log2(lse[stat_index(p, b, h, i)]) : INFINITY;
      stats[kQueries + x] = inside ? delta[stat_index(p, b, h, i)] : 0.0f;
      reinterpret_cast<int32_t*>(stats + 2 * kQueries)[x] = segment_at(p, b, i);
    }
    mma::copy_async_commit();
  };

  // K and V join the first step's copy group.
  copy_tile_async<kBlockRows, kHeadDim>(
      k_rows, [&](int r) { return key_row<kHeadDim>(p.k, p.prefix_k, p, tile, b, kv_head, r); },
      p.k);
  copy_tile_async<kBlockRows, kHeadDim>(
      v_rows, [&](int r) { return key_row<kHeadDim>(p.v, p.prefix_v, p, tile, b, kv_head, r); },
      p.v);
  if (steps > 0) {
    load(0, 0);
  } else {
    mma::copy_async_commit();
  }

  FragmentC dk_acc[kDimFragments], dv_acc[kDimFragments];
  for (int step = 0; step < steps; ++step) {
    const int stage = step & 1;
    next_tile(step, steps, load);
    const bfloat* q_tile = steps_tiles + 2 * stage * kStepElements;
    const bfloat* dout_tile = q_tile + kStepElements;
    const float* stats = step_stats + stage * 3 * kQueries;
    const float* query_lse = stats;
    const float* query_delta = stats + kQueries;
    const int32_t* query_segments = reinterpret_cast<const int32_t*>(stats + 2 * kQueries);
    const int q0 = (first_query_tile + step % tiles_per_head) * kQueries;

    // P^T (16 keys x kQueries) of this warp's keys.
    FragmentC pt[kQueryFragments];
    multiply_by_transposed<kQueryFragments, kHeadDim>(
        pt, [&](int slice) { return load_a(k_rows, kStride, strip, slice * 16); }, q_tile, kStride);
#pragma unroll
    for (int n = 0; n < kQueryFragments; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int half = e >> 1, x = n * 8 + 2 * quad + (e & 1), i = q0 + x;
        const bool seen =
            i < p.seq_len &&
            visible(
                p, tile, key_rows[half], i, [&] { return key_segments[half]; }, query_segments[x]);
        pt[n].value[e] = seen ? exp2f(pt[n].value[e] * p.scale_log2 - query_lse[x]) : 0.0f;
      }
    }
    multiply_probabilities<kDimFragments, kQueries>(dv_acc, pt, dout_tile, kStride);

    // dS^T = P^T * (dP^T - delta), dP^T = V dO^T.
    FragmentC dst[kQueryFragments];
    multiply_by_transposed<kQueryFragments, kHeadDim>(
        dst, [&](int slice) { return load_a(v_rows, kStride, strip, slice * 16); }, dout_tile,
        kStride);
#pragma unroll
    for (int n = 0; n < kQueryFragments; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int x = n * 8 + 2 * quad + (e & 1);
        dst[n].value[e] = pt[n].value[e] * (dst[n].value[e] - query_delta[x]);
      }
    }
    multiply_probabilities<kDimFragments, kQueries>(dk_acc, dst, q_tile, kStride);
    __syncthreads();
  }
  mma::copy_async_wait<0>();  // nothing in flight at exit, also without steps

#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int index = tile.first + key_rows[half];
    if (tile.prefix) {
      if (index >= p.prefix_len) continue;
      const int64_t offset =
          ((static_cast<int64_t>(b) * p.prefix_len + index) * p.kv_heads + kv_head) * kHeadDim;
#pragma unroll
      for (int n = 0; n < kDimFragments; ++n) {
        const int col = n * 8 + 2 * quad;
        if (partial_dk != nullptr) {
          *reinterpret_cast<float2*>(partial_dk + offset + col) = make_float2(
              dk_acc[n].value[2 * half] * p.scale, dk_acc[n].value[2 * half + 1] * p.scale);
        }
        if (partial_dv != nullptr) {
          *reinterpret_cast<float2*>(partial_dv + offset + col) =
              make_float2(dv_acc[n].value[2 * half], dv_acc[n].value[2 * half + 1]);
        }
      }
    } else {
      if (index >= p.seq_len) continue;
      const int64_t offset =
          ((static_cast<int64_t>(b) * p.seq_len + index) * p.kv_heads + kv_head) * kHeadDim;
#pragma unroll
      for (int n = 0; n < kDimFragments; ++n) {
        const int col = n * 8 + 2 * quad;
        *reinterpret_cast<uint32_t*>(dk + offset + col) = mma::pack_bf16(
            dk_acc[n].value[2 * half] * p.scale, dk_acc[n].value[2 * half + 1] * p.scale);
        *reinterpret_cast<uint32_t*>(dv + offset + col) =
            mma::pack_bf16(dv_acc[n].value[2 * half], dv_acc[n].value[2 * half + 1]);
      }
    }
  }
}

template <int kHeadDim>
void launch_backward(std::string_view op, const OpContext& ctx, const Params& p, bfloat* dq,
                     bfloat* dk, bfloat* dv, float* partial_dk, float* partial_dv,
                     const bfloat* dout, const float* lse, const float* delta,
                     const cpu::AttentionDims& dims) {
  constexpr int kInner = kInnerTile<kHeadDim>;
  const int seq_len = static_cast<int>(dims.seq_len);
  const unsigned batch = static_cast<unsigned>(dims.batch);

  auto dq_kernel = flash_dq_kernel<kHeadDim, kInner>;
  constexpr size_t dq_shared = dq_shared_bytes<kHeadDim>();
  allow_dynamic_shared(op, reinterpret_cast<const void*>(dq_kernel), dq_shared);
  const dim3 dq_grid(static_cast<unsigned>(ceil_div(seq_len, kBlockRows)),
                     static_cast<unsigned>(dims.q_heads), batch);
  launch_kernel(op, ctx, dq_kernel, dq_grid, kThreads, dq_shared, p, dq, dout, lse, delta);

  // Prefix tiles only when a prefix gradient is wanted.
  const bool prefix_grads = partial_dk != nullptr || partial_dv != nullptr;
  const int prefix_tiles = prefix_grads ? ceil_div(p.prefix_len, kBlockRows) : 0;
  auto dkdv_kernel = flash_dkdv_kernel<kHeadDim, kInner>;
  constexpr size_t dkdv_shared = dkdv_shared_bytes<kHeadDim>();
  allow_dynamic_shared(op, reinterpret_cast<const void*>(dkdv_kernel), dkdv_shared);
  const dim3 dkdv_grid(static_cast<unsigned>(prefix_tiles + ceil_div(seq_len, kBlockRows)),
                       static_cast<unsigned>(dims.kv_heads), batch);
  launch_kernel(op, ctx, dkdv_kernel, dkdv_grid, kThreads, dkdv_shared, p, dk, dv, partial_dk,
                partial_dv, dout, lse, delta, prefix_tiles);
}

}  // namespace
}  // namespace flash

void flash_attention_backward(const OpContext& ctx, Tensor dq, Tensor dk, Tensor dv,
                              float* partial_dk, float* partial_dv, Tensor dout, Tensor lse,
                              const float* delta, Tensor q, Tensor k, Tensor v, Tensor prefix_k,
                              Tensor prefix_v, Tensor segment_ids, const cpu::AttentionDims& dims,
                              bool causal, double scale) {
  constexpr std::string_view op = "attention_backward";
  flash::check_grid(op, dims);
  if (dims.batch * dims.seq_len * dims.q_heads == 0) return;
  const flash::Params p =
      flash::make_params(q, k, v, prefix_k, prefix_v, segment_ids, dims, causal, scale);
  if (dims.prefix_len == 0) partial_dk = partial_dv = nullptr;
  if (dims.head_dim == 64) {
    flash::launch_backward<64>(op, ctx, p, data<bfloat>(dq), data<bfloat>(dk), data<bfloat>(dv),
                               partial_dk, partial_dv, data<bfloat>(dout), data<float>(lse), delta,
                               dims);
  } else {
    flash::launch_backward<128>(op, ctx, p, data<bfloat>(dq), data<bfloat>(dk), data<bfloat>(dv),
                                partial_dk, partial_dv, data<bfloat>(dout), data<float>(lse), delta,
                                dims);
  }
}

}  // namespace ft::cuda
