#include "parallel/launch.h"

#include <mpi.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>

#include "parallel/mpi_communicator.h"
#include "runtime/error.h"

namespace ft {
namespace {

// Far above any real job; what passes for a count in an environment variable.
constexpr long kMaxRanksOrTasks = 1l << 30;

// The integer value of an environment variable, nullopt when unset or empty.
std::optional<int> env_int(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < 0 || value > kMaxRanksOrTasks)
    fail("environment variable {} = '{}' is not a rank or task count", name, text);
  return static_cast<int>(value);
}

bool mpi_running() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

std::terminate_handler previous_terminate = nullptr;

// An exception nobody caught on one rank must not leave the others waiting in a collective.
[[noreturn]] void terminate_job() {
  std::string message = "terminate called";
  if (std::exception_ptr current = std::current_exception()) {
    try {
      std::rethrow_exception(current);
    } catch (const std::exception& error) {
      message += ": uncaught exception: " + std::string(error.what());
    } catch (...) {
      message += ": uncaught exception of unknown type";
    }
  }
  abort_job(message);
}

}  // namespace

LaunchInfo detect_launch() {
  LaunchInfo info;
  const std::optional<int> slurm_tasks = env_int("SLURM_STEP_NUM_TASKS");
  const std::optional<int> slurm_rank = env_int("SLURM_PROCID");
  if (auto size = env_int("OMPI_COMM_WORLD_SIZE")) {
    info.launcher = "mpirun";
    info.promised_world = *size;
    info.promised_rank = env_int("OMPI_COMM_WORLD_RANK").value_or(-1);
    info.promise_source = "OMPI_COMM_WORLD_SIZE";
  } else if (auto pmi_size = env_int("PMI_SIZE")) {
    // MPICH's Hydra (mpiexec) and Intel MPI; Slurm's PMI-2 plugin sets these for srun tasks too.
    info.launcher = slurm_tasks == pmi_size && slurm_rank ? "srun" : "mpirun";
    info.promised_world = *pmi_size;
    info.promised_rank = env_int("PMI_RANK").value_or(-1);
    info.promise_source = "PMI_SIZE";
  } else if (slurm_tasks && slurm_rank) {
    info.launcher = "srun";
    info.promised_world = *slurm_tasks;
    info.promised_rank = *slurm_rank;
    info.promise_source = "SLURM_STEP_NUM_TASKS";
  } else if (auto pmix_rank = env_int("PMIX_RANK")) {
    // A PMIx launcher (prterun, or srun --mpi=pmix without the step variables): no size variable.
    info.launcher = "mpirun";
    info.promised_rank = *pmix_rank;
  }
  return info;
}

MpiRuntime::MpiRuntime(const LaunchInfo& launch, bool force) {
  if (launch.launcher.empty() && !force) {
    world_ = std::make_shared<SingleProcessCommunicator>();
    return;
  }
  int initialized = 0;
  MPI_Initialized(&initialized);
  FT_CHECK(!initialized, "MpiRuntime: MPI is already initialized (one MpiRuntime per process)");
  // FUNNELED: OpenMP threads compute, only the main thread talks to MPI.
  int provided = MPI_THREAD_SINGLE;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    fail("MPI_Init_thread failed (launcher: {})",
         launch.launcher.empty() ? "none" : launch.launcher);
  active_ = true;
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);

  std::string problem;
  if (provided < MPI_THREAD_FUNNELED) {
    problem = fmt::format(
        "the MPI library provides thread level {} but ft needs MPI_THREAD_FUNNELED ({}): OpenMP "
        "threads run beside MPI calls",
        provided, static_cast<int>(MPI_THREAD_FUNNELED));
  } else if (launch.promised_world > 0 && size != launch.promised_world) {
    problem = fmt::format(
        "MPI started a world of {} process(es), but the launcher ({}) promised {} ({} = {}): the "
        "MPI library did not join the launcher's job, so the processes would train alone and "
        "overwrite each other's output. This happens when an Open MPI without Slurm's PMI "
        "support is started by plain srun: start with `srun --mpi=pmix` (see `srun --mpi=list`) "
        "or with mpirun inside the allocation, and check that ft_train was built against the "
        "MPI library of that launcher",
        size, launch.launcher.empty() ? "unknown" : launch.launcher, launch.promised_world,
        launch.promise_source, launch.promised_world);
  }
  if (problem.empty()) {
    // The launcher's rank for this process must be MPI's, or per-rank work (GPU choice, data
    // shards) would follow the wrong numbering. Agreed collectively: only some ranks may see it.
    int wrong_rank = launch.promised_rank >= 0 && launch.promised_rank != rank ? 1 : 0;
    MPI_Allreduce(MPI_IN_PLACE, &wrong_rank, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (wrong_rank)
      problem = fmt::format(
          "MPI's rank numbering differs from the launcher's (on some process the launcher ({}) "
          "gave rank {} and MPI rank {}): the MPI library did not join the launcher's job as it "
          "numbered it",
          launch.launcher.empty() ? "unknown" : launch.launcher, launch.promised_rank, rank);
  }
  if (!problem.empty()) {
    // Every process sees the same mismatch, so all of them finalize (singletons alone).
    MPI_Finalize();
    active_ = false;
    fail("{}", problem);
  }

  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
  world_ = std::make_shared<MpiCommunicator>(MPI_COMM_WORLD);
  previous_terminate = std::set_terminate(terminate_job);
}

MpiRuntime::~MpiRuntime() {
  if (!active_) return;
  std::set_terminate(previous_terminate);
  world_.reset();
  if (mpi_running()) MPI_Finalize();
}

int gpu_for_local_rank(int local_rank, int visible_devices) {
  FT_CHECK(local_rank >= 0, "gpu_for_local_rank: local rank {} must be >= 0", local_rank);
  if (visible_devices <= 0) return -1;
  return local_rank % visible_devices;
}

void abort_job(const std::string& message) {
  const bool mpi = mpi_running();
  int rank = 0, size = 1;
  if (mpi) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
  std::cout.flush();
  std::fflush(stdout);
  std::fprintf(stderr, "ft: rank %d of %d: %s\n", rank, size, message.c_str());
  std::fflush(stderr);
  if (mpi) MPI_Abort(MPI_COMM_WORLD, 1);
  std::exit(1);
}

}  // namespace ft
