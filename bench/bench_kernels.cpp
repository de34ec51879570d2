// bench_kernels (CUDA builds): ft's hand-written GPU kernels against the library path on one GPU,
// on the shapes of Llama-3.2-1B and Llama-3.1-8B, each call timed with CUDA events (warm-up, then
// the median of --reps). Benchmarks print figures; nothing here passes or fails.
//
//  - attention_forward / attention_backward: bf16, causal, hidden 2048 (H = 2048 / D heads of D =
//    64 or 128), batch x seq = 16384 tokens for seq 512 ... 16384; at seq 2048 also P = 20 prefix
//    rows and GQA (Hkv = H / 4). TFLOP/s by FlashAttention's count: forward 4 B T T H D, halved
//    for the causal mask (with a prefix 4 B H D T (T / 2 + P)); backward 2.5 x forward.
//  - linear_forward (cuBLASLt) against frozen_linear_forward (hand-written; bf16, i8 or e4m3
//    weights) for every projection of both models at N = 4096, 8192, 16384 tokens, and the input
//    gradient dX the same way; 2 N Out In FLOPs.
//  - fused epilogues (bias, GELU, SwiGLU, residual add, LoRA r = 16) of frozen_linear_forward
//    against cuBLASLt plus ft's separate kernels, at N = 8192.
// Output: one JSON object per line {"kernel", "shape", "impl", "ms", "tflops", "flops"} (what
// bench/run_kernel_bench.py joins with bench/kernel_peer.py's rows), then a readable table.
// --cpu-check runs every call once in f32 on the CPU on shapes cut to at most 64 rows: it checks
// the calls' arguments where there is no GPU.
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kernels/cuda/op_resources_cuda.h"
#include "kernels/frozen_linear_ops.h"
#include "kernels/ops.h"
#include "runtime/buffer.h"
#include "runtime/device.h"
#include "runtime/error.h"

namespace ft::bench {
namespace {

struct Options {
  int reps = 20;
  int warmup = 3;
  std::string only = "attention,linear,epilogue";
  uint64_t seed = 1234;
  // Runs every call once on the CPU in f32 on shapes cut to at most 64 tokens, untimed: a check
  // of every call's arguments that needs no GPU (run it before a GPU session).
  bool cpu_check = false;
};

struct Row {
  std::string kernel, shape, impl;
  double seconds = 0, flops = 0;
  double tflops() const { return seconds > 0 ? flops / seconds * 1e-12 : 0.0; }
};

class Runner {
 public:
  Runner(const Options& options, const OpContext& ctx) : options_(options), ctx_(ctx) {}

  // Times `body` on the GPU, prints its JSON line at once (a later crash keeps what ran) and keeps
  // the row for the table. With --cpu-check: runs it once and says so.
  void time(const std::string& kernel, const std::string& shape, const std::string& impl,
            double flops, const std::function<void()>& body) {
    if (options_.cpu_check) {
      body();
      std::cout << fmt::format("checked on the cpu: {} {} {}\n", kernel, shape, impl);
      return;
    }
    for (int i = 0; i < options_.warmup; ++i) body();
    const double seconds = time_median(ctx_, options_.reps, body);
    rows_.push_back({kernel, shape, impl, seconds, flops});
    const nlohmann::json line = {{"kernel", kernel},
                                 {"shape", shape},
                                 {"impl", impl},
                                 {"ms", seconds * 1e3},
                                 {"tflops", rows_.back().tflops()},
                                 {"flops", flops}};
    std::cout << line.dump() << std::endl;
  }
  const std::vector<Row>& rows() const { return rows_; }
  const OpContext& ctx() const { return ctx_; }
  const Options& options() const { return options_; }
  // The activations' dtype and the device: bf16 on the GPU, f32 on the CPU for --cpu-check.
  DType act() const { return options_.cpu_check ? DType::f32 : DType::bf16; }
  Device device() const { return ctx_.device; }
  // Rows (tokens, or sequence length) the tensors get: the shape's own, or at most 64 in the check.
  int64_t tensor_rows(int64_t n) const { return options_.cpu_check ? std::min<int64_t>(n, 64) : n; }
  TensorPool pool() const { return TensorPool(act(), options_.seed, device()); }

 private:
  Options options_;
  OpContext ctx_;
  std::vector<Row> rows_;
};

// ---- attention ---------------------------------------------------------------------------------

struct AttentionShape {
  int64_t batch, seq, heads, kv_heads, head_dim, prefix;
  std::string key() const {
    return fmt::format("B={} T={} H={} Hkv={} D={} causal P={}", batch, seq, heads, kv_heads,
                       head_dim, prefix);
  }
  double forward_flops() const {  // causal: half the T x T scores, plus every query's P keys
    return 4.0 * static_cast<double>(batch * heads * head_dim) * static_cast<double>(seq) *
           (static_cast<double>(seq) / 2.0 + static_cast<double>(prefix));
  }
};

std::vector<AttentionShape> attention_shapes() {
  std::vector<AttentionShape> shapes;
  const int64_t hidden = 2048, tokens = 16384;
  for (int64_t d : {64, 128})
    for (int64_t t : {512, 1024, 2048, 4096, 8192, 16384})
      shapes.push_back({tokens / t, t, hidden / d, hidden / d, d, 0});
  for (int64_t d : {64, 128}) {
    shapes.push_back({tokens / 2048, 2048, hidden / d, hidden / d, d, 20});     // prefix tuning
    shapes.push_back({tokens / 2048, 2048, hidden / d, hidden / d / 4, d, 0});  // GQA
  }
  return shapes;
}

// The dimensions the tensors get: the shape's own, or one sequence of at most 64 in the check.
AttentionShape tensor_dims(const Options& o, AttentionShape s) {
  if (o.cpu_check) {
    s.batch = 1;
    s.seq = std::min<int64_t>(s.seq, 64);
  }
  return s;
}

void bench_attention(Runner& runner, size_t workspace_bytes) {
  const OpContext& ctx = runner.ctx();
  for (const AttentionShape& s : attention_shapes()) {
    TensorPool pool = runner.pool();
    const DType act = runner.act();
    const AttentionShape dims = tensor_dims(runner.options(), s);
    const int64_t B = dims.batch, T = dims.seq, H = s.heads, Hkv = s.kv_heads, D = s.head_dim;
    Tensor q = pool.make({B, T, H, D}), k = pool.make({B, T, Hkv, D}),
           v = pool.make({B, T, Hkv, D});
    Tensor out = pool.output(act, {B, T, H, D}), dout = pool.make({B, T, H, D});
    Tensor dq = pool.output(act, {B, T, H, D}), dk = pool.output(act, {B, T, Hkv, D}),
           dv = pool.output(act, {B, T, Hkv, D});
    Tensor lse = pool.output(DType::f32, {B, H, T});
    Tensor prefix_k, prefix_v, dprefix_k, dprefix_v;
    if (s.prefix > 0) {
      prefix_k = pool.make({s.prefix, Hkv, D});
      prefix_v = pool.make({s.prefix, Hkv, D});
      dprefix_k = pool.output(DType::f32, {s.prefix, Hkv, D});  // fp32 gradients, as trained
      dprefix_v = pool.output(DType::f32, {s.prefix, Hkv, D});
    }
    const size_t needed = ops::attention_workspace_bytes(ctx, act, B, T, H, Hkv, D, s.prefix);
    FT_CHECK(needed <= workspace_bytes, "attention {}: workspace {} > {} planned", s.key(), needed,
             workspace_bytes);
    const ops::AttentionArgs args{.causal = true, .scale = 0.0};
    auto forward = [&] {
      ops::attention_forward(ctx, out, lse, q, k, v, prefix_k, prefix_v, Tensor(), args);
    };
    runner.time("attention_forward", s.key(), "ft", s.forward_flops(), forward);
    forward();  // out and lse for the backward
    runner.time("attention_backward", s.key(), "ft", 2.5 * s.forward_flops(), [&] {
      ops::attention_backward(ctx, dq, dk, dv, dprefix_k, dprefix_v, dout, out, lse, q, k, v,
                              prefix_k, prefix_v, Tensor(), args);
    });
  }
}

size_t attention_workspace(const OpContext& ctx, const Options& o) {
  size_t bytes = 0;
  for (const AttentionShape& shape : attention_shapes()) {
    const AttentionShape s = tensor_dims(o, shape);
    bytes = std::max(
        bytes, ops::attention_workspace_bytes(ctx, o.cpu_check ? DType::f32 : DType::bf16, s.batch,
                                              s.seq, s.heads, s.kv_heads, s.head_dim, s.prefix));
  }
  return bytes;
}

// ---- linear ------------------------------------------------------------------------------------

struct Projection {
  std::string model, name;
  int64_t out, in;
};

std::vector<Projection> projections() {
  return {{"llama-3.2-1b", "q", 2048, 2048},        {"llama-3.2-1b", "kv", 512, 2048},
          {"llama-3.2-1b", "o", 2048, 2048},        {"llama-3.2-1b", "gate/up", 8192, 2048},
          {"llama-3.2-1b", "down", 2048, 8192},     {"llama-3.1-8b", "q", 4096, 4096},
          {"llama-3.1-8b", "kv", 1024, 4096},       {"llama-3.1-8b", "o", 4096, 4096},
          {"llama-3.1-8b", "gate/up", 14336, 4096}, {"llama-3.1-8b", "down", 4096, 14336}};
}

std::string linear_key(const Projection& p, int64_t n) {
  return fmt::format("{} {} N={} Out={} In={}", p.model, p.name, n, p.out, p.in);
}

// A frozen weight in each storage: bf16 itself, or quantized per output channel on the device.
struct FrozenWeights {
  Tensor bf16, i8, i8_scale, f8, f8_scale;
};

FrozenWeights quantized_copies(const OpContext& ctx, Tensor weight, std::vector<Buffer>& storage) {
  FrozenWeights w;
  w.bf16 = weight;
  const int64_t out = weight.dim(0), in = weight.dim(1);
  auto make = [&](DType dtype, Shape shape) {
    storage.emplace_back(ctx.device, static_cast<size_t>(shape.numel()) * dtype_size(dtype));
    return storage.back().view(dtype, shape);
  };
  w.i8 = make(DType::i8, {out, in});
  w.i8_scale = make(DType::f32, {out});
  ops::quantize_weight_per_channel(ctx, w.i8, w.i8_scale, weight);
  w.f8 = make(DType::f8e4m3, {out, in});
  w.f8_scale = make(DType::f32, {out});
  ops::quantize_weight_per_channel(ctx, w.f8, w.f8_scale, weight);
  return w;
}

void bench_linear(Runner& runner) {
  const OpContext& ctx = runner.ctx();
  for (const Projection& p : projections()) {
    for (int64_t tokens : {4096, 8192, 16384}) {
      TensorPool pool = runner.pool();
      const DType act = runner.act();
      const int64_t n = runner.tensor_rows(tokens);
      std::vector<Buffer> storage;
      Tensor x = pool.make({n, p.in}), weight = pool.make({p.out, p.in}, -0.05, 0.05);
      Tensor out = pool.output(act, {n, p.out}), dout = pool.make({n, p.out});
      Tensor dx = pool.output(act, {n, p.in});
      const FrozenWeights w = quantized_copies(ctx, weight, storage);
      const std::string key = linear_key(p, tokens);
      const double flops = 2.0 * static_cast<double>(n * p.out) * static_cast<double>(p.in);
      runner.time("linear_forward", key, "ft_cublaslt", flops,
                  [&] { ops::linear_forward(ctx, out, x, weight, Tensor()); });
      runner.time("linear_dx", key, "ft_cublaslt", flops,
                  [&] { ops::linear_backward(ctx, dx, Tensor(), Tensor(), dout, x, weight); });
      struct Stored {
        const char* impl;
        Tensor weight, scale;  // scale: empty for bf16
      };
      for (const Stored& stored :
           {Stored{"ft_frozen_bf16", w.bf16, Tensor()}, Stored{"ft_frozen_i8", w.i8, w.i8_scale},
            Stored{"ft_frozen_f8e4m3", w.f8, w.f8_scale}}) {
        ops::FrozenLinearArgs args;
        args.weight_scale = stored.scale;
        runner.time("linear_forward", key, stored.impl, flops,
                    [&] { ops::frozen_linear_forward(ctx, out, x, stored.weight, args); });
        runner.time("linear_dx", key, stored.impl, flops, [&] {
          ops::frozen_linear_backward_input(ctx, dx, dout, stored.weight, stored.scale);
        });
      }
    }
  }
}

// ---- fused epilogues ---------------------------------------------------------------------------

void bench_epilogues(Runner& runner) {
  const OpContext& ctx = runner.ctx();
  const int64_t tokens = 8192, n = runner.tensor_rows(tokens), r = 16;
  const double lora_scale = 2.0;  // alpha 32 / r 16
  for (const std::string model : {"llama-3.2-1b", "llama-3.1-8b"}) {
    const bool small = model == "llama-3.2-1b";
    const int64_t C = small ? 2048 : 4096, F = small ? 8192 : 14336;
    TensorPool pool = runner.pool();
    const DType act = runner.act();
    Tensor x = pool.make({n, C});
    Tensor w_cc = pool.make({C, C}, -0.05, 0.05), w_fc = pool.make({F, C}, -0.05, 0.05),
           w_up = pool.make({F, C}, -0.05, 0.05);
    Tensor bias_c = pool.make({C}), bias_f = pool.make({F});
    Tensor residual = pool.make({n, C});
    Tensor out_c = pool.output(act, {n, C}), out_f = pool.output(act, {n, F});
    Tensor tmp_c = pool.output(act, {n, C}), gate = pool.output(act, {n, F}),
           up = pool.output(act, {n, F});
    Tensor pre_f = pool.output(act, {n, F}), pre_2f = pool.output(act, {2, n, F});
    Tensor lora_a = pool.make({r, C}, -0.05, 0.05), lora_b = pool.make({C, r}, -0.05, 0.05);
    Tensor t = pool.output(act, {n, r});
    const double cc = 2.0 * static_cast<double>(n * C) * static_cast<double>(C);
    const double fc = 2.0 * static_cast<double>(n * F) * static_cast<double>(C);
    auto key = [&](const char* what, int64_t out, int64_t in) {
      return fmt::format("{} {} N={} Out={} In={}", model, what, tokens, out, in);
    };

    // bias (Qwen2's q/k/v): cuBLASLt's linear with its bias against the fused epilogue.
    const std::string bias_key = key("bias", C, C);
    runner.time("epilogue_bias", bias_key, "ft_cublaslt_separate", cc,
                [&] { ops::linear_forward(ctx, out_c, x, w_cc, bias_c); });
    ops::FrozenLinearArgs bias_args;
    bias_args.bias = bias_c;
    runner.time("epilogue_bias", bias_key, "ft_frozen_fused", cc,
                [&] { ops::frozen_linear_forward(ctx, out_c, x, w_cc, bias_args); });

    // GELU (GPT-2's MLP up projection, bias included), saving its input for the backward.
    const std::string gelu_key = key("gelu", F, C);
    runner.time("epilogue_gelu", gelu_key, "ft_cublaslt_separate", fc, [&] {
      ops::linear_forward(ctx, pre_f, x, w_fc, bias_f);
      ops::gelu_forward(ctx, out_f, pre_f);
    });
    ops::FrozenLinearArgs gelu_args;
    gelu_args.bias = bias_f;
    gelu_args.epilogue = ops::FrozenEpilogue::gelu;
    gelu_args.pre_activation = pre_f;
    runner.time("epilogue_gelu", gelu_key, "ft_frozen_fused", fc,
                [&] { ops::frozen_linear_forward(ctx, out_f, x, w_fc, gelu_args); });

    // SwiGLU (Llama's gate and up projections), saving gate and up for the backward.
    const std::string swiglu_key = key("swiglu", F, C);
    runner.time("epilogue_swiglu", swiglu_key, "ft_cublaslt_separate", 2.0 * fc, [&] {
      ops::linear_forward(ctx, gate, x, w_fc, Tensor());
      ops::linear_forward(ctx, up, x, w_up, Tensor());
      ops::swiglu_forward(ctx, out_f, gate, up);
    });
    ops::FrozenLinearArgs swiglu_args;
    swiglu_args.epilogue = ops::FrozenEpilogue::swiglu;
    swiglu_args.up_weight = w_up;
    swiglu_args.pre_activation = pre_2f;
    runner.time("epilogue_swiglu", swiglu_key, "ft_frozen_fused", 2.0 * fc,
                [&] { ops::frozen_linear_forward(ctx, out_f, x, w_fc, swiglu_args); });

    // Residual add (attention output projection).
    const std::string residual_key = key("residual", C, C);
    runner.time("epilogue_residual", residual_key, "ft_cublaslt_separate", cc, [&] {
      ops::linear_forward(ctx, tmp_c, x, w_cc, Tensor());
      ops::add(ctx, out_c, residual, tmp_c);
    });
    ops::FrozenLinearArgs residual_args;
    residual_args.residual = residual;
    runner.time("epilogue_residual", residual_key, "ft_frozen_fused", cc,
                [&] { ops::frozen_linear_forward(ctx, out_c, x, w_cc, residual_args); });

    // LoRA r = 16 on a square projection, as models/peft/lora.cpp runs it: t = scale * A x,
    // out = W x + B t. Both sides compute t = A x; the fused one adds B t in the epilogue.
    const std::string lora_key = key("lora_r16", C, C);
    const double lora_flops = cc + 2.0 * static_cast<double>(n * r) * static_cast<double>(2 * C);
    runner.time("epilogue_lora", lora_key, "ft_cublaslt_separate", lora_flops, [&] {
      ops::linear_forward(ctx, out_c, x, w_cc, Tensor());
      ops::linear_forward(ctx, t, x, lora_a, Tensor());
      ops::scale(ctx, t, lora_scale);
      ops::linear_forward(ctx, tmp_c, t, lora_b, Tensor());
      ops::add(ctx, out_c, out_c, tmp_c);
    });
    ops::FrozenLinearArgs lora_args;
    lora_args.lora_xa = t;
    lora_args.lora_b = lora_b;
    lora_args.lora_scale = lora_scale;
    runner.time("epilogue_lora", lora_key, "ft_frozen_fused", lora_flops, [&] {
      ops::linear_forward(ctx, t, x, lora_a, Tensor());
      ops::frozen_linear_forward(ctx, out_c, x, w_cc, lora_args);
    });
  }
}

void print_table(const std::vector<Row>& rows) {
  std::cout << fmt::format("\n{:<18} {:<48} {:<22} {:>9} {:>8}\n", "kernel", "shape", "impl", "ms",
                           "TFLOP/s");
  for (const Row& row : rows)
    std::cout << fmt::format("{:<18} {:<48} {:<22} {:>9.4f} {:>8.1f}\n", row.kernel, row.shape,
                             row.impl, row.seconds * 1e3, row.tflops());
}

int run(const Options& o) {
  if (o.reps < 1 || o.warmup < 0) fail("--reps must be positive and --warmup non-negative");
  std::set<std::string> parts;
  for (size_t begin = 0; begin <= o.only.size();) {
    const size_t end = std::min(o.only.find(',', begin), o.only.size());
    const std::string part = o.only.substr(begin, end - begin);
    if (part != "attention" && part != "linear" && part != "epilogue")
      fail("--only {}: expected a comma-separated list of attention, linear, epilogue", o.only);
    parts.insert(part);
    begin = end + 1;
  }
  std::unique_ptr<cuda::CudaOpResources> resources;
  OpContext ctx;  // the CPU for --cpu-check
  ctx.num_threads = 2;
  if (!o.cpu_check) {
    if (cuda_device_count() == 0)
      fail("bench_kernels needs a GPU: {} (--cpu-check checks the calls on the CPU)",
           cuda_device_description(0));
    resources = std::make_unique<cuda::CudaOpResources>();
    ctx = resources->context();
  }
  Buffer workspace;
  size_t workspace_bytes = 0;
  if (parts.count("attention")) {
    workspace_bytes = attention_workspace(ctx, o);
    if (workspace_bytes > 0) {
      workspace = Buffer(ctx.device, workspace_bytes);
      ctx.workspace = {workspace.data(), workspace_bytes};
    }
  }
  if (o.cpu_check)
    std::cout << "bench_kernels: --cpu-check: every call once, f32 on the cpu, at most 64 rows\n";
  else
    std::cout << fmt::format("bench_kernels: {} ({}); {} timed calls after {} warm-up each\n",
                             cuda_device_description(0), cuda_versions(), o.reps, o.warmup + 1);
  Runner runner(o, ctx);
  if (parts.count("attention")) bench_attention(runner, workspace_bytes);
  if (parts.count("linear")) bench_linear(runner);
  if (parts.count("epilogue")) bench_epilogues(runner);
  if (!o.cpu_check) print_table(runner.rows());
  return 0;
}

}  // namespace
}  // namespace ft::bench

int main(int argc, char** argv) {
  CLI::App app{"bench_kernels: ft's attention and frozen-weight matmul kernels on one GPU"};
  ft::bench::Options options;
  app.add_option("--reps", options.reps, "Timed calls per kernel (median)")->capture_default_str();
  app.add_option("--warmup", options.warmup, "Untimed calls first (plus one more)")
      ->capture_default_str();
  app.add_option("--only", options.only, "Comma-separated: attention, linear, epilogue")
      ->capture_default_str();
  app.add_option("--seed", options.seed, "Seed for the random inputs")->capture_default_str();
  app.add_flag("--cpu-check", options.cpu_check,
               "Run every call once in f32 on the CPU on cut-down shapes (checks the arguments; "
               "no GPU needed, nothing timed)");
  return ft::bench::parse_and_run(app, argc, argv, "bench_kernels",
                                  [&] { return ft::bench::run(options); });
}
