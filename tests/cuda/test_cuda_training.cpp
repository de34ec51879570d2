// ft_train on one GPU against the CPU: full fine-tuning and every PEFT method trained for 20 steps
// in bf16 (fp32 master weights and AdamW state) follow the CPU's fp32 loss curve within a bf16
// tolerance and do the same weight-gradient products; a GPU checkpoint resumes exactly on the GPU;
// a CPU checkpoint resumes on the GPU and a GPU checkpoint on the CPU. Skips without a GPU, except
// the check that device: cuda without one fails naming the field.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "runtime/device.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/gradcheck.h"  // testing::error_message
#include "tests/support/peft_cases.h"
#include "tests/support/temp_dir.h"
#include "tests/support/training_run.h"

namespace ft {
namespace {

using testing::TempDir;
using testing::train;

// Relative loss difference allowed per step between the GPU's bf16 run and the CPU's fp32 run.
// bf16 keeps 8 significant bits (relative rounding 2^-9 = 0.2%); the forward's bf16 weights and
// activations move a ~5.5 nat loss by well under 1%, and 20 AdamW steps at lr 3e-3 from the same
// start do not separate the curves by more than a few tenths of a percent more: 2% leaves room
// without letting a wrong gradient (which changes the curve by tens of percent within a few
// steps) pass.
constexpr double kLossTolerance = 2e-2;

config::RunConfig small_run(const TempDir& dir, const std::string& output,
                            const std::string& device, const config::PeftConfig& peft,
                            int max_steps) {
  config::RunConfig config = testing::small_run(dir, output, max_steps);
  *config.mutable_peft() = peft;
  config.set_device(device);
  return config;
}

// metrics.jsonl's per-step weight_grad_products.
std::vector<int64_t> weight_grad_products(const std::string& run_dir) {
  std::vector<int64_t> products;
  std::ifstream file(run_dir + "/metrics.jsonl");
  for (std::string line; std::getline(file, line);) {
    const nlohmann::json row = nlohmann::json::parse(line);
    if (row.contains("weight_grad_products"))
      products.push_back(row["weight_grad_products"].get<int64_t>());
  }
  return products;
}

void expect_close_losses(const std::vector<double>& gpu, const std::vector<double>& cpu,
                         size_t cpu_offset = 0) {
  ASSERT_LE(gpu.size() + cpu_offset, cpu.size());
  for (size_t i = 0; i < gpu.size(); ++i) {
    const double reference = cpu[cpu_offset + i];
    EXPECT_LE(std::abs(gpu[i] - reference), kLossTolerance * std::abs(reference))
        << "step " << cpu_offset + i + 1 << ": gpu " << gpu[i] << ", cpu " << reference;
  }
}

TEST(CudaTraining, DeviceCudaWithoutAGpuFailsNamingTheField) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a GPU is present: device: cuda is valid here";
  TempDir dir;
  config::RunConfig config = small_run(dir, "run", "cuda", testing::small_peft_config("full"), 1);
  const std::string message = testing::error_message([&] { train(config); });
  EXPECT_NE(message.find("device: cuda"), std::string::npos) << message;
}

class CudaTrainingMethods : public ::testing::TestWithParam<testing::PeftCase> {};

TEST_P(CudaTrainingMethods, FollowsTheCpuLossCurveWithTheSameWeightGradientProducts) {
  FT_SKIP_WITHOUT_CUDA();
  TempDir dir;
  const config::PeftConfig& peft = GetParam().peft;
  TrainSummary cpu = train(small_run(dir, "cpu", "cpu", peft, 20));
  TrainSummary gpu = train(small_run(dir, "gpu", "cuda", peft, 20));
  ASSERT_EQ(gpu.step_losses.size(), 20u);
  expect_close_losses(gpu.step_losses, cpu.step_losses);
  EXPECT_EQ(weight_grad_products(dir.path("gpu")), weight_grad_products(dir.path("cpu")));
  ASSERT_TRUE(cpu.final_eval && gpu.final_eval);
  EXPECT_LE(std::abs(gpu.final_eval->loss - cpu.final_eval->loss),
            kLossTolerance * cpu.final_eval->loss);
  EXPECT_EQ(gpu.trained_tokens, cpu.trained_tokens);
  if (peft.method() != "full") EXPECT_FALSE(gpu.peft_adapter_dir.empty());
}

TEST_P(CudaTrainingMethods, ResumeOnTheGpuReproducesTheUninterruptedGpuRun) {
  FT_SKIP_WITHOUT_CUDA();
  TempDir dir;
  config::RunConfig config = small_run(dir, "full", "cuda", GetParam().peft, 10);
  config.mutable_checkpoint()->set_save_every(4);
  config.mutable_checkpoint()->set_keep_last(5);
  TrainSummary full = train(config);
  config::RunConfig resumed_config = config;
  resumed_config.set_output_dir(dir.path("resumed"));
  TrainSummary resumed =
      train(resumed_config, checkpoint::step_checkpoint_path(dir.path("full/checkpoints"), 4));
  ASSERT_EQ(resumed.step_losses.size(), 6u);
  // The checkpoint holds the fp32 masters and moments; the bf16 working copies are their casts,
  // as AdamW wrote them, and the kernels are deterministic: the same bits follow.
  for (size_t i = 0; i < 6; ++i)
    EXPECT_EQ(resumed.step_losses[i], full.step_losses[4 + i]) << "step " << 5 + i;
}

TEST_P(CudaTrainingMethods, CheckpointsMoveBetweenTheCpuAndTheGpu) {
  FT_SKIP_WITHOUT_CUDA();
  TempDir dir;
  const config::PeftConfig& peft = GetParam().peft;
  config::RunConfig cpu_config = small_run(dir, "cpu", "cpu", peft, 12);
  cpu_config.mutable_checkpoint()->set_save_every(4);
  cpu_config.mutable_checkpoint()->set_keep_last(5);
  TrainSummary cpu = train(cpu_config);
  ASSERT_EQ(cpu.step_losses.size(), 12u);
  // The CPU's step-4 checkpoint continues on the GPU up to step 8 ...
  config::RunConfig gpu_config = small_run(dir, "gpu", "cuda", peft, 8);
  gpu_config.mutable_checkpoint()->set_save_every(4);
  TrainSummary gpu =
      train(gpu_config, checkpoint::step_checkpoint_path(dir.path("cpu/checkpoints"), 4));
  ASSERT_EQ(gpu.step_losses.size(), 4u);
  expect_close_losses(gpu.step_losses, cpu.step_losses, 4);
  // ... and the GPU's step-8 checkpoint back on the CPU up to step 12.
  config::RunConfig back_config = small_run(dir, "back", "cpu", peft, 12);
  TrainSummary back =
      train(back_config, checkpoint::step_checkpoint_path(dir.path("gpu/checkpoints"), 8));
  ASSERT_EQ(back.step_losses.size(), 4u);
  expect_close_losses(back.step_losses, cpu.step_losses, 8);
}

// Head dims 64 and 128 take the tensor-core flash kernels in bf16 (the small Llama's 8 takes the
// SIMT ones): the same CPU comparison, for full fine-tuning and for prefix tuning (prefix rows in
// the flash kernels), with GQA (2 query heads, 1 key/value head).
TEST(CudaTraining, FlashAttentionModelsFollowTheCpuLossCurve) {
  FT_SKIP_WITHOUT_CUDA();
  for (const int head_dim : {64, 128}) {
    const std::string model = fmt::format(
        R"({{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 259,
        "hidden_size": {}, "intermediate_size": {}, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 128,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true}})",
        2 * head_dim, 4 * head_dim);
    for (const char* method : {"full", "prefix_tuning"}) {
      SCOPED_TRACE(fmt::format("head_dim {}, {}", head_dim, method));
      TempDir dir;
      const std::string config_json = dir.write("flash_model/config.json", model);
      const config::PeftConfig peft = testing::small_peft_config(method);
      config::RunConfig cpu_config = small_run(dir, "cpu", "cpu", peft, 12);
      config::RunConfig gpu_config = small_run(dir, "gpu", "cuda", peft, 12);
      cpu_config.mutable_model()->set_hf_config(config_json);
      gpu_config.mutable_model()->set_hf_config(config_json);
      const TrainSummary cpu = train(cpu_config);
      const TrainSummary gpu = train(gpu_config);
      ASSERT_EQ(gpu.step_losses.size(), 12u);
      expect_close_losses(gpu.step_losses, cpu.step_losses);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Methods, CudaTrainingMethods, ::testing::ValuesIn(testing::peft_cases()),
                         [](const ::testing::TestParamInfo<testing::PeftCase>& info) {
                           std::string name;
                           for (char c : info.param.name)
                             if (std::isalnum(static_cast<unsigned char>(c))) name += c;
                           return name;
                         });

}  // namespace
}  // namespace ft
