// The training loop: set-up (config, model, data, memory plan, all checked before any step runs),
// then steps of gradient-accumulated micro-batches, AdamW with the learning-rate schedule,
// clipping, evaluation, metrics and checkpoints.
#pragma once

#include <cstdint>
#include <fstream>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/context.h"
#include "models/transformer.h"
#include "parallel/communicator.h"
#include "parallel/data_parallel.h"
#include "parallel/process_groups.h"
#include "parallel/tensor_parallel.h"
#include "runtime/config/ft_config.pb.h"
#include "runtime/data/batch_loader.h"
#include "runtime/data/dataset.h"
#include "runtime/data/tokenizer.h"
#include "runtime/parameters.h"
#include "runtime/train/fault_injection.h"
#include "runtime/train/input_layout.h"
#include "runtime/train/lr_schedule.h"
#include "runtime/train/metrics.h"
#include "runtime/train/run_device.h"
#include "runtime/train/train_state.h"

namespace ft {

struct TrainerOptions {
  config::RunConfig config;
  std::string resume;  // "": fresh run; "latest": newest checkpoint in output_dir; else a path
  std::ostream* log = nullptr;  // progress and reports (nullptr: std::cout)
  // The ranks of the job (parallel/launch.h's MpiRuntime::world()); nullptr: one process.
  std::shared_ptr<Communicator> world;
};

struct TrainSummary {
  int64_t steps = 0;  // optimizer steps completed, counting those before a resume
  int64_t trained_tokens = 0;
  std::vector<double> step_losses;          // losses of the steps this run executed
  std::vector<int64_t> step_comm_bytes;     // bytes this rank passed to collectives, per step
  std::optional<EvalMetrics> initial_eval;  // before the first step (train.eval_at_start)
  std::optional<EvalMetrics> final_eval;    // the last step's (on eval_batches' sample)
  std::optional<EvalMetrics> full_eval;     // the whole validation set after the last step
  double wall_seconds = 0.0;
  std::string last_checkpoint;
  std::string peft_adapter_dir;  // PEFT runs: the exported Hugging Face PEFT folder
  bool stopped_early = false;    // a stop signal ended the run after a checkpoint
};

class Trainer {
 public:
  // Every check that can fail on bad input happens here, before anything is written.
  explicit Trainer(TrainerOptions options);
  ~Trainer();
  TrainSummary run();

  const ParameterStore& parameters() const { return *params_; }
  const ModelConfig& model_config() const { return model_config_; }
  int64_t total_steps() const { return total_steps_; }

 private:
  void print_startup_report() const;
  // Collective calls, bytes and seconds so far, summed over this rank's communicators.
  CommunicatorStats communication_totals() const;
  // Validation loss and accuracy on train.eval_batches micro-batches (a fixed sample), or on the
  // whole validation set when `full` or eval_batches is 0.
  EvalMetrics evaluate(int64_t step, bool full = false);
  void save_checkpoint(int64_t step, int64_t trained_tokens);
  // Every rank's shards assembled into full-shape parameters on world rank 0 (nullptr elsewhere).
  // Collective.
  std::unique_ptr<ParameterStore> gather_full_parameters(bool frozen, bool moments);
  // A GPU run's parameters copied to the host (fp32 masters, moments when asked, frozen values
  // widened from bf16 when asked), for checkpoints and PEFT exports.
  std::unique_ptr<ParameterStore> host_copy(bool frozen, bool moments) const;

  TrainerOptions options_;
  const config::RunConfig& config_;
  std::ofstream null_log_;  // never opened: the log of every rank but world rank 0
  std::ostream& log_;
  RunPrecision precision_;
  std::unique_ptr<RunDevice> run_device_;  // owns the CUDA stream and cuBLASLt handle
  OpContext ctx_;
  OpCounters counters_;
  ModelConfig model_config_;
  PeftSpec peft_;
  // This rank's view under tensor parallelism (equal to the above without it).
  ModelConfig local_model_config_;
  PeftSpec local_peft_;
  std::unique_ptr<ProcessGroups> groups_;
  std::unique_ptr<Communicator> kv_group_;  // ranks sharing replicated KV heads (tp > kv heads)
  std::vector<ShardRule> shard_rules_;      // per parameter of params_
  BaseIdentity base_;                       // PEFT runs: the frozen base the adapter belongs to
  uint64_t seed_ = 0;
  std::unique_ptr<data::Tokenizer> tokenizer_;
  std::vector<data::Sequence> train_sequences_, valid_sequences_;
  data::DatasetReport train_report_, valid_report_;
  std::unique_ptr<data::BatchLoader> train_loader_, valid_loader_;
  std::unique_ptr<ParameterStore> params_;
  std::unique_ptr<Transformer> model_;
  std::unique_ptr<DataParallelOptimizer> optimizer_;  // one rank or many, CPU or GPU
  std::unique_ptr<DeviceInputs> device_inputs_;       // the micro-batch on the GPU
  ModelMemory memory_;
  LrSchedule schedule_;
  TrainState state_;
  int64_t total_steps_ = 0;
  std::string output_dir_, checkpoint_dir_;
  std::vector<data::Batch> micro_batches_;
  data::Batch skipped_batch_;  // other data-parallel ranks' micro-batches, read past
  FaultInjection fault_injection_;
  data::Batch eval_batch_;
  LayoutScratch layout_scratch_;
};

}  // namespace ft
