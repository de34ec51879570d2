// StepBench: one model with its fine-tuning method, parameters, optimizer, activations and a
// seeded random batch, stepped and timed phase by phase for bench_step, on the CPU or one GPU.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"
#include "models/model_config.h"
#include "models/peft/peft_spec.h"
#include "models/transformer.h"
#include "parallel/data_parallel.h"
#include "peft_bench.h"
#include "runtime/data/batch_loader.h"
#include "runtime/device.h"
#include "runtime/parameters.h"
#include "runtime/train/optimizer.h"
#include "runtime/train/run_device.h"

namespace ft::bench {

// bench_step's command line.
struct BenchOptions {
  std::string preset = "bench-gpt2";
  std::string hf_config;
  int64_t batch = 8;
  int64_t seq = 256;
  int threads = 2;
  int steps = 10;
  int warmup = 2;
  std::string device = "cpu";  // cpu | cuda
  std::string dtype = "auto";  // auto (cpu: fp32; cuda: bf16 with fp32 masters) | fp32 | fp64
  double peak_tflops = 0;      // cuda: MFU's denominator; 0 = from the GPU's name
  bool result_json = false;    // one "bench_step-result: {...}" line at the end (one method)
  uint64_t seed = 1234;
  int gemm_reps = 7;
  bool profile = false;
  int profile_reps = 5;
  MethodOptions methods;
  bool ceiling = false;  // measure the BLAS ceiling for PEFT methods and --method all too
};

struct PhaseSeconds {
  double zero = 0, forward = 0, backward = 0, clip = 0, update = 0, total = 0;
};

// Where and in what precision the step runs.
struct RunTarget {
  Device device = Device::cpu;
  RunPrecision precision;
};

// Owns a model with its fine-tuning method, its parameters, optimizer, activations and one seeded
// random batch laid out for the method (virtual rows in front for prompt tuning and P-tuning).
// On CUDA it is set up as the trainer sets up a one-GPU run (runtime/train/trainer.cpp): the
// RunDevice's context, a mixed-precision store (fp32 masters, gradients and moments for the
// trainable parameters, bf16 working copies, frozen weights bf16 only) filled from a host staging
// store by copy_parameters, the inputs uploaded through DeviceInputs, and the trainer's optimizer
// (DataParallelOptimizer over one rank, which also writes the bf16 working copies). The CPU keeps
// the plain AdamW it was measured with.
class StepBench {
 public:
  StepBench(const ModelConfig& config, const BenchOptions& options, const RunTarget& target,
            const PeftSpec& peft);

  // One full training step; `step` counts from 1 (AdamW bias correction). The op counters then
  // hold this step's products.
  PhaseSeconds step(int64_t step, double* loss);

  // Data tokens per step (every one has a target); virtual rows are not tokens.
  int64_t tokens() const { return options_.batch * options_.seq; }
  int64_t model_rows() const { return options_.batch * peft_.model_seq_len(options_.seq); }
  const PeftSpec& peft() const { return peft_; }
  const Transformer& model() const { return model_; }
  const ParameterStore& params() const { return params_; }
  const OpContext& context() const { return ctx_; }
  const ModelInputs& inputs() const { return inputs_; }
  const OpCounters& last_step_counts() const { return counters_; }
  size_t activation_bytes() const { return memory_.activations.capacity(); }
  size_t workspace_bytes() const { return memory_.workspace.bytes(); }
  // Trainable: the masters plus, under mixed precision, their working copies.
  size_t trainable_weight_bytes() const {
    const size_t copies = params_.mixed_precision() ? dtype_size(params_.compute_dtype()) : 0;
    return static_cast<size_t>(params_.trainable_count()) * (dtype_size(params_.dtype()) + copies);
  }
  size_t frozen_weight_bytes() const {
    return static_cast<size_t>(params_.frozen_count()) * dtype_size(params_.compute_dtype());
  }

 private:
  static AdamWConfig adamw_config() {
    AdamWConfig adamw;
    adamw.weight_decay = 0.1;
    adamw.grad_clip = 1.0;
    return adamw;
  }

  // Token ids and targets drawn from [1, V): seeded, never all zero (a constant batch would make
  // the softmax and the embedding scatter unrealistically cache-friendly). The same tokens for
  // every method; lay_out_batch then adds the method's virtual rows and position offset.
  void make_batch();

  ModelConfig config_;
  BenchOptions options_;
  PeftSpec peft_;
  OpCounters counters_;
  RunDevice run_device_;  // owns the CUDA stream and cuBLASLt handle ctx_ points at
  OpContext ctx_;
  ParameterStore params_;
  ProcessGroups groups_ = ProcessGroups::single();
  std::vector<ShardRule> shard_rules_;
  std::unique_ptr<AdamW> cpu_optimizer_;
  std::unique_ptr<DataParallelOptimizer> device_optimizer_;
  Transformer model_;
  DeviceInputs device_inputs_;
  ModelMemory memory_;
  data::Batch batch_;
  ModelInputs inputs_;
};

// The timed steps' phases, and the losses of the first and last step run.
struct TimedSteps {
  std::vector<PhaseSeconds> timed;  // after the warm-up
  double first_loss = 0, last_loss = 0;
  std::vector<double> column(double PhaseSeconds::*field) const {
    std::vector<double> values;
    for (const PhaseSeconds& t : timed) values.push_back(t.*field);
    return values;
  }
  double step_median() const { return median(column(&PhaseSeconds::total)); }
};

// Runs o.warmup untimed and o.steps timed steps, printing each step's time and loss.
TimedSteps time_steps(StepBench& bench, const BenchOptions& o);

}  // namespace ft::bench
