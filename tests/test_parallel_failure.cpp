// A failing rank ends the whole job: `mpirun -np 2 ft_train` with rank 1 killed (SIGKILL) or
// failing with an error at step 3 exits non-zero, names rank 1, leaves no rank waiting in a
// collective (the run is bounded by `timeout`, far above what it needs), and the step-2 checkpoint
// still loads and resumes. Also: a world size that disagrees with the launcher's promise, and a
// tensor-parallel size that does not divide the ranks, are refused before training.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <string>

#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "tests/support/python.h"
#include "tests/support/temp_dir.h"
#include "tests/support/training_run.h"

namespace ft {
namespace {

using testing::run_command;
using testing::TempDir;

// The ranks run single-threaded and give their core away while waiting (more ranks than cores).
// `timeout` turns a hang into exit 124: 60 s, twice the 30 s a failing job may take to end (these
// jobs end in about 2 s), so a loaded machine does not fail the test.
const char* kMpirun =
    "timeout 60 mpirun --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 "
    "-x OMP_NUM_THREADS=1 ";

std::string write_config(const TempDir& dir, int max_steps) {
  const std::string model = dir.write("model/config.json", testing::kSmallLlama);
  return dir.write("run.yaml", "model: {hf_config: " + model +
                                   "}\n"
                                   "data: {train_file: " FT_SOURCE_DIR
                                   "/examples/quickstart/train.jsonl, seq_len: 48}\n"
                                   "train: {micro_batch_size: 2, max_steps: " +
                                   std::to_string(max_steps) +
                                   ", log_every: 1}\n"
                                   "checkpoint: {save_every: 2}\n"
                                   "threads: 1\n"
                                   "output_dir: " +
                                   dir.path("run") + "\n");
}

int exit_code(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void expect_job_ends_naming_rank_1(const std::string& kind, const std::string& expected_text) {
  TempDir dir;
  const std::string config = write_config(dir, 8);
  const auto result =
      run_command(std::string(kMpirun) + "-x FT_FAULT_INJECT=rank=1,step=3,kind=" + kind +
                  " -np 2 " FT_TRAIN_EXE " --config " + config);
  ASSERT_NE(result.status, 0) << result.output;
  EXPECT_NE(exit_code(result.status), 124) << "the job hung until timeout:\n" << result.output;
  EXPECT_NE(result.output.find(expected_text), std::string::npos) << result.output;
  // The last complete checkpoint (step 2) loads and the run continues from it on one process.
  const std::string step2 = checkpoint::step_checkpoint_path(dir.path("run/checkpoints"), 2);
  ASSERT_TRUE(std::filesystem::exists(step2)) << result.output;
  EXPECT_EQ(checkpoint::CheckpointReader(step2).int_attribute("step"), 2);
  EXPECT_FALSE(std::filesystem::exists(step2 + ".tmp"));
  const auto resumed = run_command(std::string(FT_TRAIN_EXE) + " --config " + config +
                                   " --resume-from " + step2 + " train.max_steps=4");
  EXPECT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed from"), std::string::npos) << resumed.output;
}

TEST(ParallelFailure, KilledRankEndsTheJob) {
  // Open MPI reports the rank that died: "process rank 1 ... exited on signal 9".
  expect_job_ends_naming_rank_1("kill", "rank 1");
}

TEST(ParallelFailure, RankErrorEndsTheJobWithItsMessage) {
  expect_job_ends_naming_rank_1("throw", "ft: rank 1 of 2: ft_train: error: FT_FAULT_INJECT");
}

// SIGUSR1 to one rank (Slurm's --signal before the time limit) at step 3: every rank finishes
// step 3, rank 0 saves it, and the job exits 75 (the sbatch scripts requeue on 75); --resume
// continues from step 3.
TEST(ParallelFailure, StopSignalSavesAndExits75) {
  TempDir dir;
  const std::string config = write_config(dir, 8);
  const auto result = run_command(
      std::string(kMpirun) +
      "-x FT_FAULT_INJECT=rank=1,step=3,kind=usr1 -np 2 " FT_TRAIN_EXE " --config " + config);
  EXPECT_EQ(exit_code(result.status), 75) << result.output;
  EXPECT_NE(result.output.find("stopped at step 3 of 8"), std::string::npos) << result.output;
  EXPECT_TRUE(std::filesystem::exists(dir.path("run/STOPPED_EARLY")));  // the job script's cue
  const std::string step3 = checkpoint::step_checkpoint_path(dir.path("run/checkpoints"), 3);
  ASSERT_TRUE(std::filesystem::exists(step3)) << result.output;
  EXPECT_EQ(checkpoint::CheckpointReader(step3).int_attribute("step"), 3);
  const auto resumed = run_command(std::string(kMpirun) + "-np 2 " FT_TRAIN_EXE " --config " +
                                   config + " --resume train.max_steps=5");
  EXPECT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed from"), std::string::npos) << resumed.output;
  EXPECT_NE(resumed.output.find("step 5/5"), std::string::npos) << resumed.output;
}

TEST(ParallelFailure, TensorParallelSizeMustDivideTheRanks) {
  TempDir dir;
  const std::string config = write_config(dir, 2);
  const auto result = run_command(std::string(kMpirun) + "-np 2 " FT_TRAIN_EXE " --config " +
                                  config + " parallel.tp=3");
  ASSERT_NE(result.status, 0) << result.output;
  EXPECT_NE(exit_code(result.status), 124) << result.output;
  EXPECT_NE(result.output.find("parallel.tp = 3"), std::string::npos) << result.output;
  EXPECT_FALSE(std::filesystem::exists(dir.path("run/checkpoints")));
}

TEST(ParallelFailure, WorldSizeMustMatchTheLaunchersPromise) {
  // As if srun had promised 4 tasks but MPI started a world of 1: an Open MPI without Slurm's PMI
  // started by plain srun runs each task as an independent singleton. (Under mpirun, Open MPI's
  // own variables are the promise, so this runs without it.)
  TempDir dir;
  const std::string config = write_config(dir, 2);
  const auto result = run_command(
      "timeout 300 env SLURM_STEP_NUM_TASKS=4 SLURM_PROCID=0 SLURM_STEP_ID=0 SLURM_JOB_ID=1 "
      "OMP_NUM_THREADS=1 " FT_TRAIN_EXE " --config " +
      config);
  EXPECT_EQ(exit_code(result.status), 1) << result.output;
  EXPECT_NE(result.output.find("SLURM_STEP_NUM_TASKS"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("4"), std::string::npos) << result.output;
  EXPECT_FALSE(std::filesystem::exists(dir.path("run/metrics.jsonl")));
}

}  // namespace
}  // namespace ft
