// Attention on the GPU, flash-attention style: no (T, T) score matrix is ever stored. Per (batch,
// query head, tile of query rows) a block walks tiles of keys (the prefix rows first, then the
// sequence) with an online softmax in fp32 and writes out and the log-sum-exp. The backward
// recomputes the probabilities tile by tile from q, k and the saved lse:
//   delta = rowsum(dO * O)                    (workspace, f32)
//   dq    per (batch, query head, query tile), walking the key tiles;
//   dk,dv per (batch, kv head, key tile), walking the query tiles of every query head of the GQA
//         group, so no two blocks write one row (deterministic, no atomics);
//   dprefix_k/v: the prefix rows are key tiles too; each batch row's gradient goes to an f32
//         partial in the workspace, then a fixed-order sum over the batch is added into dprefix
//         (deterministic).
// q, k, v, prefix_k/v, out, dout, dq, dk, dv: f32 or bf16 (one dtype); lse: f32; dprefix_k/v: f32
// or the activations' dtype. head_dim up to kAttentionMaxHeadDim. ctx.workspace is device memory.
// Arguments are checked by the ops.h entry points (kernels/attention_ops.cpp).
// These are the SIMT kernels; attention_forward/backward run the tensor-core kernels of
// flash_attention_cuda.h instead where flash_attention_applies (bf16, head_dim 64 or 128, sm_80+),
// with the same workspace (delta and the prefix partials).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/context.h"
#include "kernels/cpu/attention_cpu.h"
#include "runtime/tensor.h"

namespace ft::cuda {

inline constexpr int64_t kAttentionMaxHeadDim = 256;

// Workspace bytes of the backward (the forward needs none): delta (B, Hq, T) f32, plus two
// (B, P, Hkv, D) f32 prefix partials when prefix gradients are wanted.
size_t attention_backward_workspace_bytes(const cpu::AttentionDims& dims, bool prefix_grads);

void attention_forward(const OpContext& ctx, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v,
                       Tensor prefix_k, Tensor prefix_v, Tensor segment_ids,
                       const cpu::AttentionDims& dims, bool causal, double scale);

// dq, dk, dv overwritten; dprefix_k, dprefix_v accumulated (each skipped when empty).
void attention_backward(const OpContext& ctx, Tensor dq, Tensor dk, Tensor dv, Tensor dprefix_k,
                        Tensor dprefix_v, Tensor dout, Tensor out, Tensor lse, Tensor q, Tensor k,
                        Tensor v, Tensor prefix_k, Tensor prefix_v, Tensor segment_ids,
                        const cpu::AttentionDims& dims, bool causal, double scale);

// The SIMT kernels whatever the dtype and head_dim (for tests comparing the two paths).
void attention_forward_simt(const OpContext& ctx, Tensor out, Tensor lse, Tensor q, Tensor k,
                            Tensor v, Tensor prefix_k, Tensor prefix_v, Tensor segment_ids,
                            const cpu::AttentionDims& dims, bool causal, double scale);
void attention_backward_simt(const OpContext& ctx, Tensor dq, Tensor dk, Tensor dv,
                             Tensor dprefix_k, Tensor dprefix_v, Tensor dout, Tensor out,
                             Tensor lse, Tensor q, Tensor k, Tensor v, Tensor prefix_k,
                             Tensor prefix_v, Tensor segment_ids, const cpu::AttentionDims& dims,
                             bool causal, double scale);

}  // namespace ft::cuda
