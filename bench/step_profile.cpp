#include "step_profile.h"

#include <fmt/format.h>

#include <functional>
#include <iostream>
#include <tuple>

#include "bench_util.h"
#include "kernels/ops.h"
#include "runtime/buffer.h"

namespace ft::bench {

std::vector<OpRow> profile_ops(const ProfiledStep& step, const Ceiling& ceiling, DType dtype,
                               uint64_t seed, int reps) {
  const ModelConfig& c = step.config;
  const OpContext& ctx = step.ctx;
  const ModelInputs& in = step.inputs;
  const int64_t batch = step.batch, seq = step.seq;
  const int64_t N = batch * seq, C = c.hidden_size, F = c.intermediate_size;
  const int64_t L = c.num_layers, V = c.vocab_size, D = c.head_dim;
  const int64_t Hq = c.num_heads, Hkv = c.num_kv_heads;
  const bool layernorm = c.norm == NormKind::layernorm, swiglu = c.mlp == MlpKind::swiglu;
  const bool learned = c.positions == PositionKind::learned;
  // On a GPU the step computes in bf16 with f32 row statistics and f32 parameter gradients
  // (the fp32 master weights'), and so does the profile.
  const DType stats = ops::stats_dtype(dtype);
  const DType grads = dtype == DType::bf16 ? DType::f32 : dtype;
  TensorPool pool(dtype, seed + 7, ctx.device);
  std::vector<OpRow> rows;
  auto time_op = [&](const std::string& phase, const std::string& op, int64_t calls,
                     const std::function<void()>& body, double ceiling_seconds = 0.0) {
    rows.push_back({phase, op, calls, time_median(ctx, reps, body), ceiling_seconds});
  };

  Tensor x = pool.make({N, C}), x2 = pool.make({N, C}), out = pool.make({N, C});
  Tensor table = pool.make({V, C}, -0.02, 0.02), dtable = pool.make_as(grads, {V, C});
  Tensor norm_w = pool.make({C}), norm_b = pool.make({C}), dnorm_w = pool.make_as(grads, {C}),
         dnorm_b = pool.make_as(grads, {C}), mean = pool.make_as(stats, {N}),
         rstd = pool.make_as(stats, {N});
  Tensor wide = pool.make({N, F}), wide2 = pool.make({N, F}), wide3 = pool.make({N, F}),
         wide4 = pool.make({N, F}), wide5 = pool.make({N, F});
  Tensor q = pool.make({N, c.q_dim()}), k = pool.make({N, c.kv_dim()}),
         v = pool.make({N, c.kv_dim()}), attn = pool.make({N, c.q_dim()});
  Tensor dq = pool.make({N, c.q_dim()}), dk = pool.make({N, c.kv_dim()}),
         dv = pool.make({N, c.kv_dim()}), dattn = pool.make({N, c.q_dim()});
  Tensor lse = pool.make_as(stats, {batch, Hq, seq});
  Tensor logits = pool.make({N, V}), losses = pool.make_as(stats, {N}),
         token_lse = pool.make_as(stats, {N});
  auto heads = [&](Tensor t, int64_t h) { return t.reshape({batch, seq, h, D}); };

  // Forward.
  time_op("forward", "embedding", learned ? 2 : 1,
          [&] { ops::embedding_forward(ctx, out, in.input_ids, table); });
  auto norm_fwd = [&] {
    if (layernorm)
      ops::layernorm_forward(ctx, out, mean, rstd, x, norm_w, norm_b, c.norm_eps);
    else
      ops::rmsnorm_forward(ctx, out, rstd, x, norm_w, c.norm_eps);
  };
  time_op("forward", layernorm ? "layernorm" : "rmsnorm", 2 * L + 1, norm_fwd);
  std::vector<std::tuple<LinearKind, Tensor, Tensor, Tensor>> linears;  // kind, W, dW, X
  for (const LinearKind& kind : linear_kinds(c)) {
    const bool head = kind.name == "lm head";
    Tensor w = head ? table : pool.make({kind.out, kind.in}, -0.02, 0.02);
    Tensor dw = head ? dtable : pool.make_as(grads, {kind.out, kind.in});
    linears.emplace_back(kind, w, dw, pool.make({N, kind.in}));
  }
  for (auto& [kind, w, dw, input] : linears) {
    Tensor bias = kind.bias ? pool.make({kind.out}) : Tensor();
    Tensor y = kind.name == "lm head" ? logits : pool.make({N, kind.out});
    time_op(
        "forward", "linear " + kind.name, kind.calls,
        [&, y, bias] { ops::linear_forward(ctx, y, input, w, bias); },
        ceiling.seconds_for(gemm_for(kind, Pass::forward, N)));
  }
  if (c.positions == PositionKind::rope) {
    Buffer tables(ctx.device, 2 * c.max_position_embeddings * (D / 2) * dtype_size(dtype));
    Tensor cos = tables.view(dtype, {c.max_position_embeddings, D / 2});
    Tensor sin = tables.view(dtype, {c.max_position_embeddings, D / 2},
                             c.max_position_embeddings * (D / 2) * dtype_size(dtype));
    ops::rope_build_tables(ctx, cos, sin, c.rope_theta, c.rope_scaling);
    time_op("forward", "rope q+k", L, [&] {
      ops::rope_forward(ctx, q.reshape({N, Hq, D}), in.positions, cos, sin);
      ops::rope_forward(ctx, k.reshape({N, Hkv, D}), in.positions, cos, sin);
    });
  }
  time_op("forward", "attention", L, [&] {
    ops::attention_forward(ctx, heads(attn, Hq), lse, heads(q, Hq), heads(k, Hkv), heads(v, Hkv),
                           Tensor(), Tensor(), Tensor(), ops::AttentionArgs{});
  });
  if (swiglu)
    time_op("forward", "swiglu", L, [&] { ops::swiglu_forward(ctx, wide, wide2, wide3); });
  else
    time_op("forward", "gelu", L, [&] { ops::gelu_forward(ctx, wide, wide2); });
  time_op("forward", "add (residual)", 2 * L + (learned ? 1 : 0),
          [&] { ops::add(ctx, out, x, x2); });
  int64_t correct = 0;  // the model counts correct predictions in the cross-entropy pass
  time_op("forward", "cross_entropy+correct", 1, [&] {
    ops::cross_entropy_forward(ctx, losses, token_lse, logits, in.targets, Tensor(), &correct);
  });

  // Backward: norm, attention and cross-entropy read what their forward saved just above; the
  // cross-entropy backward writes a separate dlogits so the logits stay as the forward left them.
  Tensor dlogits = pool.make({N, V});
  time_op("backward", "cross_entropy", 1, [&] {
    ops::cross_entropy_backward(ctx, dlogits, logits, token_lse, in.targets, Tensor(), 1.0 / N);
  });
  for (auto& [kind, w, dw, input] : linears) {
    Tensor dy = kind.name == "lm head" ? dlogits : pool.make({N, kind.out});
    Tensor dx = pool.make({N, kind.in});
    Tensor db = kind.bias ? pool.make_as(grads, {kind.out}) : Tensor();
    time_op(
        "backward", "linear " + kind.name + " dX", kind.calls,
        [&, dy, dx] { ops::linear_backward(ctx, dx, Tensor(), Tensor(), dy, input, w); },
        ceiling.seconds_for(gemm_for(kind, Pass::input_grad, N)));
    time_op(
        "backward", "linear " + kind.name + (kind.bias ? " dW+db" : " dW"), kind.calls,
        [&, dy, db] { ops::linear_backward(ctx, Tensor(), dw, db, dy, input, w); },
        ceiling.seconds_for(gemm_for(kind, Pass::weight_grad, N)));
  }
  time_op("backward", layernorm ? "layernorm" : "rmsnorm", 2 * L + 1, [&] {
    if (layernorm)
      ops::layernorm_backward(ctx, out, dnorm_w, dnorm_b, x2, x, norm_w, mean, rstd);
    else
      ops::rmsnorm_backward(ctx, out, dnorm_w, x2, x, norm_w, rstd);
  });
  time_op("backward", "attention", L, [&] {
    ops::attention_backward(ctx, heads(dq, Hq), heads(dk, Hkv), heads(dv, Hkv), Tensor(), Tensor(),
                            heads(dattn, Hq), heads(attn, Hq), lse, heads(q, Hq), heads(k, Hkv),
                            heads(v, Hkv), Tensor(), Tensor(), Tensor(), ops::AttentionArgs{});
  });
  if (swiglu)
    time_op("backward", "swiglu", L,
            [&] { ops::swiglu_backward(ctx, wide, wide4, wide5, wide2, wide3); });
  else
    time_op("backward", "gelu", L, [&] { ops::gelu_backward(ctx, wide, wide2, wide3); });
  time_op("backward", "add (grad sums)", (swiglu ? 5 : 4) * L, [&] { ops::add(ctx, out, x, x2); });
  time_op("backward", "embedding", learned ? 2 : 1,
          [&] { ops::embedding_backward(ctx, dtable, in.input_ids, x2); });

  // Optimizer, over one flat span the size of the trainable parameters (the step itself calls
  // adamw_update once per parameter; the update phase time above includes that overhead).
  const int64_t P = step.trainable_parameters;
  Tensor p = pool.make_as(grads, {P}, -0.02, 0.02), g = pool.make_as(grads, {P}, -1e-3, 1e-3);
  Tensor m = pool.make_as(grads, {P}, -1e-3, 1e-3), v2 = pool.make_as(grads, {P}, 0.0, 1e-6);
  // Mixed precision: the update also writes the bf16 working copy, as the trainer's does.
  Tensor working_copy = grads != dtype ? pool.make({P}, -0.02, 0.02) : Tensor();
  time_op("optimizer", "zero grads", 1, [&] { ops::zero(ctx, g); });
  // Clipping is the norm alone: AdamW applies the clip factor as it reads the gradients.
  time_op("optimizer", "sum_squares (clip)", 1, [&] { ops::sum_squares(ctx, g); });
  ops::AdamWArgs args;
  args.lr = 0.0;  // repeated updates must not move the weights anywhere odd
  args.grad_scale = 0.5;
  time_op("optimizer", "adamw (flat)", 1,
          [&] { ops::adamw_update(ctx, p, g, m, v2, args, working_copy); });
  return rows;
}

void print_profile(const std::vector<OpRow>& rows, double step_seconds) {
  std::cout << "\nPer-op profile: each op timed alone on the step's shapes (median), times its "
               "calls per step\n";
  std::cout << fmt::format("  {:<9} {:<22} {:>5} {:>9} {:>9} {:>6} {:>11}\n", "phase", "op",
                           "calls", "ms/call", "ms/step", "% step", "BLAS ms/st");
  double total = 0, linear_total = 0, ceiling_total = 0;
  for (const OpRow& row : rows) {
    const double per_step = row.seconds * static_cast<double>(row.calls);
    total += per_step;
    if (row.ceiling_seconds > 0) {
      linear_total += per_step;
      ceiling_total += row.ceiling_seconds * static_cast<double>(row.calls);
    }
    std::cout << fmt::format(
        "  {:<9} {:<22} {:>5} {:>9.3f} {:>9.1f} {:>5.1f}% {:>11}\n", row.phase, row.op, row.calls,
        row.seconds * 1e3, per_step * 1e3, per_step / step_seconds * 100.0,
        row.ceiling_seconds > 0 ? fmt::format("{:.1f}", row.ceiling_seconds * row.calls * 1e3)
                                : std::string("-"));
  }
  std::cout << fmt::format(
      "  sum of ops {:.1f} ms vs measured step {:.1f} ms ({:+.1f} ms not covered by ops alone)\n"
      "  linears {:.1f} ms of which the bare BLAS calls need {:.1f} ms\n",
      total * 1e3, step_seconds * 1e3, (step_seconds - total) * 1e3, linear_total * 1e3,
      ceiling_total * 1e3);
}

}  // namespace ft::bench
