#include "step_bench.h"

#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <random>

#include "runtime/train/input_layout.h"

namespace ft::bench {

StepBench::StepBench(const ModelConfig& config, const BenchOptions& options,
                     const RunTarget& target, const PeftSpec& peft)
    : config_(config),
      options_(options),
      peft_(peft),
      run_device_(target.device),
      params_(run_param_specs(config, peft), target.precision.master, target.device,
              ParameterStoreOptions{}, target.precision.compute),
      model_(config, params_, peft, options.batch, peft.model_seq_len(options.seq)),
      device_inputs_(target.device, options.batch, peft.model_seq_len(options.seq)) {
  ctx_ = run_device_.context();
  ctx_.num_threads = options.threads;
  ctx_.counters = &counters_;
  if (target.device == Device::cpu) {
    params_.initialize(options.seed);
    cpu_optimizer_ = std::make_unique<AdamW>(params_, adamw_config());
  } else {
    ParameterStoreOptions staging;  // values only, as the trainer stages its starting point
    staging.gradients = false;
    staging.moments = false;
    ParameterStore host(run_param_specs(config, peft), target.precision.master, Device::cpu,
                        staging);
    host.initialize(options.seed);
    copy_parameters(params_, host, ParameterCopy{}, ctx_, options.threads);
    shard_rules_.assign(params_.all().size(), ShardRule{});
    device_optimizer_ = std::make_unique<DataParallelOptimizer>(
        params_, shard_rules_, groups_, nullptr, adamw_config(), DataParallelOptions{});
  }
  memory_ = plan_model_memory(model_, ctx_);
  make_batch();
  synchronize(ctx_);
}

PhaseSeconds StepBench::step(int64_t step, double* loss) {
  counters_ = OpCounters{};
  PhaseSeconds t;
  const auto start = Clock::now();
  auto lap = [&, last = start](double& slot) mutable {
    const auto now = Clock::now();
    slot = std::chrono::duration<double>(now - last).count();
    last = now;
  };
  // On a GPU each phase waits for its kernels (synchronize) before its time is read; the
  // forward (its loss) and the clipping (its norm) wait anyway, as in the trainer's step.
  params_.zero_grads(ctx_);
  synchronize(ctx_);
  lap(t.zero);
  const ForwardResult forward = model_.forward(ctx_, inputs_);
  synchronize(ctx_);
  lap(t.forward);
  model_.backward(ctx_, inputs_, 1.0 / static_cast<double>(tokens()));
  synchronize(ctx_);
  lap(t.backward);
  if (cpu_optimizer_) {
    cpu_optimizer_->clip_gradients(ctx_);
  } else {
    device_optimizer_->reduce_gradients(ctx_);  // one rank: nothing to reduce
    device_optimizer_->clip_gradients(ctx_);
  }
  synchronize(ctx_);
  lap(t.clip);
  if (cpu_optimizer_)
    cpu_optimizer_->update(ctx_, 1e-4, step);
  else
    device_optimizer_->update(ctx_, 1e-4, step);
  synchronize(ctx_);
  lap(t.update);
  t.total = seconds_since(start);
  *loss = forward.loss_sum / static_cast<double>(tokens());
  return t;
}

void StepBench::make_batch() {
  const int64_t n = tokens();
  std::mt19937_64 rng(options_.seed);
  std::uniform_int_distribution<int32_t> token(1, static_cast<int32_t>(config_.vocab_size - 1));
  batch_.batch_size = static_cast<int>(options_.batch);
  batch_.seq_len = static_cast<int>(options_.seq);
  batch_.input_ids.resize(n);
  batch_.targets.resize(n);
  batch_.positions.resize(n);
  for (int64_t i = 0; i < n; ++i) batch_.input_ids[i] = token(rng);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = i % options_.seq;
    batch_.positions[i] = static_cast<int32_t>(t);
    batch_.targets[i] = t + 1 < options_.seq ? batch_.input_ids[i + 1] : token(rng);
  }
  batch_.target_tokens = n;
  batch_.sequences = options_.batch;
  lay_out_batch(peft_, batch_);
  const int64_t rows = model_rows();
  ModelInputs host;
  host.input_ids = Tensor(batch_.input_ids.data(), DType::i32, Shape{rows});
  host.positions = Tensor(batch_.positions.data(), DType::i32, Shape{rows});
  host.targets = Tensor(batch_.targets.data(), DType::i32, Shape{rows});
  inputs_ = device_inputs_.upload(host);  // the host views themselves on the CPU
}

TimedSteps time_steps(StepBench& bench, const BenchOptions& o) {
  TimedSteps result;
  double loss = 0;
  for (int s = 1; s <= o.warmup + o.steps; ++s) {
    PhaseSeconds t = bench.step(s, &loss);
    if (s == 1) result.first_loss = loss;
    std::cout << fmt::format("  step {:>3}{} {:8.1f} ms  loss {:.4f}\n", s,
                             s > o.warmup ? "  " : " w", t.total * 1e3, loss);
    if (s > o.warmup) result.timed.push_back(t);
  }
  result.last_loss = loss;
  return result;
}

}  // namespace ft::bench
