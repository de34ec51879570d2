// Launch detection on synthetic launcher environments, the parallel layout arithmetic and its
// errors, the GPU a local rank drives, the plain-process runtime, and stop signals in one process.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>

#include "parallel/launch.h"
#include "parallel/process_groups.h"
#include "parallel/stop_signal.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

// Sets the given launcher variables (clearing every other one) for one test, restoring after.
class LauncherEnvironment {
 public:
  static constexpr const char* kNames[] = {"OMPI_COMM_WORLD_SIZE",
                                           "OMPI_COMM_WORLD_RANK",
                                           "PMI_SIZE",
                                           "PMI_RANK",
                                           "PMIX_RANK",
                                           "SLURM_STEP_NUM_TASKS",
                                           "SLURM_PROCID",
                                           "SLURM_NTASKS",
                                           "SLURM_JOB_ID",
                                           "SLURM_STEP_ID"};

  explicit LauncherEnvironment(
      std::initializer_list<std::pair<std::string, std::string>> values = {}) {
    for (const char* name : kNames) {
      if (const char* old = std::getenv(name)) saved_[name] = old;
      unsetenv(name);
    }
    for (const auto& [name, value] : values) setenv(name.c_str(), value.c_str(), 1);
  }
  LauncherEnvironment(const LauncherEnvironment&) = delete;
  LauncherEnvironment& operator=(const LauncherEnvironment&) = delete;
  ~LauncherEnvironment() {
    for (const char* name : kNames) unsetenv(name);
    for (const auto& [name, value] : saved_) setenv(name.c_str(), value.c_str(), 1);
  }

 private:
  std::map<std::string, std::string> saved_;
};

TEST(DetectLaunch, PlainProcess) {
  LauncherEnvironment env;
  const LaunchInfo info = detect_launch();
  EXPECT_EQ(info.launcher, "");
  EXPECT_EQ(info.promised_world, 0);
  EXPECT_EQ(info.promised_rank, -1);
}

TEST(DetectLaunch, OpenMpiMpirun) {
  LauncherEnvironment env(
      {{"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_RANK", "2"}, {"PMIX_RANK", "2"}});
  const LaunchInfo info = detect_launch();
  EXPECT_EQ(info.launcher, "mpirun");
  EXPECT_EQ(info.promised_world, 4);
  EXPECT_EQ(info.promised_rank, 2);
  EXPECT_EQ(info.promise_source, "OMPI_COMM_WORLD_SIZE");
}

TEST(DetectLaunch, MpirunInsideASlurmAllocationTrustsMpirun) {
  // mpirun's daemons were started by an srun step of one task per node: the ranks inherit that
  // step's variables, which count daemons, not ranks.
  LauncherEnvironment env({{"OMPI_COMM_WORLD_SIZE", "16"},
                           {"OMPI_COMM_WORLD_RANK", "9"},
                           {"SLURM_STEP_NUM_TASKS", "2"},
                           {"SLURM_PROCID", "1"},
                           {"SLURM_NTASKS", "16"},
                           {"SLURM_JOB_ID", "77"}});
  const LaunchInfo info = detect_launch();
  EXPECT_EQ(info.launcher, "mpirun");
  EXPECT_EQ(info.promised_world, 16);
  EXPECT_EQ(info.promised_rank, 9);
}

TEST(DetectLaunch, SlurmStep) {
  LauncherEnvironment env({{"SLURM_STEP_NUM_TASKS", "8"},
                           {"SLURM_PROCID", "5"},
                           {"SLURM_STEP_ID", "0"},
                           {"SLURM_NTASKS", "8"},
                           {"SLURM_JOB_ID", "77"},
                           {"PMIX_RANK", "5"}});
  const LaunchInfo info = detect_launch();
  EXPECT_EQ(info.launcher, "srun");
  EXPECT_EQ(info.promised_world, 8);
  EXPECT_EQ(info.promised_rank, 5);
  EXPECT_EQ(info.promise_source, "SLURM_STEP_NUM_TASKS");
}

TEST(DetectLaunch, ABatchScriptShellIsNotALaunch) {
  // sbatch's shell knows the allocation's task count but no step started this process.
  LauncherEnvironment env({{"SLURM_NTASKS", "8"}, {"SLURM_JOB_ID", "77"}, {"SLURM_PROCID", "0"}});
  EXPECT_EQ(detect_launch().launcher, "");
}

TEST(DetectLaunch, HydraAndSlurmPmi2) {
  {
    LauncherEnvironment env({{"PMI_SIZE", "3"}, {"PMI_RANK", "1"}});
    const LaunchInfo info = detect_launch();
    EXPECT_EQ(info.launcher, "mpirun");
    EXPECT_EQ(info.promised_world, 3);
    EXPECT_EQ(info.promised_rank, 1);
    EXPECT_EQ(info.promise_source, "PMI_SIZE");
  }
  {
    // srun --mpi=pmi2 sets the PMI variables and the step's.
    LauncherEnvironment env({{"PMI_SIZE", "3"},
                             {"PMI_RANK", "1"},
                             {"SLURM_STEP_NUM_TASKS", "3"},
                             {"SLURM_PROCID", "1"}});
    EXPECT_EQ(detect_launch().launcher, "srun");
  }
}

TEST(DetectLaunch, PmixAloneHasNoWorldSize) {
  LauncherEnvironment env({{"PMIX_RANK", "3"}});
  const LaunchInfo info = detect_launch();
  EXPECT_EQ(info.launcher, "mpirun");
  EXPECT_EQ(info.promised_world, 0);
  EXPECT_EQ(info.promised_rank, 3);
}

TEST(DetectLaunch, MalformedCountsAreErrorsNamingTheVariable) {
  LauncherEnvironment env({{"OMPI_COMM_WORLD_SIZE", "four"}});
  testing::expect_error_mentioning([] { detect_launch(); }, "OMPI_COMM_WORLD_SIZE = 'four'");
}

TEST(MpiRuntime, APlainProcessGetsASingleProcessWorldWithoutMpi) {
  MpiRuntime runtime(LaunchInfo{});
  EXPECT_FALSE(runtime.active());
  ASSERT_NE(runtime.world(), nullptr);
  EXPECT_STREQ(runtime.world()->kind(), "single");
  EXPECT_EQ(runtime.world()->size(), 1);
  EXPECT_EQ(runtime.local_rank(), 0);
  EXPECT_EQ(runtime.local_size(), 1);
}

TEST(ParallelLayout, RanksAreTensorParallelAdjacentAndDataParallelStrided) {
  const ParallelLayout layout = make_parallel_layout(8, 5, 2);
  EXPECT_EQ(layout.world_size, 8);
  EXPECT_EQ(layout.rank, 5);
  EXPECT_EQ(layout.tp, 2);
  EXPECT_EQ(layout.dp, 4);
  EXPECT_EQ(layout.tp_rank, 1);
  EXPECT_EQ(layout.dp_rank, 2);
  for (int rank = 0; rank < 12; ++rank) {
    const ParallelLayout l = make_parallel_layout(12, rank, 3);
    EXPECT_EQ(l.dp_rank * 3 + l.tp_rank, rank);
    EXPECT_EQ(l.dp, 4);
  }
  const ParallelLayout one = make_parallel_layout(1, 0, 1);
  EXPECT_EQ(one.dp, 1);
  EXPECT_EQ(one.tp_rank, 0);
}

TEST(ParallelLayout, ErrorsNameTheFieldAndTheWorld) {
  const std::string message = testing::error_message([] { make_parallel_layout(4, 0, 3); });
  EXPECT_NE(message.find("parallel.tp = 3 does not divide the world size 4 (mpirun -np 4)"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("1, 2, 4"), std::string::npos) << message;
  testing::expect_error_mentioning([] { make_parallel_layout(4, 0, 0); }, "parallel.tp = 0");
  testing::expect_error_mentioning([] { make_parallel_layout(2, 0, 4); }, "parallel.tp = 4");
  testing::expect_error_mentioning([] { make_parallel_layout(4, 4, 1); }, "rank 4");
}

TEST(ProcessGroups, SingleHasOneRankEverywhere) {
  const ProcessGroups groups = ProcessGroups::single();
  EXPECT_EQ(groups.layout().world_size, 1);
  EXPECT_EQ(groups.layout().tp, 1);
  EXPECT_EQ(groups.world().size(), 1);
  EXPECT_EQ(groups.tp().size(), 1);
  EXPECT_EQ(groups.dp().size(), 1);
  EXPECT_NE(groups.world_ptr(), nullptr);
  // Built from a single-process world with tp = 1 it is the same.
  ProcessGroups from_world(std::make_shared<SingleProcessCommunicator>(), 1);
  EXPECT_EQ(from_world.tp().size(), 1);
  testing::expect_error_mentioning(
      [] { ProcessGroups(std::make_shared<SingleProcessCommunicator>(), 2); }, "parallel.tp = 2");
}

TEST(GpuForLocalRank, WrapsAroundTheVisibleDevices) {
  EXPECT_EQ(gpu_for_local_rank(0, 8), 0);
  EXPECT_EQ(gpu_for_local_rank(7, 8), 7);
  EXPECT_EQ(gpu_for_local_rank(9, 8), 1);
  EXPECT_EQ(gpu_for_local_rank(3, 1), 0);
  EXPECT_EQ(gpu_for_local_rank(3, 0), -1);
  testing::expect_error_mentioning([] { gpu_for_local_rank(-1, 8); }, "local rank -1");
}

TEST(StopSignal, SigtermAndSigusr1AreRecordedNotFatal) {
  install_stop_signal_handlers();
  clear_stop_request();
  EXPECT_FALSE(stop_requested());
  std::raise(SIGUSR1);
  EXPECT_TRUE(stop_requested());
  EXPECT_EQ(stop_signal(), SIGUSR1);
  clear_stop_request();
  std::raise(SIGTERM);
  EXPECT_EQ(stop_signal(), SIGTERM);
  SingleProcessCommunicator one;
  EXPECT_TRUE(any_rank_stop_requested(one));
  clear_stop_request();
  EXPECT_FALSE(any_rank_stop_requested(one));
  // After firing, each handler is the default action again (a second SIGTERM ends the process).
  struct sigaction current;
  sigaction(SIGTERM, nullptr, &current);
  EXPECT_EQ(current.sa_handler, SIG_DFL);
}

TEST(AbortJob, PrintsTheRankAndExitsNonZeroWithoutMpi) {
  EXPECT_EXIT(abort_job("ft_train: error: disk full"), ::testing::ExitedWithCode(1),
              "ft: rank 0 of 1: ft_train: error: disk full");
}

}  // namespace
}  // namespace ft
