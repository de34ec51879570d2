// The main of the multi-rank tests (tests/mpi/*.cpp, run under mpirun -np N): initializes MPI,
// runs every test on every rank, prints rank 0's report in full and only the failures of the
// other ranks (prefixed with their rank), and fails on every rank when any rank failed.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <span>
#include <stdexcept>

#include "parallel/launch.h"
#include "tests/support/mpi_world.h"

namespace ft::test {
namespace {

std::shared_ptr<Communicator> world;

class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "unknown", result.line_number(),
                 result.message());
    std::fflush(stderr);
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (!info.result()->Failed()) return;
    std::fprintf(stderr, "[rank %d] [  FAILED  ] %s.%s\n", rank_, info.test_suite_name(),
                 info.name());
    std::fflush(stderr);
  }

 private:
  int rank_;
};

}  // namespace

std::shared_ptr<Communicator> mpi_world() {
  if (!world) throw std::logic_error("mpi_world(): called outside the MPI test main");
  return world;
}

}  // namespace ft::test

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // Forced: run without mpirun, the binary is a world of one.
  ft::MpiRuntime runtime(ft::detect_launch(), /*force=*/true);
  ft::test::world = runtime.world();
  const int rank = runtime.world()->rank();
  if (rank != 0) {
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new ft::test::FailurePrinter(rank));
  }
  const int result = RUN_ALL_TESTS();
  double failed = result != 0 ? 1.0 : 0.0;
  runtime.world()->all_reduce(std::span<double>(&failed, 1), ft::ReduceOp::max);
  if (failed > 0.0 && result == 0 && rank == 0)
    std::fprintf(stderr, "ft: another rank failed (see its [rank N] lines)\n");
  ft::test::world.reset();
  return failed > 0.0 ? 1 : 0;
}
