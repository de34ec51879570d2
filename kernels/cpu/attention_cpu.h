// CPU attention (forward and backward), f32 and f64. Each (batch, head) pair is one task on one
// OpenMP thread; within it, blocks of query rows go through BLAS GEMMs that read q, k, v in their
// (B, T, H, D) layout directly (leading dimension H * D, no transposing copies):
//   S = scale * Q_blk [prefix_k; K]^T, masked (causal, segments), row softmax (lse saved),
//   O_blk = P [prefix_v; V].
// With a causal mask or segment ids only the key columns some row of the block can see are
// computed. Scratch comes from the caller's workspace (attention_workspace_bytes).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ft::cpu {

// Query rows handled together: the per-thread score and score-gradient blocks are
// (kAttentionQueryBlock, prefix_len + seq_len) each.
inline constexpr int64_t kAttentionQueryBlock = 64;

struct AttentionDims {
  int64_t batch = 0;
  int64_t seq_len = 0;
  int64_t q_heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t prefix_len = 0;  // 0: no prefix
};

// Read-only operands. prefix_k/prefix_v (P, Hkv, D) and segment_ids (B, T) may be null.
template <typename T>
struct AttentionInputs {
  const T* q = nullptr;  // (B, T, Hq, D)
  const T* k = nullptr;  // (B, T, Hkv, D)
  const T* v = nullptr;  // (B, T, Hkv, D)
  const T* prefix_k = nullptr;
  const T* prefix_v = nullptr;
  const int32_t* segment_ids = nullptr;
  bool causal = true;
  double scale = 1.0;  // already resolved (never 0 here)
};

// Scratch bytes for num_threads threads: two score blocks per thread, plus (B, P, Hkv, D) x 2
// per-batch-row partial prefix gradients when P > 0.
size_t attention_workspace_bytes(const AttentionDims& dims, size_t element_bytes, int num_threads);

// out (B, T, Hq, D) and lse (B, Hq, T) overwritten. `workspace` holds at least
// attention_workspace_bytes(dims, sizeof(T), num_threads) bytes.
template <typename T>
void attention_forward(T* out, T* lse, const AttentionInputs<T>& in, const AttentionDims& dims,
                       int num_threads, void* workspace);

// dq, dk, dv overwritten; dprefix_k, dprefix_v (P, Hkv, D) accumulated (+=) with the gradient
// summed over the batch, each skipped when null.
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, T* dprefix_k, T* dprefix_v, const T* dout,
                        const T* out, const T* lse, const AttentionInputs<T>& in,
                        const AttentionDims& dims, int num_threads, void* workspace);

}  // namespace ft::cpu
