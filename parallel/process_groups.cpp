#include "parallel/process_groups.h"

#include <string>

#include "runtime/error.h"

namespace ft {
namespace {

// "1, 2, 4": the tensor-parallel sizes a world of `world_size` ranks allows.
std::string divisors(int world_size) {
  std::string text;
  for (int d = 1; d <= world_size; ++d) {
    if (world_size % d != 0) continue;
    if (!text.empty()) text += ", ";
    text += std::to_string(d);
  }
  return text;
}

}  // namespace

ParallelLayout make_parallel_layout(int world_size, int rank, int tp) {
  FT_CHECK(world_size >= 1, "world size {} must be >= 1", world_size);
  FT_CHECK(rank >= 0 && rank < world_size, "rank {} is not in a world of {}", rank, world_size);
  if (tp < 1) fail("parallel.tp = {}: the tensor-parallel size must be >= 1", tp);
  if (world_size % tp != 0)
    fail(
        "parallel.tp = {} does not divide the world size {} (mpirun -np {}): the ranks form "
        "world / tp data-parallel replicas of tp ranks each; choose parallel.tp among {}, or start "
        "a multiple of {} ranks",
        tp, world_size, world_size, divisors(world_size), tp);
  ParallelLayout layout;
  layout.world_size = world_size;
  layout.rank = rank;
  layout.tp = tp;
  layout.dp = world_size / tp;
  layout.tp_rank = rank % tp;
  layout.dp_rank = rank / tp;
  return layout;
}

ProcessGroups::ProcessGroups(std::shared_ptr<Communicator> world, int tp) : world_(world) {
  FT_CHECK(world_ != nullptr, "ProcessGroups: no world communicator");
  layout_ = make_parallel_layout(world_->size(), world_->rank(), tp);
  // Tensor-parallel ranks are adjacent (one group per dp_rank); data-parallel ranks stride by tp
  // (one group per tp_rank). Keys keep world order inside each group.
  tp_ = world_->split(/*color=*/layout_.dp_rank, /*key=*/layout_.rank);
  dp_ = world_->split(/*color=*/layout_.tp_rank, /*key=*/layout_.rank);
  FT_CHECK(tp_->size() == layout_.tp && tp_->rank() == layout_.tp_rank,
           "tensor-parallel group of rank {}: rank {} of {}, expected {} of {}", layout_.rank,
           tp_->rank(), tp_->size(), layout_.tp_rank, layout_.tp);
  FT_CHECK(dp_->size() == layout_.dp && dp_->rank() == layout_.dp_rank,
           "data-parallel group of rank {}: rank {} of {}, expected {} of {}", layout_.rank,
           dp_->rank(), dp_->size(), layout_.dp_rank, layout_.dp);
}

ProcessGroups ProcessGroups::single() {
  ProcessGroups groups;
  groups.world_ = std::make_shared<SingleProcessCommunicator>();
  groups.tp_ = std::make_unique<SingleProcessCommunicator>();
  groups.dp_ = std::make_unique<SingleProcessCommunicator>();
  return groups;
}

}  // namespace ft
