// Vocabulary-parallel embedding and loss ops (CPU) against the unsharded ops, for odd vocabularies
// split into 1, 2 and 3 uneven shards with targets in every shard, ignored rows and argmax ties
// across shard boundaries: the embedding summed over shards and its backward per shard; shard
// stats combined into losses, lse and the correct count; backward shards (in place and out of
// place) against columns of cross_entropy_backward; an fp64 finite-difference check of the sharded
// loss; count_correct's NaN and tie rules; thread-count independence; argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/ops.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using ft::testing::cpu_context;
using ft::testing::expect_error_mentioning;
using ft::testing::expect_gradient;
using ft::testing::random_values;
using ft::testing::view;

constexpr int64_t kStats = 4;

// rows tokens, cols embedding width, and the shard boundaries 0 = b0 < b1 < ... < bS = vocab.
struct VocabSplit {
  int64_t rows, cols;
  std::vector<int64_t> bounds;
  int64_t vocab() const { return bounds.back(); }
  int64_t shards() const { return static_cast<int64_t>(bounds.size()) - 1; }
  int64_t begin(int64_t shard) const { return bounds[shard]; }
  int64_t width(int64_t shard) const { return bounds[shard + 1] - bounds[shard]; }
};
std::ostream& operator<<(std::ostream& out, const VocabSplit& split) {
  out << split.rows << " rows, " << split.cols << " cols, shards";
  for (int64_t bound : split.bounds) out << " " << bound;
  return out;
}

template <typename T>
std::vector<T> converted(const std::vector<double>& values) {
  return std::vector<T>(values.begin(), values.end());
}

// Columns [begin, end) of a (rows, cols) matrix.
template <typename T>
std::vector<T> columns(const std::vector<T>& matrix, int64_t rows, int64_t cols, int64_t begin,
                       int64_t end) {
  std::vector<T> block;
  for (int64_t i = 0; i < rows; ++i) {
    block.insert(block.end(), matrix.begin() + i * cols + begin, matrix.begin() + i * cols + end);
  }
  return block;
}

// A vocabulary index in shard i % S, so every shard is used when rows >= S.
int32_t spread_over_shards(const VocabSplit& split, int64_t i) {
  const int64_t shard = i % split.shards();
  return static_cast<int32_t>(split.begin(shard) + (i * 7 + 1) % split.width(shard));
}

// Every fourth row ignored (when there are several rows), the others spread over the shards.
std::vector<int32_t> make_targets(const VocabSplit& split) {
  std::vector<int32_t> targets(split.rows);
  for (int64_t i = 0; i < split.rows; ++i) {
    targets[i] = split.rows > 1 && i % 4 == 3 ? ops::kIgnoreIndex : spread_over_shards(split, i);
  }
  return targets;
}

// Random logits in which rows i % 4 == 0 tie the target's logit with a column of a neighbouring
// shard (lower: the row is not correct; higher: it is) and rows i % 4 == 1 make the target the
// unique maximum.
std::vector<double> make_logits(const VocabSplit& split, const std::vector<int32_t>& targets,
                                uint64_t seed) {
  const int64_t vocab = split.vocab();
  std::vector<double> logits = random_values(split.rows * vocab, seed, 5.0);
  for (int64_t i = 0; i < split.rows; ++i) {
    if (targets[i] == ops::kIgnoreIndex) continue;
    double* z = logits.data() + i * vocab;
    const int64_t target = targets[i];
    z[target] = 50.0;
    if (i % 4 != 0) continue;
    const int64_t shard = i % split.shards();
    int64_t tie = (target + 1) % vocab;  // one shard: another column of it
    if (split.shards() > 1) tie = shard > 0 ? split.begin(shard) - 1 : split.begin(1);
    if (tie != target) z[tie] = 50.0;
  }
  return logits;
}

// count_correct's definition, written out.
template <typename T>
int64_t scalar_correct(const std::vector<T>& logits, const std::vector<int32_t>& targets,
                       int64_t vocab) {
  int64_t correct = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (targets[i] == ops::kIgnoreIndex) continue;
    const T* z = logits.data() + i * vocab;
    int64_t best = 0;
    for (int64_t j = 1; j < vocab; ++j)
      if (z[j] > z[best]) best = j;
    correct += best == targets[i];
  }
  return correct;
}

// Each shard's stats written into its slot of parts (S, N, 4), then combined.
template <typename T>
struct ShardedLoss {
  std::vector<T> parts, losses, lse;
  int64_t correct = -1;
};
template <typename T>
ShardedLoss<T> sharded_loss(const OpContext& ctx, const VocabSplit& split,
                            std::vector<std::vector<T>>& shard_logits,
                            std::vector<int32_t>& targets) {
  const int64_t rows = split.rows, shards = split.shards();
  ShardedLoss<T> result{std::vector<T>(shards * rows * kStats), std::vector<T>(rows),
                        std::vector<T>(rows)};
  for (int64_t s = 0; s < shards; ++s) {
    Tensor stats(result.parts.data() + s * rows * kStats, dtype_of<T>(), {rows, kStats});
    ops::cross_entropy_shard_stats(ctx, stats, view(shard_logits[s], {rows, split.width(s)}),
                                   view(targets, {rows}), split.begin(s));
  }
  ops::cross_entropy_combine_shards(ctx, view(result.losses, {rows}), view(result.lse, {rows}),
                                    view(result.parts, {shards, rows, kStats}),
                                    view(targets, {rows}), &result.correct);
  return result;
}

template <typename T>
std::vector<std::vector<T>> split_columns(const VocabSplit& split, const std::vector<T>& logits) {
  std::vector<std::vector<T>> shards;
  for (int64_t s = 0; s < split.shards(); ++s) {
    shards.push_back(columns(logits, split.rows, split.vocab(), split.begin(s),
                             split.begin(s) + split.width(s)));
  }
  return shards;
}

class VocabParallel : public ::testing::TestWithParam<VocabSplit> {};

// ---- embedding -------------------------------------------------------------------------------

template <typename T>
void check_embedding(const VocabSplit& split) {
  const int64_t rows = split.rows, vocab = split.vocab(), cols = split.cols;
  OpContext ctx = cpu_context();
  std::vector<int32_t> ids(rows);
  for (int64_t i = 0; i < rows; ++i) ids[i] = spread_over_shards(split, i);
  std::vector<T> table = converted<T>(random_values(vocab * cols, 1));
  std::vector<T> full(rows * cols), summed(rows * cols, T{0});
  ops::embedding_forward(ctx, view(full, {rows, cols}), view(ids, {rows}),
                         view(table, {vocab, cols}));
  const std::vector<T> dout = converted<T>(random_values(rows * cols, 2));
  const std::vector<T> initial = converted<T>(random_values(vocab * cols, 3));
  std::vector<T> dtable = initial;
  std::vector<T> dout_copy = dout;
  ops::embedding_backward(ctx, view(dtable, {vocab, cols}), view(ids, {rows}),
                          view(dout_copy, {rows, cols}));

  for (int64_t s = 0; s < split.shards(); ++s) {
    const int64_t begin = split.begin(s), width = split.width(s);
    std::vector<T> shard_table(table.begin() + begin * cols,
                               table.begin() + (begin + width) * cols);
    std::vector<T> out(rows * cols, T{7});  // overwritten
    ops::embedding_forward_shard(ctx, view(out, {rows, cols}), view(ids, {rows}),
                                 view(shard_table, {width, cols}), begin, vocab);
    for (int64_t i = 0; i < rows; ++i) {
      const bool mine = ids[i] >= begin && ids[i] < begin + width;
      for (int64_t j = 0; j < cols; ++j) {
        ASSERT_EQ(out[i * cols + j], mine ? full[i * cols + j] : T{0}) << "shard " << s;
      }
    }
    for (size_t k = 0; k < out.size(); ++k) summed[k] += out[k];

    std::vector<T> shard_dtable(initial.begin() + begin * cols,
                                initial.begin() + (begin + width) * cols);
    ops::embedding_backward_shard(ctx, view(shard_dtable, {width, cols}), view(ids, {rows}),
                                  view(dout_copy, {rows, cols}), begin);
    EXPECT_EQ(shard_dtable, std::vector<T>(dtable.begin() + begin * cols,
                                           dtable.begin() + (begin + width) * cols))
        << "shard " << s;
  }
  EXPECT_EQ(summed, full);

  // Out-of-range ids, named by the forward (either end) and the backward (negative).
  const int64_t width = split.width(0);
  std::vector<T> shard_table(table.begin(), table.begin() + width * cols), out(rows * cols);
  std::vector<int32_t> bad = ids;
  bad[rows - 1] = static_cast<int32_t>(vocab);
  expect_error_mentioning(
      [&] {
        ops::embedding_forward_shard(ctx, view(out, {rows, cols}), view(bad, {rows}),
                                     view(shard_table, {width, cols}), 0, vocab);
      },
      "embedding_forward_shard: ids[" + std::to_string(rows - 1) + "] = " + std::to_string(vocab) +
          " is outside the vocabulary's [0, " + std::to_string(vocab) + ")");
  bad[rows - 1] = -1;
  expect_error_mentioning(
      [&] {
        ops::embedding_forward_shard(ctx, view(out, {rows, cols}), view(bad, {rows}),
                                     view(shard_table, {width, cols}), 0, vocab);
      },
      "ids[" + std::to_string(rows - 1) + "] = -1");
  expect_error_mentioning(
      [&] {
        ops::embedding_backward_shard(ctx, view(shard_table, {width, cols}), view(bad, {rows}),
                                      view(dout_copy, {rows, cols}), 0);
      },
      "embedding_backward_shard: ids[" + std::to_string(rows - 1) + "] = -1 is negative");
}

TEST_P(VocabParallel, EmbeddingShardsSumToTheEmbedding) {
  check_embedding<double>(GetParam());
  check_embedding<float>(GetParam());
}

// ---- loss ------------------------------------------------------------------------------------

template <typename T>
void check_loss(const VocabSplit& split) {
  const int64_t rows = split.rows, vocab = split.vocab();
  const double tolerance = std::is_same_v<T, double> ? 1e-12 : 1e-5;
  OpContext ctx = cpu_context();
  std::vector<int32_t> targets = make_targets(split);
  std::vector<T> logits = converted<T>(make_logits(split, targets, 4));

  std::vector<T> losses(rows), lse(rows);
  int64_t correct = -1;
  ops::cross_entropy_forward(ctx, view(losses, {rows}), view(lse, {rows}),
                             view(logits, {rows, vocab}), view(targets, {rows}), Tensor(),
                             &correct);
  std::vector<std::vector<T>> shard_logits = split_columns(split, logits);
  const ShardedLoss<T> sharded = sharded_loss(ctx, split, shard_logits, targets);

  // The stats themselves, against their definitions.
  for (int64_t s = 0; s < split.shards(); ++s) {
    const int64_t begin = split.begin(s), width = split.width(s);
    for (int64_t i = 0; i < rows; ++i) {
      const T* stat = sharded.parts.data() + (s * rows + i) * kStats;
      if (targets[i] == ops::kIgnoreIndex) {
        EXPECT_EQ(std::vector<T>(stat, stat + kStats), std::vector<T>(kStats, T{0}));
        continue;
      }
      const T* z = shard_logits[s].data() + i * width;
      int64_t best = 0;
      double sum = 0;
      for (int64_t j = 0; j < width; ++j) {
        if (z[j] > z[best]) best = j;
        sum += std::exp(static_cast<double>(z[j]));
      }
      EXPECT_NEAR(stat[0], std::log(sum), tolerance * std::max(1.0, std::log(sum)));
      const bool mine = targets[i] >= begin && targets[i] < begin + width;
      EXPECT_EQ(stat[1], mine ? z[targets[i] - begin] : T{0});
      EXPECT_EQ(stat[2], z[best]);
      EXPECT_EQ(stat[3], static_cast<T>(begin + best));
    }
  }

  for (int64_t i = 0; i < rows; ++i) {
    const double scale = std::max(1.0, std::abs(static_cast<double>(lse[i])));
    EXPECT_NEAR(sharded.lse[i], lse[i], tolerance * scale) << "row " << i;
    EXPECT_NEAR(sharded.losses[i], losses[i], tolerance * scale) << "row " << i;
    if (targets[i] == ops::kIgnoreIndex) {
      EXPECT_EQ(sharded.lse[i], T{0});
      EXPECT_EQ(sharded.losses[i], T{0});
    }
  }
  EXPECT_EQ(sharded.correct, correct);
  EXPECT_EQ(sharded.correct, scalar_correct(logits, targets, vocab));
  EXPECT_GT(sharded.correct, 0);

  // Backward: the matching columns of the whole vocabulary's gradient, out of place and in place.
  const double dloss = 0.37;
  std::vector<T> dlogits(rows * vocab);
  ops::cross_entropy_backward(ctx, view(dlogits, {rows, vocab}), view(logits, {rows, vocab}),
                              view(lse, {rows}), view(targets, {rows}), Tensor(), dloss);
  std::vector<T> combined_lse = sharded.lse;
  for (int64_t s = 0; s < split.shards(); ++s) {
    const int64_t begin = split.begin(s), width = split.width(s);
    const Shape shape{rows, width};
    std::vector<T> separate(rows * width, T{7});  // overwritten
    ops::cross_entropy_backward_shard(ctx, view(separate, shape), view(shard_logits[s], shape),
                                      view(combined_lse, {rows}), view(targets, {rows}), begin,
                                      dloss);
    const std::vector<T> expected = columns(dlogits, rows, vocab, begin, begin + width);
    for (size_t k = 0; k < expected.size(); ++k) {
      ASSERT_NEAR(separate[k], expected[k], tolerance) << "shard " << s << " element " << k;
    }
    std::vector<T> in_place = shard_logits[s];
    ops::cross_entropy_backward_shard(ctx, view(in_place, shape), view(in_place, shape),
                                      view(combined_lse, {rows}), view(targets, {rows}), begin,
                                      dloss);
    EXPECT_EQ(in_place, separate) << "shard " << s;
  }
}

TEST_P(VocabParallel, CombinedStatsMatchTheWholeVocabulary) {
  {
    SCOPED_TRACE("f64");
    check_loss<double>(GetParam());
  }
  {
    SCOPED_TRACE("f32");
    check_loss<float>(GetParam());
  }
}

// The gradient of sum(combined losses) * dloss with respect to each shard's logits.
TEST_P(VocabParallel, ShardedLossGradient) {
  const VocabSplit& split = GetParam();
  const int64_t rows = split.rows;
  const double dloss = 0.37;
  OpContext ctx = cpu_context();
  std::vector<int32_t> targets = make_targets(split);
  std::vector<std::vector<double>> shard_logits =
      split_columns(split, make_logits(split, targets, 5));
  auto loss = [&] {
    const ShardedLoss<double> sharded = sharded_loss(ctx, split, shard_logits, targets);
    double total = 0;
    for (double value : sharded.losses) total += value;
    return dloss * total;
  };
  std::vector<double> lse = sharded_loss(ctx, split, shard_logits, targets).lse;
  for (int64_t s = 0; s < split.shards(); ++s) {
    const Shape shape{rows, split.width(s)};
    std::vector<double> dlogits(rows * split.width(s));
    ops::cross_entropy_backward_shard(ctx, view(dlogits, shape), view(shard_logits[s], shape),
                                      view(lse, {rows}), view(targets, {rows}), split.begin(s),
                                      dloss);
    expect_gradient("shard " + std::to_string(s) + " dlogits", shard_logits[s], dlogits, loss);
  }
}

INSTANTIATE_TEST_SUITE_P(Splits, VocabParallel,
                         ::testing::Values(VocabSplit{7, 5, {0, 13}}, VocabSplit{8, 4, {0, 5, 13}},
                                           VocabSplit{9, 3, {0, 11, 12, 29}},
                                           VocabSplit{1, 2, {0, 1, 3}},
                                           VocabSplit{2, 3, {0, 2, 3, 4}},
                                           VocabSplit{12, 6, {0, 100, 190, 257}}));

// ---- argmax rules ----------------------------------------------------------------------------

// Rows built for count_correct's rules at shard boundaries (shards [0, 3), [3, 4), [4, 10)): a NaN
// at column 0 keeps the argmax at 0; other NaNs, also one opening a shard or filling it, are
// skipped; ties, also across shards, go to the lowest column; -0 equals +0.
template <typename T>
void check_argmax_rules() {
  const int64_t rows = 10;
  const VocabSplit split{rows, 1, {0, 3, 4, 10}};
  const int64_t vocab = split.vocab();
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  std::vector<T> logits = converted<T>(random_values(rows * vocab, 6, 1.0));
  std::vector<int32_t> targets(rows);
  auto row = [&](int64_t i) { return logits.data() + i * vocab; };
  row(0)[0] = nan, targets[0] = 0;                 // correct
  row(1)[0] = nan, row(1)[5] = 9, targets[1] = 5;  // not correct
  row(2)[4] = nan, row(2)[7] = 9, targets[2] = 7;  // correct: the NaN opening shard 2 skipped
  row(3)[3] = nan, row(3)[8] = 9, targets[3] = 8;  // correct: shard 1 is all NaN
  row(4)[2] = 9, row(4)[3] = 9, targets[4] = 3;    // not correct: tie across shards 0 and 1
  row(5)[2] = 9, row(5)[3] = 9, targets[5] = 2;    // correct
  row(6)[1] = 9, row(6)[9] = 9, targets[6] = 9;    // not correct: tie across shards 0 and 2
  std::fill(row(7), row(7) + vocab, T{0});         // -0 first, +0 elsewhere
  row(7)[0] = -T{0}, targets[7] = 3;               // not correct
  std::fill(row(8), row(8) + vocab, -inf), targets[8] = 0;  // correct: nothing is greater
  std::fill(row(9) + 4, row(9) + vocab, nan);               // shard 2 all NaN
  row(9)[1] = 9, targets[9] = 1;                            // correct
  ASSERT_EQ(ops::count_correct(cpu_context(), view(logits, {rows, vocab}), view(targets, {rows})),
            6);

  std::vector<std::vector<T>> shard_logits = split_columns(split, logits);
  const ShardedLoss<T> sharded = sharded_loss(cpu_context(), split, shard_logits, targets);
  EXPECT_EQ(sharded.correct, 6);
  std::vector<T> losses(rows), lse(rows);
  int64_t correct = -1;
  ops::cross_entropy_forward(cpu_context(), view(losses, {rows}), view(lse, {rows}),
                             view(logits, {rows, vocab}), view(targets, {rows}), Tensor(),
                             &correct);
  EXPECT_EQ(correct, 6);
  // The documented stats of the NaN cases: row 0's first shard, row 3's NaN shard.
  EXPECT_TRUE(std::isnan(sharded.parts[0 * kStats + 2]));
  EXPECT_EQ(sharded.parts[0 * kStats + 3], T{0});
  const T* all_nan = sharded.parts.data() + (1 * rows + 3) * kStats;
  EXPECT_TRUE(std::isnan(all_nan[2]));
  EXPECT_EQ(all_nan[3], T{3});
}

TEST(VocabParallelArgmax, FollowsCountCorrect) {
  {
    SCOPED_TRACE("f64");
    check_argmax_rules<double>();
  }
  {
    SCOPED_TRACE("f32");
    check_argmax_rules<float>();
  }
}

// ---- threads ---------------------------------------------------------------------------------

TEST(VocabParallelThreads, SameBitsForAnyThreadCount) {
  const VocabSplit split{48, 1, {0, 3000, 5001, 8193}};  // large enough to split over threads
  const int64_t rows = split.rows;
  std::vector<int32_t> targets = make_targets(split);
  std::vector<std::vector<float>> shard_logits =
      split_columns(split, converted<float>(make_logits(split, targets, 7)));
  std::vector<std::vector<float>> results;
  for (int threads : {1, 3}) {
    ShardedLoss<float> sharded = sharded_loss(cpu_context(threads), split, shard_logits, targets);
    std::vector<float> all = sharded.parts;
    all.insert(all.end(), sharded.losses.begin(), sharded.losses.end());
    for (int64_t s = 0; s < split.shards(); ++s) {
      const Shape shape{rows, split.width(s)};
      std::vector<float> dlogits(rows * split.width(s));
      ops::cross_entropy_backward_shard(cpu_context(threads), view(dlogits, shape),
                                        view(shard_logits[s], shape), view(sharded.lse, {rows}),
                                        view(targets, {rows}), split.begin(s), 0.25);
      all.insert(all.end(), dlogits.begin(), dlogits.end());
    }
    results.push_back(all);
  }
  EXPECT_EQ(results[0], results[1]);
}

// ---- argument errors -------------------------------------------------------------------------

TEST(VocabParallelErrors, NameTheOpAndTheArgument) {
  OpContext ctx = cpu_context();
  const int64_t rows = 3;
  std::vector<float> logits32 = ft::testing::random_floats(rows * 2, 8);
  std::vector<double> logits = random_values(rows * 2, 8), stats(rows * kStats);
  std::vector<float> stats32(rows * kStats);
  std::vector<int32_t> targets = {1, ops::kIgnoreIndex, 0};

  // f32 column indices are exact below 2^24; f64 ones far beyond.
  const int64_t last_exact = (int64_t{1} << 24) - 2;
  ops::cross_entropy_shard_stats(ctx, view(stats32, {rows, kStats}), view(logits32, {rows, 2}),
                                 view(targets, {rows}), last_exact);
  EXPECT_EQ(stats32[3], static_cast<float>(last_exact + (logits32[1] > logits32[0])));
  expect_error_mentioning(
      [&] {
        ops::cross_entropy_shard_stats(ctx, view(stats32, {rows, kStats}),
                                       view(logits32, {rows, 2}), view(targets, {rows}),
                                       last_exact + 1);
      },
      "cross_entropy_shard_stats: the shard's columns end at 16777217, beyond 2^24");
  ops::cross_entropy_shard_stats(ctx, view(stats, {rows, kStats}), view(logits, {rows, 2}),
                                 view(targets, {rows}), int64_t{1} << 40);
  EXPECT_EQ(stats[3], static_cast<double>((int64_t{1} << 40) + (logits[1] > logits[0])));

  std::vector<int32_t> negative = {1, -5, 0};
  expect_error_mentioning(
      [&] {
        ops::cross_entropy_shard_stats(ctx, view(stats, {rows, kStats}), view(logits, {rows, 2}),
                                       view(negative, {rows}), 0);
      },
      "cross_entropy_shard_stats: targets[1] = -5 is negative and is not the ignore index -100");
  expect_error_mentioning(
      [&] {
        ops::cross_entropy_backward_shard(ctx, view(logits, {rows, 2}), view(logits, {rows, 2}),
                                          view(stats, {rows}), view(negative, {rows}), 0, 1.0);
      },
      "cross_entropy_backward_shard: targets[1] = -5");
  expect_error_mentioning(
      [&] {
        ops::cross_entropy_shard_stats(ctx, view(stats, {rows, kStats}), view(logits, {rows, 2}),
                                       view(targets, {rows}), -1);
      },
      "cross_entropy_shard_stats: argument vocab_begin is -1, expected >= 0");
  expect_error_mentioning(
      [&] {
        ops::cross_entropy_shard_stats(ctx, view(stats, {rows, kStats}),
                                       Tensor(logits.data(), DType::f64, {rows, 0}),
                                       view(targets, {rows}), 0);
      },
      "cross_entropy_shard_stats: argument logits has shape (3, 0): the shard has no columns");
  expect_error_mentioning(
      [&] {
        ops::cross_entropy_shard_stats(ctx, view(stats, {rows, 3}), view(logits, {rows, 2}),
                                       view(targets, {rows}), 0);
      },
      "cross_entropy_shard_stats: argument stats has shape (3, 3), expected (3, 4)");

  // Combine: parts (S, N, 4) whose argmax entries are column indices.
  std::vector<double> parts(2 * rows * kStats, 0.0), losses(rows), lse(rows);
  expect_error_mentioning(
      [&] {
        ops::cross_entropy_combine_shards(ctx, view(losses, {rows}), view(lse, {rows}),
                                          view(parts, {2, rows, 3}), view(targets, {rows}));
      },
      "cross_entropy_combine_shards: argument parts has shape (2, 3, 3), expected (2, 3, 4)");
  expect_error_mentioning(
      [&] {
        ops::cross_entropy_combine_shards(ctx, view(losses, {rows}), view(lse, {rows}),
                                          view(parts, {2 * rows * kStats}), view(targets, {rows}));
      },
      "cross_entropy_combine_shards: argument parts has shape (24), expected rank 3");
  parts[(1 * rows + 2) * kStats + 3] = 2.5;
  expect_error_mentioning(
      [&] {
        ops::cross_entropy_combine_shards(ctx, view(losses, {rows}), view(lse, {rows}),
                                          view(parts, {2, rows, kStats}), view(targets, {rows}));
      },
      "cross_entropy_combine_shards: parts[1, 2, 3] = 2.5 is not a column index");
  parts[(1 * rows + 2) * kStats + 3] = 0.0;
  parts[(1 * rows + 1) * kStats + 3] = -7;  // row 1 is ignored: its stats are never read
  ops::cross_entropy_combine_shards(ctx, view(losses, {rows}), view(lse, {rows}),
                                    view(parts, {2, rows, kStats}), view(targets, {rows}));

  // Embedding: the shard must fit in the vocabulary.
  std::vector<double> table = random_values(4 * 2, 9), out(rows * 2);
  std::vector<int32_t> ids = {0, 9, 5};
  expect_error_mentioning(
      [&] {
        ops::embedding_forward_shard(ctx, view(out, {rows, 2}), view(ids, {rows}),
                                     view(table, {4, 2}), 7, 10);
      },
      "embedding_forward_shard: the table's rows [7, 11) (vocab_begin 7, 4 rows) do not fit in "
      "the vocabulary's [0, 10)");
  expect_error_mentioning(
      [&] {
        ops::embedding_backward_shard(ctx, view(table, {4, 2}), view(ids, {rows}),
                                      view(out, {2, 3}), 0);
      },
      "embedding_backward_shard: argument dout has shape (2, 3), expected (3, 2)");
}

}  // namespace
}  // namespace ft
