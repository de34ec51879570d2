// ft_train as users run it: bad input stops before training with a message naming the file, line
// or field, a non-zero exit, and nothing already saved changed; --help lists the config fields.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "tests/support/temp_dir.h"

namespace ft {
namespace {

using testing::TempDir;

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

RunResult run_ft_train(const std::string& arguments) {
  std::string command = std::string(FT_TRAIN_EXE) + " " + arguments + " 2>&1";
  RunResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> chunk;
  size_t read;
  while ((read = fread(chunk.data(), 1, chunk.size(), pipe)) > 0)
    result.output.append(chunk.data(), read);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string quickstart(const std::string& file) {
  return std::string(FT_SOURCE_DIR) + "/examples/quickstart/" + file;
}

// A config that trains 2 steps of a small model; `extra` lines are appended.
std::string write_config(const TempDir& dir, const std::string& train_file,
                         const std::string& extra = "") {
  return dir.write("run.yaml",
                   "model:\n  preset: quickstart\n"
                   "data:\n  train_file: " +
                       train_file +
                       "\n  seq_len: 64\n"
                       "train:\n  micro_batch_size: 2\n  max_steps: 2\n"
                       "output_dir: " +
                       dir.path("out") + "\nthreads: 2\n" + extra);
}

TEST(FtTrainCli, HelpListsConfigFields) {
  RunResult result = run_ft_train("--help");
  EXPECT_EQ(result.exit_code, 0);
  for (const char* field : {"optim.lr", "data.train_file", "train.grad_accum_steps",
                            "checkpoint.keep_last", "model.preset"})
    EXPECT_NE(result.output.find(field), std::string::npos) << field;
}

TEST(FtTrainCli, TrainsAndResumesFromLatest) {
  TempDir dir;
  std::string config = write_config(dir, quickstart("train.jsonl"));
  RunResult first = run_ft_train("--config " + config);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("step 2/2"), std::string::npos) << first.output;
  RunResult resumed = run_ft_train("--config " + config + " --resume train.max_steps=3");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed from"), std::string::npos) << resumed.output;
  EXPECT_NE(resumed.output.find("step 3/3"), std::string::npos) << resumed.output;
}

TEST(FtTrainCli, MalformedJsonlNamesFileAndLine) {
  TempDir dir;
  std::string data = dir.write("bad.jsonl",
                               "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, "
                               "{\"role\": \"assistant\", \"content\": \"yo\"}]}\n"
                               "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}\n");
  RunResult result = run_ft_train("--config " + write_config(dir, data));
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.output.find(data + ":2"), std::string::npos) << result.output;
  EXPECT_FALSE(std::filesystem::exists(dir.path("out/checkpoints")));
}

TEST(FtTrainCli, UnknownKeyIsNamed) {
  TempDir dir;
  std::string config = write_config(dir, quickstart("train.jsonl"), "optim:\n  lrr: 0.1\n");
  RunResult result = run_ft_train("--config " + config);
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.output.find("lrr"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("run.yaml"), std::string::npos) << result.output;
}

TEST(FtTrainCli, BadValuesAreNamed) {
  TempDir dir;
  std::string config = write_config(dir, quickstart("train.jsonl"));
  RunResult negative = run_ft_train("--config " + config + " optim.lr=-1");
  EXPECT_NE(negative.exit_code, 0);
  EXPECT_NE(negative.output.find("optim.lr"), std::string::npos) << negative.output;
  RunResult not_a_number = run_ft_train("--config " + config + " train.max_steps=many");
  EXPECT_NE(not_a_number.exit_code, 0);
  EXPECT_NE(not_a_number.output.find("train.max_steps"), std::string::npos) << not_a_number.output;
  RunResult unknown_override = run_ft_train("--config " + config + " optim.learning_rate=1");
  EXPECT_NE(unknown_override.exit_code, 0);
  EXPECT_NE(unknown_override.output.find("optim.learning_rate"), std::string::npos);
}

TEST(FtTrainCli, MissingFilesAreNamed) {
  TempDir dir;
  RunResult no_config = run_ft_train("--config " + dir.path("absent.yaml"));
  EXPECT_NE(no_config.exit_code, 0);
  EXPECT_NE(no_config.output.find("absent.yaml"), std::string::npos) << no_config.output;
  std::string missing_data = dir.path("absent.jsonl");
  RunResult no_data = run_ft_train("--config " + write_config(dir, missing_data));
  EXPECT_NE(no_data.exit_code, 0);
  EXPECT_NE(no_data.output.find(missing_data), std::string::npos) << no_data.output;
}

TEST(FtTrainCli, BadInputLeavesSavedCheckpointsUntouched) {
  TempDir dir;
  std::string config = write_config(dir, quickstart("train.jsonl"));
  ASSERT_EQ(run_ft_train("--config " + config).exit_code, 0);
  std::string checkpoint = dir.path("out/checkpoints/step_00000002.h5");
  std::string before = testing::read_file(checkpoint);
  ASSERT_FALSE(before.empty());
  // Resuming with a broken dataset, and starting afresh over the run, both stop untouched.
  std::string bad = dir.write("bad.jsonl", "not json\n");
  EXPECT_NE(run_ft_train("--config " + config + " --resume data.train_file=" + bad).exit_code, 0);
  EXPECT_NE(run_ft_train("--config " + config).exit_code, 0);
  EXPECT_EQ(testing::read_file(checkpoint), before);
  EXPECT_FALSE(std::filesystem::exists(checkpoint + ".tmp"));
}

}  // namespace
}  // namespace ft
