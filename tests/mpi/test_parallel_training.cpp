// Training under every parallel layout, under mpirun -np 2 and 4: data parallel, tensor parallel,
// both, and ZeRO-1 give the single-process run's losses and final parameters (fp64, relative
// 1e-10) for full fine-tuning and every PEFT method; a checkpoint written at one layout resumes at
// another (and at one process) with the losses of the uninterrupted run. The single-process
// reference runs on every rank, into a folder of its own; the parallel runs share rank 0's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "runtime/config/config.h"
#include "runtime/train/trainer.h"
#include "tests/support/mpi_world.h"
#include "tests/support/temp_dir.h"
#include "tests/support/training_run.h"

namespace ft {
namespace {

// Relative agreement with one process: fp64 to 1e-10; fp32 (other summation orders) to 1e-5 for
// losses and the AdamW moments (the gradients' running sums), 1e-4 for weights after 5 steps:
// AdamW's m / sqrt(v) turns a 1e-6 gradient difference on a near-zero gradient into a larger
// update difference.
constexpr double kTolerance = 1e-10;
constexpr double kTolerance32 = 1e-5;
constexpr double kWeightTolerance32 = 1e-4;

struct Layout {
  int tp = 1;
  bool zero1 = false;
  bool single = false;  // one process (world = nullptr) on every rank, in a folder of its own
};

std::string describe(const Layout& layout) {
  if (layout.single) return "single process";
  return "tp " + std::to_string(layout.tp) + (layout.zero1 ? " zero1" : "");
}

class ParallelTraining : public ::testing::Test {
 public:
  std::shared_ptr<Communicator> world() const { return world_; }
  void SetUp() override {
    world_ = test::mpi_world();
    // Rank 0's folder is the shared one (the ranks share a file system).
    shared_ = own_.path();
    world_->broadcast(shared_, 0);
    // One model config for all ranks: checkpoints record its path, and a resume at another
    // layout must name the same one.
    if (world_->rank() == 0) own_.write("model/config.json", testing::kSmallLlama);
    model_config_ = shared_ + "/model/config.json";
    world_->barrier();
  }
  void TearDown() override { world_->barrier(); }

  // The data-parallel size this layout gets from the world.
  // (At least 1: a layout that does not fit is still written out, to be refused.)
  int dp(const Layout& layout) const {
    return layout.single ? 1 : std::max(1, world_->size() / layout.tp);
  }

  // grad_accum x dp micro-batches of 2 sequences per step, whatever the layout: every layout
  // trains the same global batches. `accum_total` must be a multiple of every dp tested.
  config::RunConfig run_config(const std::string& output, const Layout& layout, int steps,
                               const std::string& method, const std::string& dtype = "fp64") const {
    config::RunConfig config;
    config.mutable_model()->set_hf_config(model_config_);
    config.mutable_data()->set_train_file(std::string(FT_SOURCE_DIR) +
                                          "/examples/quickstart/train.jsonl");
    config.mutable_data()->set_valid_file(std::string(FT_SOURCE_DIR) +
                                          "/examples/quickstart/valid.jsonl");
    config.mutable_data()->set_seq_len(48);
    config.set_dtype(dtype);
    config.mutable_optim()->set_lr(3e-3);
    config.mutable_optim()->set_warmup_steps(2);
    config.mutable_optim()->set_weight_decay(0.01);
    config.mutable_optim()->set_grad_clip(0.5);  // clipping active: the global norm must agree
    config.mutable_train()->set_micro_batch_size(2);
    const int accum_total = 12;  // dp 1, 2, 3 or 4
    config.mutable_train()->set_grad_accum_steps(accum_total / dp(layout));
    config.mutable_train()->set_max_steps(steps);
    config.mutable_train()->set_eval_batches(2);
    config.mutable_train()->set_log_every(1000);
    config.mutable_parallel()->set_tp(layout.single ? 1 : layout.tp);
    config.mutable_parallel()->set_zero1(layout.zero1);
    config.mutable_peft()->set_method(method);
    config.mutable_peft()->set_num_virtual_tokens(3);
    config.mutable_peft()->set_lora_r(4);
    config.mutable_peft()->set_lora_alpha(8);
    config.mutable_peft()->set_lora_dropout(method == "lora" ? 0.1 : 0.0);
    config.mutable_peft()->set_encoder_hidden_size(16);
    config.mutable_peft()->set_export_peft(false);
    config.set_output_dir((layout.single ? own_.path() : shared_) + "/" + output);
    config.set_threads(1);
    config.set_seed(5);
    return config;
  }

  TrainSummary train(const config::RunConfig& config, const Layout& layout,
                     const std::string& resume = "") const {
    std::ostringstream log;
    TrainerOptions options;
    options.config = config;
    options.resume = resume;
    options.log = &log;
    if (!layout.single) options.world = world_;
    Trainer trainer(std::move(options));
    return trainer.run();
  }

 protected:
  std::shared_ptr<Communicator> world_;
  testing::TempDir own_;
  std::string shared_, model_config_;
};

void expect_same_losses(const std::vector<double>& actual, const std::vector<double>& expected,
                        double tolerance = kTolerance) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i)
    EXPECT_LT(std::abs(actual[i] - expected[i]) / std::abs(expected[i]), tolerance)
        << "step " << i + 1 << ": " << actual[i] << " vs " << expected[i];
}

// Every tensor of two checkpoints (parameters and moments) to `tolerance` relative to its largest
// element.
void expect_same_checkpoint(const std::string& actual, const std::string& expected,
                            double tolerance = kTolerance, double weight_tolerance = kTolerance) {
  checkpoint::CheckpointReader a(actual), b(expected);
  int compared = 0;
  for (const char* group : {"model", "adapter", "optimizer/m", "optimizer/v"}) {
    const std::vector<std::string> names = b.tensor_names(group);
    EXPECT_EQ(a.tensor_names(group), names) << group;
    for (const std::string& name : names) {
      const std::string path = std::string(group) + "/" + name;
      const Shape shape = b.tensor_shape(path);
      std::vector<double> x(shape.numel()), y(shape.numel());
      a.read_tensor(path, Tensor(x.data(), DType::f64, shape));
      b.read_tensor(path, Tensor(y.data(), DType::f64, shape));
      double scale = 0.0, worst = 0.0;
      for (double v : y) scale = std::max(scale, std::abs(v));
      for (size_t i = 0; i < x.size(); ++i)
        worst = std::max(worst, std::abs(x[i] - y[i]) / std::max(scale, 1e-30));
      const bool weights = std::string(group) == "model" || std::string(group) == "adapter";
      EXPECT_LT(worst, weights ? weight_tolerance : tolerance) << path;
      ++compared;
    }
  }
  EXPECT_GT(compared, 0);
}

std::vector<Layout> layouts(int world) {
  // Three ranks: data parallelism alone and with ZeRO-1, whose last shard ends in padding when
  // the trainable count is not a multiple of 3 (LoRA's here: 896).
  if (world % 2 != 0) return {{.tp = 1}, {.tp = 1, .zero1 = true}};
  std::vector<Layout> result = {{.tp = 1}, {.tp = 2}, {.tp = 2, .zero1 = true}};
  if (world >= 4) {
    result.push_back({.tp = 1, .zero1 = true});
    result.push_back({.tp = 4});
  }
  return result;
}

void check_every_layout(ParallelTraining& test, const std::string& method,
                        const std::string& dtype = "fp64") {
  const double tolerance = dtype == "fp64" ? kTolerance : kTolerance32;
  const double weight_tolerance = dtype == "fp64" ? kTolerance : kWeightTolerance32;
  const Layout single{.single = true};
  const TrainSummary expected =
      test.train(test.run_config(method + "_single", single, 5, method, dtype), single);
  ASSERT_EQ(expected.step_losses.size(), 5u);
  for (const Layout& layout : layouts(test.world()->size())) {
    SCOPED_TRACE(method + ", " + describe(layout));
    const std::string name = method + "_" + describe(layout);
    const config::RunConfig config = test.run_config(name, layout, 5, method, dtype);
    const TrainSummary actual = test.train(config, layout);
    expect_same_losses(actual.step_losses, expected.step_losses, tolerance);
    ASSERT_TRUE(actual.final_eval && expected.final_eval);
    EXPECT_LT(
        std::abs(actual.final_eval->loss - expected.final_eval->loss) / expected.final_eval->loss,
        tolerance);
    EXPECT_EQ(actual.trained_tokens, expected.trained_tokens);
    if (test.world()->rank() == 0)
      expect_same_checkpoint(actual.last_checkpoint, expected.last_checkpoint, tolerance,
                             weight_tolerance);
    test.world()->barrier();
  }
}

TEST_F(ParallelTraining, FullFineTuningEveryLayout) {
  check_every_layout(*this, "full");
}
TEST_F(ParallelTraining, FullFineTuningEveryLayoutFp32) {
  check_every_layout(*this, "full", "fp32");
}
TEST_F(ParallelTraining, LoraEveryLayout) {
  check_every_layout(*this, "lora");
}
TEST_F(ParallelTraining, PromptTuningEveryLayout) {
  check_every_layout(*this, "prompt_tuning");
}
TEST_F(ParallelTraining, PrefixTuningEveryLayout) {
  check_every_layout(*this, "prefix_tuning");
}
TEST_F(ParallelTraining, PTuningEveryLayout) {
  check_every_layout(*this, "p_tuning");
}

// Data parallelism communicates only trainable gradients: a prompt-tuning step (3 virtual tokens
// x hidden 32 in fp64: 768 bytes) passes under 1 KiB more than that to collectives (loss and
// token counts, the stop-signal check), full fine-tuning at least the whole model.
TEST_F(ParallelTraining, PromptTuningCommunicatesKilobytes) {
  const Layout data_parallel{.tp = 1};
  const TrainSummary prompt =
      train(run_config("prompt_bytes", data_parallel, 2, "prompt_tuning"), data_parallel);
  const int64_t prompt_gradient_bytes = 3 * 32 * 8;
  ASSERT_EQ(prompt.step_comm_bytes.size(), 2u);
  for (int64_t bytes : prompt.step_comm_bytes) {
    EXPECT_GE(bytes, prompt_gradient_bytes);
    EXPECT_LT(bytes, prompt_gradient_bytes + 1024);
  }
  const TrainSummary full =
      train(run_config("full_bytes", data_parallel, 2, "full"), data_parallel);
  Trainer probe([&] {
    TrainerOptions options;
    options.config = run_config("probe", {.single = true}, 1, "full");
    return options;
  }());
  const int64_t model_bytes = probe.parameters().trainable_count() * 8;
  for (int64_t bytes : full.step_comm_bytes) EXPECT_GE(bytes, model_bytes);
}

// A run saved at step 3 of 6 at one layout continues at another with the uninterrupted run's
// losses: tp 2 x dp -> dp only -> one process -> tp 2 again.
TEST_F(ParallelTraining, CheckpointResumesAtAnyLayout) {
  if (world()->size() % 2 != 0) GTEST_SKIP() << "the chain has tensor parallelism 2";
  for (const std::string method : {"full", "lora"}) {
    SCOPED_TRACE(method);
    const Layout single{.single = true};
    const TrainSummary uninterrupted =
        train(run_config(method + "_uninterrupted", single, 6, method), single);
    ASSERT_EQ(uninterrupted.step_losses.size(), 6u);
    const std::vector<Layout> chain = {{.tp = 2}, {.tp = 1}, single, {.tp = 2, .zero1 = true}};
    for (size_t first = 0; first + 1 < chain.size(); ++first) {
      const Layout& from = chain[first];
      const Layout& to = chain[first + 1];
      SCOPED_TRACE(describe(from) + " -> " + describe(to));
      const std::string tag = method + "_" + std::to_string(first);
      config::RunConfig before = run_config(tag + "_before", from, 6, method);
      before.mutable_checkpoint()->set_save_every(3);
      before.mutable_checkpoint()->set_keep_last(2);
      const TrainSummary full_run = train(before, from);
      expect_same_losses(full_run.step_losses, uninterrupted.step_losses);
      // The step-3 checkpoint of `from` (shared folder, or this rank's own for a single process).
      const std::string step3 =
          checkpoint::step_checkpoint_path(before.output_dir() + "/checkpoints", 3);
      const TrainSummary resumed = train(run_config(tag + "_after", to, 6, method), to, step3);
      expect_same_losses(resumed.step_losses,
                         std::vector<double>(uninterrupted.step_losses.begin() + 3,
                                             uninterrupted.step_losses.end()));
      world()->barrier();
    }
  }
}

// parallel.tp must divide the ranks, the heads and the intermediate size: refused before training.
TEST_F(ParallelTraining, LayoutsThatDoNotFitAreRefused) {
  config::RunConfig config = run_config("bad", {.tp = 3}, 2, "full");
  std::string message;
  try {
    train(config, {.tp = 3});
  } catch (const Error& error) {
    message = error.what();
  }
  EXPECT_NE(message.find("parallel.tp"), std::string::npos) << message;
  if (world()->size() % 3 == 0) GTEST_SKIP();
  EXPECT_NE(message.find(std::to_string(world()->size())), std::string::npos) << message;
}

}  // namespace
}  // namespace ft
