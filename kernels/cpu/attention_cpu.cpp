#include "kernels/cpu/attention_cpu.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace ft::cpu {
namespace {

constexpr size_t kScratchAlignment = 64;

size_t round_up(size_t bytes) {
  return (bytes + kScratchAlignment - 1) / kScratchAlignment * kScratchAlignment;
}

// Bytes of one thread's scratch: the score block and the score-gradient block.
size_t thread_scratch_bytes(const AttentionDims& dims, size_t element_bytes) {
  const int64_t block_rows = std::min(kAttentionQueryBlock, dims.seq_len);
  return round_up(2 * static_cast<size_t>(block_rows * (dims.prefix_len + dims.seq_len)) *
                  element_bytes);
}

size_t prefix_partial_bytes(const AttentionDims& dims, size_t element_bytes) {
  if (dims.prefix_len == 0) return 0;
  return round_up(
      static_cast<size_t>(dims.batch * dims.prefix_len * dims.kv_heads * dims.head_dim) *
      element_bytes);
}

// Row-major C (m, n) = alpha * op(A) op(B) + beta * C.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
          int64_t ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

template <typename T>
constexpr T kNegativeInfinity = -std::numeric_limits<T>::infinity();

// ---- row kernels ------------------------------------------------------------------------------
// The softmax costs as much as the GEMMs unless exp is vectorized (std::exp is a scalar libm
// call). The f32 kernels use GCC vector extensions, 16 lanes (lowered to whatever the target
// has), and are cloned per instruction set, so the default x86-64 build still runs AVX2/AVX-512
// code where the CPU has it. f64 serves the gradient checks: plain loops with std::exp.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FT_ROW_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FT_ROW_KERNEL
#endif

// The helpers pass vectors by value but are always inlined into the clones, so no vector crosses
// a call whose ABI depends on the instruction set.
#pragma GCC diagnostic ignored "-Wpsabi"
using Floats = float __attribute__((vector_size(64)));
using Ints = int32_t __attribute__((vector_size(64)));
constexpr int64_t kLanes = 16;

[[gnu::always_inline]] inline Floats splat(float value) {
  return Floats{} + value;
}

// Loads the first `count` (< kLanes) floats of `source`, the other lanes set to `fill`.
[[gnu::always_inline]] inline Floats load_partial(const float* source, int64_t count, float fill) {
  alignas(64) float lanes[kLanes];
  for (int64_t i = 0; i < kLanes; ++i) lanes[i] = i < count ? source[i] : fill;
  Floats v;
  std::memcpy(&v, lanes, sizeof v);
  return v;
}
[[gnu::always_inline]] inline void store_partial(float* destination, int64_t count,
                                                 const Floats& v) {
  alignas(64) float lanes[kLanes];
  std::memcpy(lanes, &v, sizeof v);
  for (int64_t i = 0; i < count; ++i) destination[i] = lanes[i];
}
[[gnu::always_inline]] inline Floats load(const float* source) {
  Floats v;
  std::memcpy(&v, source, sizeof v);
  return v;
}
[[gnu::always_inline]] inline void store(float* destination, const Floats& v) {
  std::memcpy(destination, &v, sizeof v);
}

// x = exp(x) in place (by reference: no vector-ABI differences between the clones). Cephes'
// polynomial on r = x - n ln2, times 2^n built in the exponent bits; ~1 ulp. Below float's normal
// range, masked -inf scores included, the result is 0.
[[gnu::always_inline]] inline void exp_in_place(Floats& x) {
  constexpr float kMin = -87.3365448f;
  constexpr float kMax = 88.0f;
  constexpr float kRoundToInteger = 12582912.0f;  // 1.5 * 2^23
  const Ints underflow = x < kMin;
  Floats clamped = underflow ? splat(kMin) : x;
  clamped = clamped > kMax ? splat(kMax) : clamped;
  const Floats n = (clamped * 1.44269504088896341f + kRoundToInteger) - kRoundToInteger;
  Floats r = clamped - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  Floats p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const Floats exp_r = p * r * r + r + 1.0f;
  const Floats two_to_n = reinterpret_cast<const Floats&>(
      static_cast<const Ints&>((__builtin_convertvector(n, Ints) + 127) << 23));
  x = underflow ? splat(0.0f) : exp_r * two_to_n;
}

FT_ROW_KERNEL float row_max(const float* row, int64_t count) {
  Floats best = splat(kNegativeInfinity<float>);
  int64_t c = 0;
  for (; c + kLanes <= count; c += kLanes) {
    const Floats v = load(row + c);
    best = v > best ? v : best;
  }
  const Floats tail = load_partial(row + c, count - c, kNegativeInfinity<float>);
  best = tail > best ? tail : best;
  float result = best[0];
  for (int64_t i = 1; i < kLanes; ++i) result = best[i] > result ? best[i] : result;
  return result;
}

// row = exp(row - shift); returns the sum (lanes accumulated, then added in lane order).
FT_ROW_KERNEL float exp_shifted_sum(float* row, int64_t count, float shift) {
  Floats sum = splat(0.0f);
  int64_t c = 0;
  for (; c + kLanes <= count; c += kLanes) {
    Floats v = load(row + c) - shift;
    exp_in_place(v);
    store(row + c, v);
    sum += v;
  }
  if (c < count) {
    Floats v = load_partial(row + c, count - c, kNegativeInfinity<float>) - shift;
    exp_in_place(v);
    store_partial(row + c, count - c, v);
    sum += v;
  }
  float result = 0.0f;
  for (int64_t i = 0; i < kLanes; ++i) result += sum[i];
  return result;
}

double row_max(const double* row, int64_t count) {
  double best = kNegativeInfinity<double>;
  for (int64_t c = 0; c < count; ++c) best = std::max(best, row[c]);
  return best;
}
double exp_shifted_sum(double* row, int64_t count, double shift) {
  double sum = 0.0;
  for (int64_t c = 0; c < count; ++c) {
    row[c] = std::exp(row[c] - shift);
    sum += row[c];
  }
  return sum;
}

// Forward: the first `visible` entries of a score row (masked ones already -inf) become softmax
// probabilities, the rest of the row zeros; returns the log-sum-exp.
template <typename T>
T softmax_row(T* row, int64_t visible, int64_t width) {
  std::fill(row + visible, row + width, T(0));
  const T max_score = row_max(row, visible);
  if (max_score == kNegativeInfinity<T>) {  // no visible key: cannot happen (a query sees itself)
    std::fill(row, row + visible, T(0));
    return kNegativeInfinity<T>;
  }
  const T sum = exp_shifted_sum(row, visible, max_score);
  const T inverse = T(1) / sum;
  for (int64_t c = 0; c < visible; ++c) row[c] *= inverse;
  return max_score + std::log(sum);
}

// Backward: probabilities recomputed from the scores and the saved log-sum-exp.
template <typename T>
void probabilities_row(T* row, int64_t visible, int64_t width, T lse) {
  std::fill(row + visible, row + width, T(0));
  if (lse == kNegativeInfinity<T>) {
    std::fill(row, row + visible, T(0));
    return;
  }
  exp_shifted_sum(row, visible, lse);
}

// Sizes shared by every task of one call.
template <typename T>
struct Geometry {
  int64_t seq_len, head_dim, prefix_len;
  int64_t q_stride;   // Hq * D: between consecutive tokens of q, out, dq, dout
  int64_t kv_stride;  // Hkv * D: between consecutive tokens of k, v, prefix_k, prefix_v
  bool causal;
  T scale;
};

// One (batch, query head) pair's operands, each pointing at its first row.
template <typename T>
struct HeadOperands {
  const T* q;
  const T* k;
  const T* v;
  const T* prefix_k;  // null when there is no prefix
  const T* prefix_v;
  const int32_t* segments;  // (T) of this batch row, or null
};

template <typename T>
HeadOperands<T> head_operands(const AttentionInputs<T>& in, const AttentionDims& dims, int64_t b,
                              int64_t h) {
  const int64_t kv_head = h / (dims.q_heads / dims.kv_heads);
  const int64_t D = dims.head_dim;
  HeadOperands<T> head;
  head.q = in.q + (b * dims.seq_len * dims.q_heads + h) * D;
  head.k = in.k + (b * dims.seq_len * dims.kv_heads + kv_head) * D;
  head.v = in.v + (b * dims.seq_len * dims.kv_heads + kv_head) * D;
  const bool has_prefix = dims.prefix_len > 0;
  head.prefix_k = has_prefix ? in.prefix_k + kv_head * D : nullptr;
  head.prefix_v = has_prefix ? in.prefix_v + kv_head * D : nullptr;
  head.segments = in.segment_ids ? in.segment_ids + b * dims.seq_len : nullptr;
  return head;
}

// Query rows [row_begin, row_end) and the real keys [key_begin, key_end) any of them may see.
struct QueryBlock {
  int64_t row_begin, row_end, key_begin, key_end;
  int64_t rows() const { return row_end - row_begin; }
  int64_t keys() const { return key_end - key_begin; }
};

QueryBlock query_block(int64_t row_begin, int64_t seq_len, bool causal, const int32_t* segments) {
  QueryBlock block;
  block.row_begin = row_begin;
  block.row_end = std::min(seq_len, row_begin + kAttentionQueryBlock);
  block.key_begin = 0;
  block.key_end = causal ? block.row_end : seq_len;
  if (segments != nullptr) {
    // A query sees itself, so the range holds the block; widen it to the first (and, without
    // the causal mask, last) key sharing a segment with one of the block's queries.
    block.key_begin = block.row_begin;
    for (int64_t i = block.row_begin; i < block.row_end; ++i) {
      for (int64_t j = 0; j < block.key_begin; ++j) {
        if (segments[j] == segments[i]) {
          block.key_begin = j;
          break;
        }
      }
    }
    if (!causal) {
      block.key_end = block.row_end;
      for (int64_t i = block.row_begin; i < block.row_end; ++i) {
        for (int64_t j = seq_len - 1; j >= block.key_end; --j) {
          if (segments[j] == segments[i]) {
            block.key_end = j + 1;
            break;
          }
        }
      }
    }
  }
  return block;
}

// scores (rows, P + keys) = scale * Q_blk [prefix_k; K_blk]^T, keys of another segment set to
// -inf. The causal mask is applied by the row functions through visible_width().
template <typename T>
void compute_scores(const Geometry<T>& g, const HeadOperands<T>& head, const QueryBlock& block,
                    T* scores, int64_t width) {
  const int64_t P = g.prefix_len;
  const T* q_block = head.q + block.row_begin * g.q_stride;
  if (P > 0) {
    gemm(false, true, block.rows(), P, g.head_dim, g.scale, q_block, g.q_stride, head.prefix_k,
         g.kv_stride, T(0), scores, width);
  }
  gemm(false, true, block.rows(), block.keys(), g.head_dim, g.scale, q_block, g.q_stride,
       head.k + block.key_begin * g.kv_stride, g.kv_stride, T(0), scores + P, width);
  if (head.segments == nullptr) return;
  const int32_t* key_segments = head.segments + block.key_begin;
  for (int64_t r = 0; r < block.rows(); ++r) {
    const int32_t query_segment = head.segments[block.row_begin + r];
    T* real_scores = scores + r * width + P;
    for (int64_t c = 0; c < block.keys(); ++c) {
      if (key_segments[c] != query_segment) real_scores[c] = kNegativeInfinity<T>;
    }
  }
}

// Columns of query row i's score row that may be visible: the prefix, then real keys up to i
// (causal) or to the block's end. Columns past it are masked by the causal rule.
template <typename T>
int64_t visible_width(const Geometry<T>& g, const QueryBlock& block, int64_t i) {
  return g.prefix_len + (g.causal ? i + 1 - block.key_begin : block.keys());
}

template <typename T>
void forward_head(const Geometry<T>& g, const HeadOperands<T>& head, T* out, T* lse, T* scores) {
  const int64_t P = g.prefix_len;
  for (int64_t row_begin = 0; row_begin < g.seq_len; row_begin += kAttentionQueryBlock) {
    const QueryBlock block = query_block(row_begin, g.seq_len, g.causal, head.segments);
    const int64_t width = P + block.keys();
    compute_scores(g, head, block, scores, width);
    for (int64_t r = 0; r < block.rows(); ++r) {
      const int64_t i = block.row_begin + r;
      lse[i] = softmax_row(scores + r * width, visible_width(g, block, i), width);
    }
    T* out_block = out + block.row_begin * g.q_stride;
    gemm(false, false, block.rows(), g.head_dim, block.keys(), T(1), scores + P, width,
         head.v + block.key_begin * g.kv_stride, g.kv_stride, T(0), out_block, g.q_stride);
    if (P > 0) {
      gemm(false, false, block.rows(), g.head_dim, P, T(1), scores, width, head.prefix_v,
           g.kv_stride, T(1), out_block, g.q_stride);
    }
  }
}

// Gradient destinations of one (batch, query head) pair, each at its first row. dk, dv and the
// prefix partials belong to the kv head and accumulate over the group's query heads.
template <typename T>
struct HeadGradients {
  T* dq;
  T* dk;
  T* dv;
  T* dprefix_k;  // this batch row's partial (P rows), or null: not wanted
  T* dprefix_v;
  const T* dout;
  const T* out;
  const T* lse;  // (T) of this pair
};

template <typename T>
void backward_head(const Geometry<T>& g, const HeadOperands<T>& head, const HeadGradients<T>& grad,
                   T* probs, T* dscores) {
  const int64_t P = g.prefix_len;
  const int64_t D = g.head_dim;
  for (int64_t row_begin = 0; row_begin < g.seq_len; row_begin += kAttentionQueryBlock) {
    const QueryBlock block = query_block(row_begin, g.seq_len, g.causal, head.segments);
    const int64_t rows = block.rows();
    const int64_t width = P + block.keys();
    const T* q_block = head.q + block.row_begin * g.q_stride;
    const T* dout_block = grad.dout + block.row_begin * g.q_stride;
    const T* k_block = head.k + block.key_begin * g.kv_stride;
    const T* v_block = head.v + block.key_begin * g.kv_stride;

    compute_scores(g, head, block, probs, width);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = block.row_begin + r;
      probabilities_row(probs + r * width, visible_width(g, block, i), width, grad.lse[i]);
    }
    // dP = dO [prefix_v; V]^T, then dS = P * (dP - rowsum(dO * O)) in place.
    gemm(false, true, rows, block.keys(), D, T(1), dout_block, g.q_stride, v_block, g.kv_stride,
         T(0), dscores + P, width);
    if (P > 0) {
      gemm(false, true, rows, P, D, T(1), dout_block, g.q_stride, head.prefix_v, g.kv_stride, T(0),
           dscores, width);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const T* dout_row = dout_block + r * g.q_stride;
      const T* out_row = grad.out + (block.row_begin + r) * g.q_stride;
      T dout_dot_out = 0;
#pragma omp simd reduction(+ : dout_dot_out)
      for (int64_t d = 0; d < D; ++d) dout_dot_out += dout_row[d] * out_row[d];
      const T* p_row = probs + r * width;
      T* ds_row = dscores + r * width;
#pragma omp simd
      for (int64_t c = 0; c < width; ++c) ds_row[c] = p_row[c] * (ds_row[c] - dout_dot_out);
    }
    // dV += P^T dO; dQ = scale dS [prefix_k; K]; dK += scale dS^T Q.
    gemm(true, false, block.keys(), D, rows, T(1), probs + P, width, dout_block, g.q_stride, T(1),
         grad.dv + block.key_begin * g.kv_stride, g.kv_stride);
    T* dq_block = grad.dq + block.row_begin * g.q_stride;
    gemm(false, false, rows, D, block.keys(), g.scale, dscores + P, width, k_block, g.kv_stride,
         T(0), dq_block, g.q_stride);
    gemm(true, false, block.keys(), D, rows, g.scale, dscores + P, width, q_block, g.q_stride, T(1),
         grad.dk + block.key_begin * g.kv_stride, g.kv_stride);
    if (P > 0) {
      gemm(false, false, rows, D, P, g.scale, dscores, width, head.prefix_k, g.kv_stride, T(1),
           dq_block, g.q_stride);
      if (grad.dprefix_v != nullptr) {
        gemm(true, false, P, D, rows, T(1), probs, width, dout_block, g.q_stride, T(1),
             grad.dprefix_v, g.kv_stride);
      }
      if (grad.dprefix_k != nullptr) {
        gemm(true, false, P, D, rows, g.scale, dscores, width, q_block, g.q_stride, T(1),
             grad.dprefix_k, g.kv_stride);
      }
    }
  }
}

// Zeroes `rows` rows of `cols` elements spaced `stride` apart.
template <typename T>
void zero_rows(T* first, int64_t rows, int64_t cols, int64_t stride) {
  for (int64_t r = 0; r < rows; ++r) std::fill(first + r * stride, first + r * stride + cols, T(0));
}

template <typename T>
Geometry<T> geometry(const AttentionInputs<T>& in, const AttentionDims& dims) {
  return Geometry<T>{dims.seq_len,
                     dims.head_dim,
                     dims.prefix_len,
                     dims.q_heads * dims.head_dim,
                     dims.kv_heads * dims.head_dim,
                     in.causal,
                     static_cast<T>(in.scale)};
}

}  // namespace

size_t attention_workspace_bytes(const AttentionDims& dims, size_t element_bytes, int num_threads) {
  const size_t threads = static_cast<size_t>(std::max(1, num_threads));
  return threads * thread_scratch_bytes(dims, element_bytes) +
         2 * prefix_partial_bytes(dims, element_bytes);
}

template <typename T>
void attention_forward(T* out, T* lse, const AttentionInputs<T>& in, const AttentionDims& dims,
                       int num_threads, void* workspace) {
  const Geometry<T> g = geometry(in, dims);
  const size_t scratch_bytes = thread_scratch_bytes(dims, sizeof(T));
  const int64_t tasks = dims.batch * dims.q_heads;
#pragma omp parallel num_threads(std::max(1, num_threads))
  {
    // This task's ICV only: BLAS calls made here run on this thread, also in a 1-thread team.
    omp_set_num_threads(1);
    T* scores =
        reinterpret_cast<T*>(static_cast<char*>(workspace) + omp_get_thread_num() * scratch_bytes);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t b = task / dims.q_heads;
      const int64_t h = task % dims.q_heads;
      forward_head(g, head_operands(in, dims, b, h),
                   out + (b * dims.seq_len * dims.q_heads + h) * dims.head_dim,
                   lse + task * dims.seq_len, scores);
    }
  }
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, T* dprefix_k, T* dprefix_v, const T* dout,
                        const T* out, const T* lse, const AttentionInputs<T>& in,
                        const AttentionDims& dims, int num_threads, void* workspace) {
  const Geometry<T> g = geometry(in, dims);
  const int64_t P = dims.prefix_len;
  const int64_t D = dims.head_dim;
  const int64_t group = dims.q_heads / dims.kv_heads;
  const int threads = std::max(1, num_threads);
  const size_t scratch_bytes = thread_scratch_bytes(dims, sizeof(T));
  const int64_t block_elements = std::min(kAttentionQueryBlock, dims.seq_len) * (P + dims.seq_len);
  // Per-batch-row prefix gradients (B, P, Hkv, D): each task writes only its own slice, and the
  // sum over the batch is taken in a fixed order afterwards (thread-count independent).
  char* partials = static_cast<char*>(workspace) + threads * scratch_bytes;
  T* partial_k = dprefix_k && P > 0 ? reinterpret_cast<T*>(partials) : nullptr;
  T* partial_v = dprefix_v && P > 0
                     ? reinterpret_cast<T*>(partials + prefix_partial_bytes(dims, sizeof(T)))
                     : nullptr;
  const int64_t prefix_elements = P * dims.kv_heads * D;
  const int64_t tasks = dims.batch * dims.kv_heads;
#pragma omp parallel num_threads(threads)
  {
    omp_set_num_threads(1);
    T* probs =
        reinterpret_cast<T*>(static_cast<char*>(workspace) + omp_get_thread_num() * scratch_bytes);
    T* dscores = probs + block_elements;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      // One kv head and every query head of its group: dk, dv writes never race.
      const int64_t b = task / dims.kv_heads;
      const int64_t kv_head = task % dims.kv_heads;
      const int64_t kv_offset = (b * dims.seq_len * dims.kv_heads + kv_head) * D;
      const int64_t partial_offset = b * prefix_elements + kv_head * D;
      zero_rows(dk + kv_offset, dims.seq_len, D, g.kv_stride);
      zero_rows(dv + kv_offset, dims.seq_len, D, g.kv_stride);
      if (partial_k) zero_rows(partial_k + partial_offset, P, D, g.kv_stride);
      if (partial_v) zero_rows(partial_v + partial_offset, P, D, g.kv_stride);
      for (int64_t h = kv_head * group; h < (kv_head + 1) * group; ++h) {
        const int64_t q_offset = (b * dims.seq_len * dims.q_heads + h) * D;
        HeadGradients<T> grad{dq + q_offset,
                              dk + kv_offset,
                              dv + kv_offset,
                              partial_k ? partial_k + partial_offset : nullptr,
                              partial_v ? partial_v + partial_offset : nullptr,
                              dout + q_offset,
                              out + q_offset,
                              lse + (b * dims.q_heads + h) * dims.seq_len};
        backward_head(g, head_operands(in, dims, b, h), grad, probs, dscores);
      }
    }
    // The implicit barrier above completes every partial; accumulate their batch sum.
    if (partial_k || partial_v) {
#pragma omp for schedule(static)
      for (int64_t e = 0; e < prefix_elements; ++e) {
        if (partial_k) {
          T sum = 0;
          for (int64_t b = 0; b < dims.batch; ++b) sum += partial_k[b * prefix_elements + e];
          dprefix_k[e] += sum;
        }
        if (partial_v) {
          T sum = 0;
          for (int64_t b = 0; b < dims.batch; ++b) sum += partial_v[b * prefix_elements + e];
          dprefix_v[e] += sum;
        }
      }
    }
  }
}

#define FT_INSTANTIATE_ATTENTION(T)                                                                \
  template void attention_forward<T>(T*, T*, const AttentionInputs<T>&, const AttentionDims&, int, \
                                     void*);                                                       \
  template void attention_backward<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*,            \
                                      const AttentionInputs<T>&, const AttentionDims&, int,        \
                                      void*);
FT_INSTANTIATE_ATTENTION(float)
FT_INSTANTIATE_ATTENTION(double)
#undef FT_INSTANTIATE_ATTENTION

}  // namespace ft::cpu
