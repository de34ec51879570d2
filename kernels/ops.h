// The op interface: every op is declared once here as a free function taking an OpContext and
// tensor views. kernels/dispatch.cpp picks the implementation by device and dtype (CPU: f32 and
// f64 in kernels/cpu/; CUDA: kernels/cuda/). Model code calls only these.
//
// Conventions (all ops):
//  - Shapes are given as (rows, cols) with N = tokens = batch * sequence.
//  - Forward outputs and activation gradients (dx, dq, ...) are OVERWRITTEN.
//  - Parameter gradients (dweight, dbias, dtable, dprefix_*) are ACCUMULATED (+=), so micro-batches
//    add into one gradient buffer. An empty parameter-gradient tensor means "frozen: skip it".
//  - An empty optional input (bias, weights, segment_ids, prefix) means "absent".
//  - Mixed precision (CUDA): with bf16 activations, per-row statistics (rstd, mean, lse, losses,
//    loss weights, shard stats and parts) are f32 (stats_dtype), and parameter gradients
//    (dweight, dbias, dtable) may be f32, accumulated in fp32, or bf16 (param_grad_dtype). With
//    f32 or f64 activations every tensor of an op shares their dtype.
//  - CUDA kernels cannot throw: a bad index (ids, positions, targets) is recorded on the device
//    and raised by check_device_errors, which the synchronizing ops call (see there).
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "runtime/tensor.h"

namespace ft::ops {

// The dtype of the per-row statistics of an op on `activations`: f32 for bf16, else the same.
constexpr DType stats_dtype(DType activations) {
  return activations == DType::bf16 ? DType::f32 : activations;
}
// The dtype an argument check expects of parameter gradient `grad` beside `activations`: f32 is
// accepted besides bf16 for bf16 activations; otherwise the activations' dtype.
constexpr DType param_grad_dtype(DType grad, DType activations) {
  return activations == DType::bf16 && grad == DType::f32 ? DType::f32 : activations;
}

// ---- embedding -------------------------------------------------------------------------------
// out (N, C) = table (V, C) [ids (N) i32]. Ids outside [0, V) are an error naming the id.
void embedding_forward(const OpContext& ctx, Tensor out, Tensor ids, Tensor table);
// dtable (V, C) += scatter of dout (N, C) by ids.
void embedding_backward(const OpContext& ctx, Tensor dtable, Tensor ids, Tensor dout);

// ---- normalization ---------------------------------------------------------------------------
// RMSNorm: out = x / sqrt(mean(x^2) + eps) * weight. x, out (N, C); weight (C); rstd (N) saved.
void rmsnorm_forward(const OpContext& ctx, Tensor out, Tensor rstd, Tensor x, Tensor weight,
                     double eps);
// dx (N, C) overwritten; dweight (C) accumulated (empty: frozen).
void rmsnorm_backward(const OpContext& ctx, Tensor dx, Tensor dweight, Tensor dout, Tensor x,
                      Tensor weight, Tensor rstd);
// LayerNorm: out = (x - mean) * rstd * weight + bias. mean, rstd (N) saved. bias may be empty.
void layernorm_forward(const OpContext& ctx, Tensor out, Tensor mean, Tensor rstd, Tensor x,
                       Tensor weight, Tensor bias, double eps);
void layernorm_backward(const OpContext& ctx, Tensor dx, Tensor dweight, Tensor dbias, Tensor dout,
                        Tensor x, Tensor weight, Tensor mean, Tensor rstd);

// ---- rotary position embedding ---------------------------------------------------------------
struct RopeScaling {
  // Llama 3 "llama3" rope_type. factor <= 0 disables scaling.
  double factor = 0.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};
// Fills cos, sin (max_positions, head_dim / 2) with the rotation angles pos * inv_freq[i],
// inv_freq[i] = theta^(-2i / head_dim), adjusted by Llama 3 scaling when enabled.
void rope_build_tables(const OpContext& ctx, Tensor cos, Tensor sin, double theta,
                       const RopeScaling& scaling);
// In place on x (N, H, D), Hugging Face's rotate_half convention: element i pairs with i + D/2.
// positions (N) i32 index the tables.
void rope_forward(const OpContext& ctx, Tensor x, Tensor positions, Tensor cos, Tensor sin);
// In place on dx (N, H, D): the inverse rotation (the transpose of the forward).
void rope_backward(const OpContext& ctx, Tensor dx, Tensor positions, Tensor cos, Tensor sin);

// ---- attention -------------------------------------------------------------------------------
// Scaled dot-product attention with the features prefix tuning and packing need.
//   q (B, T, Hq, D); k, v (B, T, Hkv, D) with Hq % Hkv == 0 (GQA: query head h uses kv head
//   h / (Hq / Hkv)); out (B, T, Hq, D); lse (B, Hq, T) the log-sum-exp of each query's scaled
//   scores, saved for the backward.
//   prefix_k, prefix_v (P, Hkv, D), optional: P rows every query sees, shared by the batch
//   (prefix tuning; never masked, never rotated).
//   segment_ids (B, T) i32, optional: query i sees key j only if segment_ids match.
//   causal: query i sees key j only if j <= i.
//   scale: usually 1 / sqrt(D).
struct AttentionArgs {
  bool causal = true;
  double scale = 0.0;  // 0 means 1 / sqrt(D)
};
void attention_forward(const OpContext& ctx, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v,
                       Tensor prefix_k, Tensor prefix_v, Tensor segment_ids,
                       const AttentionArgs& args);
// dq, dk, dv overwritten. dprefix_k, dprefix_v (P, Hkv, D) accumulated, summed over the batch;
// empty when the prefix is absent or frozen.
void attention_backward(const OpContext& ctx, Tensor dq, Tensor dk, Tensor dv, Tensor dprefix_k,
                        Tensor dprefix_v, Tensor dout, Tensor out, Tensor lse, Tensor q, Tensor k,
                        Tensor v, Tensor prefix_k, Tensor prefix_v, Tensor segment_ids,
                        const AttentionArgs& args);
// Scratch bytes attention needs in ctx.workspace for these shapes and ctx.num_threads.
size_t attention_workspace_bytes(const OpContext& ctx, DType dtype, int64_t batch, int64_t seq_len,
                                 int64_t q_heads, int64_t kv_heads, int64_t head_dim,
                                 int64_t prefix_len);

// ---- linear ----------------------------------------------------------------------------------
// out (N, Out) = x (N, In) @ weight (Out, In)^T + bias (Out). bias may be empty.
void linear_forward(const OpContext& ctx, Tensor out, Tensor x, Tensor weight, Tensor bias);
// dx (N, In) = dout @ weight, overwritten (empty: not needed, skipped).
// dweight (Out, In) += dout^T @ x and dbias (Out) += sum(dout) (empty: frozen, skipped; the
// skipped product is not counted in ctx.counters->weight_grad_products).
void linear_backward(const OpContext& ctx, Tensor dx, Tensor dweight, Tensor dbias, Tensor dout,
                     Tensor x, Tensor weight);

// ---- activations -----------------------------------------------------------------------------
// SwiGLU: out = silu(gate) * up, all (N, F).
void swiglu_forward(const OpContext& ctx, Tensor out, Tensor gate, Tensor up);
void swiglu_backward(const OpContext& ctx, Tensor dgate, Tensor dup, Tensor dout, Tensor gate,
                     Tensor up);
// GELU, tanh approximation (GPT-2's gelu_new): out = 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715
// x^3))).
void gelu_forward(const OpContext& ctx, Tensor out, Tensor x);
void gelu_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor x);

// ---- adapter encoders and LoRA dropout (models/peft/) ------------------------------------------
// ReLU (P-tuning's MLP encoder): out = max(x, 0). dx = dout where x > 0, else 0 (overwritten).
void relu_forward(const OpContext& ctx, Tensor out, Tensor x);
void relu_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor x);
// tanh (the prefix-tuning projection): out = tanh(x). The backward reads the saved output:
// dx = dout * (1 - out^2) (overwritten).
void tanh_forward(const OpContext& ctx, Tensor out, Tensor x);
void tanh_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor out);
// Inverted dropout with a counter-based mask: element i is kept iff a hash of (seed, i) falls at
// or above probability p, and kept elements are scaled by 1 / (1 - p). The mask is a pure
// function of (seed, i), the same on every backend and thread count, so the backward recomputes
// it from the seed instead of storing it. 0 <= p < 1. out may alias x; dx may alias dout.
// Column shards (tensor parallelism): when full_cols > 0, x (N, w) holds columns [col_offset,
// col_offset + w) of an (N, full_cols) tensor and gets that tensor's mask (element i = row *
// full_cols + col_offset + column), so a sharded layer drops what the whole layer would.
void dropout_forward(const OpContext& ctx, Tensor out, Tensor x, double p, uint64_t seed,
                     int64_t col_offset = 0, int64_t full_cols = 0);
void dropout_backward(const OpContext& ctx, Tensor dx, Tensor dout, double p, uint64_t seed,
                      int64_t col_offset = 0, int64_t full_cols = 0);

// ---- column blocks (prefix tuning's per-layer key/value slices) -----------------------------
// dst (R, w) = src (R, W)[:, offset : offset + w], overwritten. Requires offset + w <= W.
void copy_columns(const OpContext& ctx, Tensor dst, Tensor src, int64_t offset);
// dst (R, W)[:, offset : offset + w] += src (R, w) (accumulated, like a parameter gradient).
void add_to_columns(const OpContext& ctx, Tensor dst, Tensor src, int64_t offset);

// ---- elementwise -----------------------------------------------------------------------------
// out = a + b (out may alias a or b).
void add(const OpContext& ctx, Tensor out, Tensor a, Tensor b);
// x *= factor.
void scale(const OpContext& ctx, Tensor x, double factor);
// dst = src converted to dst's dtype (f32 <-> f64 <-> bf16), same element count.
void cast(const OpContext& ctx, Tensor dst, Tensor src);
// x = 0.
void zero(const OpContext& ctx, Tensor x);

// ---- loss ------------------------------------------------------------------------------------
constexpr int32_t kIgnoreIndex = -100;
// Fused softmax cross-entropy. logits (N, V); targets (N) i32 (kIgnoreIndex: no loss);
// weights (N) optional per-token weights. losses (N) = weight * (lse - logit[target]) (0 where
// ignored); lse (N) saved for the backward. correct, optional: set to the number of rows whose
// argmax equals their target, as count_correct counts them, found in the same pass over logits.
void cross_entropy_forward(const OpContext& ctx, Tensor losses, Tensor lse, Tensor logits,
                           Tensor targets, Tensor weights, int64_t* correct = nullptr);
// dlogits (N, V) = dloss * weight * (softmax(logits) - onehot(target)); 0 on ignored rows.
// dlogits may alias logits (computed in place). dloss is one scalar applied to every token
// (the loss normalisation, e.g. 1 / number of target tokens in the global batch).
void cross_entropy_backward(const OpContext& ctx, Tensor dlogits, Tensor logits, Tensor lse,
                            Tensor targets, Tensor weights, double dloss);

// ---- vocabulary-parallel embedding and loss (tensor parallelism) -----------------------------
// A shard holds rows [vocab_begin, vocab_begin + V_local) of the vocabulary (the embedding table)
// or the same columns of the logits; the full vocabulary has vocab_size entries.
// out (N, C) = table (V_local, C)[id - vocab_begin] for ids in the shard, 0 for other ids (they
// are another shard's; the sum over shards is the embedding). Ids outside [0, vocab_size) are an
// error naming the id.
void embedding_forward_shard(const OpContext& ctx, Tensor out, Tensor ids, Tensor table,
                             int64_t vocab_begin, int64_t vocab_size);
// dtable (V_local, C) += scatter of dout rows whose id falls in the shard (empty: frozen). A
// negative id is an error naming it (the shard does not know vocab_size; the forward checks it).
void embedding_backward_shard(const OpContext& ctx, Tensor dtable, Tensor ids, Tensor dout,
                              int64_t vocab_begin);
// Per-row statistics of a logits shard (N, V_local), V_local >= 1, stats (N, 4) in the logits'
// dtype:
//   [0] log-sum-exp over the shard's columns;
//   [1] the target's logit when the target falls in the shard, else 0;
//   [2] the shard's largest logit; [3] its global column index (the first on ties).
// [2] and [3] skip NaN logits, as count_correct's argmax does, except that a NaN at global column
// 0 gives [2] = NaN, [3] = 0 (count_correct's argmax stays at 0 then); a shard of NaNs only gives
// NaN, vocab_begin. Ignored rows (kIgnoreIndex) get stats 0, 0, 0, 0 and cost nothing.
// Targets other than kIgnoreIndex must lie in [0, vocab_size): a negative one is an error naming
// the row; one at or beyond vocab_size is in no shard and cannot be seen here (it would count as
// a target logit of 0), so callers check targets against the vocabulary. f32 stats hold column
// indices exactly only up to 2^24: f32 logits of a shard ending beyond 2^24 are an error.
void cross_entropy_shard_stats(const OpContext& ctx, Tensor stats, Tensor logits, Tensor targets,
                               int64_t vocab_begin);
// Combines every shard's stats, parts (S, N, 4) in vocabulary order (as all_gather lays them
// out): lse (N) = log-sum-exp over the shards; losses (N) = lse - target logit (the sum of the
// shards' [1]); both 0 on ignored rows, as cross_entropy_forward writes them. correct, optional:
// rows whose global argmax (first on ties, as count_correct) is the target. A column index [3]
// that is not a whole number in the dtype's exact range is an error (parts are not stats).
void cross_entropy_combine_shards(const OpContext& ctx, Tensor losses, Tensor lse, Tensor parts,
                                  Tensor targets, int64_t* correct = nullptr);
// dlogits (N, V_local) = dloss * (exp(logits - lse) - onehot(target - vocab_begin)), the one-hot
// only where the target falls in the shard; 0 on ignored rows. lse (N) is the whole
// vocabulary's (from cross_entropy_combine_shards). dlogits may alias logits. Targets are
// checked as by cross_entropy_shard_stats.
void cross_entropy_backward_shard(const OpContext& ctx, Tensor dlogits, Tensor logits, Tensor lse,
                                  Tensor targets, int64_t vocab_begin, double dloss);

// ---- optimizer -------------------------------------------------------------------------------
struct AdamWArgs {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // decoupled: param -= lr * weight_decay * param
  int64_t step = 1;           // 1-based, for bias correction
  double grad_scale = 1.0;    // the update uses grad_scale * grads (gradient clipping, fused)
};
// One AdamW step over a span of parameters (params, grads, m, v: same shape; f32 or f64; on
// CUDA f32 only: the fp32 master weights). Callers pass weight_decay = 0 for spans that must not
// decay (norms, biases). grads is only read: with grad_scale != 1 the scaled gradient is used but
// never stored. params_copy, optional (same shape, any float dtype, usually bf16): receives the
// updated params converted to its dtype in the same pass (the bf16 weights the model computes
// with), as cast(params_copy, params) after the step would.
void adamw_update(const OpContext& ctx, Tensor params, Tensor grads, Tensor m, Tensor v,
                  const AdamWArgs& args, Tensor params_copy = {});
// Sum of squares of x, accumulated in double. On CUDA (f32 or bf16 x) the value comes back to the
// host: one stream synchronization per call, as for sum and count_correct.
double sum_squares(const OpContext& ctx, Tensor x);

// ---- reductions for metrics (kernels/metrics_ops.cpp) ---------------------------------------
// Sum of x, accumulated in double.
double sum(const OpContext& ctx, Tensor x);
// Rows of logits (N, V) whose argmax equals targets (N) i32, over rows whose target is not
// kIgnoreIndex (mean token accuracy's numerator). Ties go to the lowest index.
int64_t count_correct(const OpContext& ctx, Tensor logits, Tensor targets);

// Waits for ctx.stream and throws the first bad index a CUDA kernel recorded since the last check
// (naming the op, the argument and the element), clearing the record. sum, sum_squares,
// count_correct and the ops' `correct` counts call it after their one synchronization; a training
// step that reads its loss through sum therefore reports bad ids within the step. Nothing to do
// on the CPU, whose kernels throw directly.
void check_device_errors(const OpContext& ctx);

}  // namespace ft::ops
