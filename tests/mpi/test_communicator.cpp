// The MPI communicator under mpirun -np 1, 2 and 4: every collective on rank-dependent f32 and f64
// values (sum, average, max), the reduce-scatter / all-gather round trip, broadcasts of tensors
// and text, a send/recv ring, calls split into pieces past the per-call count limit, the
// tensor- and data-parallel groups of ProcessGroups, stats, and the stop-signal agreement.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdint>
#include <string>
#include <vector>

#include "parallel/mpi_communicator.h"
#include "parallel/process_groups.h"
#include "parallel/stop_signal.h"
#include "tests/support/gradcheck.h"
#include "tests/support/mpi_world.h"

namespace ft {
namespace {

// Rank r's element i: exact in f32 (small multiples of 1/4), different on every rank and element.
double value_of(int rank, int64_t i) {
  return 0.25 * ((rank + 1) * (i % 13 + 1)) - 0.5 * i;
}
// A value whose maximum over ranks is not always the last rank's.
double peaked_value(int rank, int64_t i) {
  return static_cast<double>((rank * 7 + i * 3) % 5);
}

template <typename T>
std::vector<T> rank_values(int rank, int64_t count, double (*f)(int, int64_t) = value_of) {
  std::vector<T> values(count);
  for (int64_t i = 0; i < count; ++i) values[i] = static_cast<T>(f(rank, i));
  return values;
}

template <typename T>
Tensor view(std::vector<T>& values) {
  return Tensor(values.data(), dtype_of<T>(), Shape{static_cast<int64_t>(values.size())});
}

double expected_reduction(int size, int64_t i, ReduceOp op, double (*f)(int, int64_t)) {
  double sum = 0.0, max = f(0, i);
  for (int r = 0; r < size; ++r) {
    sum += f(r, i);
    max = std::max(max, f(r, i));
  }
  if (op == ReduceOp::max) return max;
  return op == ReduceOp::average ? sum / size : sum;
}

class MpiCommunicatorTest : public ::testing::Test {
 protected:
  void SetUp() override { world_ = test::mpi_world(); }
  void TearDown() override { world_->barrier(); }
  Communicator& world() { return *world_; }
  int rank() const { return world_->rank(); }
  int size() const { return world_->size(); }

  template <typename T>
  void check_all_reduce(Communicator& comm, ReduceOp op, double (*f)(int, int64_t), int64_t n) {
    std::vector<T> values = rank_values<T>(comm.rank(), n, f);
    comm.all_reduce(view(values), op);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(values[i], static_cast<T>(expected_reduction(comm.size(), i, op, f)))
          << dtype_name(dtype_of<T>()) << " element " << i << " on rank " << comm.rank();
  }

  std::shared_ptr<Communicator> world_;
};

TEST_F(MpiCommunicatorTest, IsTheMpiWorld) {
  EXPECT_STREQ(world().kind(), "mpi");
  EXPECT_GE(size(), 1);
  EXPECT_LT(rank(), size());
}

TEST_F(MpiCommunicatorTest, AllReduceSumAverageMaxInF32AndF64) {
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::average, ReduceOp::max}) {
    auto f = op == ReduceOp::max ? peaked_value : value_of;
    check_all_reduce<float>(world(), op, f, 37);
    check_all_reduce<double>(world(), op, f, 37);
  }
}

TEST_F(MpiCommunicatorTest, AllReduceOfHostValues) {
  std::vector<double> values = {1.0 + rank(), -2.0 * rank(), 0.5};
  world().all_reduce(std::span<double>(values), ReduceOp::sum);
  const double n = size();
  EXPECT_EQ(values[0], n + n * (n - 1) / 2);
  EXPECT_EQ(values[1], -n * (n - 1));
  EXPECT_EQ(values[2], 0.5 * n);
  std::vector<double> max = {static_cast<double>(rank()), -static_cast<double>(rank())};
  world().all_reduce(std::span<double>(max), ReduceOp::max);
  EXPECT_EQ(max[0], n - 1);
  EXPECT_EQ(max[1], 0.0);
  std::vector<double> mean = {2.0 * rank()};
  world().all_reduce(std::span<double>(mean), ReduceOp::average);
  EXPECT_EQ(mean[0], n - 1);
}

TEST_F(MpiCommunicatorTest, ReduceScatterThenAllGatherEqualsAllReduce) {
  const int64_t n = 5;  // elements per rank
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::average, ReduceOp::max}) {
    auto f = op == ReduceOp::max ? peaked_value : value_of;
    std::vector<double> input = rank_values<double>(rank(), n * size(), f);
    std::vector<double> shard(n, -1.0), gathered(n * size(), -1.0);
    world().reduce_scatter(view(shard), view(input), op);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_EQ(shard[i], expected_reduction(size(), rank() * n + i, op, f)) << "element " << i;
    world().all_gather(view(gathered), view(shard));
    for (int64_t i = 0; i < n * size(); ++i)
      EXPECT_EQ(gathered[i], expected_reduction(size(), i, op, f)) << "element " << i;
  }
  // f32, and the input left as it was.
  std::vector<float> input = rank_values<float>(rank(), n * size()), shard(n);
  const std::vector<float> before = input;
  world().reduce_scatter(view(shard), view(input), ReduceOp::sum);
  EXPECT_EQ(input, before);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(shard[i], static_cast<float>(
                            expected_reduction(size(), rank() * n + i, ReduceOp::sum, value_of)));
}

TEST_F(MpiCommunicatorTest, AllGatherInPlaceAndOfBf16) {
  const int64_t n = 3;
  std::vector<double> gathered(n * size(), -1.0);
  for (int64_t i = 0; i < n; ++i) gathered[rank() * n + i] = value_of(rank(), i);
  const Tensor all = view(gathered);
  world().all_gather(all, all.slice(rank() * n, (rank() + 1) * n));
  for (int r = 0; r < size(); ++r)
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(gathered[r * n + i], value_of(r, i));
  // Gathering moves bytes, so bf16 travels too.
  std::vector<bf16> mine(n), everyone(n * size());
  for (int64_t i = 0; i < n; ++i) mine[i] = float_to_bf16(static_cast<float>(value_of(rank(), i)));
  world().all_gather(view(everyone), view(mine));
  for (int r = 0; r < size(); ++r)
    for (int64_t i = 0; i < n; ++i)
      EXPECT_EQ(bf16_to_float(everyone[r * n + i]), static_cast<float>(value_of(r, i)));
}

TEST_F(MpiCommunicatorTest, BroadcastTensorsAndText) {
  for (int root : {0, size() - 1}) {
    std::vector<float> f32 = rank_values<float>(rank(), 11);
    std::vector<double> f64 = rank_values<double>(rank(), 7);
    world().broadcast(view(f32), root);
    world().broadcast(view(f64), root);
    EXPECT_EQ(f32, rank_values<float>(root, 11));
    EXPECT_EQ(f64, rank_values<double>(root, 7));
    // Non-roots start with text longer than the root's; an empty root text empties them.
    std::string text =
        rank() == root ? "config from rank " + std::to_string(root) : std::string(100, 'x');
    world().broadcast(text, root);
    EXPECT_EQ(text, "config from rank " + std::to_string(root));
    std::string empty = rank() == root ? "" : "not empty";
    world().broadcast(empty, root);
    EXPECT_EQ(empty, "");
  }
}

TEST_F(MpiCommunicatorTest, SendRecvRing) {
  if (size() == 1) GTEST_SKIP() << "a ring needs two ranks";
  const int next = (rank() + 1) % size(), previous = (rank() + size() - 1) % size();
  std::vector<double> outgoing = rank_values<double>(rank(), 9), incoming(9, 0.0);
  // Even ranks send first and odd ranks receive first, so no two ranks wait on each other.
  if (rank() % 2 == 0) {
    world().send(view(outgoing), next);
    world().recv(view(incoming), previous);
  } else {
    world().recv(view(incoming), previous);
    world().send(view(outgoing), next);
  }
  EXPECT_EQ(incoming, rank_values<double>(previous, 9));
  // Refused locally, before any message: self and out-of-range peers.
  testing::expect_error_mentioning([&] { world().send(view(outgoing), rank()); }, "send: peer");
  testing::expect_error_mentioning([&] { world().recv(view(incoming), size()); }, "recv: peer");
}

TEST_F(MpiCommunicatorTest, CallsPastTheCountLimitGoInPieces) {
  // A duplicate of the world whose calls carry at most 4 elements (bytes for byte-wise calls):
  // every collective takes its piece-by-piece path.
  std::unique_ptr<Communicator> comm = world().split(0, rank());
  auto& mpi = dynamic_cast<MpiCommunicator&>(*comm);
  mpi.set_max_count_per_call(4);
  EXPECT_EQ(comm->size(), size());
  EXPECT_EQ(comm->rank(), rank());
  check_all_reduce<double>(*comm, ReduceOp::sum, value_of, 23);
  check_all_reduce<float>(*comm, ReduceOp::average, value_of, 23);
  check_all_reduce<double>(*comm, ReduceOp::max, peaked_value, 23);

  const int64_t n = 6;
  std::vector<double> input = rank_values<double>(rank(), n * size()), shard(n),
                      gathered(n * size());
  comm->reduce_scatter(view(shard), view(input), ReduceOp::sum);
  comm->all_gather(view(gathered), view(shard));
  for (int64_t i = 0; i < n * size(); ++i)
    EXPECT_EQ(gathered[i], expected_reduction(size(), i, ReduceOp::sum, value_of));

  std::vector<double> broadcast = rank_values<double>(rank(), 13);
  comm->broadcast(view(broadcast), 0);
  EXPECT_EQ(broadcast, rank_values<double>(0, 13));
  std::string text = rank() == 0 ? std::string("a text longer than four bytes") : "";
  comm->broadcast(text, 0);
  EXPECT_EQ(text, "a text longer than four bytes");

  if (size() > 1) {
    std::vector<double> message = rank_values<double>(rank(), 5), received(5);
    if (rank() == 0) comm->send(view(message), 1);
    if (rank() == 1) {
      comm->recv(view(received), 0);
      EXPECT_EQ(received, rank_values<double>(0, 5));
    }
  }
  // Splits keep the limit.
  std::unique_ptr<Communicator> child = comm->split(0, rank());
  EXPECT_EQ(dynamic_cast<MpiCommunicator&>(*child).max_count_per_call(), 4);
  testing::expect_error_mentioning([&] { mpi.set_max_count_per_call(0); }, "max_count_per_call");
}

TEST_F(MpiCommunicatorTest, RefusesWhatItCannotDoNamingTheCollective) {
  // Every rank fails the same local check, before any message.
  std::vector<bf16> half(4);
  testing::expect_error_mentioning([&] { world().all_reduce(view(half), ReduceOp::sum); },
                                   "all_reduce: bf16");
  std::vector<double> input(3 * size() + 1), output(3), gathered(3 * size() - 1);
  testing::expect_error_mentioning(
      [&] { world().reduce_scatter(view(output), view(input), ReduceOp::sum); },
      "reduce_scatter: the input");
  testing::expect_error_mentioning([&] { world().all_gather(view(gathered), view(output)); },
                                   "all_gather: the output");
  std::vector<int32_t> counts = {1, 2};
  testing::expect_error_mentioning([&] { world().all_reduce(view(counts), ReduceOp::average); },
                                   "average needs a floating-point tensor");
  double fake = 0.0;
  const Tensor on_gpu(&fake, DType::f64, Shape{1}, Device::cuda);
  testing::expect_error_mentioning([&] { world().all_reduce(on_gpu, ReduceOp::sum); },
                                   "host buffers");
  testing::expect_error_mentioning([&] { world().broadcast(view(output), size()); },
                                   "broadcast: root");
  testing::expect_error_mentioning([&] { world().split(-1, 0); }, "color must be >= 0");
  // Integer sums work (counts, token totals).
  world().all_reduce(view(counts), ReduceOp::sum);
  EXPECT_EQ(counts, (std::vector<int32_t>{size(), 2 * size()}));
}

TEST_F(MpiCommunicatorTest, ProcessGroupsSplitTheWorldIntoTensorAndDataParallelGroups) {
  for (int tp : {1, 2, 4}) {
    if (size() % tp != 0) continue;
    ProcessGroups groups(world_, tp);
    const ParallelLayout& layout = groups.layout();
    EXPECT_EQ(layout.tp, tp);
    EXPECT_EQ(layout.dp, size() / tp);
    EXPECT_EQ(groups.tp().size(), tp);
    EXPECT_EQ(groups.tp().rank(), rank() % tp);
    EXPECT_EQ(groups.dp().size(), size() / tp);
    EXPECT_EQ(groups.dp().rank(), rank() / tp);
    EXPECT_EQ(&groups.world(), world_.get());
    // The tensor-parallel group holds adjacent world ranks, in order.
    std::vector<double> mine = {static_cast<double>(rank())}, tp_ranks(tp);
    groups.tp().all_gather(view(tp_ranks), view(mine));
    for (int j = 0; j < tp; ++j) EXPECT_EQ(tp_ranks[j], layout.dp_rank * tp + j) << "tp " << tp;
    // The data-parallel group strides by tp.
    std::vector<double> dp_ranks(size() / tp);
    groups.dp().all_gather(view(dp_ranks), view(mine));
    for (int d = 0; d < size() / tp; ++d)
      EXPECT_EQ(dp_ranks[d], d * tp + layout.tp_rank) << "tp " << tp;
    // Reductions stay inside a group: the sum of the group's world ranks.
    std::vector<float> sum = {static_cast<float>(rank())};
    groups.tp().all_reduce(view(sum), ReduceOp::sum);
    EXPECT_EQ(sum[0], static_cast<float>(layout.dp_rank * tp * tp + tp * (tp - 1) / 2));
    std::vector<float> shard(1), both(tp);
    for (int j = 0; j < tp; ++j) both[j] = static_cast<float>(rank() * 10 + j);
    groups.tp().reduce_scatter(view(shard), view(both), ReduceOp::max);
    EXPECT_EQ(shard[0], static_cast<float>((layout.dp_rank * tp + tp - 1) * 10 + layout.tp_rank));
  }
}

TEST_F(MpiCommunicatorTest, StatsCountCallsAndBytes) {
  std::unique_ptr<Communicator> comm = world().split(0, rank());
  EXPECT_EQ(comm->stats().calls, 0);
  std::vector<double> values(10, 1.0), gathered(10 * size());
  std::vector<float> small(3, 1.0f);
  comm->all_reduce(view(values), ReduceOp::sum);
  comm->all_gather(view(gathered), view(values));
  comm->broadcast(view(small), 0);
  comm->barrier();
  EXPECT_EQ(comm->stats().calls, 4);
  EXPECT_EQ(comm->stats().bytes, 10 * 8 + 10 * 8 + 3 * 4);
  EXPECT_GE(comm->stats().seconds, 0.0);
  comm->reset_stats();
  EXPECT_EQ(comm->stats().calls, 0);
  EXPECT_EQ(comm->stats().bytes, 0);
}

TEST_F(MpiCommunicatorTest, AStopSignalOnOneRankStopsEveryRank) {
  install_stop_signal_handlers();
  clear_stop_request();
  EXPECT_FALSE(any_rank_stop_requested(world()));
  if (rank() == size() - 1) std::raise(SIGUSR1);
  EXPECT_EQ(stop_requested(), rank() == size() - 1);
  EXPECT_TRUE(any_rank_stop_requested(world()));
  clear_stop_request();
  EXPECT_FALSE(any_rank_stop_requested(world()));
  // The handler fired once; put it back for later tests in this process.
  install_stop_signal_handlers();
}

}  // namespace
}  // namespace ft
