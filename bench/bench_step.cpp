// bench_step: the end-to-end CPU training-step benchmark. Times full steps (zero grads, forward,
// backward, clip, AdamW) of a model at a batch shape, then measures the machine's BLAS ceiling on
// the step's own GEMM shapes (gemm_ceiling.h), so the figure reads as "a fraction of what this
// machine can do". --profile adds a per-op breakdown (step_profile.h): each op the step runs,
// timed alone on the step's shapes. Benchmarks print figures; nothing here passes or fails.
#include <cblas.h>
#include <omp.h>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "gemm_ceiling.h"
#include "models/model_config.h"
#include "models/param_layout.h"
#include "models/transformer.h"
#include "runtime/buffer.h"
#include "runtime/error.h"
#include "runtime/parameters.h"
#include "runtime/train/metrics.h"
#include "runtime/train/optimizer.h"
#include "step_profile.h"

namespace ft::bench {
namespace {

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

  const Ceiling ceiling = measure_ceiling(config, tokens, o.gemm_reps, dtype);
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
  if (o.profile) {
    const ProfiledStep profiled{.config = config,
                                .ctx = bench.context(),
                                .inputs = bench.inputs(),
                                .batch = o.batch,
                                .seq = o.seq,
                                .trainable_parameters = bench.params().trainable_count()};
    print_profile(profile_ops(profiled, ceiling, dtype, o.seed, o.profile_reps), step_median);
  }
  return 0;
}

}  // namespace
}  // namespace ft::bench

int main(int argc, char** argv) {
  CLI::App app{"bench_step: time full CPU training steps and compare with the BLAS ceiling"};
  ft::bench::BenchOptions options;
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
    return ft::bench::run(options);
  } catch (const std::exception& error) {
    std::cerr << "bench_step: error: " << error.what() << std::endl;
    return 1;
  }
}
