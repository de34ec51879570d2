// Tensor-core flash attention (FlashAttention-2 on mma.sync m16n8k16 bf16, fp32 accumulation) for
// bf16 activations with head_dim 64 or 128 on sm_80 and later. kernels/cuda/attention_cuda.cu
// selects it when flash_attention_applies and runs its SIMT kernels otherwise; the semantics
// (prefix rows, causal mask, segment ids, GQA, lse) are those of kernels/ops.h.
//   forward: one CTA per (64 query rows, query head, batch row); 4 warps of 16 rows each keep
//     their Q fragments in registers and walk 64-key tiles (prefix tiles first, then sequence
//     tiles up to the causal limit), double-buffered by cp.async, with an online softmax in fp32.
//   backward, after the caller's delta = rowsum(dO * O):
//     dq per (64 query rows, query head, batch row), walking the key tiles: dQ = scale dS K;
//     dk, dv per (64 keys, kv head, batch row), walking every query tile of every query head of
//       the GQA group that can see the keys: dV = P^T dO, dK = scale dS^T Q.
//     No two CTAs write one element and nothing is accumulated with atomics, so the backward is
//     deterministic; the price is recomputing S and dP in the dq kernel (7 products per tile
//     pair instead of 5). Prefix rows are key tiles of their own; their dk, dv go to per-batch-row
//     f32 partials that the caller sums over the batch in a fixed order.
// Device code: flash_attention_cuda.cu (forward), flash_attention_backward_cuda.cu (dq, dk/dv),
// flash_attention_tiles.cuh (shared pieces).
#pragma once

#include <cstdint>
#include <initializer_list>

#include "kernels/context.h"
#include "kernels/cpu/attention_cpu.h"
#include "runtime/tensor.h"

namespace ft::cuda {

// Whether the tensor-core kernels take this call: bf16 activations, head_dim 64 or 128, sequence
// and prefix lengths in int range, every pointer in `data` 16-byte aligned (cp.async rows; null
// is fine) and a current device of compute capability 8.0 or later.
bool flash_attention_applies(const cpu::AttentionDims& dims, DType dtype,
                             std::initializer_list<const void*> data);

// out (B, T, Hq, D) bf16 and lse (B, Hq, T) f32 overwritten. Arguments checked by the caller.
void flash_attention_forward(const OpContext& ctx, Tensor out, Tensor lse, Tensor q, Tensor k,
                             Tensor v, Tensor prefix_k, Tensor prefix_v, Tensor segment_ids,
                             const cpu::AttentionDims& dims, bool causal, double scale);

// dq, dk, dv overwritten. partial_dk, partial_dv (B, P, Hkv, D) f32, each optional (null: not
// wanted): overwritten with each batch row's gradient of the prefix rows. delta (B, Hq, T) f32 =
// rowsum(dout * out), computed by the caller.
void flash_attention_backward(const OpContext& ctx, Tensor dq, Tensor dk, Tensor dv,
                              float* partial_dk, float* partial_dv, Tensor dout, Tensor lse,
                              const float* delta, Tensor q, Tensor k, Tensor v, Tensor prefix_k,
                              Tensor prefix_v, Tensor segment_ids, const cpu::AttentionDims& dims,
                              bool causal, double scale);

}  // namespace ft::cuda
