// PEFT runs through the trainer: adapter-only checkpoints that name their base and refuse another,
// exact resume, continuing from a tuned adapter, LoRA merged into the base computing what base +
// adapter computed, and the frozen base costing no weight-gradient product.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "models/peft/lora_merge.h"
#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "runtime/config/config.h"
#include "runtime/train/run_parameters.h"
#include "runtime/train/train_state.h"
#include "runtime/train/trainer.h"
#include "support/gradcheck.h"
#include "tests/support/temp_dir.h"
#include "tests/support/training_run.h"

namespace ft {
namespace {

using testing::kSmallLlama;
using testing::TempDir;
using testing::train;

// A small PEFT run on the PEFT example's data, its base the seeded random init (seed 5).
config::RunConfig peft_run(const TempDir& dir, const std::string& output, const std::string& method,
                           int max_steps) {
  config::RunConfig config;
  config.mutable_model()->set_hf_config(dir.write("model/config.json", kSmallLlama));
  const std::string examples = std::string(FT_SOURCE_DIR) + "/examples/peft/";
  config.mutable_data()->set_train_file(examples + "train.jsonl");
  config.mutable_data()->set_valid_file(examples + "valid.jsonl");
  config.mutable_data()->set_seq_len(80);
  config.mutable_peft()->set_method(method);
  config.mutable_peft()->set_num_virtual_tokens(4);
  config.mutable_peft()->set_target_modules("all-linear");
  config.mutable_optim()->set_lr(1e-2);
  config.mutable_train()->set_micro_batch_size(4);
  config.mutable_train()->set_grad_accum_steps(2);
  config.mutable_train()->set_max_steps(max_steps);
  config.mutable_train()->set_log_every(1000);
  config.set_output_dir(dir.path(output));
  config.set_threads(2);
  config.set_seed(5);
  return config;
}

std::vector<nlohmann::json> metrics_lines(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream file(path);
  for (std::string line; std::getline(file, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// A base trained briefly on the quickstart's word games (a random base has nothing to steer).
std::string train_base(const TempDir& dir) {
  config::RunConfig config = peft_run(dir, "base", "full", 150);
  const std::string quickstart = std::string(FT_SOURCE_DIR) + "/examples/quickstart/";
  config.mutable_data()->set_train_file(quickstart + "train.jsonl");
  config.mutable_data()->set_valid_file(quickstart + "valid.jsonl");
  config.mutable_train()->set_eval_at_start(false);
  return train(config).last_checkpoint;
}

TEST(PeftTraining, EveryMethodLowersTheValidationLossWithNoFrozenWeightGradient) {
  TempDir dir;  // one per test: TempDir's path is the test's name
  const std::string base = train_base(dir);
  for (const char* method : {"prompt_tuning", "prefix_tuning", "p_tuning", "lora"}) {
    SCOPED_TRACE(method);
    std::string log;
    const std::string run = std::string("run-") + method;
    config::RunConfig config = peft_run(dir, run, method, 12);
    config.mutable_model()->set_init_from(base);
    TrainSummary summary = train(config, "", &log);
    ASSERT_TRUE(summary.initial_eval && summary.final_eval);
    // This base is small and barely trained: prompts steer it a little, LoRA more. (The examples
    // show the large drops on the quickstart base: tests/test_peft_examples.cpp.)
    EXPECT_LT(summary.final_eval->loss, summary.initial_eval->loss);
    if (std::string(method) == "lora")
      EXPECT_LT(summary.final_eval->loss, summary.initial_eval->loss - 0.05);
    EXPECT_NE(log.find("trainable of"), std::string::npos) << log;
    EXPECT_NE(log.find("optimizer state"), std::string::npos) << log;
    // Only the adapter's own matrices (P-tuning's encoder: 3 per micro-batch; LoRA: A and B of
    // 7 modules in 2 layers) run weight-gradient products.
    const int64_t per_micro_batch = std::string(method) == "p_tuning" ? 3
                                    : std::string(method) == "lora"   ? 2 * 7 * 2
                                                                      : 0;
    for (const nlohmann::json& line : metrics_lines(dir.path(run + "/metrics.jsonl")))
      if (line.contains("weight_grad_products"))
        EXPECT_EQ(line["weight_grad_products"].get<int64_t>(), 2 * per_micro_batch);
  }
}

TEST(PeftTraining, CheckpointsHoldOnlyTheAdapterAndItsBase) {
  TempDir dir;
  config::RunConfig config = peft_run(dir, "run", "lora", 2);
  TrainSummary summary = train(config);
  checkpoint::CheckpointReader reader(summary.last_checkpoint);
  EXPECT_EQ(reader.string_attribute("format"), "ft-adapter-1");
  EXPECT_TRUE(reader.tensor_names("model").empty());
  EXPECT_EQ(reader.tensor_names("adapter").size(), 2u * 7 * 2);
  EXPECT_TRUE(reader.has_tensor("optimizer/m/model.layers.1.mlp.down_proj.lora_B.weight"));
  EXPECT_EQ(reader.string_attribute("base_fingerprint").size(), 16u);
}

TEST(PeftTraining, ResumeReproducesTheUninterruptedRun) {
  TempDir dir;
  config::RunConfig whole = peft_run(dir, "whole", "prefix_tuning", 4);
  whole.mutable_optim()->set_schedule("constant");  // the same rates in both runs
  whole.mutable_peft()->set_prefix_projection(true);
  whole.mutable_peft()->set_encoder_hidden_size(16);
  TrainSummary reference = train(whole);

  config::RunConfig first = whole;
  first.set_output_dir(dir.path("parts"));
  first.mutable_train()->set_max_steps(2);
  train(first);
  config::RunConfig rest = first;
  rest.mutable_train()->set_max_steps(4);
  TrainSummary resumed = train(rest, "latest");
  ASSERT_EQ(resumed.step_losses.size(), 2u);
  EXPECT_EQ(resumed.step_losses[0], reference.step_losses[2]);
  EXPECT_EQ(resumed.step_losses[1], reference.step_losses[3]);
  EXPECT_EQ(resumed.final_eval->loss, reference.final_eval->loss);
}

TEST(PeftTraining, ContinuingFromATunedAdapterStartsWhereItEnded) {
  TempDir dir;
  TrainSummary tuned = train(peft_run(dir, "first", "prompt_tuning", 3));
  config::RunConfig next = peft_run(dir, "second", "prompt_tuning", 1);
  next.mutable_peft()->set_init_from(tuned.last_checkpoint);
  TrainSummary continued = train(next);
  ASSERT_TRUE(continued.initial_eval);
  EXPECT_EQ(continued.initial_eval->loss, tuned.final_eval->loss);
}

TEST(PeftTraining, AnAdapterForAnotherBaseIsRefused) {
  TempDir dir;
  TrainSummary tuned = train(peft_run(dir, "first", "lora", 1));
  config::RunConfig other = peft_run(dir, "second", "lora", 1);
  other.set_seed(6);  // another random base
  other.mutable_peft()->set_init_from(tuned.last_checkpoint);
  testing::expect_error_mentioning([&] { train(other); }, "trained on another base model");
  // Resuming it against another base is refused the same way.
  config::RunConfig resumed = peft_run(dir, "first", "lora", 2);
  resumed.set_seed(6);
  EXPECT_THROW(train(resumed, "latest"), Error);
}

TEST(PeftTraining, AnAdapterWithOtherSettingsIsRefusedNamingTheField) {
  TempDir dir;
  TrainSummary tuned = train(peft_run(dir, "first", "lora", 1));  // all-linear, alpha 8
  config::RunConfig other_alpha = peft_run(dir, "second", "lora", 1);
  other_alpha.mutable_peft()->set_lora_alpha(16);
  other_alpha.mutable_peft()->set_init_from(tuned.last_checkpoint);
  testing::expect_error_mentioning([&] { train(other_alpha); }, "peft.lora_alpha = 8");
  config::RunConfig fewer_modules = peft_run(dir, "third", "lora", 1);
  fewer_modules.mutable_peft()->set_target_modules("q_proj,v_proj");
  fewer_modules.mutable_peft()->set_init_from(tuned.last_checkpoint);
  testing::expect_error_mentioning([&] { train(fewer_modules); }, "peft.target_modules");
  config::RunConfig other_method = peft_run(dir, "fourth", "prefix_tuning", 1);
  other_method.mutable_peft()->set_init_from(tuned.last_checkpoint);
  testing::expect_error_mentioning([&] { train(other_method); }, "peft.method = lora");
}

TEST(PeftTraining, ResumeComparesTheResolvedMethodNotItsSpelling) {
  TempDir dir;
  config::RunConfig first = peft_run(dir, "run", "lora", 1);
  first.mutable_peft()->set_target_modules("");  // PEFT's default: q_proj,v_proj
  train(first);
  config::RunConfig spelled = peft_run(dir, "run", "lora", 2);
  spelled.mutable_peft()->set_target_modules("v_proj, q_proj");
  EXPECT_EQ(train(spelled, "latest").steps, 2);
}

TEST(PeftTraining, TheExportedPeftFolderLoadsBackAsTheSameModel) {
  TempDir dir;
  for (const char* method : {"lora", "prefix_tuning", "prompt_tuning"}) {
    SCOPED_TRACE(method);
    TrainSummary tuned = train(peft_run(dir, std::string("first-") + method, method, 2));
    ASSERT_FALSE(tuned.peft_adapter_dir.empty());
    EXPECT_TRUE(std::filesystem::exists(tuned.peft_adapter_dir + "/adapter_config.json"));
    config::RunConfig next = peft_run(dir, std::string("second-") + method, method, 1);
    next.mutable_peft()->set_init_from(tuned.peft_adapter_dir);
    TrainSummary loaded = train(next);
    ASSERT_TRUE(loaded.initial_eval);
    EXPECT_NEAR(loaded.initial_eval->loss, tuned.final_eval->loss, 1e-6 * tuned.final_eval->loss);
  }
}

TEST(PeftTraining, CheckpointKindsAreNotConfused) {
  TempDir dir;
  TrainSummary adapter = train(peft_run(dir, "adapter", "lora", 1));
  config::RunConfig full = peft_run(dir, "full", "full", 1);
  TrainSummary full_summary = train(full);

  config::RunConfig base_from_adapter = peft_run(dir, "a", "lora", 1);
  base_from_adapter.mutable_model()->set_init_from(adapter.last_checkpoint);
  testing::expect_error_mentioning([&] { train(base_from_adapter); }, "peft.init_from");

  config::RunConfig adapter_from_full = peft_run(dir, "b", "lora", 1);
  adapter_from_full.mutable_peft()->set_init_from(full_summary.last_checkpoint);
  testing::expect_error_mentioning([&] { train(adapter_from_full); }, "model.init_from");

  config::RunConfig full_from_adapter = peft_run(dir, "c", "full", 1);
  full_from_adapter.mutable_model()->set_init_from(adapter.last_checkpoint);
  testing::expect_error_mentioning([&] { train(full_from_adapter); }, "adapter checkpoint");
}

TEST(PeftTraining, MergedLoraComputesWhatBasePlusAdapterComputed) {
  TempDir dir;
  config::RunConfig config = peft_run(dir, "lora", "lora", 3);
  config.mutable_peft()->set_use_rslora(true);
  TrainSummary tuned = train(config);

  RunParameters run = load_run_parameters(tuned.last_checkpoint, 2);
  merge_lora(run.peft, *run.params);
  const std::string merged = dir.path("merged.h5");
  save_base_weights(merged, *run.params, run.config, run.model.summary());

  config::RunConfig check = peft_run(dir, "check", "full", 1);
  check.mutable_model()->set_init_from(merged);
  TrainSummary from_merged = train(check);
  ASSERT_TRUE(from_merged.initial_eval);
  EXPECT_NEAR(from_merged.initial_eval->loss, tuned.final_eval->loss,
              1e-5 * tuned.final_eval->loss);
}

TEST(PeftTraining, VirtualTokensThatDoNotFitAreRefusedBeforeTraining) {
  TempDir dir;
  config::RunConfig config = peft_run(dir, "run", "prompt_tuning", 1);
  config.mutable_peft()->set_num_virtual_tokens(60);  // 60 + 80 > 128 positions
  testing::expect_error_mentioning([&] { train(config); }, "peft.num_virtual_tokens = 60");
  EXPECT_FALSE(std::filesystem::exists(dir.path("run/metrics.jsonl")));
}

}  // namespace
}  // namespace ft
