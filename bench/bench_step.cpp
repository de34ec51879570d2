// bench_step: the end-to-end CPU training-step benchmark. Times full steps (zero grads, forward,
// backward, clip, AdamW) of a model at a batch shape, then measures the machine's BLAS ceiling on
// the step's own GEMM shapes, so the figure reads as "a fraction of what this machine can do".
// --profile adds a per-op breakdown: each op the step runs, timed alone on the step's shapes.
// Benchmarks print figures; nothing here passes or fails.
#include <cblas.h>
#include <omp.h>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/ops.h"
#include "models/model_config.h"
#include "models/param_layout.h"
#include "models/transformer.h"
#include "runtime/buffer.h"
#include "runtime/error.h"
#include "runtime/parameters.h"
#include "runtime/train/metrics.h"
#include "runtime/train/optimizer.h"

namespace ft {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchOptions {
  std::string preset = "bench-gpt2";
  std::string hf_config;
  int64_t batch = 8;
  int64_t seq = 256;
  int threads = 2;
  int steps = 10;
  int warmup = 2;
  std::string dtype = "fp32";
  uint64_t seed = 1234;
  int gemm_reps = 7;
  bool profile = false;
  int profile_reps = 5;
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

double mean(const std::vector<double>& values) {
  if (values.empty()) return 0.0;
  return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

// Runs `body` once untimed (first-touch, BLAS buffers), then `reps` times; the median seconds.
double time_median(int reps, const std::function<void()>& body) {
  body();
  std::vector<double> samples;
  for (int i = 0; i < reps; ++i) {
    const auto start = Clock::now();
    body();
    samples.push_back(seconds_since(start));
  }
  return median(samples);
}

// Host tensors that live as long as the pool, filled uniform in [low, high).
class TensorPool {
 public:
  TensorPool(DType dtype, uint64_t seed) : dtype_(dtype), rng_(seed) {}
  Tensor make(Shape shape, double low = -1.0, double high = 1.0) {
    buffers_.emplace_back(Device::cpu, static_cast<size_t>(shape.numel()) * dtype_size(dtype_));
    Tensor t = buffers_.back().view(dtype_, shape);
    std::uniform_real_distribution<double> uniform(low, high);
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (dtype_ == DType::f32)
        t.ptr<float>()[i] = static_cast<float>(uniform(rng_));
      else
        t.ptr<double>()[i] = uniform(rng_);
    }
    return t;
  }

 private:
  DType dtype_;
  std::mt19937_64 rng_;
  std::vector<Buffer> buffers_;
};

// ---- the model's linears and the GEMMs they run --------------------------------------------

// One kind of linear layer: weight (out, in), run `calls` times per step (once per layer).
struct LinearKind {
  std::string name;
  int64_t out = 0, in = 0, calls = 0;
  bool bias = false;
};

std::vector<LinearKind> linear_kinds(const ModelConfig& c) {
  const int64_t C = c.hidden_size, F = c.intermediate_size, L = c.num_layers;
  std::vector<LinearKind> kinds = {{"q", c.q_dim(), C, L, c.qkv_bias},
                                   {"k", c.kv_dim(), C, L, c.qkv_bias},
                                   {"v", c.kv_dim(), C, L, c.qkv_bias},
                                   {"attn out", C, c.q_dim(), L, c.linear_bias}};
  if (c.mlp == MlpKind::swiglu) kinds.push_back({"mlp gate", F, C, L, false});
  kinds.push_back({"mlp up", F, C, L, c.linear_bias});
  kinds.push_back({"mlp down", C, F, L, c.linear_bias});
  kinds.push_back({"lm head", c.vocab_size, C, 1, false});
  return kinds;
}

enum class Pass { forward, input_grad, weight_grad };
const char* pass_suffix(Pass pass) {
  return pass == Pass::forward ? " fwd" : pass == Pass::input_grad ? " dX" : " dW";
}

// A row-major GEMM C (m, n) = op(A) op(B) + beta C, exactly as kernels/cpu/linear_cpu.cpp
// issues it for `pass` of a linear with weight (out, in) over `tokens` rows.
struct GemmShape {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  double beta = 0.0;
  auto key() const { return std::tie(trans_a, trans_b, m, n, k, beta); }
  bool operator<(const GemmShape& other) const { return key() < other.key(); }
  double flops() const { return 2.0 * static_cast<double>(m) * n * k; }
};

GemmShape gemm_for(const LinearKind& kind, Pass pass, int64_t tokens) {
  switch (pass) {
    case Pass::forward:
      return {false, true, tokens, kind.out, kind.in, 1.0};  // bias first, beta 1
    case Pass::input_grad:
      return {false, false, tokens, kind.in, kind.out, 0.0};
    case Pass::weight_grad:
      return {true, false, kind.out, kind.in, tokens, 1.0};  // accumulates
  }
  return {};
}

template <typename scalar_t>
void run_gemm(const GemmShape& g, const scalar_t* a, const scalar_t* b, scalar_t* c) {
  const int64_t lda = g.trans_a ? g.m : g.k, ldb = g.trans_b ? g.k : g.n;
  const auto ta = g.trans_a ? CblasTrans : CblasNoTrans, tb = g.trans_b ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<scalar_t, float>) {
    cblas_sgemm(CblasRowMajor, ta, tb, g.m, g.n, g.k, 1.0f, a, lda, b, ldb,
                static_cast<float>(g.beta), c, g.n);
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, g.m, g.n, g.k, 1.0, a, lda, b, ldb, g.beta, c, g.n);
  }
}

struct CeilingRow {
  GemmShape shape;
  std::string users;   // "q, k, v fwd"
  int64_t calls = 0;   // per step
  double seconds = 0;  // median per call
};

struct Ceiling {
  std::vector<CeilingRow> rows;
  double gemm_flops_per_step = 0, gemm_seconds_per_step = 0;
  double gflops() const { return gemm_flops_per_step / gemm_seconds_per_step * 1e-9; }
  double seconds_for(const GemmShape& shape) const {
    for (const CeilingRow& row : rows)
      if (!(row.shape < shape) && !(shape < row.shape)) return row.seconds;
    return 0.0;
  }
};

// Times each distinct GEMM of the step with the BLAS directly (same threads, median of reps).
template <typename scalar_t>
Ceiling measure_ceiling(const ModelConfig& config, int64_t tokens, int reps, DType dtype) {
  std::map<GemmShape, CeilingRow> distinct;
  for (const LinearKind& kind : linear_kinds(config)) {
    for (Pass pass : {Pass::forward, Pass::input_grad, Pass::weight_grad}) {
      const GemmShape shape = gemm_for(kind, pass, tokens);
      CeilingRow& row = distinct[shape];
      row.shape = shape;
      row.users += (row.users.empty() ? "" : ", ") + kind.name + pass_suffix(pass);
      row.calls += kind.calls;
    }
  }
  int64_t max_a = 0, max_b = 0, max_c = 0;
  for (const auto& [shape, row] : distinct) {
    max_a = std::max(max_a, shape.m * shape.k);
    max_b = std::max(max_b, shape.k * shape.n);
    max_c = std::max(max_c, shape.m * shape.n);
  }
  TensorPool pool(dtype, 99);
  Tensor a = pool.make({max_a}), b = pool.make({max_b}, -0.02, 0.02), c = pool.make({max_c});
  Ceiling ceiling;
  for (auto& [shape, row] : distinct) {
    row.seconds = time_median(reps, [&, s = shape] {
      run_gemm<scalar_t>(s, a.ptr<scalar_t>(), b.ptr<scalar_t>(), c.ptr<scalar_t>());
    });
    ceiling.gemm_flops_per_step += shape.flops() * static_cast<double>(row.calls);
    ceiling.gemm_seconds_per_step += row.seconds * static_cast<double>(row.calls);
    ceiling.rows.push_back(row);
  }
  std::sort(ceiling.rows.begin(), ceiling.rows.end(), [](const CeilingRow& x, const CeilingRow& y) {
    return x.shape.flops() * x.calls > y.shape.flops() * y.calls;
  });
  return ceiling;
}

// ---- the training step -----------------------------------------------------------------------

struct PhaseSeconds {
  double zero = 0, forward = 0, backward = 0, clip = 0, update = 0, total = 0;
};

// Owns a model, its parameters, optimizer, activations and one seeded random batch.
class StepBench {
 public:
  StepBench(const ModelConfig& config, const BenchOptions& options, DType dtype)
      : config_(config),
        options_(options),
        params_(transformer_param_specs(config), dtype, Device::cpu),
        optimizer_(params_, adamw_config()),
        model_(config, params_, options.batch, options.seq) {
    ctx_.device = Device::cpu;
    ctx_.num_threads = options.threads;
    params_.initialize(options.seed);
    Arena measuring = Arena::measuring(Device::cpu);
    model_.bind_activations(measuring);
    activations_ = Arena(Device::cpu, measuring.used());
    model_.bind_activations(activations_);
    workspace_ = Buffer(Device::cpu, model_.workspace_bytes(ctx_));
    ctx_.workspace = {workspace_.data(), workspace_.bytes()};
    make_batch();
  }

  // One full training step; `step` counts from 1 (AdamW bias correction).
  PhaseSeconds step(int64_t step, double* loss) {
    PhaseSeconds t;
    const auto start = Clock::now();
    auto lap = [&, last = start](double& slot) mutable {
      const auto now = Clock::now();
      slot = std::chrono::duration<double>(now - last).count();
      last = now;
    };
    params_.zero_grads(ctx_);
    lap(t.zero);
    const ForwardResult forward = model_.forward(ctx_, inputs_);
    lap(t.forward);
    model_.backward(ctx_, inputs_, 1.0 / static_cast<double>(tokens()));
    lap(t.backward);
    optimizer_.clip_gradients(ctx_);
    lap(t.clip);
    optimizer_.update(ctx_, 1e-4, step);
    lap(t.update);
    t.total = seconds_since(start);
    *loss = forward.loss_sum / static_cast<double>(tokens());
    return t;
  }

  int64_t tokens() const { return options_.batch * options_.seq; }
  const ParameterStore& params() const { return params_; }
  const OpContext& context() const { return ctx_; }
  const ModelInputs& inputs() const { return inputs_; }
  size_t activation_bytes() const { return activations_.capacity(); }
  size_t workspace_bytes() const { return workspace_.bytes(); }

 private:
  static AdamWConfig adamw_config() {
    AdamWConfig adamw;
    adamw.weight_decay = 0.1;
    adamw.grad_clip = 1.0;
    return adamw;
  }

  // Token ids and targets drawn from [1, V): seeded, never all zero (a constant batch would make
  // the softmax and the embedding scatter unrealistically cache-friendly).
  void make_batch() {
    const int64_t n = tokens();
    std::mt19937_64 rng(options_.seed);
    std::uniform_int_distribution<int32_t> token(1, static_cast<int32_t>(config_.vocab_size - 1));
    ids_.resize(n);
    targets_.resize(n);
    positions_.resize(n);
    for (int64_t i = 0; i < n; ++i) ids_[i] = token(rng);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = i % options_.seq;
      positions_[i] = static_cast<int32_t>(t);
      targets_[i] = t + 1 < options_.seq ? ids_[i + 1] : token(rng);
    }
    inputs_.input_ids = Tensor(ids_.data(), DType::i32, Shape{n});
    inputs_.positions = Tensor(positions_.data(), DType::i32, Shape{n});
    inputs_.targets = Tensor(targets_.data(), DType::i32, Shape{n});
  }

  ModelConfig config_;
  BenchOptions options_;
  OpContext ctx_;
  ParameterStore params_;
  AdamW optimizer_;
  Transformer model_;
  Arena activations_ = Arena::measuring(Device::cpu);
  Buffer workspace_;
  std::vector<int32_t> ids_, targets_, positions_;
  ModelInputs inputs_;
};

// ---- per-op profile ---------------------------------------------------------------------------

struct OpRow {
  std::string phase, op;
  int64_t calls = 0;
  double seconds = 0;          // median per call
  double ceiling_seconds = 0;  // the BLAS alone on the op's GEMM (linears only)
};

// Times every op the step runs, alone, on the step's shapes, in the order and with the call
// counts of models/transformer.cpp (keep the two in step when the model changes).
std::vector<OpRow> profile_ops(const ModelConfig& c, const BenchOptions& o, StepBench& bench,
                               const Ceiling& ceiling, DType dtype) {
  const OpContext& ctx = bench.context();
  const ModelInputs& in = bench.inputs();
  const int64_t N = bench.tokens(), C = c.hidden_size, F = c.intermediate_size;
  const int64_t L = c.num_layers, V = c.vocab_size, D = c.head_dim;
  const int64_t Hq = c.num_heads, Hkv = c.num_kv_heads;
  const bool layernorm = c.norm == NormKind::layernorm, swiglu = c.mlp == MlpKind::swiglu;
  const bool learned = c.positions == PositionKind::learned;
  TensorPool pool(dtype, o.seed + 7);
  std::vector<OpRow> rows;
  auto time_op = [&](const std::string& phase, const std::string& op, int64_t calls,
                     const std::function<void()>& body, double ceiling_seconds = 0.0) {
    rows.push_back({phase, op, calls, time_median(o.profile_reps, body), ceiling_seconds});
  };

  Tensor x = pool.make({N, C}), x2 = pool.make({N, C}), out = pool.make({N, C});
  Tensor table = pool.make({V, C}, -0.02, 0.02), dtable = pool.make({V, C});
  Tensor norm_w = pool.make({C}), norm_b = pool.make({C}), dnorm_w = pool.make({C}),
         dnorm_b = pool.make({C}), mean = pool.make({N}), rstd = pool.make({N});
  Tensor wide = pool.make({N, F}), wide2 = pool.make({N, F}), wide3 = pool.make({N, F}),
         wide4 = pool.make({N, F}), wide5 = pool.make({N, F});
  Tensor q = pool.make({N, c.q_dim()}), k = pool.make({N, c.kv_dim()}),
         v = pool.make({N, c.kv_dim()}), attn = pool.make({N, c.q_dim()});
  Tensor dq = pool.make({N, c.q_dim()}), dk = pool.make({N, c.kv_dim()}),
         dv = pool.make({N, c.kv_dim()}), dattn = pool.make({N, c.q_dim()});
  Tensor lse = pool.make({o.batch, Hq, o.seq});
  Tensor logits = pool.make({N, V}), losses = pool.make({N}), token_lse = pool.make({N});
  auto heads = [&](Tensor t, int64_t h) { return t.reshape({o.batch, o.seq, h, D}); };

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
    Tensor dw = head ? dtable : pool.make({kind.out, kind.in});
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
    Buffer tables(Device::cpu, 2 * c.max_position_embeddings * (D / 2) * dtype_size(dtype));
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
    Tensor db = kind.bias ? pool.make({kind.out}) : Tensor();
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
  const int64_t P = bench.params().trainable_count();
  Tensor p = pool.make({P}, -0.02, 0.02), g = pool.make({P}, -1e-3, 1e-3);
  Tensor m = pool.make({P}, -1e-3, 1e-3), v2 = pool.make({P}, 0.0, 1e-6);  // v >= 0
  time_op("optimizer", "zero grads", 1, [&] { ops::zero(ctx, g); });
  // Clipping is the norm alone: AdamW applies the clip factor as it reads the gradients.
  time_op("optimizer", "sum_squares (clip)", 1, [&] { ops::sum_squares(ctx, g); });
  ops::AdamWArgs args;
  args.lr = 0.0;  // repeated updates must not move the weights anywhere odd
  args.grad_scale = 0.5;
  time_op("optimizer", "adamw (flat)", 1, [&] { ops::adamw_update(ctx, p, g, m, v2, args); });
  return rows;
}

// ---- output -----------------------------------------------------------------------------------

void print_ceiling(const Ceiling& ceiling, int threads) {
  std::cout << fmt::format(
      "\nBLAS ceiling: every distinct GEMM of the step, timed alone ({} "
      "threads, median)\n",
      threads);
  std::cout << fmt::format("  {:>2} {:>2} {:>6} {:>6} {:>6} {:>5} {:>9} {:>9} {:>7}  {}\n", "tA",
                           "tB", "M", "N", "K", "calls", "ms/call", "GFLOP/s", "% flops",
                           "used by");
  for (const CeilingRow& row : ceiling.rows) {
    const double share = row.shape.flops() * row.calls / ceiling.gemm_flops_per_step * 100.0;
    std::cout << fmt::format(
        "  {:>2} {:>2} {:>6} {:>6} {:>6} {:>5} {:>9.3f} {:>9.1f} {:>6.1f}%  {}\n",
        row.shape.trans_a ? "T" : "N", row.shape.trans_b ? "T" : "N", row.shape.m, row.shape.n,
        row.shape.k, row.calls, row.seconds * 1e3, row.shape.flops() / row.seconds * 1e-9, share,
        row.users);
  }
  std::cout << fmt::format(
      "  all GEMMs of one step: {:.1f} GFLOP in {:.1f} ms at the ceiling -> {:.1f} GFLOP/s "
      "(FLOP-weighted)\n",
      ceiling.gemm_flops_per_step * 1e-9, ceiling.gemm_seconds_per_step * 1e3, ceiling.gflops());
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

int run(const BenchOptions& o) {
  if (o.dtype != "fp32" && o.dtype != "fp64")
    fail("--dtype {}: expected fp32 or fp64 (bf16 runs on the CUDA backend only)", o.dtype);
  if (o.steps < 1 || o.warmup < 0 || o.batch < 1 || o.seq < 1 || o.threads < 1)
    fail("--steps, --batch, --seq and --threads must be positive and --warmup non-negative");
  const DType dtype = o.dtype == "fp64" ? DType::f64 : DType::f32;
  omp_set_num_threads(o.threads);
  openblas_set_num_threads(o.threads);
  const ModelConfig config =
      o.hf_config.empty() ? model_config_preset(o.preset) : model_config_from_hf(o.hf_config);
  StepBench bench(config, o, dtype);
  const int64_t tokens = bench.tokens();
  const double flops_per_token = config.training_flops_per_token(o.seq);

  std::cout << "bench_step: model " << config.summary() << "\n";
  std::cout << fmt::format(
      "bench_step: parameters {} ({} non-embedding), {} on cpu, {} threads, OpenBLAS {}\n",
      format_count(bench.params().trainable_count() + bench.params().frozen_count()),
      format_count(config.non_embedding_parameters()), o.dtype, o.threads, openblas_get_config());
  std::cout << fmt::format(
      "bench_step: batch {} x seq {} = {} tokens per step; {:.1f} MFLOP per token (6N + 12LHDT), "
      "{:.1f} GFLOP per step\n",
      o.batch, o.seq, tokens, flops_per_token * 1e-6, flops_per_token * tokens * 1e-9);
  std::cout << fmt::format(
      "bench_step: memory: weights {}, gradients {}, optimizer {}, "
      "activations {}, workspace {}\n",
      format_bytes(bench.params().weight_bytes()), format_bytes(bench.params().gradient_bytes()),
      format_bytes(bench.params().optimizer_bytes()), format_bytes(bench.activation_bytes()),
      format_bytes(bench.workspace_bytes()));

  std::vector<PhaseSeconds> timed;
  double first_loss = 0, loss = 0;
  for (int s = 1; s <= o.warmup + o.steps; ++s) {
    PhaseSeconds t = bench.step(s, &loss);
    if (s == 1) first_loss = loss;
    std::cout << fmt::format("  step {:>3}{} {:8.1f} ms  loss {:.4f}\n", s,
                             s > o.warmup ? "  " : " w", t.total * 1e3, loss);
    if (s > o.warmup) timed.push_back(t);
  }
  auto column = [&](double PhaseSeconds::*field) {
    std::vector<double> values;
    for (const PhaseSeconds& t : timed) values.push_back(t.*field);
    return values;
  };
  const std::vector<double> steps = column(&PhaseSeconds::total);
  const double step_median = median(steps);
  std::cout << fmt::format("\nStep phases (median over {} timed steps)\n", o.steps);
  for (auto [name, field] : {std::pair{"zero grads", &PhaseSeconds::zero},
                             {"forward", &PhaseSeconds::forward},
                             {"backward", &PhaseSeconds::backward},
                             {"clip", &PhaseSeconds::clip},
                             {"adamw", &PhaseSeconds::update}}) {
    const double seconds = median(column(field));
    std::cout << fmt::format("  {:<11} {:9.1f} ms  {:5.1f}%\n", name, seconds * 1e3,
                             seconds / step_median * 100.0);
  }

  const Ceiling ceiling = dtype == DType::f32
                              ? measure_ceiling<float>(config, tokens, o.gemm_reps, dtype)
                              : measure_ceiling<double>(config, tokens, o.gemm_reps, dtype);
  print_ceiling(ceiling, o.threads);

  const double tokens_per_s = static_cast<double>(tokens) / step_median;
  const double achieved = tokens_per_s * flops_per_token * 1e-9;
  const double fraction = achieved / ceiling.gflops();
  std::cout << "\nResult\n"
            << fmt::format(
                   "  step time       median {:.1f} ms, mean {:.1f}, min {:.1f}, max {:.1f} "
                   "({} steps after {} warm-up)\n",
                   step_median * 1e3, mean(steps) * 1e3,
                   *std::min_element(steps.begin(), steps.end()) * 1e3,
                   *std::max_element(steps.begin(), steps.end()) * 1e3, o.steps, o.warmup)
            << fmt::format("  throughput      {:.0f} tokens/s, {:.1f} GFLOP/s\n", tokens_per_s,
                           achieved)
            << fmt::format(
                   "  BLAS ceiling    {:.1f} GFLOP/s -> {:.0f} tokens/s if every FLOP ran "
                   "at the ceiling\n",
                   ceiling.gflops(), ceiling.gflops() * 1e9 / flops_per_token)
            << fmt::format("  ft / ceiling    {:.1f}%{}\n", fraction * 100.0,
                           fraction > 1.0 ? " (above 100%: something else ran during the GEMM "
                                            "timings; rerun on a quiet machine)"
                                          : "")
            << fmt::format("  loss            {:.4f} (step 1) -> {:.4f} (step {})\n", first_loss,
                           loss, o.warmup + o.steps);
  if (o.profile) print_profile(profile_ops(config, o, bench, ceiling, dtype), step_median);
  return 0;
}

}  // namespace
}  // namespace ft

int main(int argc, char** argv) {
  CLI::App app{"bench_step: time full CPU training steps and compare with the BLAS ceiling"};
  ft::BenchOptions options;
  auto* preset = app.add_option("--preset", options.preset, "Model preset")->capture_default_str();
  app.add_option("--hf-config", options.hf_config, "Hugging Face config.json instead of a preset")
      ->excludes(preset);
  app.add_option("--batch", options.batch, "Sequences per step")->capture_default_str();
  app.add_option("--seq", options.seq, "Tokens per sequence")->capture_default_str();
  app.add_option("--threads", options.threads, "OpenMP and OpenBLAS threads")
      ->capture_default_str();
  app.add_option("--steps", options.steps, "Timed steps")->capture_default_str();
  app.add_option("--warmup", options.warmup, "Untimed steps first")->capture_default_str();
  app.add_option("--dtype", options.dtype, "fp32 or fp64")->capture_default_str();
  app.add_option("--seed", options.seed, "Seed for weights and tokens")->capture_default_str();
  app.add_option("--gemm-reps", options.gemm_reps, "Repetitions per GEMM for the ceiling")
      ->capture_default_str();
  app.add_flag("--profile", options.profile, "Also time each op alone on the step's shapes");
  app.add_option("--profile-reps", options.profile_reps, "Repetitions per op for --profile")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }
  try {
    return ft::run(options);
  } catch (const std::exception& error) {
    std::cerr << "bench_step: error: " << error.what() << std::endl;
    return 1;
  }
}
