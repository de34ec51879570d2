// The parallel layout of a job: world = tp x dp ranks, tensor-parallel ranks adjacent
// (tp_rank = rank % tp), data-parallel ranks strided by tp (dp_rank = rank / tp), and the
// communicators over each group.
#pragma once

#include <memory>

#include "parallel/communicator.h"

namespace ft {

struct ParallelLayout {
  int world_size = 1, rank = 0;
  int tp = 1, dp = 1;
  int tp_rank = 0, dp_rank = 0;
};

// Checks tp against the world (tp >= 1, world % tp == 0) with an error that names parallel.tp and
// the world size, and derives the rest.
ParallelLayout make_parallel_layout(int world_size, int rank, int tp);

class ProcessGroups {
 public:
  // Splits `world` into the tensor-parallel and data-parallel groups of `tp`. Collective.
  ProcessGroups(std::shared_ptr<Communicator> world, int tp);
  // One process: every group is a SingleProcessCommunicator.
  static ProcessGroups single();

  const ParallelLayout& layout() const { return layout_; }
  Communicator& world() const { return *world_; }
  Communicator& tp() const { return *tp_; }  // the ranks that hold the shards of one replica
  Communicator& dp() const { return *dp_; }  // the ranks with the same tp_rank
  std::shared_ptr<Communicator> world_ptr() const { return world_; }

 private:
  ProcessGroups() = default;
  ParallelLayout layout_;
  std::shared_ptr<Communicator> world_;
  std::unique_ptr<Communicator> tp_, dp_;
};

}  // namespace ft
