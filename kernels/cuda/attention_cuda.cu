#include <string_view>
#include <type_traits>

#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/flash_attention_cuda.h"

// Keys are numbered in one range c in [0, P + T): c < P is prefix row c (seen by every query),
// c >= P is sequence key j = c - P (masked by the causal rule and the segment ids), as in
// kernels/cpu/attention_cpu.cpp. Tiles live in shared memory as f32; rows of key tiles are padded
// to D + 1 floats so that 32 lanes reading 32 keys' element d hit 32 different banks.
namespace ft::cuda {
namespace {

constexpr int kKeyTile = 32;  // keys per tile: lane l of a warp owns key l of the tile
constexpr unsigned kFullMask = 0xffffffffu;

// Forward and dq: 4 warps of 4 query rows each.
constexpr int kRowWarps = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kRowTile = kRowWarps * kRowsPerWarp;
constexpr int kRowThreads = kRowWarps * 32;

// dk/dv: 8 warps; each step takes 16 query rows (2 per warp for the probabilities), then every
// thread adds them into its share of the key tile's (32, D) gradients.
constexpr int kKvThreads = 256;
constexpr int kKvRowTile = 16;
constexpr int kKvRowsPerWarp = kKvRowTile / (kKvThreads / 32);

struct Geometry {
  int64_t batch, seq_len, q_heads, kv_heads, head_dim, prefix_len, group;
  const int32_t* segments;  // (B, T) or null
  bool causal;
  float scale;
};

// The segment id of sequence position j of batch row b; 0 outside [0, T) or without segments
// (then never compared).
__device__ __forceinline__ int32_t segment_at(const Geometry& g, int64_t b, int64_t j) {
  return g.segments != nullptr && j >= 0 && j < g.seq_len ? g.segments[b * g.seq_len + j] : 0;
}

// Whether query i (of segment query_segment) sees key c. Prefix rows are never masked.
__device__ __forceinline__ bool key_visible(const Geometry& g, int64_t c, int64_t i,
                                            int32_t key_segment, int32_t query_segment) {
  if (c < g.prefix_len) return true;
  const int64_t j = c - g.prefix_len;
  if (j >= g.seq_len) return false;
  if (g.causal && j > i) return false;
  return g.segments == nullptr || key_segment == query_segment;
}

__device__ __forceinline__ float dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t d = 0; d < n; ++d) sum += a[d] * b[d];
  return sum;
}

// Ks, Vs (kKeyTile, D + 1) = keys [c0, c0 + kKeyTile) of kv head `kv_head` (zeros past the end);
// key_segments their segment ids (0 for prefix rows, which are never compared).
template <typename T>
__device__ void load_key_tile(const Geometry& g, const T* k, const T* v, const T* prefix_k,
                              const T* prefix_v, int64_t b, int64_t kv_head, int64_t c0, float* Ks,
                              float* Vs, int32_t* key_segments) {
  const int64_t D = g.head_dim, padded = D + 1;
  for (int64_t e = threadIdx.x; e < kKeyTile * D; e += blockDim.x) {
    const int64_t kk = e / D, d = e % D, c = c0 + kk;
    float key = 0.0f, value = 0.0f;
    if (c < g.prefix_len) {
      const int64_t index = (c * g.kv_heads + kv_head) * D + d;
      key = to_float(prefix_k[index]);
      value = to_float(prefix_v[index]);
    } else if (c - g.prefix_len < g.seq_len) {
      const int64_t index = ((b * g.seq_len + c - g.prefix_len) * g.kv_heads + kv_head) * D + d;
      key = to_float(k[index]);
      value = to_float(v[index]);
    }
    Ks[kk * padded + d] = key;
    Vs[kk * padded + d] = value;
  }
  if (threadIdx.x < kKeyTile)
    key_segments[threadIdx.x] = segment_at(g, b, c0 + threadIdx.x - g.prefix_len);
}

// rows_out (rows, D) = rows [row0, row0 + rows) of head h of a (B, T, Hq, D) tensor (zeros past T).
template <typename T>
__device__ void load_query_rows(const Geometry& g, const T* source, int64_t b, int64_t h,
                                int64_t row0, int rows, float* rows_out) {
  const int64_t D = g.head_dim;
  for (int64_t e = threadIdx.x; e < rows * D; e += blockDim.x) {
    const int64_t i = row0 + e / D, d = e % D;
    rows_out[e] =
        i < g.seq_len ? to_float(source[((b * g.seq_len + i) * g.q_heads + h) * D + d]) : 0.0f;
  }
}

// The keys [0, key_end) that query rows [row0, row0 + kRowTile) may see: with the causal mask
// none past the tile's last row.
__device__ __forceinline__ int64_t key_end_of(const Geometry& g, int64_t row0) {
  const int64_t row_end = row0 + kRowTile < g.seq_len ? row0 + kRowTile : g.seq_len;
  return g.prefix_len + (g.causal ? row_end : g.seq_len);
}

// Row i of head h of a (B, T, Hq, D) output = acc * factor (lane: elements lane, lane + 32, ...).
template <typename T, int kChunks>
__device__ __forceinline__ void store_query_row(const Geometry& g, T* out, int64_t b, int64_t i,
                                                int64_t h, const float (&acc)[kChunks],
                                                float factor, int lane) {
  const int64_t D = g.head_dim;
  T* out_row = out + ((b * g.seq_len + i) * g.q_heads + h) * D;
#pragma unroll
  for (int ch = 0; ch < kChunks; ++ch) {
    const int64_t d = ch * 32 + lane;
    if (d < D) out_row[d] = from_float<T>(acc[ch] * factor);
  }
}

// One block per (query tile, query head, batch row). kChunks = ceil(D / 32): lane l accumulates
// output elements l, l + 32, ... of each of its warp's rows.
template <typename T, int kChunks>
__global__ void __launch_bounds__(kRowThreads)
    attention_forward_kernel(T* out, float* lse, const T* q, const T* k, const T* v,
                             const T* prefix_k, const T* prefix_v, Geometry g) {
  extern __shared__ float shared[];
  const int64_t D = g.head_dim, padded = D + 1;
  float* Qs = shared;
  float* Ks = Qs + kRowTile * D;
  float* Vs = Ks + kKeyTile * padded;
  int32_t* key_segments = reinterpret_cast<int32_t*>(Vs + kKeyTile * padded);
  const int64_t b = blockIdx.z, h = blockIdx.y, row0 = static_cast<int64_t>(blockIdx.x) * kRowTile;
  const int64_t kv_head = h / g.group;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  load_query_rows(g, q, b, h, row0, kRowTile, Qs);
  float running_max[kRowsPerWarp], running_sum[kRowsPerWarp], acc[kRowsPerWarp][kChunks];
  int32_t query_segments[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = row0 + warp * kRowsPerWarp + r;
    running_max[r] = -INFINITY;
    running_sum[r] = 0.0f;
#pragma unroll
    for (int ch = 0; ch < kChunks; ++ch) acc[r][ch] = 0.0f;
    query_segments[r] = segment_at(g, b, i);
  }
  const int64_t key_end = key_end_of(g, row0);
  for (int64_t c0 = 0; c0 < key_end; c0 += kKeyTile) {
    __syncthreads();  // the previous tile's readers are done
    load_key_tile(g, k, v, prefix_k, prefix_v, b, kv_head, c0, Ks, Vs, key_segments);
    __syncthreads();
    const int64_t c = c0 + lane;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int row = warp * kRowsPerWarp + r;
      const int64_t i = row0 + row;
      if (i >= g.seq_len) continue;  // warp-uniform
      const bool visible = key_visible(g, c, i, key_segments[lane], query_segments[r]);
      const float score = visible ? dot(Qs + row * D, Ks + lane * padded, D) * g.scale : -INFINITY;
      const float new_max = fmaxf(running_max[r], warp_max(score));
      if (new_max == -INFINITY) continue;  // nothing visible yet (warp-uniform)
      const float rescale = expf(running_max[r] - new_max);
      const float p = visible ? expf(score - new_max) : 0.0f;
      running_sum[r] = running_sum[r] * rescale + warp_sum(p);
      running_max[r] = new_max;
#pragma unroll
      for (int ch = 0; ch < kChunks; ++ch) acc[r][ch] *= rescale;
      for (int kk = 0; kk < kKeyTile; ++kk) {
        const float p_key = __shfl_sync(kFullMask, p, kk);
        const float* v_row = Vs + kk * padded;
#pragma unroll
        for (int ch = 0; ch < kChunks; ++ch) {
          const int64_t d = ch * 32 + lane;
          if (d < D) acc[r][ch] += p_key * v_row[d];
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = row0 + warp * kRowsPerWarp + r;
    if (i >= g.seq_len) continue;
    // Every query sees itself (or a prefix row), so the sum is positive.
    store_query_row(g, out, b, i, h, acc[r], 1.0f / running_sum[r], lane);
    if (lane == 0) {
      lse[(b * g.q_heads + h) * g.seq_len + i] = running_max[r] + logf(running_sum[r]);
    }
  }
}

// delta (B, Hq, T) = rowsum(dout * out): one warp per (token, head) row.
template <typename T>
__global__ void attention_delta_kernel(float* delta, const T* dout, const T* out, Geometry g) {
  const int64_t rows = g.batch * g.seq_len * g.q_heads;
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32; row < rows;
       row += warps) {
    float sum = 0.0f;
    for (int64_t d = lane; d < g.head_dim; d += 32) {
      sum += to_float(dout[row * g.head_dim + d]) * to_float(out[row * g.head_dim + d]);
    }
    sum = warp_sum(sum);
    if (lane == 0) {
      const int64_t h = row % g.q_heads, token = row / g.q_heads;
      const int64_t b = token / g.seq_len, i = token % g.seq_len;
      delta[(b * g.q_heads + h) * g.seq_len + i] = sum;
    }
  }
}

// dq = scale * sum_c dS_ic key_c with dS_ic = P_ic (dO_i . value_c - delta_i), P recomputed from
// lse. Same blocks and lanes as the forward.
template <typename T, int kChunks>
__global__ void __launch_bounds__(kRowThreads)
    attention_dq_kernel(T* dq, const T* dout, const float* lse, const float* delta, const T* q,
                        const T* k, const T* v, const T* prefix_k, const T* prefix_v, Geometry g) {
  extern __shared__ float shared[];
  const int64_t D = g.head_dim, padded = D + 1;
  float* Qs = shared;
  float* dOs = Qs + kRowTile * D;
  float* Ks = dOs + kRowTile * D;
  float* Vs = Ks + kKeyTile * padded;
  int32_t* key_segments = reinterpret_cast<int32_t*>(Vs + kKeyTile * padded);
  const int64_t b = blockIdx.z, h = blockIdx.y, row0 = static_cast<int64_t>(blockIdx.x) * kRowTile;
  const int64_t kv_head = h / g.group;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  load_query_rows(g, q, b, h, row0, kRowTile, Qs);
  load_query_rows(g, dout, b, h, row0, kRowTile, dOs);
  float row_lse[kRowsPerWarp], row_delta[kRowsPerWarp], acc[kRowsPerWarp][kChunks];
  int32_t query_segments[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = row0 + warp * kRowsPerWarp + r;
    const bool inside = i < g.seq_len;
    const int64_t stat = (b * g.q_heads + h) * g.seq_len + i;
    row_lse[r] = inside ? lse[stat] : 0.0f;
    row_delta[r] = inside ? delta[stat] : 0.0f;
    query_segments[r] = segment_at(g, b, i);
#pragma unroll
    for (int ch = 0; ch < kChunks; ++ch) acc[r][ch] = 0.0f;
  }
  const int64_t key_end = key_end_of(g, row0);
  for (int64_t c0 = 0; c0 < key_end; c0 += kKeyTile) {
    __syncthreads();
    load_key_tile(g, k, v, prefix_k, prefix_v, b, kv_head, c0, Ks, Vs, key_segments);
    __syncthreads();
    const int64_t c = c0 + lane;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int row = warp * kRowsPerWarp + r;
      const int64_t i = row0 + row;
      if (i >= g.seq_len) continue;  // warp-uniform
      float dscore = 0.0f;
      if (key_visible(g, c, i, key_segments[lane], query_segments[r])) {
        const float p = expf(dot(Qs + row * D, Ks + lane * padded, D) * g.scale - row_lse[r]);
        const float dp = dot(dOs + row * D, Vs + lane * padded, D);
        dscore = p * (dp - row_delta[r]) * g.scale;
      }
      for (int kk = 0; kk < kKeyTile; ++kk) {
        const float ds_key = __shfl_sync(kFullMask, dscore, kk);
        const float* k_row = Ks + kk * padded;
#pragma unroll
        for (int ch = 0; ch < kChunks; ++ch) {
          const int64_t d = ch * 32 + lane;
          if (d < D) acc[r][ch] += ds_key * k_row[d];
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = row0 + warp * kRowsPerWarp + r;
    if (i < g.seq_len) store_query_row(g, dq, b, i, h, acc[r], 1.0f, lane);
  }
}

// One block per (key tile, kv head, batch row): dv_c = sum P_ic dO_i and dk_c = scale sum dS_ic q_i
// over every query i of every query head of the group. Thread t owns elements t, t + 256, ... of
// the tile's (32, D) gradients (kMaxDim / 8 of each). Keys c < P go to the f32 partials
// (B, P, Hkv, D) when given, sequence keys to dk, dv.
template <typename T, int kMaxDim>
__global__ void __launch_bounds__(kKvThreads)
    attention_dkdv_kernel(T* dk, T* dv, float* prefix_dk, float* prefix_dv, const T* dout,
                          const float* lse, const float* delta, const T* q, const T* k, const T* v,
                          const T* prefix_k, const T* prefix_v, Geometry g, int64_t key_first) {
  constexpr int kShare = kKeyTile * kMaxDim / kKvThreads;
  extern __shared__ float shared[];
  const int64_t D = g.head_dim, padded = D + 1;
  float* Ks = shared;
  float* Vs = Ks + kKeyTile * padded;
  float* Qs = Vs + kKeyTile * padded;
  float* dOs = Qs + kKvRowTile * D;
  float* Ps = dOs + kKvRowTile * D;  // (kKvRowTile, kKeyTile)
  float* dSs = Ps + kKvRowTile * kKeyTile;
  float* row_lse = dSs + kKvRowTile * kKeyTile;
  float* row_delta = row_lse + kKvRowTile;
  int32_t* key_segments = reinterpret_cast<int32_t*>(row_delta + kKvRowTile);
  int32_t* row_segments = key_segments + kKeyTile;
  const int64_t b = blockIdx.z, kv_head = blockIdx.y;
  const int64_t c0 = key_first + static_cast<int64_t>(blockIdx.x) * kKeyTile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  load_key_tile(g, k, v, prefix_k, prefix_v, b, kv_head, c0, Ks, Vs, key_segments);
  float acc_k[kShare], acc_v[kShare];
#pragma unroll
  for (int n = 0; n < kShare; ++n) acc_k[n] = acc_v[n] = 0.0f;
  // With the causal mask, sequence key j is seen by queries i >= j only.
  const int64_t first_query = g.causal && c0 > g.prefix_len ? c0 - g.prefix_len : 0;
  const int64_t c = c0 + lane;
  for (int64_t h = kv_head * g.group; h < (kv_head + 1) * g.group; ++h) {
    for (int64_t i0 = first_query / kKvRowTile * kKvRowTile; i0 < g.seq_len; i0 += kKvRowTile) {
      __syncthreads();  // the previous step's readers are done (and the key tile is loaded)
      load_query_rows(g, q, b, h, i0, kKvRowTile, Qs);
      load_query_rows(g, dout, b, h, i0, kKvRowTile, dOs);
      if (threadIdx.x < kKvRowTile) {
        const int64_t i = i0 + threadIdx.x;
        const bool inside = i < g.seq_len;
        const int64_t stat = (b * g.q_heads + h) * g.seq_len + i;
        row_lse[threadIdx.x] = inside ? lse[stat] : 0.0f;
        row_delta[threadIdx.x] = inside ? delta[stat] : 0.0f;
        row_segments[threadIdx.x] = segment_at(g, b, i);
      }
      __syncthreads();
#pragma unroll
      for (int r = 0; r < kKvRowsPerWarp; ++r) {
        const int row = warp * kKvRowsPerWarp + r;
        const int64_t i = i0 + row;
        float p = 0.0f, dscore = 0.0f;
        if (i < g.seq_len && key_visible(g, c, i, key_segments[lane], row_segments[row])) {
          p = expf(dot(Qs + row * D, Ks + lane * padded, D) * g.scale - row_lse[row]);
          const float dp = dot(dOs + row * D, Vs + lane * padded, D);
          dscore = p * (dp - row_delta[row]) * g.scale;
        }
        Ps[row * kKeyTile + lane] = p;
        dSs[row * kKeyTile + lane] = dscore;
      }
      __syncthreads();
#pragma unroll
      for (int n = 0; n < kShare; ++n) {
        const int64_t e = threadIdx.x + static_cast<int64_t>(n) * kKvThreads;
        if (e >= kKeyTile * D) break;
        const int64_t kk = e / D, d = e % D;
        float sum_v = 0.0f, sum_k = 0.0f;
        for (int row = 0; row < kKvRowTile; ++row) {
          sum_v += Ps[row * kKeyTile + kk] * dOs[row * D + d];
          sum_k += dSs[row * kKeyTile + kk] * Qs[row * D + d];
        }
        acc_v[n] += sum_v;
        acc_k[n] += sum_k;
      }
    }
  }
#pragma unroll
  for (int n = 0; n < kShare; ++n) {
    const int64_t e = threadIdx.x + static_cast<int64_t>(n) * kKvThreads;
    if (e >= kKeyTile * D) break;
    const int64_t key = c0 + e / D, d = e % D;
    if (key < g.prefix_len) {
      const int64_t index = ((b * g.prefix_len + key) * g.kv_heads + kv_head) * D + d;
      if (prefix_dk != nullptr) prefix_dk[index] = acc_k[n];
      if (prefix_dv != nullptr) prefix_dv[index] = acc_v[n];
    } else if (key - g.prefix_len < g.seq_len) {
      const int64_t index = ((b * g.seq_len + key - g.prefix_len) * g.kv_heads + kv_head) * D + d;
      dk[index] = from_float<T>(acc_k[n]);
      dv[index] = from_float<T>(acc_v[n]);
    }
  }
}

// dprefix[e] += sum over the batch of partial[b][e], in batch order.
template <typename G>
struct AddBatchSum {
  G* dprefix;
  const float* partial;
  int64_t batch, elements;
  __device__ void operator()(int64_t e) const {
    float sum = 0.0f;
    for (int64_t b = 0; b < batch; ++b) sum += partial[b * elements + e];
    dprefix[e] = from_float<G>(to_float(dprefix[e]) + sum);
  }
};

size_t round_up(size_t bytes) {
  return (bytes + 255) / 256 * 256;
}
size_t delta_bytes(const cpu::AttentionDims& dims) {
  return round_up(static_cast<size_t>(dims.batch * dims.q_heads * dims.seq_len) * sizeof(float));
}
size_t prefix_partial_bytes(const cpu::AttentionDims& dims) {
  return round_up(
      static_cast<size_t>(dims.batch * dims.prefix_len * dims.kv_heads * dims.head_dim) *
      sizeof(float));
}

size_t forward_shared_bytes(int64_t D) {
  return sizeof(float) * static_cast<size_t>(kRowTile * D + 2 * kKeyTile * (D + 1)) +
         sizeof(int32_t) * kKeyTile;
}
size_t dq_shared_bytes(int64_t D) {
  return sizeof(float) * static_cast<size_t>(2 * kRowTile * D + 2 * kKeyTile * (D + 1)) +
         sizeof(int32_t) * kKeyTile;
}
size_t dkdv_shared_bytes(int64_t D) {
  return sizeof(float) * static_cast<size_t>(2 * kKeyTile * (D + 1) + 2 * kKvRowTile * D +
                                             2 * kKvRowTile * kKeyTile + 2 * kKvRowTile) +
         sizeof(int32_t) * (kKeyTile + kKvRowTile);
}

// Kernels needing more than 48 KiB of dynamic shared memory must say so before launching.
Geometry geometry_of(const cpu::AttentionDims& dims, const Tensor& segment_ids, bool causal,
                     double scale) {
  return Geometry{dims.batch,
                  dims.seq_len,
                  dims.q_heads,
                  dims.kv_heads,
                  dims.head_dim,
                  dims.prefix_len,
                  dims.q_heads / dims.kv_heads,
                  data_or_null<int32_t>(segment_ids),
                  causal,
                  static_cast<float>(scale)};
}

void check_launchable(std::string_view op, const cpu::AttentionDims& dims) {
  if (dims.head_dim > kAttentionMaxHeadDim) {
    fail("op {}: head_dim {} is above the CUDA kernels' limit of {}", op, dims.head_dim,
         kAttentionMaxHeadDim);
  }
  if (dims.batch > 65535 || dims.q_heads > 65535) {
    fail("op {}: batch {} and q_heads {} must each be at most 65535 on CUDA (grid limits)", op,
         dims.batch, dims.q_heads);
  }
}

// Runs body with kMaxDim, the head_dim rounded up to 32, 64, 128 or 256.
template <typename Body>
void with_max_head_dim(int64_t head_dim, Body body) {
  if (head_dim <= 32) {
    body(std::integral_constant<int, 32>{});
  } else if (head_dim <= 64) {
    body(std::integral_constant<int, 64>{});
  } else if (head_dim <= 128) {
    body(std::integral_constant<int, 128>{});
  } else {
    body(std::integral_constant<int, 256>{});
  }
}

unsigned row_tiles(int64_t seq_len) {
  return static_cast<unsigned>((seq_len + kRowTile - 1) / kRowTile);
}

}  // namespace

size_t attention_backward_workspace_bytes(const cpu::AttentionDims& dims, bool prefix_grads) {
  return delta_bytes(dims) + (prefix_grads ? 2 * prefix_partial_bytes(dims) : 0);
}

void attention_forward(const OpContext& ctx, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v,
                       Tensor prefix_k, Tensor prefix_v, Tensor segment_ids,
                       const cpu::AttentionDims& dims, bool causal, double scale) {
  if (flash_attention_applies(dims, q.dtype,
                              {q.data, k.data, v.data, out.data, prefix_k.data, prefix_v.data})) {
    flash_attention_forward(ctx, out, lse, q, k, v, prefix_k, prefix_v, segment_ids, dims, causal,
                            scale);
    return;
  }
  attention_forward_simt(ctx, out, lse, q, k, v, prefix_k, prefix_v, segment_ids, dims, causal,
                         scale);
}

void attention_forward_simt(const OpContext& ctx, Tensor out, Tensor lse, Tensor q, Tensor k,
                            Tensor v, Tensor prefix_k, Tensor prefix_v, Tensor segment_ids,
                            const cpu::AttentionDims& dims, bool causal, double scale) {
  constexpr std::string_view op = "attention_forward";
  check_launchable(op, dims);
  if (dims.batch * dims.seq_len * dims.q_heads * dims.head_dim == 0) return;
  const Geometry g = geometry_of(dims, segment_ids, causal, scale);
  const dim3 grid(row_tiles(dims.seq_len), static_cast<unsigned>(dims.q_heads),
                  static_cast<unsigned>(dims.batch));
  const size_t shared = forward_shared_bytes(dims.head_dim);
  FT_DISPATCH_CUDA_FLOAT(op, q.dtype, {
    with_max_head_dim(dims.head_dim, [&](auto max_dim) {
      constexpr int kChunks = decltype(max_dim)::value / 32;
      auto kernel = attention_forward_kernel<scalar_t, kChunks>;
      allow_dynamic_shared(op, kernel, shared);
      launch_kernel(op, ctx, kernel, grid, kRowThreads, shared, data<scalar_t>(out),
                    data<float>(lse), data<scalar_t>(q), data<scalar_t>(k), data<scalar_t>(v),
                    data_or_null<scalar_t>(prefix_k), data_or_null<scalar_t>(prefix_v), g);
    });
  });
}

namespace {

// The backward on either path: delta, then the flash or the SIMT dq and dk/dv kernels, then the
// prefix partials' batch sum into dprefix_k/v.
void run_backward(const OpContext& ctx, Tensor dq, Tensor dk, Tensor dv, Tensor dprefix_k,
                  Tensor dprefix_v, Tensor dout, Tensor out, Tensor lse, Tensor q, Tensor k,
                  Tensor v, Tensor prefix_k, Tensor prefix_v, Tensor segment_ids,
                  const cpu::AttentionDims& dims, bool causal, double scale, bool flash) {
  constexpr std::string_view op = "attention_backward";
  check_launchable(op, dims);
  if (dims.batch * dims.seq_len * dims.q_heads * dims.head_dim == 0) return;
  const Geometry g = geometry_of(dims, segment_ids, causal, scale);
  const bool prefix_grads = dims.prefix_len > 0 && (!dprefix_k.empty() || !dprefix_v.empty());
  char* workspace = static_cast<char*>(ctx.workspace.data);
  float* delta = reinterpret_cast<float*>(workspace);
  float* partial_k = prefix_grads && !dprefix_k.empty()
                         ? reinterpret_cast<float*>(workspace + delta_bytes(dims))
                         : nullptr;
  float* partial_v =
      prefix_grads && !dprefix_v.empty()
          ? reinterpret_cast<float*>(workspace + delta_bytes(dims) + prefix_partial_bytes(dims))
          : nullptr;
  const int64_t delta_rows = dims.batch * dims.seq_len * dims.q_heads;
  FT_DISPATCH_CUDA_FLOAT(op, q.dtype, {
    launch_kernel(op, ctx, attention_delta_kernel<scalar_t>, grid_for(delta_rows * 32), kThreads, 0,
                  delta, data<scalar_t>(dout), data<scalar_t>(out), g);
  });
  if (flash &&
      flash_attention_applies(dims, q.dtype,
                              {q.data, k.data, v.data, dout.data, dq.data, dk.data, dv.data,
                               prefix_k.data, prefix_v.data, partial_k, partial_v})) {
    flash_attention_backward(ctx, dq, dk, dv, partial_k, partial_v, dout, lse, delta, q, k, v,
                             prefix_k, prefix_v, segment_ids, dims, causal, scale);
  } else {
    // Without prefix gradients the dk/dv blocks start at the first sequence key.
    const int64_t key_first = prefix_grads ? 0 : dims.prefix_len;
    const int64_t key_tiles =
        (dims.prefix_len + dims.seq_len - key_first + kKeyTile - 1) / kKeyTile;
    const dim3 query_grid(row_tiles(dims.seq_len), static_cast<unsigned>(dims.q_heads),
                          static_cast<unsigned>(dims.batch));
    const dim3 key_grid(static_cast<unsigned>(key_tiles), static_cast<unsigned>(dims.kv_heads),
                        static_cast<unsigned>(dims.batch));
    FT_DISPATCH_CUDA_FLOAT(op, q.dtype, {
      with_max_head_dim(dims.head_dim, [&](auto max_dim) {
        constexpr int kMaxDim = decltype(max_dim)::value;
        auto dq_kernel = attention_dq_kernel<scalar_t, kMaxDim / 32>;
        const size_t dq_shared = dq_shared_bytes(dims.head_dim);
        allow_dynamic_shared(op, dq_kernel, dq_shared);
        launch_kernel(op, ctx, dq_kernel, query_grid, kRowThreads, dq_shared, data<scalar_t>(dq),
                      data<scalar_t>(dout), data<float>(lse), delta, data<scalar_t>(q),
                      data<scalar_t>(k), data<scalar_t>(v), data_or_null<scalar_t>(prefix_k),
                      data_or_null<scalar_t>(prefix_v), g);
        auto dkdv_kernel = attention_dkdv_kernel<scalar_t, kMaxDim>;
        const size_t dkdv_shared = dkdv_shared_bytes(dims.head_dim);
        allow_dynamic_shared(op, dkdv_kernel, dkdv_shared);
        launch_kernel(op, ctx, dkdv_kernel, key_grid, kKvThreads, dkdv_shared, data<scalar_t>(dk),
                      data<scalar_t>(dv), partial_k, partial_v, data<scalar_t>(dout),
                      data<float>(lse), delta, data<scalar_t>(q), data<scalar_t>(k),
                      data<scalar_t>(v), data_or_null<scalar_t>(prefix_k),
                      data_or_null<scalar_t>(prefix_v), g, key_first);
      });
    });
  }
  const int64_t prefix_elements = dims.prefix_len * dims.kv_heads * dims.head_dim;
  const Tensor* dprefixes[2] = {&dprefix_k, &dprefix_v};
  const float* partials[2] = {partial_k, partial_v};
  for (int which = 0; which < 2; ++which) {
    if (partials[which] == nullptr) continue;
    FT_DISPATCH_CUDA_GRAD(op, dprefixes[which]->dtype, {
      launch_elementwise(op, ctx, prefix_elements,
                         AddBatchSum<grad_t>{data<grad_t>(*dprefixes[which]), partials[which],
                                             dims.batch, prefix_elements});
    });
  }
}

}  // namespace

void attention_backward(const OpContext& ctx, Tensor dq, Tensor dk, Tensor dv, Tensor dprefix_k,
                        Tensor dprefix_v, Tensor dout, Tensor out, Tensor lse, Tensor q, Tensor k,
                        Tensor v, Tensor prefix_k, Tensor prefix_v, Tensor segment_ids,
                        const cpu::AttentionDims& dims, bool causal, double scale) {
  run_backward(ctx, dq, dk, dv, dprefix_k, dprefix_v, dout, out, lse, q, k, v, prefix_k, prefix_v,
               segment_ids, dims, causal, scale, /*flash=*/true);
}

void attention_backward_simt(const OpContext& ctx, Tensor dq, Tensor dk, Tensor dv,
                             Tensor dprefix_k, Tensor dprefix_v, Tensor dout, Tensor out,
                             Tensor lse, Tensor q, Tensor k, Tensor v, Tensor prefix_k,
                             Tensor prefix_v, Tensor segment_ids, const cpu::AttentionDims& dims,
                             bool causal, double scale) {
  run_backward(ctx, dq, dk, dv, dprefix_k, dprefix_v, dout, out, lse, q, k, v, prefix_k, prefix_v,
               segment_ids, dims, causal, scale, /*flash=*/false);
}

}  // namespace ft::cuda
