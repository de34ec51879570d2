// How this process was started, and the MPI runtime when a launcher started it.
//
// MPI is initialized only when a launcher (mpirun/mpiexec, srun) started the process, so a plain
// `ft_train` needs no MPI runtime. The world size MPI reports is checked against what the
// launcher promised (Slurm's task count, Open MPI's world size): an Open MPI without Slurm's PMI
// started by plain srun would otherwise run N independent rank-0 jobs.
#pragma once

#include <memory>
#include <string>

#include "parallel/communicator.h"

namespace ft {

struct LaunchInfo {
  std::string launcher;        // "mpirun", "srun" or "" (a plain process)
  int promised_world = 0;      // the launcher's task count (0: unknown)
  int promised_rank = -1;      // the launcher's rank for this process (-1: unknown)
  std::string promise_source;  // the variable that promised the world ("SLURM_STEP_NUM_TASKS")
};

// Reads the launcher's environment (OMPI_COMM_WORLD_*, PMIX_*, PMI_*, SLURM_STEP_*). The launcher
// that started this very process wins: Open MPI's mpirun (OMPI_COMM_WORLD_SIZE), then a PMI
// launcher such as MPICH's Hydra (PMI_SIZE), then a Slurm step (SLURM_STEP_NUM_TASKS with
// SLURM_PROCID: a task that srun started), then PMIx alone (PMIX_RANK, size unknown). mpirun
// comes before Slurm because inside an allocation its ranks inherit the Slurm variables of the
// step that started mpirun's daemons (one task per node), which describe the daemons, not the
// ranks. A batch script's own shell (SLURM_NTASKS, SLURM_JOB_ID, but no step task count) is not
// a launch: ft_train run there directly is one plain process.
LaunchInfo detect_launch();

// Owns MPI_Init/MPI_Finalize for a launched process; does nothing for a plain one.
class MpiRuntime {
 public:
  // Initializes MPI when `launch.launcher` is set (or `force`), checks the world size against
  // the promise, and installs the job-wide failure handling (see abort_job).
  explicit MpiRuntime(const LaunchInfo& launch, bool force = false);
  ~MpiRuntime();  // MPI_Finalize
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  bool active() const { return active_; }
  // The world: MPI_COMM_WORLD when active, else a single process.
  std::shared_ptr<Communicator> world() const { return world_; }
  // This process's index among the ranks on its node (MPI_Comm_split_type shared); 0 when plain.
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }

 private:
  bool active_ = false;
  std::shared_ptr<Communicator> world_;
  int local_rank_ = 0, local_size_ = 1;
};

// The GPU this rank drives: local rank modulo the visible devices (-1 when there are none).
int gpu_for_local_rank(int local_rank, int visible_devices);

// Ends the whole job now with `message`, prefixed with this rank ("ft: rank 1: ..."), on stderr
// and a non-zero exit: MPI_Abort when MPI is active (so no rank waits in a collective), else
// std::exit(1). Never returns.
[[noreturn]] void abort_job(const std::string& message);

}  // namespace ft
