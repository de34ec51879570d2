// Cross-entropy ops (CPU): forward against the definition, fp64 gradient check of the logits
// gradient with weights and ignored rows, in-place backward, f32 vs f64, thread-count
// independence, the forward's correct-prediction count against count_correct and a scalar argmax,
// and target/shape errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using ft::testing::cpu_context;
using ft::testing::expect_error_mentioning;

using ft::testing::expect_gradient;
using ft::testing::random_values;
using ft::testing::relative_l2;
using ft::testing::view;

// Targets spread over the vocabulary, every third row ignored (when there are several rows).
std::vector<int32_t> make_targets(int64_t rows, int64_t vocab) {
  std::vector<int32_t> targets(rows);
  for (int64_t i = 0; i < rows; ++i) {
    targets[i] =
        (rows > 1 && i % 3 == 1) ? ops::kIgnoreIndex : static_cast<int32_t>((i * 7 + 1) % vocab);
  }
  return targets;
}

struct CrossEntropyShape {
  int64_t rows, vocab;
};
std::ostream& operator<<(std::ostream& out, const CrossEntropyShape& shape) {
  return out << shape.rows << "x" << shape.vocab;
}

class CrossEntropyGradient : public ::testing::TestWithParam<CrossEntropyShape> {};

TEST_P(CrossEntropyGradient, ForwardAndLogitsGradient) {
  const auto [rows, vocab] = GetParam();
  OpContext ctx = cpu_context();
  std::vector<double> logits = random_values(rows * vocab, 1, 5.0);
  std::vector<double> weights = random_values(rows, 2, 2.0);
  std::vector<int32_t> targets = make_targets(rows, vocab);
  std::vector<double> losses(rows), lse(rows);
  const double dloss = 0.37;
  auto forward = [&](Tensor row_weights) {
    ops::cross_entropy_forward(ctx, view(losses, {rows}), view(lse, {rows}),
                               view(logits, {rows, vocab}), view(targets, {rows}), row_weights);
  };

  for (bool weighted : {true, false}) {
    SCOPED_TRACE(weighted ? "weighted" : "unweighted");
    Tensor row_weights = weighted ? view(weights, {rows}) : Tensor();
    forward(row_weights);
    for (int64_t i = 0; i < rows; ++i) {
      if (targets[i] == ops::kIgnoreIndex) {
        EXPECT_EQ(losses[i], 0.0);
        continue;
      }
      double sum = 0;
      for (int64_t j = 0; j < vocab; ++j) sum += std::exp(logits[i * vocab + j]);
      double weight = weighted ? weights[i] : 1.0;
      EXPECT_NEAR(lse[i], std::log(sum), 1e-13);
      EXPECT_NEAR(losses[i], weight * (std::log(sum) - logits[i * vocab + targets[i]]), 1e-13);
    }
    auto loss = [&] {
      forward(row_weights);
      double total = 0;
      for (double value : losses) total += value;
      return dloss * total;
    };
    std::vector<double> dlogits = random_values(rows * vocab, 3);  // overwritten
    ops::cross_entropy_backward(ctx, view(dlogits, {rows, vocab}), view(logits, {rows, vocab}),
                                view(lse, {rows}), view(targets, {rows}), row_weights, dloss);
    expect_gradient("dlogits", logits, dlogits, loss);
    for (int64_t i = 0; i < rows; ++i) {
      if (targets[i] != ops::kIgnoreIndex) continue;
      for (int64_t j = 0; j < vocab; ++j) EXPECT_EQ(dlogits[i * vocab + j], 0.0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CrossEntropyGradient,
                         ::testing::Values(CrossEntropyShape{7, 13}, CrossEntropyShape{1, 1},
                                           CrossEntropyShape{5, 3}, CrossEntropyShape{4, 257}));

TEST(CrossEntropy, BackwardInPlaceEqualsSeparateOutput) {
  const int64_t rows = 9, vocab = 31;
  OpContext ctx = cpu_context();
  std::vector<double> logits = random_values(rows * vocab, 4, 3.0);
  std::vector<double> weights = random_values(rows, 5);
  std::vector<int32_t> targets = make_targets(rows, vocab);
  std::vector<double> losses(rows), lse(rows), separate(rows * vocab);
  ops::cross_entropy_forward(ctx, view(losses, {rows}), view(lse, {rows}),
                             view(logits, {rows, vocab}), view(targets, {rows}),
                             view(weights, {rows}));
  ops::cross_entropy_backward(ctx, view(separate, {rows, vocab}), view(logits, {rows, vocab}),
                              view(lse, {rows}), view(targets, {rows}), view(weights, {rows}), 0.5);
  ops::cross_entropy_backward(ctx, view(logits, {rows, vocab}), view(logits, {rows, vocab}),
                              view(lse, {rows}), view(targets, {rows}), view(weights, {rows}), 0.5);
  EXPECT_EQ(logits, separate);
}

TEST(CrossEntropy, Float32AgreesWithFloat64AndThreadCounts) {
  const int64_t rows = 48, vocab = 8192;  // the benchmark's vocabulary; splits over threads
  std::vector<double> logits = random_values(rows * vocab, 6, 8.0);
  std::vector<float> logits32(logits.begin(), logits.end());
  std::vector<int32_t> targets = make_targets(rows, vocab);
  std::vector<double> losses(rows), lse(rows), dlogits(rows * vocab);
  std::vector<float> losses32(rows), lse32(rows), dlogits32(rows * vocab);
  std::vector<float> serial_losses(rows), serial_lse(rows), serial_dlogits(rows * vocab);
  auto run = [&](const OpContext& ctx, auto& loss_out, auto& lse_out, auto& dlogits_out, auto& in) {
    ops::cross_entropy_forward(ctx, view(loss_out, {rows}), view(lse_out, {rows}),
                               view(in, {rows, vocab}), view(targets, {rows}), Tensor());
    ops::cross_entropy_backward(ctx, view(dlogits_out, {rows, vocab}), view(in, {rows, vocab}),
                                view(lse_out, {rows}), view(targets, {rows}), Tensor(), 1.0 / 7);
  };
  run(cpu_context(2), losses, lse, dlogits, logits);
  run(cpu_context(2), losses32, lse32, dlogits32, logits32);
  run(cpu_context(1), serial_losses, serial_lse, serial_dlogits, logits32);
  auto widen = [](const std::vector<float>& values) {
    return std::vector<double>(values.begin(), values.end());
  };
  EXPECT_LT(relative_l2(widen(losses32), losses), 1e-6);
  EXPECT_LT(relative_l2(widen(dlogits32), dlogits), 1e-5);
  EXPECT_EQ(losses32, serial_losses);
  EXPECT_EQ(dlogits32, serial_dlogits);
}

// Rows built to hit each argmax case: the target is the unique maximum, the maximum tied at a
// lower index than the target (ties go to the lowest index: not correct), the target tied at the
// lower index (correct), a NaN at index 0 (the argmax stays 0) or elsewhere (skipped), -0 vs +0,
// and ignored rows whose argmax matches (never counted).
template <typename T>
void check_correct_count(int threads) {
  const int64_t rows = 64, vocab = 8192;
  std::vector<double> values = random_values(rows * vocab, 9, 4.0);
  std::vector<T> logits(values.begin(), values.end());
  std::vector<int32_t> targets(rows);
  const T nan = std::numeric_limits<T>::quiet_NaN();
  for (int64_t i = 0; i < rows; ++i) {
    T* z = logits.data() + i * vocab;
    auto target = static_cast<int32_t>((i * 131 + 5) % vocab);
    targets[i] = target;
    switch (i % 8) {
      case 0:  // target is the unique maximum
        z[target] = T(100);
        break;
      case 1:  // tie at a lower index than the target
        z[target] = T(100);
        z[target / 2] = T(100);
        break;
      case 2:  // the target is the lower index of a tie
        z[target] = T(100);
        z[target + (vocab - target) / 2] = T(100);
        break;
      case 3:  // NaN at index 0: a scalar argmax stays at 0
        z[0] = nan;
        targets[i] = i % 16 == 3 ? 0 : target;
        break;
      case 4:  // NaN elsewhere is skipped
        z[target] = T(100);
        z[vocab - 1] = nan;
        break;
      case 5:  // a row of zeros with -0 first: index 0 wins
        std::fill(z, z + vocab, T(0));
        z[0] = T(-0.0);
        targets[i] = i % 16 == 5 ? 0 : 1;
        break;
      case 6:  // ignored, though its argmax would be "correct"
        z[0] = T(100);
        targets[i] = ops::kIgnoreIndex;
        break;
      default:  // random row: the target is (almost surely) not the maximum
        break;
    }
  }
  // A scalar argmax, exactly as the definition reads.
  int64_t expected = 0;
  for (int64_t i = 0; i < rows; ++i) {
    if (targets[i] == ops::kIgnoreIndex) continue;
    const T* z = logits.data() + i * vocab;
    int64_t best = 0;
    for (int64_t j = 1; j < vocab; ++j)
      if (z[j] > z[best]) best = j;
    expected += best == targets[i];
  }
  ASSERT_EQ(expected, 32);  // 8 rows each of kinds 0, 2, 4, 4 each of 3 and 5, none by chance
  OpContext ctx = cpu_context(threads);
  std::vector<T> losses(rows), lse(rows);
  int64_t fused = -1;
  ops::cross_entropy_forward(ctx, view(losses, {rows}), view(lse, {rows}),
                             view(logits, {rows, vocab}), view(targets, {rows}), Tensor(), &fused);
  EXPECT_EQ(fused, expected);
  EXPECT_EQ(ops::count_correct(ctx, view(logits, {rows, vocab}), view(targets, {rows})), expected);
}

TEST(CrossEntropy, ForwardCountsCorrectPredictionsLikeScalarArgmax) {
  for (int threads : {1, 2}) {
    check_correct_count<float>(threads);
    check_correct_count<double>(threads);
  }
}

TEST(CrossEntropy, TargetOutsideVocabularyNamesRowAndValue) {
  OpContext ctx = cpu_context();
  std::vector<double> logits = random_values(3 * 4, 7), losses(3), lse(3);
  std::vector<int32_t> targets = {1, ops::kIgnoreIndex, 4};
  expect_error_mentioning(
      [&] {
        ops::cross_entropy_forward(ctx, view(losses, {3}), view(lse, {3}), view(logits, {3, 4}),
                                   view(targets, {3}), Tensor());
      },
      "targets[2] = 4 is outside [0, 4)");
  targets[2] = -7;
  expect_error_mentioning(
      [&] {
        ops::cross_entropy_backward(ctx, view(logits, {3, 4}), view(logits, {3, 4}), view(lse, {3}),
                                    view(targets, {3}), Tensor(), 1.0);
      },
      "targets[2] = -7");
}

TEST(CrossEntropy, BadShapesNameTheArgument) {
  OpContext ctx = cpu_context();
  std::vector<double> logits = random_values(3 * 4, 8), losses(3), lse(3), weights(3);
  std::vector<float> targets_f(3);
  std::vector<int32_t> targets = {0, 1, 2};
  expect_error_mentioning(
      [&] {
        ops::cross_entropy_forward(ctx, view(losses, {3}), view(lse, {3}), view(logits, {3, 4}),
                                   view(targets, {3}), view(weights, {1, 3}));
      },
      "argument weights has shape (1, 3), expected (3)");
  expect_error_mentioning(
      [&] {
        ops::cross_entropy_forward(ctx, view(losses, {3}), view(lse, {3}), view(logits, {3, 4}),
                                   view(targets_f, {3}), Tensor());
      },
      "argument targets has dtype f32, expected i32");
  expect_error_mentioning(
      [&] {
        ops::cross_entropy_backward(ctx, view(logits, {4, 3}), view(logits, {3, 4}), view(lse, {3}),
                                    view(targets, {3}), Tensor(), 1.0);
      },
      "argument dlogits has shape (4, 3)");
}

}  // namespace
}  // namespace ft
