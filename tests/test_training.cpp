// The training loop end to end on a small model: the loss falls, a resumed run reproduces the
// uninterrupted one to the last bit, checkpoints are kept, rotated and refused when they do not
// match the model.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <sstream>

#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "runtime/config/config.h"
#include "runtime/train/tensorboard.h"
#include "runtime/train/trainer.h"
#include "tests/support/temp_dir.h"
#include "tests/support/training_run.h"

namespace ft {
namespace {

using testing::kSmallLlama;
using testing::small_run;
using testing::TempDir;
using testing::train;

TEST(Training, LossFalls) {
  TempDir dir;
  config::RunConfig config = small_run(dir, "run", 40);
  config.mutable_checkpoint()->set_save_final(false);
  TrainSummary summary = train(config);
  ASSERT_EQ(summary.step_losses.size(), 40u);
  double last = 0.0;
  for (size_t i = 35; i < 40; ++i) last += summary.step_losses[i] / 5;
  // Starts near ln(259) = 5.56; the byte-level structure of the data is learned quickly.
  EXPECT_GT(summary.step_losses.front(), 5.0);
  EXPECT_LT(last, summary.step_losses.front() - 1.5);
  ASSERT_TRUE(summary.final_eval.has_value());
  EXPECT_LT(summary.final_eval->loss, summary.step_losses.front() - 1.5);
  EXPECT_GT(summary.trained_tokens, 0);
  EXPECT_TRUE(std::filesystem::exists(dir.path("run/metrics.jsonl")));
  EXPECT_TRUE(std::filesystem::exists(dir.path("run/results.csv")));
  // TensorBoard sees the same training losses and the final validation loss.
  std::vector<double> tensorboard_losses;
  double tensorboard_valid = -1;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path("run"))) {
    if (entry.path().filename().string().find("tfevents") == std::string::npos) continue;
    for (const tensorboard::Event& event : read_event_file(entry.path().string())) {
      for (const auto& value : event.summary().value()) {
        if (value.tag() == "train/loss") tensorboard_losses.push_back(value.simple_value());
        if (value.tag() == "valid/loss") tensorboard_valid = value.simple_value();
      }
    }
  }
  ASSERT_EQ(tensorboard_losses.size(), 40u);
  EXPECT_FLOAT_EQ(tensorboard_losses.back(), summary.step_losses.back());
  EXPECT_FLOAT_EQ(tensorboard_valid, summary.final_eval->loss);
}

TEST(Training, ResumeReproducesTheUninterruptedRunBitForBit) {
  TempDir dir;
  config::RunConfig config = small_run(dir, "full", 10);
  config.mutable_checkpoint()->set_save_every(4);
  config.mutable_checkpoint()->set_keep_last(5);
  config.mutable_data()->set_shuffle(true);
  TrainSummary full = train(config);
  ASSERT_EQ(full.step_losses.size(), 10u);

  // Continue from the step-4 checkpoint in another output directory.
  config::RunConfig resumed_config = config;
  resumed_config.set_output_dir(dir.path("resumed"));
  TrainSummary resumed =
      train(resumed_config, checkpoint::step_checkpoint_path(dir.path("full/checkpoints"), 4));
  ASSERT_EQ(resumed.step_losses.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(resumed.step_losses[i], full.step_losses[4 + i]) << "step " << 5 + i;
  }
  // The final weights agree to the bit as well.
  checkpoint::CheckpointReader a(
      checkpoint::step_checkpoint_path(dir.path("full/checkpoints"), 10));
  checkpoint::CheckpointReader b(
      checkpoint::step_checkpoint_path(dir.path("resumed/checkpoints"), 10));
  for (const std::string& name : a.tensor_names("model")) {
    Shape shape = a.tensor_shape("model/" + name);
    std::vector<float> x(shape.numel()), y(shape.numel());
    a.read_tensor("model/" + name, Tensor(x.data(), DType::f32, shape));
    b.read_tensor("model/" + name, Tensor(y.data(), DType::f32, shape));
    EXPECT_EQ(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)), 0) << name;
  }
}

TEST(Training, KeepsTheLastCheckpointsAndRecordsRunState) {
  TempDir dir;
  config::RunConfig config = small_run(dir, "run", 6);
  config.mutable_checkpoint()->set_save_every(2);
  config.mutable_checkpoint()->set_keep_last(2);
  train(config);
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path("run/checkpoints")))
    files.push_back(entry.path().filename().string());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"step_00000004.h5", "step_00000006.h5"}));
  checkpoint::CheckpointReader reader(dir.path("run/checkpoints/step_00000006.h5"));
  EXPECT_EQ(reader.int_attribute("step"), 6);
  EXPECT_EQ(reader.int_attribute("seed"), 5);
  config::RunConfig stored = config::from_text(reader.string_attribute("config"), "checkpoint");
  EXPECT_EQ(stored.train().max_steps(), 6);
  EXPECT_TRUE(reader.has_tensor("optimizer/m/model.layers.1.mlp.down_proj.weight"));
}

TEST(Training, RefusesAFreshRunOverExistingCheckpoints) {
  TempDir dir;
  config::RunConfig config = small_run(dir, "run", 2);
  train(config);
  std::string checkpoint = dir.path("run/checkpoints/step_00000002.h5");
  std::string before = testing::read_file(checkpoint);
  try {
    train(config);
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("--resume"), std::string::npos) << error.what();
  }
  EXPECT_EQ(testing::read_file(checkpoint), before);
}

TEST(Training, CheckpointOfAnotherShapeIsRefusedNamingTheTensor) {
  TempDir dir;
  config::RunConfig config = small_run(dir, "run", 1);
  train(config);
  std::string wider = kSmallLlama;
  wider.replace(wider.find("\"hidden_size\": 32"), 17, "\"hidden_size\": 48");
  config::RunConfig other = small_run(dir, "other", 1);
  other.mutable_model()->set_hf_config(dir.write("wider/config.json", wider));
  other.mutable_model()->set_init_from(dir.path("run/checkpoints/step_00000001.h5"));
  try {
    train(other);
    FAIL() << "expected an error";
  } catch (const Error& error) {
    std::string message = error.what();
    EXPECT_NE(message.find("model.embed_tokens.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("(259, 32)"), std::string::npos) << message;
    EXPECT_NE(message.find("(259, 48)"), std::string::npos) << message;
  }
}

void expect_error_containing(const std::function<void()>& call,
                             const std::vector<std::string>& parts) {
  try {
    call();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& error) {
    for (const std::string& part : parts)
      EXPECT_NE(std::string(error.what()).find(part), std::string::npos) << error.what();
  }
}

TEST(Training, ResumeFromAnOlderCheckpointWouldOverwriteNewerOnesAndIsRefused) {
  TempDir dir;
  config::RunConfig config = small_run(dir, "run", 6);
  config.mutable_checkpoint()->set_save_every(2);
  config.mutable_checkpoint()->set_keep_last(3);
  train(config);
  std::string step2 = checkpoint::step_checkpoint_path(dir.path("run/checkpoints"), 2);
  std::string step6 = checkpoint::step_checkpoint_path(dir.path("run/checkpoints"), 6);
  std::string before = testing::read_file(step6);
  expect_error_containing([&] { train(config, step2); }, {step6, "newer checkpoint"});
  EXPECT_EQ(testing::read_file(step6), before);
}

TEST(Training, ResumeRefusesAChangedDataOrderOrNothingLeftToTrain) {
  TempDir dir;
  config::RunConfig config = small_run(dir, "run", 4);
  config.mutable_checkpoint()->set_save_every(2);
  train(config);
  std::string step2 = checkpoint::step_checkpoint_path(dir.path("run/checkpoints"), 2);
  config::RunConfig elsewhere = config;
  elsewhere.set_output_dir(dir.path("other"));
  config::RunConfig reseeded = elsewhere;
  reseeded.set_seed(99);
  expect_error_containing([&] { train(reseeded, step2); }, {"seed", "'5'", "'99'"});
  config::RunConfig longer = elsewhere;
  longer.mutable_data()->set_seq_len(64);
  expect_error_containing([&] { train(longer, step2); }, {"data.seq_len"});
  expect_error_containing([&] { train(config, "latest"); }, {"nothing left to train"});
}

TEST(Training, ADamagedNewestCheckpointIsNamedAndCanBeSetAside) {
  TempDir dir;
  config::RunConfig config = small_run(dir, "run", 6);
  config.mutable_checkpoint()->set_save_every(2);
  config.mutable_checkpoint()->set_keep_last(3);
  train(config);
  std::string step6 = checkpoint::step_checkpoint_path(dir.path("run/checkpoints"), 6);
  std::filesystem::resize_file(step6, std::filesystem::file_size(step6) / 2);
  config.mutable_train()->set_max_steps(8);
  expect_error_containing([&] { train(config, "latest"); }, {step6, "move it out"});
  // Resuming from the one before it is refused while the damaged file would be overwritten...
  std::string step4 = checkpoint::step_checkpoint_path(dir.path("run/checkpoints"), 4);
  expect_error_containing([&] { train(config, step4); }, {step6, "newer checkpoint"});
  // ...and goes ahead once it has been moved away.
  std::filesystem::rename(step6, dir.path("damaged.h5"));
  EXPECT_EQ(train(config, "latest").step_losses.size(), 4u);
}

TEST(Training, AnUnwritableOutputDirStopsBeforeTraining) {
  TempDir dir;
  config::RunConfig config = small_run(dir, "run", 2);
  config.set_output_dir(dir.write("a_file", "not a folder"));
  expect_error_containing([&] { train(config); }, {"output_dir", dir.path("a_file")});
}

TEST(Training, ResumedMetricsKeepEachStepOnce) {
  TempDir dir;
  config::RunConfig config = small_run(dir, "run", 4);
  config.mutable_checkpoint()->set_save_every(2);
  config.mutable_checkpoint()->set_keep_last(2);
  train(config);
  // As if the run had stopped after logging step 3 and before saving step 4.
  std::filesystem::remove(checkpoint::step_checkpoint_path(dir.path("run/checkpoints"), 4));
  train(config, "latest");
  std::istringstream csv(testing::read_file(dir.path("run/results.csv")));
  std::string line;
  std::vector<std::string> steps;
  while (std::getline(csv, line)) steps.push_back(line.substr(0, line.find(',')));
  EXPECT_EQ(steps, (std::vector<std::string>{"step", "1", "2", "3", "4"}));
}

}  // namespace
}  // namespace ft
