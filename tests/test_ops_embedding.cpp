// Embedding op (CPU): lookup values, fp64 gradient check of the accumulated table gradient with
// repeated ids, frozen table, thread-count independence and argument errors.
#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using ft::testing::cpu_context;
using ft::testing::expect_error_mentioning;

using ft::testing::dot;
using ft::testing::expect_gradient;
using ft::testing::random_values;
using ft::testing::view;

// Ids with repeats, so the scatter must add rows onto the same table row.
std::vector<int32_t> repeating_ids(int64_t rows, int64_t vocab) {
  std::vector<int32_t> ids(rows);
  for (int64_t i = 0; i < rows; ++i) ids[i] = static_cast<int32_t>((i * 5 + 3) % vocab);
  return ids;
}

struct EmbeddingShape {
  int64_t rows, vocab, cols;
};
std::ostream& operator<<(std::ostream& out, const EmbeddingShape& shape) {
  return out << shape.rows << "x" << shape.vocab << "x" << shape.cols;
}

class EmbeddingGradient : public ::testing::TestWithParam<EmbeddingShape> {};

TEST_P(EmbeddingGradient, TableGradientAccumulates) {
  const auto [rows, vocab, cols] = GetParam();
  OpContext ctx = cpu_context();
  std::vector<int32_t> ids = repeating_ids(rows, vocab);
  std::vector<double> table = random_values(vocab * cols, 1);
  std::vector<double> probe = random_values(rows * cols, 2);
  std::vector<double> out(rows * cols);

  auto loss = [&] {
    ops::embedding_forward(ctx, view(out, {rows, cols}), view(ids, {rows}),
                           view(table, {vocab, cols}));
    return dot(out, probe);
  };
  std::vector<double> initial = random_values(vocab * cols, 3);
  std::vector<double> dtable = initial;
  ops::embedding_backward(ctx, view(dtable, {vocab, cols}), view(ids, {rows}),
                          view(probe, {rows, cols}));
  std::vector<double> gradient(vocab * cols);
  for (size_t i = 0; i < gradient.size(); ++i) gradient[i] = dtable[i] - initial[i];
  expect_gradient("dtable", table, gradient, loss);
}

INSTANTIATE_TEST_SUITE_P(Shapes, EmbeddingGradient,
                         ::testing::Values(EmbeddingShape{7, 11, 13}, EmbeddingShape{1, 1, 1},
                                           EmbeddingShape{20, 3, 5}, EmbeddingShape{9, 40, 64}));

TEST(Embedding, ForwardCopiesRowsInBothPrecisions) {
  const int64_t rows = 7, vocab = 11, cols = 13;
  OpContext ctx = cpu_context();
  std::vector<int32_t> ids = repeating_ids(rows, vocab);
  std::vector<double> table = random_values(vocab * cols, 4);
  std::vector<float> table32(table.begin(), table.end());
  std::vector<double> out(rows * cols);
  std::vector<float> out32(rows * cols);
  ops::embedding_forward(ctx, view(out, {rows, cols}), view(ids, {rows}),
                         view(table, {vocab, cols}));
  ops::embedding_forward(ctx, view(out32, {rows, cols}), view(ids, {rows}),
                         view(table32, {vocab, cols}));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      EXPECT_EQ(out[i * cols + j], table[ids[i] * cols + j]);
      EXPECT_EQ(out32[i * cols + j], static_cast<float>(table[ids[i] * cols + j]));
    }
  }
}

TEST(Embedding, ThreadCountDoesNotChangeResults) {
  const int64_t rows = 300, vocab = 50, cols = 256;
  std::vector<int32_t> ids = repeating_ids(rows, vocab);
  std::vector<float> table = ft::testing::random_floats(vocab * cols, 5);
  std::vector<float> dout = ft::testing::random_floats(rows * cols, 6);
  std::vector<float> out1(rows * cols), out2(rows * cols);
  std::vector<float> dtable1 = ft::testing::random_floats(vocab * cols, 7), dtable2 = dtable1;
  ops::embedding_forward(cpu_context(1), view(out1, {rows, cols}), view(ids, {rows}),
                         view(table, {vocab, cols}));
  ops::embedding_forward(cpu_context(2), view(out2, {rows, cols}), view(ids, {rows}),
                         view(table, {vocab, cols}));
  ops::embedding_backward(cpu_context(1), view(dtable1, {vocab, cols}), view(ids, {rows}),
                          view(dout, {rows, cols}));
  ops::embedding_backward(cpu_context(2), view(dtable2, {vocab, cols}), view(ids, {rows}),
                          view(dout, {rows, cols}));
  EXPECT_EQ(out1, out2);
  EXPECT_EQ(dtable1, dtable2);
}

TEST(Embedding, FrozenTableIsSkipped) {
  std::vector<int32_t> ids = {0, 1};
  std::vector<double> dout = random_values(2 * 3, 8);
  EXPECT_NO_THROW(
      ops::embedding_backward(cpu_context(), Tensor(), view(ids, {2}), view(dout, {2, 3})));
}

TEST(Embedding, IdOutsideTableIsAnErrorNamingIt) {
  std::vector<int32_t> ids = {0, 4, 2};
  std::vector<double> table = random_values(4 * 3, 9);
  std::vector<double> out = random_values(3 * 3, 10);
  const std::vector<double> before = out;
  expect_error_mentioning(
      [&] {
        ops::embedding_forward(cpu_context(), view(out, {3, 3}), view(ids, {3}),
                               view(table, {4, 3}));
      },
      "ids[1] = 4");
  EXPECT_EQ(out, before);  // nothing written
  ids[1] = -1;
  std::vector<double> dtable = random_values(4 * 3, 11);
  expect_error_mentioning(
      [&] {
        ops::embedding_backward(cpu_context(), view(dtable, {4, 3}), view(ids, {3}),
                                view(out, {3, 3}));
      },
      "ids[1] = -1");
}

TEST(Embedding, BadShapesNameTheArgument) {
  std::vector<int32_t> ids = {0, 1, 2};
  std::vector<double> table = random_values(4 * 3, 12);
  std::vector<double> out = random_values(3 * 3, 13);
  std::vector<float> out32(9);
  expect_error_mentioning(
      [&] {
        ops::embedding_forward(cpu_context(), view(out, {3, 2}), view(ids, {3}),
                               view(table, {4, 3}));
      },
      "argument out has shape (3, 2)");
  expect_error_mentioning(
      [&] {
        ops::embedding_forward(cpu_context(), view(out32, {3, 3}), view(ids, {3}),
                               view(table, {4, 3}));
      },
      "argument out has dtype f32");
  expect_error_mentioning(
      [&] {
        ops::embedding_backward(cpu_context(), view(table, {4, 3}), view(ids, {3}), view(out, {9}));
      },
      "argument dout");
}

}  // namespace
}  // namespace ft
