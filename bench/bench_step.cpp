// bench_step: the end-to-end training-step benchmark. Times full steps (zero grads, forward,
// backward, clip, AdamW) of a model at a batch shape, then on the CPU measures the machine's BLAS
// ceiling on the step's own GEMM shapes (gemm_ceiling.h), so the figure reads as "a fraction of
// what this machine can do". --device cuda runs the step on one GPU as ft_train does (bf16
// compute, fp32 master weights, the trainer's device setup and optimizer) and reports MFU against
// the GPU's dense bf16 peak and the device memory the run holds. --profile adds a per-op breakdown
// (step_profile.h): each op the step runs, timed alone on the step's shapes. --method picks the
// fine-tuning method (full, or a PEFT adapter on a frozen base); --method all runs every method on
// the same model and batch and compares their speed and memory (peft_bench.h). Benchmarks print
// figures; nothing here passes or fails. The stepped model itself is StepBench (step_bench.h).
#include <cblas.h>
#include <omp.h>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "gemm_ceiling.h"
#include "models/model_config.h"
#include "models/peft/peft_spec.h"
#include "models/transformer.h"
#include "peft_bench.h"
#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/parameters.h"
#include "runtime/train/metrics.h"
#include "runtime/train/run_device.h"
#include "step_bench.h"
#include "step_profile.h"

namespace ft::bench {
namespace {

// Executed FLOPs per data token: the model's 6N + 12LHDT for full fine-tuning (as the results in
// README.md were measured), the FLOPs the step actually runs for a PEFT method.
double flops_per_data_token(const ModelConfig& config, const StepBench& bench,
                            const BenchOptions& o) {
  if (!bench.peft().is_peft()) return config.training_flops_per_token(o.seq);
  const StepFlops flops = executed_step_flops(config, bench.peft(), o.batch, o.seq,
                                              bench.model().lowest_backward_layer());
  return flops.total() / static_cast<double>(bench.tokens());
}

// The single-method summary as one JSON object (for bench/run_e2e_gpu.py).
void print_result_json(const ModelConfig& config, const PeftSpec& peft, const BenchOptions& o,
                       const RunTarget& target, const StepBench& bench, double step_median,
                       double model_flops, const GpuRun* gpu, size_t device_memory,
                       const TimedSteps& run) {
  const double tokens_per_s = static_cast<double>(bench.tokens()) / step_median;
  nlohmann::json result = {
      {"impl", "ft"},
      {"method", peft_method_name(peft.method)},
      {"summary", peft.summary()},
      {"model", config.summary()},
      {"device", device_name(target.device)},
      {"precision", target.precision.describe()},
      {"batch", o.batch},
      {"seq", o.seq},
      {"tokens_per_step", bench.tokens()},
      {"model_rows_per_step", bench.model_rows()},
      {"trainable_params", bench.params().trainable_count()},
      {"total_params", bench.params().trainable_count() + bench.params().frozen_count()},
      {"step_ms", step_median * 1e3},
      {"tokens_per_s", tokens_per_s},
      {"model_flops_per_token", model_flops},
      {"first_loss", run.first_loss},
      {"last_loss", run.last_loss},
      {"steps", o.steps},
      {"warmup", o.warmup}};
  if (gpu) {
    result["gpu"] = gpu->name;
    result["peak_tflops"] = gpu->peak.tflops;
    result["peak_source"] = gpu->peak.source;
    result["mfu"] = nullptr;  // unknown peak
    if (gpu->peak.tflops > 0)
      result["mfu"] = tokens_per_s * model_flops / (gpu->peak.tflops * 1e12);
    result["device_memory_bytes"] = device_memory;
  }
  std::cout << "bench_step-result: " << result.dump() << std::endl;
}

// One method, in detail: start-up report, each step, the phases, the result, and (full
// fine-tuning, or --ceiling, on the CPU) the BLAS ceiling.
int run_one_method(const ModelConfig& config, const PeftSpec& peft, const BenchOptions& o,
                   const RunTarget& target) {
  const DType dtype = target.precision.compute;
  const bool gpu = target.device != Device::cpu;
  const GpuRun facts = gpu ? start_gpu_run(o.peak_tflops) : GpuRun{};
  StepBench bench(config, o, target, peft);
  const int64_t tokens = bench.tokens();
  const double flops_per_token = flops_per_data_token(config, bench, o);
  const ParameterStore& params = bench.params();
  const int64_t all_params = params.trainable_count() + params.frozen_count();
  std::cout << fmt::format(
      "bench_step: method {}: {} of {} parameters train ({:.3g}%)\n", peft.summary(),
      format_count(params.trainable_count()), format_count(all_params),
      100.0 * static_cast<double>(params.trainable_count()) / static_cast<double>(all_params));
  if (peft.is_peft()) {
    const StepFlops f =
        executed_step_flops(config, peft, o.batch, o.seq, bench.model().lowest_backward_layer());
    std::cout << fmt::format(
        "bench_step: batch {} x seq {} = {} tokens per step{}; {:.1f} GFLOP executed per step, "
        "{:.1f} MFLOP per token: forward {:.1f}, input grads {:.1f}, attention {:.1f}, adapter "
        "{:.2f} GFLOP; no weight-gradient products for the frozen base; {}\n",
        o.batch, o.seq, tokens,
        bench.model_rows() != tokens
            ? fmt::format(" ({} model rows with the virtual rows)", bench.model_rows())
            : std::string(),
        f.total() * 1e-9, flops_per_token * 1e-6, f.forward * 1e-9, f.input_grad * 1e-9,
        f.attention * 1e-9, f.adapter * 1e-9,
        bench.model().lowest_backward_layer() < 0
            ? std::string("the backward runs through every layer down to the input rows")
            : fmt::format("the backward stops at layer {}", bench.model().lowest_backward_layer()));
  } else {
    std::cout << fmt::format(
        "bench_step: batch {} x seq {} = {} tokens per step; {:.1f} MFLOP per token (6N + "
        "12LHDT), {:.1f} GFLOP per step\n",
        o.batch, o.seq, tokens, flops_per_token * 1e-6, flops_per_token * tokens * 1e-9);
  }
  std::cout << fmt::format(
      "bench_step: memory: weights {} ({} trainable, {} frozen), gradients {}, optimizer {}, "
      "activations {}, workspace {}\n",
      format_bytes(params.weight_bytes()), format_bytes(bench.trainable_weight_bytes()),
      format_bytes(bench.frozen_weight_bytes()), format_bytes(params.gradient_bytes()),
      format_bytes(params.optimizer_bytes()), format_bytes(bench.activation_bytes()),
      format_bytes(bench.workspace_bytes()));
  const double model_flops = model_flops_per_token(config, peft, o.batch, o.seq);
  if (gpu)
    std::cout << fmt::format(
        "bench_step: MFU counts {:.1f} MFLOP of model FLOPs per data token ({}; "
        "reference/performance.md) against {}\n",
        model_flops * 1e-6, peft.is_peft() ? "4N + 12LHDT + adapter" : "6N + 12LHDT",
        facts.peak.tflops > 0
            ? fmt::format("{:.0f} TFLOP/s, {}", facts.peak.tflops, facts.peak.source)
            : facts.peak.source + " (give --peak-tflops)");

  const TimedSteps run = time_steps(bench, o);
  // Everything is allocated before the first step, so this reading after the steps is the peak
  // of what the run holds on the device.
  const size_t device_memory = gpu ? device_memory_used() - facts.memory_before : 0;
  const std::vector<double> steps = run.column(&PhaseSeconds::total);
  const double step_median = run.step_median();
  std::cout << fmt::format("\nStep phases (median over {} timed steps)\n", o.steps);
  for (auto [name, field] : {std::pair{"zero grads", &PhaseSeconds::zero},
                             {"forward", &PhaseSeconds::forward},
                             {"backward", &PhaseSeconds::backward},
                             {"clip", &PhaseSeconds::clip},
                             {"adamw", &PhaseSeconds::update}}) {
    const double seconds = median(run.column(field));
    std::cout << fmt::format("  {:<11} {:9.1f} ms  {:5.1f}%\n", name, seconds * 1e3,
                             seconds / step_median * 100.0);
  }

  const bool measure = !gpu && (!peft.is_peft() || o.ceiling);
  Ceiling ceiling;
  if (measure) {
    ceiling = measure_ceiling(config, tokens, o.gemm_reps, dtype);
    print_ceiling(ceiling, o.threads);
  }

  const double tokens_per_s = static_cast<double>(tokens) / step_median;
  const double achieved = tokens_per_s * flops_per_token * 1e-9;
  const OpCounters& counts = bench.last_step_counts();
  std::cout << "\nResult\n"
            << fmt::format(
                   "  step time       median {:.1f} ms, mean {:.1f}, min {:.1f}, max {:.1f} "
                   "({} steps after {} warm-up)\n",
                   step_median * 1e3, mean(steps) * 1e3,
                   *std::min_element(steps.begin(), steps.end()) * 1e3,
                   *std::max_element(steps.begin(), steps.end()) * 1e3, o.steps, o.warmup)
            << fmt::format("  throughput      {:.0f} tokens/s, {:.1f} GFLOP/s{}\n", tokens_per_s,
                           achieved, peft.is_peft() ? " (FLOPs executed)" : "");
  if (gpu) {
    const double model_tflops = tokens_per_s * model_flops * 1e-12;
    std::cout << fmt::format("  GPU             {}, {}\n", facts.name, cuda_versions());
    std::cout << "  MFU             " << facts.mfu(model_tflops) << "\n";
    std::cout << fmt::format(
        "  device memory   {} held by the run (cudaMemGetInfo after the steps minus before the "
        "setup; planned: weights {}, gradients {}, optimizer {}, activations {}, workspace {})\n",
        format_bytes(static_cast<double>(device_memory)), format_bytes(params.weight_bytes()),
        format_bytes(params.gradient_bytes()), format_bytes(params.optimizer_bytes()),
        format_bytes(bench.activation_bytes()), format_bytes(bench.workspace_bytes()));
  }
  std::cout << fmt::format("  GEMMs per step  {} forward, {} input-gradient, {} weight-gradient\n",
                           counts.forward_products, counts.input_grad_products,
                           counts.weight_grad_products);
  if (measure) {
    const double fraction = achieved / ceiling.gflops();
    std::cout << fmt::format(
                     "  BLAS ceiling    {:.1f} GFLOP/s -> {:.0f} tokens/s if every FLOP ran "
                     "at the ceiling{}\n",
                     ceiling.gflops(), ceiling.gflops() * 1e9 / flops_per_token,
                     peft.is_peft() ? " (ceiling measured on the full fine-tuning GEMM shapes)"
                                    : "")
              << fmt::format("  ft / ceiling    {:.1f}%{}\n", fraction * 100.0,
                             fraction > 1.0 ? " (above 100%: something else ran during the GEMM "
                                              "timings; rerun on a quiet machine)"
                                            : "");
  }
  std::cout << fmt::format("  loss            {:.4f} (step 1) -> {:.4f} (step {})\n",
                           run.first_loss, run.last_loss, o.warmup + o.steps);
  if (o.profile) {
    const ProfiledStep profiled{.config = config,
                                .ctx = bench.context(),
                                .inputs = bench.inputs(),
                                .batch = o.batch,
                                .seq = o.seq,
                                .trainable_parameters = params.trainable_count()};
    print_profile(profile_ops(profiled, ceiling, dtype, o.seed, o.profile_reps), step_median);
  }
  if (o.result_json)
    print_result_json(config, peft, o, target, bench, step_median, model_flops,
                      gpu ? &facts : nullptr, device_memory, run);
  return 0;
}

MethodResult measure_method(const ModelConfig& config, const PeftSpec& peft, const BenchOptions& o,
                            const RunTarget& target) {
  StepBench bench(config, o, target, peft);
  std::cout << fmt::format("\n{}: {}\n", peft_method_name(peft.method), peft.summary());
  const TimedSteps run = time_steps(bench, o);
  const ParameterStore& params = bench.params();
  const OpCounters& counts = bench.last_step_counts();
  MethodResult r;
  r.method = peft_method_name(peft.method);
  r.summary = peft.summary();
  r.trainable_params = params.trainable_count();
  r.total_params = params.trainable_count() + params.frozen_count();
  r.step_seconds = run.step_median();
  r.data_tokens = bench.tokens();
  r.model_rows = bench.model_rows();
  // Full fine-tuning counts its executed FLOPs the same way here, so the column compares like
  // with like (it differs from 6N + 12LHDT only by the norms' and biases' parameters).
  r.flops =
      executed_step_flops(config, peft, o.batch, o.seq, bench.model().lowest_backward_layer());
  r.weight_grad_products = counts.weight_grad_products;
  r.input_grad_products = counts.input_grad_products;
  r.forward_products = counts.forward_products;
  r.weights_trainable = bench.trainable_weight_bytes();
  r.weights_frozen = bench.frozen_weight_bytes();
  r.gradients = params.gradient_bytes();
  r.optimizer = params.optimizer_bytes();
  r.activations = bench.activation_bytes();
  r.workspace = bench.workspace_bytes();
  r.first_loss = run.first_loss;
  r.last_loss = run.last_loss;
  return r;
}

// Every method on the same model and batch, one after another, then the comparison.
int run_every_method(const ModelConfig& config, const std::vector<PeftSpec>& specs,
                     const BenchOptions& o, const RunTarget& target) {
  const DType dtype = target.precision.compute;
  std::cout << fmt::format(
      "bench_step: batch {} x seq {} = {} data tokens per step, {} timed "
      "steps after {} warm-up per method\n",
      o.batch, o.seq, o.batch * o.seq, o.steps, o.warmup);
  std::vector<MethodResult> results;
  for (const PeftSpec& spec : specs) results.push_back(measure_method(config, spec, o, target));
  print_method_comparison(results);
  std::cout << fmt::format(
      "\nProcess peak RSS {} (getrusage ru_maxrss): the maximum over every method run in this "
      "process, so it cannot tell the methods apart; the planned bytes above are per method.\n",
      format_bytes(static_cast<double>(peak_rss_bytes())));
  if (o.ceiling && target.device == Device::cpu) {
    const Ceiling ceiling = measure_ceiling(config, o.batch * o.seq, o.gemm_reps, dtype);
    print_ceiling(ceiling, o.threads);
    std::cout << fmt::format(
        "\nExecuted GFLOP/s as a share of the BLAS ceiling ({:.1f} GFLOP/s, "
        "measured on the full fine-tuning GEMM shapes)\n",
        ceiling.gflops());
    for (const MethodResult& r : results)
      std::cout << fmt::format("  {:<14} {:5.1f}%\n", r.method,
                               r.flops.total() / r.step_seconds * 1e-9 / ceiling.gflops() * 100);
  }
  return 0;
}

int run(const BenchOptions& o) {
  if (o.device != "cpu" && o.device != "cuda") fail("--device {}: expected cpu or cuda", o.device);
  RunTarget target;
  target.device = o.device == "cuda" ? Device::cuda : Device::cpu;
  try {
    target.precision = resolve_precision(o.dtype, target.device);
  } catch (const Error& error) {
    fail("--{}", error.what());  // "--dtype: ..."
  }
  if (target.device == Device::cuda && cuda_device_count() == 0)
    fail("--device cuda: {}", cuda_device_description(0));
  if (o.steps < 1 || o.warmup < 0 || o.batch < 1 || o.seq < 1 || o.threads < 1)
    fail("--steps, --batch, --seq and --threads must be positive and --warmup non-negative");
  const std::vector<std::string> methods = methods_to_run(o.methods.method);
  if (o.profile && methods != std::vector<std::string>{"full"})
    fail("--profile mirrors the full fine-tuning step op by op; use it with --method full");
  if (o.ceiling && target.device != Device::cpu)
    fail(
        "--ceiling measures the CPU BLAS; on a GPU, bench_kernels times cuBLASLt on the step's "
        "GEMM shapes");
  if (o.result_json && methods.size() != 1)
    fail("--result-json reports one method; give --method full, prompt_tuning, ... not all");
  omp_set_num_threads(o.threads);
  openblas_set_num_threads(o.threads);
  const ModelConfig config =
      o.hf_config.empty() ? model_config_preset(o.preset) : model_config_from_hf(o.hf_config);
  // Every method is resolved before any runs, so a bad option fails at once.
  std::vector<PeftSpec> specs;
  for (const std::string& method : methods) {
    try {
      specs.push_back(resolve_peft_spec(peft_config_for(method, o.methods), config, o.seq));
    } catch (const Error& error) {
      const bool virtual_tokens = method != "full" && method != "lora";
      fail("--method {}{}: {}", method,
           virtual_tokens
               ? fmt::format(" (--seq {}, --virtual-tokens {})", o.seq, o.methods.virtual_tokens)
               : std::string(),
           error.what());
    }
  }

  int64_t base_parameters = 0;
  for (const ParamSpec& spec : transformer_param_specs(config))
    base_parameters += spec.shape.numel();
  std::cout << "bench_step: model " << config.summary() << "\n";
  if (target.device == Device::cpu)
    std::cout << fmt::format(
        "bench_step: base model parameters {} ({} non-embedding), {} on cpu, {} threads, "
        "OpenBLAS {}\n",
        format_count(base_parameters), format_count(config.non_embedding_parameters()),
        target.precision.describe(), o.threads, openblas_get_config());
  else
    std::cout << fmt::format(
        "bench_step: base model parameters {} ({} non-embedding), {} on {}; {} host threads\n",
        format_count(base_parameters), format_count(config.non_embedding_parameters()),
        target.precision.describe(), cuda_device_description(0), o.threads);
  if (specs.size() == 1) return run_one_method(config, specs[0], o, target);
  return run_every_method(config, specs, o, target);
}

}  // namespace
}  // namespace ft::bench

int main(int argc, char** argv) {
  CLI::App app{"bench_step: time training steps (full fine-tuning or PEFT, CPU or one GPU)"};
  ft::bench::BenchOptions options;
  auto* preset = app.add_option("--preset", options.preset, "Model preset")->capture_default_str();
  app.add_option("--hf-config", options.hf_config, "Hugging Face config.json instead of a preset")
      ->excludes(preset);
  app.add_option("--batch", options.batch, "Sequences per step")->capture_default_str();
  app.add_option("--seq", options.seq, "Data tokens per sequence (virtual tokens come on top)")
      ->capture_default_str();
  app.add_option("--threads", options.threads, "OpenMP and OpenBLAS threads")
      ->capture_default_str();
  app.add_option("--steps", options.steps, "Timed steps")->capture_default_str();
  app.add_option("--warmup", options.warmup, "Untimed steps first")->capture_default_str();
  app.add_option("--device", options.device, "cpu, or cuda (one GPU, as ft_train runs it)")
      ->capture_default_str();
  app.add_option("--dtype", options.dtype,
                 "auto (cpu: fp32; cuda: bf16 with fp32 master weights), fp32 or fp64 (cpu)")
      ->capture_default_str();
  app.add_option("--peak-tflops", options.peak_tflops,
                 "cuda: the dense bf16 peak MFU divides by (0: from the GPU's name)")
      ->capture_default_str();
  app.add_flag("--result-json", options.result_json,
               "End with one 'bench_step-result: {...}' JSON line (one method)");
  app.add_option("--seed", options.seed, "Seed for weights and tokens")->capture_default_str();
  app.add_option("--gemm-reps", options.gemm_reps, "Repetitions per GEMM for the ceiling")
      ->capture_default_str();
  app.add_flag("--profile", options.profile, "Also time each op alone on the step's shapes");
  app.add_option("--profile-reps", options.profile_reps, "Repetitions per op for --profile")
      ->capture_default_str();
  ft::bench::MethodOptions& m = options.methods;
  app.add_option("--method", m.method,
                 "full | prompt_tuning | prefix_tuning | p_tuning | lora | all (every method, "
                 "then a comparison)")
      ->capture_default_str();
  app.add_option("--virtual-tokens", m.virtual_tokens,
                 "Virtual tokens P (prompt tuning, prefix tuning, P-tuning)")
      ->capture_default_str();
  app.add_option("--lora-r", m.lora_r, "LoRA rank")->capture_default_str();
  app.add_option("--lora-alpha", m.lora_alpha, "LoRA alpha (scale alpha / r)")
      ->capture_default_str();
  app.add_option("--lora-targets", m.lora_targets,
                 "LoRA target modules, comma-separated, or all-linear (default: PEFT's, "
                 "q_proj,v_proj; GPT-2: c_attn)");
  app.add_option("--encoder-hidden", m.encoder_hidden,
                 "Width of the P-tuning MLP / prefix projection (0: the model's hidden size)")
      ->capture_default_str();
  app.add_flag("--prefix-projection", m.prefix_projection,
               "Prefix tuning through PEFT's MLP projection");
  app.add_flag("--ceiling", options.ceiling,
               "Measure the BLAS ceiling for a PEFT method or --method all too (always for full)");
  return ft::bench::parse_and_run(app, argc, argv, "bench_step",
                                  [&] { return ft::bench::run(options); });
}
