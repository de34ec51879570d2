// ft_train: fine-tune (or train from scratch) a decoder-only transformer from a run config.
//   ft_train --config run.yaml [--resume | --resume-from PATH] [key=value ...]
// Started by mpirun or srun, each process is one rank of a parallel job (see parallel/launch.h);
// started plainly, it is one process and needs no MPI runtime.
//
// Exit codes: 0 done; 1 error; 75 (EX_TEMPFAIL) stopped early by SIGTERM/SIGUSR1 after saving a
// checkpoint, so a job script can requeue and continue with --resume (rank 0 also leaves
// output_dir/STOPPED_EARLY saying at which step).
#include <CLI/CLI.hpp>

#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "parallel/launch.h"
#include "parallel/stop_signal.h"
#include "runtime/config/config.h"
#include "runtime/error.h"
#include "runtime/train/trainer.h"

namespace {

constexpr int kExitStoppedEarly = 75;
constexpr const char* kStoppedEarlyMarker = "STOPPED_EARLY";

// One process prints and returns; a rank of a parallel job ends the whole job (MPI_Abort), since
// the other ranks may be waiting for it in a collective.
int report_failure(const std::string& message, bool multi_rank) {
  if (multi_rank) ft::abort_job(message);
  std::cerr << message << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ft_train: fine-tune a decoder-only language model from a run config."};
  std::string config_path;
  std::string resume_from;
  bool resume_latest = false;
  std::vector<std::string> overrides;
  app.add_option("-c,--config", config_path, "Run config: YAML, JSON or protobuf text format")
      ->required();
  auto* latest = app.add_flag("--resume", resume_latest,
                              "Continue the run from the newest checkpoint in its output_dir");
  app.add_option("--resume-from", resume_from, "Continue a run from this checkpoint file")
      ->excludes(latest);
  app.add_option("overrides", overrides, "Config overrides such as optim.lr=1e-4");
  app.footer("Config fields (set in the file or as field=value):\n" + ft::config::help_text() +
             "\nParallel runs: start one process per GPU (or CPU slot) with mpirun or srun "
             "--mpi=pmix.\nExit code 75: stopped by SIGTERM/SIGUSR1 after a checkpoint; continue "
             "with --resume.");
  // Every rank parses the same arguments, so every rank reports the same usage error.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }

  std::unique_ptr<ft::MpiRuntime> runtime;
  try {
    runtime = std::make_unique<ft::MpiRuntime>(ft::detect_launch());
  } catch (const std::exception& error) {
    // A world that disagrees with the launcher: each process stands alone, none can abort others.
    std::cerr << "ft_train: error: " << error.what() << std::endl;
    return 1;
  }
  const std::shared_ptr<ft::Communicator> world = runtime->world();
  const bool multi_rank = world->size() > 1;

  try {
    ft::install_stop_signal_handlers();
    ft::TrainerOptions options;
    options.config = ft::config::load_file(config_path);
    for (const std::string& assignment : overrides)
      ft::config::apply_override(options.config, assignment);
    options.resume = resume_latest ? "latest" : resume_from;
    options.world = world;
    const std::string output_dir = options.config.output_dir();
    ft::Trainer trainer(std::move(options));
    const ft::TrainSummary summary = trainer.run();
    if (summary.steps < trainer.total_steps()) {
      if (world->rank() == 0) {
        const std::string stopped =
            fmt::format("stopped at step {} of {}", summary.steps, trainer.total_steps());
        // The job script's requeue decision (launch/slurm/*.sbatch): srun's exit status may be
        // a signal's when it kills the other ranks after the first exits 75.
        std::ofstream(output_dir + "/" + kStoppedEarlyMarker) << stopped << "\n";
        std::cout << "ft_train: " << stopped << "; continue with ft_train --resume" << std::endl;
      }
      return kExitStoppedEarly;
    }
  } catch (const ft::Error& error) {
    return report_failure(std::string("ft_train: error: ") + error.what(), multi_rank);
  } catch (const std::exception& error) {
    return report_failure(std::string("ft_train: unexpected error: ") + error.what(), multi_rank);
  }
  return 0;
}
