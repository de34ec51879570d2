// Tensor-core flash attention: the selection rule and the forward (design in
// flash_attention_cuda.h; the backward is in flash_attention_backward_cuda.cu).
#include <cstdint>
#include <map>
#include <mutex>
#include <string_view>

#include "kernels/cuda/flash_attention_cuda.h"
#include "kernels/cuda/flash_attention_tiles.cuh"

namespace ft::cuda {
namespace flash {
namespace {

constexpr int kForwardKeys = 64;  // keys per tile

template <int kHeadDim>
constexpr size_t forward_shared_bytes() {
  // Two stages of (K, V) tiles, then two stages of the tile's key segment ids.
  return 4 * sizeof(bfloat) * kForwardKeys * row_stride<kHeadDim>() +
         2 * sizeof(int32_t) * kForwardKeys;
}

// The 32 bits at row[col], row[col + 1] (a bf16 pair), or 0 for a missing row.
__device__ __forceinline__ uint32_t pair_at(const bfloat* row, int col) {
  return row != nullptr ? *reinterpret_cast<const uint32_t*>(row + col) : 0u;
}

// One CTA per (64 query rows, query head, batch row); warp w owns rows 16 w .. 16 w + 15 of the
// tile; lane 4 g + q holds fragment rows g and g + 8 ("halves" 0 and 1) and columns 2q, 2q + 1 of
// each 8-column fragment.
template <int kHeadDim>
__global__ void __launch_bounds__(kThreads)
    flash_forward_kernel(Params p, bfloat* out, float* lse) {
  constexpr int kStride = row_stride<kHeadDim>();
  constexpr int kTileElements = kForwardKeys * kStride;
  constexpr int kKeyFragments = kForwardKeys / 8;
  constexpr int kDimFragments = kHeadDim / 8;
  extern __shared__ __align__(16) unsigned char shared[];
  bfloat* kv_tiles = reinterpret_cast<bfloat*>(shared);  // [stage][K, V] (kForwardKeys, kStride)
  int32_t* key_segments = reinterpret_cast<int32_t*>(kv_tiles + 4 * kTileElements);  // [stage][key]

  const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
  const int quad = lane & 3;
  const QueryTile query = query_tile(p, warp, lane);
  const int row0 = query.row0, h = query.h, b = query.b, kv_head = query.kv_head;
  const int(&rows)[2] = query.rows;
  const int32_t query_segments[2] = {segment_at(p, b, rows[0]), segment_at(p, b, rows[1])};

  // Q fragments straight from global memory (zeros past T), kept for the whole key walk.
  FragmentA q_fragments[kHeadDim / 16];
  {
    const bfloat* top = sequence_row<kHeadDim>(p.q, p, b, rows[0], p.q_heads, h);
    const bfloat* bottom = sequence_row<kHeadDim>(p.q, p, b, rows[1], p.q_heads, h);
#pragma unroll
    for (int slice = 0; slice < kHeadDim / 16; ++slice) {
      const int col = slice * 16 + 2 * quad;
      q_fragments[slice].reg[0] = pair_at(top, col);
      q_fragments[slice].reg[1] = pair_at(bottom, col);
      q_fragments[slice].reg[2] = pair_at(top, col + 8);
      q_fragments[slice].reg[3] = pair_at(bottom, col + 8);
    }
  }

  const int prefix_tiles = ceil_div(p.prefix_len, kForwardKeys);
  const int tile_count = key_tile_count<kForwardKeys>(p, prefix_tiles, row0);
  auto load = [&](int t, int stage) {
    load_key_tile<kForwardKeys, kHeadDim>(kv_tiles, key_segments, p, prefix_tiles, b, kv_head, t,
                                          stage);
  };

  FragmentC o[kDimFragments];
  float row_max[2] = {-INFINITY, -INFINITY};  // base-2 scaled scores
  float row_sum[2] = {0.0f, 0.0f};
  load(0, 0);
  for (int t = 0; t < tile_count; ++t) {
    const int stage = t & 1;
    next_tile(t, tile_count, load);
    const bfloat* k_tile = kv_tiles + 2 * stage * kTileElements;
    const bfloat* v_tile = k_tile + kTileElements;
    const int32_t* tile_segments = key_segments + stage * kForwardKeys;
    const KeyTile tile = key_tile<kForwardKeys>(t, prefix_tiles);

    FragmentC s[kKeyFragments];
    multiply_by_transposed<kKeyFragments, kHeadDim>(
        s, [&](int slice) { return q_fragments[slice]; }, k_tile, kStride);

    // Base-2 scaled scores; masked keys -inf.
#pragma unroll
    for (int n = 0; n < kKeyFragments; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int half = e >> 1, r = n * 8 + 2 * quad + (e & 1);
        const bool seen = visible(
            p, tile, r, rows[half], [&] { return tile_segments[r]; }, query_segments[half]);
        s[n].value[e] = seen ? s[n].value[e] * p.scale_log2 : -INFINITY;
      }
    }
    // Online softmax per row; a row that has seen no key yet keeps max -inf, sum 0, o 0.
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float tile_max = -INFINITY;
#pragma unroll
      for (int n = 0; n < kKeyFragments; ++n) {
        tile_max = fmaxf(tile_max, fmaxf(s[n].value[2 * half], s[n].value[2 * half + 1]));
      }
      // The 4 lanes of a quad hold one row's 64 columns.
      tile_max = fmaxf(tile_max, __shfl_xor_sync(kFullMask, tile_max, 1));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(kFullMask, tile_max, 2));
      const float new_max = fmaxf(row_max[half], tile_max);
      const float base = new_max == -INFINITY ? 0.0f : new_max;  // no inf - inf
      const float rescale = exp2f(row_max[half] - base);
      row_max[half] = new_max;
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < kKeyFragments; ++n) {
#pragma unroll
        for (int e = 2 * half; e < 2 * half + 2; ++e) {
          s[n].value[e] = exp2f(s[n].value[e] - base);
          sum += s[n].value[e];
        }
      }
      sum += __shfl_xor_sync(kFullMask, sum, 1);
      sum += __shfl_xor_sync(kFullMask, sum, 2);
      row_sum[half] = row_sum[half] * rescale + sum;
#pragma unroll
      for (int n = 0; n < kDimFragments; ++n) {
        o[n].value[2 * half] *= rescale;
        o[n].value[2 * half + 1] *= rescale;
      }
    }
    multiply_probabilities<kDimFragments, kForwardKeys>(o, s, v_tile, kStride);
    __syncthreads();  // this stage's readers are done before the next load overwrites it
  }

#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int i = rows[half];
    if (i >= p.seq_len) continue;
    // Every query sees itself, so the sum is positive; 0 guards a row that saw nothing.
    const float inverse = row_sum[half] > 0.0f ? 1.0f / row_sum[half] : 0.0f;
    bfloat* out_row = out + ((static_cast<int64_t>(b) * p.seq_len + i) * p.q_heads + h) * kHeadDim;
#pragma unroll
    for (int n = 0; n < kDimFragments; ++n) {
      *reinterpret_cast<uint32_t*>(out_row + n * 8 + 2 * quad) =
          mma::pack_bf16(o[n].value[2 * half] * inverse, o[n].value[2 * half + 1] * inverse);
    }
    if (quad == 0) {
      lse[(static_cast<int64_t>(b) * p.q_heads + h) * p.seq_len + i] =
          row_sum[half] > 0.0f ? row_max[half] * kLn2 + logf(row_sum[half]) : -INFINITY;
    }
  }
}

template <int kHeadDim>
void launch_forward(std::string_view op, const OpContext& ctx, const Params& p, bfloat* out,
                    float* lse, const cpu::AttentionDims& dims) {
  auto kernel = flash_forward_kernel<kHeadDim>;
  constexpr size_t shared = forward_shared_bytes<kHeadDim>();
  allow_dynamic_shared(op, reinterpret_cast<const void*>(kernel), shared);
  const dim3 grid(static_cast<unsigned>(ceil_div(static_cast<int>(dims.seq_len), kBlockRows)),
                  static_cast<unsigned>(dims.q_heads), static_cast<unsigned>(dims.batch));
  launch_kernel(op, ctx, kernel, grid, kThreads, shared, p, out, lse);
}

// The current device's compute capability major, queried once per device.
int current_device_major(std::string_view op) {
  static std::mutex mutex;
  static std::map<int, int> majors;  // by device
  int device = 0;
  FT_CUDA_OP_CHECK(op, cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mutex);
  const auto known = majors.find(device);
  if (known != majors.end()) return known->second;
  int major = 0;
  FT_CUDA_OP_CHECK(op, cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  majors.emplace(device, major);
  return major;
}

}  // namespace
}  // namespace flash

bool flash_attention_applies(const cpu::AttentionDims& dims, DType dtype,
                             std::initializer_list<const void*> data) {
  if (dtype != DType::bf16 || (dims.head_dim != 64 && dims.head_dim != 128)) return false;
  if (dims.seq_len + dims.prefix_len > (int64_t{1} << 30)) return false;  // int tile indices
  for (const void* pointer : data) {
    if (reinterpret_cast<uintptr_t>(pointer) % 16 != 0) return false;
  }
  return flash::current_device_major("attention") >= 8;
}

void flash_attention_forward(const OpContext& ctx, Tensor out, Tensor lse, Tensor q, Tensor k,
                             Tensor v, Tensor prefix_k, Tensor prefix_v, Tensor segment_ids,
                             const cpu::AttentionDims& dims, bool causal, double scale) {
  constexpr std::string_view op = "attention_forward";
  flash::check_grid(op, dims);
  if (dims.batch * dims.seq_len * dims.q_heads == 0) return;
  const flash::Params p =
      flash::make_params(q, k, v, prefix_k, prefix_v, segment_ids, dims, causal, scale);
  if (dims.head_dim == 64) {
    flash::launch_forward<64>(op, ctx, p, data<bfloat>(out), data<float>(lse), dims);
  } else {
    flash::launch_forward<128>(op, ctx, p, data<bfloat>(out), data<float>(lse), dims);
  }
}

}  // namespace ft::cuda
