// The frozen-weight matmul on the GPU. Forward: C (N, Out) = x (N, In) W^T on tensor cores
// (kernels/cuda/frozen_linear_tiles.cuh), then in registers: the per-channel weight scale, bias,
// LoRA (a second k loop over r into the same accumulators), GELU or SwiGLU, residual, bf16 store.
// Backward: dx (N, In) = dout (N, Out) W, the weight scale folded into the bf16 widening of W.
// Shapes or pointers the tensor-core path cannot take (In or Out not a multiple of 8, or 16 for
// byte weights along In; misaligned views) go to simple 16 x 16 SIMT kernels with the same
// epilogue. quantize_weight_per_channel is in kernels/cuda/quantize_weight_cuda.cu.
#include <cstdint>
#include <string_view>

#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/frozen_linear_cuda.h"
#include "kernels/cuda/frozen_linear_tiles.cuh"
#include "kernels/cuda/mma_cuda.cuh"
#include "kernels/weight_quantization.h"

namespace ft::cuda {
namespace {

using frozen::Accumulators;
using frozen::kTileK;
using frozen::kTileM;
using frozen::kTileN;
using frozen::TileRows;
using frozen::WeightKind;
using ops::FrozenEpilogue;

struct ForwardParams {
  bfloat* out;
  bfloat* pre_activation;  // null unless saved: gelu (N, Out), swiglu (2, N, Out)
  const bfloat* x;
  const void* weight;  // (Out, In): bf16, or bytes with weight_scale
  const void* up_weight;
  const float* weight_scale;  // null for bf16 weights
  const float* up_scale;
  const bfloat* bias;
  const bfloat* residual;  // may equal out: each element is read before it is written
  const bfloat* lora_xa;   // null: no LoRA term
  const bfloat* lora_b;
  float lora_scale;
  int64_t rows, in_features, out_features, rank;
};

struct BackwardParams {
  bfloat* dx;
  const bfloat* dout;
  const void* weight;
  const float* weight_scale;
  const bfloat* up_dout;  // null: no second pair
  const void* up_weight;
  const float* up_scale;
  int64_t rows, in_features, out_features;
};

__device__ __forceinline__ float channel_scale(const float* scale, int64_t channel) {
  return scale ? scale[channel] : 1.0f;
}

// As ops::gelu_forward and ops::swiglu_forward compute them (kernels/cuda/activation_cuda.cu).
template <FrozenEpilogue act>
__device__ __forceinline__ float activate(float z, float up) {
  if constexpr (act == FrozenEpilogue::gelu) {
    const float t = tanhf(0.7978845608028654f * (z + 0.044715f * z * z * z));
    return 0.5f * z * (1.0f + t);
  } else if constexpr (act == FrozenEpilogue::swiglu) {
    return z / (1.0f + expf(-z)) * up;
  } else {
    return z;
  }
}

// The epilogue of columns col and col + 1 of one row (col even, Out even, pointers 4-byte
// aligned): z = the scaled product (+ LoRA), up = SwiGLU's up value.
template <FrozenEpilogue act>
__device__ __forceinline__ void finish_pair(const ForwardParams& p, int64_t row, int64_t col,
                                            float z0, float z1, float up0, float up1) {
  const int64_t at = row * p.out_features + col;
  if (p.bias) {
    const float2 bias = mma::unpack_bf16(*reinterpret_cast<const uint32_t*>(p.bias + col));
    z0 += bias.x;
    z1 += bias.y;
  }
  if (p.pre_activation) {
    *reinterpret_cast<uint32_t*>(p.pre_activation + at) = mma::pack_bf16(z0, z1);
    if constexpr (act == FrozenEpilogue::swiglu) {
      *reinterpret_cast<uint32_t*>(p.pre_activation + p.rows * p.out_features + at) =
          mma::pack_bf16(up0, up1);
    }
  }
  float y0 = activate<act>(z0, up0), y1 = activate<act>(z1, up1);
  if (p.residual) {
    const float2 residual = mma::unpack_bf16(*reinterpret_cast<const uint32_t*>(p.residual + at));
    y0 += residual.x;
    y1 += residual.y;
  }
  *reinterpret_cast<uint32_t*>(p.out + at) = mma::pack_bf16(y0, y1);
}

// The same for one element (the simple kernel).
template <FrozenEpilogue act>
__device__ __forceinline__ void finish_one(const ForwardParams& p, int64_t row, int64_t col,
                                           float z, float up) {
  const int64_t at = row * p.out_features + col;
  if (p.bias) z += to_float(p.bias[col]);
  if (p.pre_activation) {
    p.pre_activation[at] = from_float<bfloat>(z);
    if constexpr (act == FrozenEpilogue::swiglu) {
      p.pre_activation[p.rows * p.out_features + at] = from_float<bfloat>(up);
    }
  }
  float y = activate<act>(z, up);
  if (p.residual) y += to_float(p.residual[at]);
  p.out[at] = from_float<bfloat>(y);
}

// ---- tensor-core kernels -----------------------------------------------------------------------

// A = x or lora_xa (rows, k_end), B^T = the weight or lora_b (Out, k_end), "nk" tiles.
template <WeightKind kind, bool interleaved>
struct ForwardPolicy {
  const bfloat* a;
  const void* b_first;
  const void* b_second;  // interleaved (SwiGLU): the up weight
  int64_t a_rows, b_rows, k_end, m0, n0;
  int warp_m, warp_n;

  __device__ __forceinline__ void load(char* smem, int slot, int64_t k0) const {
    const TileRows a_rows_map{m0, a_rows, false}, b_rows_map{n0, b_rows, interleaved};
    frozen::load_nk_tile<2, frozen::kNkStride * 2>(frozen::a_slot(smem, slot), a, a, k_end,
                                                   a_rows_map, k0, k_end);
    if constexpr (kind == WeightKind::bf16) {
      frozen::load_nk_tile<2, frozen::kNkStride * 2>(frozen::b_slot(smem, slot), b_first, b_second,
                                                     k_end, b_rows_map, k0, k_end);
    } else {
      frozen::load_nk_tile<1, kTileK>(frozen::staging_slot(smem, slot), b_first, b_second, k_end,
                                      b_rows_map, k0, k_end);
    }
  }
  // Byte weights: thread t widens 16 bytes of staging row t / 2 into B slot 0 (the scale comes in
  // the epilogue).
  __device__ __forceinline__ const bfloat* b_tile(char* smem, int slot, int64_t) const {
    if constexpr (kind == WeightKind::bf16) {
      return frozen::b_slot(smem, slot);
    } else {
      const int r = threadIdx.x >> 1, kc = (threadIdx.x & 1) * 16;
      frozen::widen_16<kind>(frozen::b_slot(smem, 0) + r * frozen::kNkStride + kc,
                             frozen::staging_slot(smem, slot) + r * kTileK + kc, 1.0f);
      __syncthreads();
      return frozen::b_slot(smem, 0);
    }
  }
  __device__ __forceinline__ void multiply(Accumulators& acc, const bfloat* a_tile,
                                           const bfloat* b_tile) const {
    frozen::mma_step<false>(acc, a_tile, b_tile, warp_m, warp_n);
  }
};

// A = dout (rows, Out), B = the weight (Out, In) read as (k, n), "kn" tiles.
template <WeightKind kind>
struct BackwardPolicy {
  const bfloat* a;
  const void* weight;
  const float* scale;  // byte weights: folded into the widening
  int64_t a_rows, k_end, n_end, m0, n0;
  int warp_m, warp_n;

  __device__ __forceinline__ void load(char* smem, int slot, int64_t k0) const {
    frozen::load_nk_tile<2, frozen::kNkStride * 2>(frozen::a_slot(smem, slot), a, a, k_end,
                                                   TileRows{m0, a_rows, false}, k0, k_end);
    if constexpr (kind == WeightKind::bf16) {
      frozen::load_kn_tile<2, frozen::kKnStride * 2>(frozen::b_slot(smem, slot), weight, n_end, k0,
                                                     k_end, n0, n_end);
    } else {
      frozen::load_kn_tile<1, kTileN>(frozen::staging_slot(smem, slot), weight, n_end, k0, k_end,
                                      n0, n_end);
    }
  }
  // Byte weights: thread t widens 16 bytes of staging row t / 8 (weight row k0 + t / 8) times
  // that row's scale into B slot 0.
  __device__ __forceinline__ const bfloat* b_tile(char* smem, int slot, int64_t k0) const {
    if constexpr (kind == WeightKind::bf16) {
      return frozen::b_slot(smem, slot);
    } else {
      const int r = threadIdx.x >> 3, nc = (threadIdx.x & 7) * 16;
      const float row_scale = k0 + r < k_end ? scale[k0 + r] : 0.0f;
      frozen::widen_16<kind>(frozen::b_slot(smem, 0) + r * frozen::kKnStride + nc,
                             frozen::staging_slot(smem, slot) + r * kTileN + nc, row_scale);
      __syncthreads();
      return frozen::b_slot(smem, 0);
    }
  }
  __device__ __forceinline__ void multiply(Accumulators& acc, const bfloat* a_tile,
                                           const bfloat* b_tile) const {
    frozen::mma_step<true>(acc, a_tile, b_tile, warp_m, warp_n);
  }
};

// One CTA: output rows [m0, m0 + 128), output columns [n0, n0 + 128), or 64 for SwiGLU whose
// 128 B rows interleave gate and up.
// Thread (group g, quad q) of warp (warp_m, warp_n) holds acc[mi][ni].value[2h + e] for row
// 64 warp_m + 16 mi + g + 8h and B row 32 warp_n + 8 ni + 2q + e.
template <WeightKind kind, FrozenEpilogue act>
__global__ void __launch_bounds__(frozen::kThreads, 2)
    frozen_forward_kernel(const ForwardParams p) {
  extern __shared__ __align__(128) char smem[];
  constexpr bool kSwiglu = act == FrozenEpilogue::swiglu;
  constexpr int kColumns = kSwiglu ? kTileN / 2 : kTileN;
  const int warp = threadIdx.x >> 5, warp_m = warp >> 2, warp_n = warp & 3;
  const int g = mma::lane_group(), q = mma::lane_quad();
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kTileM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * kColumns;
  Accumulators acc;
  frozen::k_loop(
      acc, smem,
      ForwardPolicy<kind, kSwiglu>{p.x, p.weight, kSwiglu ? p.up_weight : p.weight, p.rows,
                                   p.out_features, p.in_features, m0, n0, warp_m, warp_n},
      p.in_features);
  if constexpr (!kSwiglu) {
    if (p.lora_xa) {
      // acc = weight_scale * acc / lora_scale, plus lora_xa lora_b^T; the epilogue multiplies
      // by lora_scale: the weight scale stays off the LoRA term, which is not rounded.
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t col = n0 + warp_n * frozen::kWarpN + ni * 8 + 2 * q + e;
          const float factor =
              col < p.out_features ? channel_scale(p.weight_scale, col) / p.lora_scale : 0.0f;
#pragma unroll
          for (int mi = 0; mi < 4; ++mi) {
            acc[mi][ni].value[e] *= factor;
            acc[mi][ni].value[2 + e] *= factor;
          }
        }
      }
      frozen::k_loop(
          acc, smem,
          ForwardPolicy<WeightKind::bf16, false>{p.lora_xa, p.lora_b, p.lora_b, p.rows,
                                                 p.out_features, p.rank, m0, n0, warp_m, warp_n},
          p.rank);
    }
  }
#pragma unroll
  for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t row = m0 + warp_m * frozen::kWarpM + mi * 16 + g + 8 * h;
      if (row >= p.rows) continue;
      if constexpr (kSwiglu) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {  // n-tiles 2j (gate) and 2j + 1 (up): the same columns
          const int64_t col = n0 + (warp_n * 2 + j) * 8 + 2 * q;
          if (col >= p.out_features) continue;
          const mma::FragmentC& gate = acc[mi][2 * j];
          const mma::FragmentC& up = acc[mi][2 * j + 1];
          finish_pair<act>(p, row, col, gate.value[2 * h] * channel_scale(p.weight_scale, col),
                           gate.value[2 * h + 1] * channel_scale(p.weight_scale, col + 1),
                           up.value[2 * h] * channel_scale(p.up_scale, col),
                           up.value[2 * h + 1] * channel_scale(p.up_scale, col + 1));
        }
      } else {
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
          const int64_t col = n0 + warp_n * frozen::kWarpN + ni * 8 + 2 * q;
          if (col >= p.out_features) continue;
          const float f0 = p.lora_xa ? p.lora_scale : channel_scale(p.weight_scale, col);
          const float f1 = p.lora_xa ? p.lora_scale : channel_scale(p.weight_scale, col + 1);
          finish_pair<act>(p, row, col, acc[mi][ni].value[2 * h] * f0,
                           acc[mi][ni].value[2 * h + 1] * f1, 0.0f, 0.0f);
        }
      }
    }
  }
}

template <WeightKind kind>
__global__ void __launch_bounds__(frozen::kThreads, 2)
    frozen_backward_kernel(const BackwardParams p) {
  extern __shared__ __align__(128) char smem[];
  const int warp = threadIdx.x >> 5, warp_m = warp >> 2, warp_n = warp & 3;
  const int g = mma::lane_group(), q = mma::lane_quad();
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kTileM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * kTileN;
  Accumulators acc;
  frozen::k_loop(acc, smem,
                 BackwardPolicy<kind>{p.dout, p.weight, p.weight_scale, p.rows, p.out_features,
                                      p.in_features, m0, n0, warp_m, warp_n},
                 p.out_features);
  if (p.up_dout) {
    frozen::k_loop(acc, smem,
                   BackwardPolicy<kind>{p.up_dout, p.up_weight, p.up_scale, p.rows, p.out_features,
                                        p.in_features, m0, n0, warp_m, warp_n},
                   p.out_features);
  }
#pragma unroll
  for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t row = m0 + warp_m * frozen::kWarpM + mi * 16 + g + 8 * h;
      if (row >= p.rows) continue;
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        const int64_t col = n0 + warp_n * frozen::kWarpN + ni * 8 + 2 * q;
        if (col >= p.in_features) continue;
        *reinterpret_cast<uint32_t*>(p.dx + row * p.in_features + col) =
            mma::pack_bf16(acc[mi][ni].value[2 * h], acc[mi][ni].value[2 * h + 1]);
      }
    }
  }
}

// ---- simple kernels (any shape and alignment) --------------------------------------------------

constexpr int kSimpleTile = 16;

template <WeightKind kind>
__device__ __forceinline__ float weight_element(const void* weight, int64_t index) {
  if constexpr (kind == WeightKind::bf16) {
    return to_float(static_cast<const bfloat*>(weight)[index]);
  } else {
    return frozen::stored_value<kind>(static_cast<const uint8_t*>(weight)[index]);
  }
}

// Block (16, 16): thread (tx, ty) computes output (row m0 + ty, column n0 + tx), k in steps of 16
// through shared memory, in fp32.
template <WeightKind kind, FrozenEpilogue act>
__global__ void frozen_forward_simple_kernel(const ForwardParams p) {
  constexpr bool kSwiglu = act == FrozenEpilogue::swiglu;
  __shared__ float xs[kSimpleTile][kSimpleTile + 1], gs[kSimpleTile][kSimpleTile + 1],
      us[kSimpleTile][kSimpleTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kSimpleTile, col = n0 + tx;
  const int64_t m_blocks = (p.rows + kSimpleTile - 1) / kSimpleTile;
  const int64_t in = p.in_features, out = p.out_features;
  for (int64_t block_m = blockIdx.y; block_m < m_blocks; block_m += gridDim.y) {
    const int64_t m0 = block_m * kSimpleTile, row = m0 + ty;
    float gate = 0.0f, up = 0.0f, lora = 0.0f;
    for (int64_t k0 = 0; k0 < in; k0 += kSimpleTile) {
      const int64_t k = k0 + tx;
      xs[ty][tx] = row < p.rows && k < in ? to_float(p.x[row * in + k]) : 0.0f;
      const bool weight_valid = n0 + ty < out && k < in;
      gs[ty][tx] = weight_valid ? weight_element<kind>(p.weight, (n0 + ty) * in + k) : 0.0f;
      if constexpr (kSwiglu) {
        us[ty][tx] = weight_valid ? weight_element<kind>(p.up_weight, (n0 + ty) * in + k) : 0.0f;
      }
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < kSimpleTile; ++kk) {
        gate += xs[ty][kk] * gs[tx][kk];
        if constexpr (kSwiglu) up += xs[ty][kk] * us[tx][kk];
      }
      __syncthreads();
    }
    if (p.lora_xa) {
      for (int64_t k0 = 0; k0 < p.rank; k0 += kSimpleTile) {
        const int64_t k = k0 + tx;
        xs[ty][tx] = row < p.rows && k < p.rank ? to_float(p.lora_xa[row * p.rank + k]) : 0.0f;
        gs[ty][tx] =
            n0 + ty < out && k < p.rank ? to_float(p.lora_b[(n0 + ty) * p.rank + k]) : 0.0f;
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kSimpleTile; ++kk) lora += xs[ty][kk] * gs[tx][kk];
        __syncthreads();
      }
    }
    if (row < p.rows && col < out) {
      float z = gate * channel_scale(p.weight_scale, col);
      if (p.lora_xa) z += p.lora_scale * lora;
      const float u = kSwiglu ? up * channel_scale(p.up_scale, col) : 0.0f;
      finish_one<act>(p, row, col, z, u);
    }
  }
}

// dx (row m0 + ty, column n0 + tx) = sum over o of dout[row, o] * scale[o] W[o, column] (+ the up
// pair).
template <WeightKind kind>
__global__ void frozen_backward_simple_kernel(const BackwardParams p) {
  __shared__ float ds[kSimpleTile][kSimpleTile + 1], ws[kSimpleTile][kSimpleTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kSimpleTile, col = n0 + tx;
  const int64_t m_blocks = (p.rows + kSimpleTile - 1) / kSimpleTile;
  const int64_t in = p.in_features, out = p.out_features;
  const int pairs = p.up_dout ? 2 : 1;
  for (int64_t block_m = blockIdx.y; block_m < m_blocks; block_m += gridDim.y) {
    const int64_t row = block_m * kSimpleTile + ty;
    float acc = 0.0f;
    for (int pair = 0; pair < pairs; ++pair) {
      const bfloat* dout = pair ? p.up_dout : p.dout;
      const void* weight = pair ? p.up_weight : p.weight;
      const float* scale = pair ? p.up_scale : p.weight_scale;
      for (int64_t k0 = 0; k0 < out; k0 += kSimpleTile) {
        ds[ty][tx] = row < p.rows && k0 + tx < out ? to_float(dout[row * out + k0 + tx]) : 0.0f;
        const int64_t o = k0 + ty, column = n0 + tx;
        ws[ty][tx] = o < out && column < in
                         ? channel_scale(scale, o) * weight_element<kind>(weight, o * in + column)
                         : 0.0f;
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kSimpleTile; ++kk) acc += ds[ty][kk] * ws[kk][tx];
        __syncthreads();
      }
    }
    if (row < p.rows && col < in) p.dx[row * in + col] = from_float<bfloat>(acc);
  }
}

// ---- host side -------------------------------------------------------------------------------

WeightKind weight_kind(DType dtype) {
  return dtype == DType::i8 ? WeightKind::i8
                            : (dtype == DType::f8e4m3 ? WeightKind::e4m3 : WeightKind::bf16);
}
// The k or n extent a 16-byte chunk of the weight covers: cp.async needs whole, aligned chunks.
int64_t chunk_elements(WeightKind kind) {
  return kind == WeightKind::bf16 ? 8 : 16;
}
bool aligned(const void* pointer, uintptr_t bytes) {
  return reinterpret_cast<uintptr_t>(pointer) % bytes == 0;  // null counts as aligned
}
int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
// Row blocks of the simple kernels go on grid y (at most 65535); they loop over any beyond.
unsigned grid_rows(int64_t tiles) {
  return static_cast<unsigned>(tiles < 1 ? 1 : (tiles > 65535 ? 65535 : tiles));
}
// The tensor-core kernels take row tiles on grid x (up to 2^31 - 1) and column tiles on grid y.
dim3 tensor_core_grid(std::string_view op, int64_t rows, int64_t column_tiles) {
  if (column_tiles > 65535) {
    fail("op {}: {} column tiles of {} exceed the grid's 65535", op, column_tiles, kTileN);
  }
  return dim3(static_cast<unsigned>(ceil_div(rows, kTileM)), static_cast<unsigned>(column_tiles));
}
constexpr int shared_bytes(WeightKind kind) {
  return kind == WeightKind::bf16 ? frozen::kSharedBytesBf16 : frozen::kSharedBytesQuantized;
}

template <typename Params>
void launch_tensor_core(std::string_view op, const OpContext& ctx, void (*kernel)(Params),
                        dim3 grid, int bytes, const Params& p) {
  allow_dynamic_shared(op, kernel, static_cast<size_t>(bytes));
  launch_kernel(op, ctx, kernel, grid, dim3(frozen::kThreads), static_cast<size_t>(bytes), p);
}

template <WeightKind kind, FrozenEpilogue act>
void launch_forward(std::string_view op, const OpContext& ctx, const ForwardParams& p,
                    bool tensor_core) {
  if (tensor_core) {
    constexpr int64_t columns = act == FrozenEpilogue::swiglu ? kTileN / 2 : kTileN;
    const dim3 grid = tensor_core_grid(op, p.rows, ceil_div(p.out_features, columns));
    launch_tensor_core(op, ctx, frozen_forward_kernel<kind, act>, grid, shared_bytes(kind), p);
  } else {
    const dim3 grid(static_cast<unsigned>(ceil_div(p.out_features, kSimpleTile)),
                    grid_rows(ceil_div(p.rows, kSimpleTile)));
    launch_kernel(op, ctx, frozen_forward_simple_kernel<kind, act>, grid,
                  dim3(kSimpleTile, kSimpleTile), 0, p);
  }
}

template <WeightKind kind>
void launch_forward(std::string_view op, const OpContext& ctx, const ForwardParams& p,
                    FrozenEpilogue epilogue, bool tensor_core) {
  switch (epilogue) {
    case FrozenEpilogue::none:
      return launch_forward<kind, FrozenEpilogue::none>(op, ctx, p, tensor_core);
    case FrozenEpilogue::gelu:
      return launch_forward<kind, FrozenEpilogue::gelu>(op, ctx, p, tensor_core);
    case FrozenEpilogue::swiglu:
      return launch_forward<kind, FrozenEpilogue::swiglu>(op, ctx, p, tensor_core);
  }
}

template <WeightKind kind>
void launch_backward(std::string_view op, const OpContext& ctx, const BackwardParams& p,
                     bool tensor_core) {
  if (tensor_core) {
    const dim3 grid = tensor_core_grid(op, p.rows, ceil_div(p.in_features, kTileN));
    launch_tensor_core(op, ctx, frozen_backward_kernel<kind>, grid, shared_bytes(kind), p);
  } else {
    const dim3 grid(static_cast<unsigned>(ceil_div(p.in_features, kSimpleTile)),
                    grid_rows(ceil_div(p.rows, kSimpleTile)));
    launch_kernel(op, ctx, frozen_backward_simple_kernel<kind>, grid,
                  dim3(kSimpleTile, kSimpleTile), 0, p);
  }
}

}  // namespace

void frozen_linear_forward(const OpContext& ctx, Tensor out, Tensor x, Tensor weight,
                           const ops::FrozenLinearArgs& args) {
  constexpr std::string_view op = "frozen_linear_forward";
  if (x.dtype != DType::bf16) ops::unsupported(op, Device::cuda, x.dtype);
  const int64_t rows = x.dim(0), in_features = x.dim(1), out_features = weight.dim(0);
  if (rows == 0 || out_features == 0) return;
  const float lora_scale = static_cast<float>(args.lora_scale);
  const bool lora = !args.lora_xa.empty() && lora_scale != 0.0f;
  const ForwardParams p{data<bfloat>(out),
                        data_or_null<bfloat>(args.pre_activation),
                        data<bfloat>(x),
                        weight.data,
                        args.up_weight.data,
                        data_or_null<float>(args.weight_scale),
                        data_or_null<float>(args.up_scale),
                        data_or_null<bfloat>(args.bias),
                        data_or_null<bfloat>(args.residual),
                        lora ? data<bfloat>(args.lora_xa) : nullptr,
                        lora ? data<bfloat>(args.lora_b) : nullptr,
                        lora_scale,
                        rows,
                        in_features,
                        out_features,
                        lora ? args.lora_xa.dim(1) : 0};
  const WeightKind kind = weight_kind(weight.dtype);
  // The tensor-core kernel divides by lora_scale before the LoRA loop: keep it far from 0 and inf.
  const float magnitude = lora_scale < 0.0f ? -lora_scale : lora_scale;
  const bool tensor_core =
      in_features % chunk_elements(kind) == 0 && out_features % 8 == 0 &&
      (!lora || (p.rank % 8 == 0 && magnitude > 1e-20f && magnitude < 1e20f)) && aligned(p.x, 16) &&
      aligned(p.weight, 16) && aligned(p.up_weight, 16) && aligned(p.lora_xa, 16) &&
      aligned(p.lora_b, 16) && aligned(p.out, 4) && aligned(p.pre_activation, 4) &&
      aligned(p.bias, 4) && aligned(p.residual, 4);
  switch (kind) {
    case WeightKind::bf16:
      return launch_forward<WeightKind::bf16>(op, ctx, p, args.epilogue, tensor_core);
    case WeightKind::i8:
      return launch_forward<WeightKind::i8>(op, ctx, p, args.epilogue, tensor_core);
    case WeightKind::e4m3:
      return launch_forward<WeightKind::e4m3>(op, ctx, p, args.epilogue, tensor_core);
  }
}

void frozen_linear_backward_input(const OpContext& ctx, Tensor dx, Tensor dout, Tensor weight,
                                  Tensor weight_scale, Tensor up_dout, Tensor up_weight,
                                  Tensor up_scale) {
  constexpr std::string_view op = "frozen_linear_backward_input";
  if (dout.dtype != DType::bf16) ops::unsupported(op, Device::cuda, dout.dtype);
  const int64_t rows = dout.dim(0), out_features = dout.dim(1), in_features = weight.dim(1);
  if (rows == 0 || in_features == 0) return;
  const BackwardParams p{data<bfloat>(dx),
                         data<bfloat>(dout),
                         weight.data,
                         data_or_null<float>(weight_scale),
                         data_or_null<bfloat>(up_dout),
                         up_weight.data,
                         data_or_null<float>(up_scale),
                         rows,
                         in_features,
                         out_features};
  const WeightKind kind = weight_kind(weight.dtype);
  const bool tensor_core = in_features % chunk_elements(kind) == 0 && out_features % 8 == 0 &&
                           aligned(p.dout, 16) && aligned(p.up_dout, 16) && aligned(p.weight, 16) &&
                           aligned(p.up_weight, 16) && aligned(p.dx, 4);
  switch (kind) {
    case WeightKind::bf16:
      return launch_backward<WeightKind::bf16>(op, ctx, p, tensor_core);
    case WeightKind::i8:
      return launch_backward<WeightKind::i8>(op, ctx, p, tensor_core);
    case WeightKind::e4m3:
      return launch_backward<WeightKind::e4m3>(op, ctx, p, tensor_core);
  }
}

}  // namespace ft::cuda
