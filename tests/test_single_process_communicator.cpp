// The one-process communicator: reductions and broadcasts are the identity, reduce-scatter and
// all-gather copy, point to point is an error, split gives another one-rank communicator, and
// every collective is counted in the stats. Also: a build without CUDA refuses NCCL, saying why.
#include <gtest/gtest.h>

#include <vector>

#include "parallel/communicator.h"
#include "parallel/nccl_communicator.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

Tensor view(std::vector<double>& values) {
  return Tensor(values.data(), DType::f64, Shape{static_cast<int64_t>(values.size())});
}

TEST(SingleProcessCommunicator, CollectivesAreTheIdentity) {
  SingleProcessCommunicator comm;
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.size(), 1);
  EXPECT_STREQ(comm.kind(), "single");
  std::vector<double> values = {1.5, -2.0, 3.25};
  const std::vector<double> original = values;
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::average, ReduceOp::max}) {
    comm.all_reduce(view(values), op);
    comm.all_reduce(std::span<double>(values), op);
  }
  EXPECT_EQ(values, original);
  std::vector<double> copy(3, 0.0);
  comm.reduce_scatter(view(copy), view(values), ReduceOp::sum);
  EXPECT_EQ(copy, original);
  std::vector<double> gathered(3, 0.0);
  comm.all_gather(view(gathered), view(values));
  EXPECT_EQ(gathered, original);
  comm.all_gather(view(gathered), view(gathered));  // in place
  EXPECT_EQ(gathered, original);
  comm.broadcast(view(values), 0);
  std::string text = "kept";
  comm.broadcast(text, 0);
  EXPECT_EQ(text, "kept");
  comm.barrier();
  EXPECT_EQ(values, original);
}

TEST(SingleProcessCommunicator, RefusesWhatOneRankCannotDo) {
  SingleProcessCommunicator comm;
  std::vector<double> values(3), shorter(2);
  testing::expect_error_mentioning([&] { comm.send(view(values), 0); }, "send to rank 0");
  testing::expect_error_mentioning([&] { comm.recv(view(values), 0); }, "recv from rank 0");
  testing::expect_error_mentioning([&] { comm.broadcast(view(values), 1); },
                                   "broadcast from rank 1");
  testing::expect_error_mentioning(
      [&] { comm.reduce_scatter(view(shorter), view(values), ReduceOp::sum); }, "reduce_scatter");
  testing::expect_error_mentioning([&] { comm.all_gather(view(shorter), view(values)); },
                                   "all_gather");
}

TEST(SingleProcessCommunicator, SplitGivesAnotherSingleRank) {
  SingleProcessCommunicator comm;
  std::unique_ptr<Communicator> child = comm.split(3, 7);
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->size(), 1);
  EXPECT_EQ(child->rank(), 0);
  EXPECT_STREQ(child->kind(), "single");
}

TEST(SingleProcessCommunicator, StatsCountEveryCollective) {
  SingleProcessCommunicator comm;
  std::vector<double> values(4), out(4);
  comm.all_reduce(view(values), ReduceOp::sum);
  comm.all_reduce(std::span<double>(values), ReduceOp::max);
  comm.reduce_scatter(view(out), view(values), ReduceOp::sum);
  comm.all_gather(view(out), view(values));
  comm.broadcast(view(values), 0);
  std::string text = "abc";
  comm.broadcast(text, 0);
  comm.barrier();
  EXPECT_EQ(comm.stats().calls, 7);
  EXPECT_EQ(comm.stats().bytes, 5 * 32 + 3);
  EXPECT_GE(comm.stats().seconds, 0.0);
  comm.reset_stats();
  EXPECT_EQ(comm.stats().calls, 0);
}

#ifndef FT_WITH_CUDA
TEST(NcclFactory, ABuildWithoutCudaSaysSo) {
  SingleProcessCommunicator host;
  testing::expect_error_mentioning([&] { make_nccl_communicator(host, 0); }, "-DFT_CUDA=ON");
}
#endif

}  // namespace
}  // namespace ft
