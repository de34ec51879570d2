// The PEFT adapter ops (CPU): ReLU, tanh, LoRA's counter-based dropout and the column-block pair
// copy_columns / add_to_columns. fp64 finite-difference gradient checks; forward and backward
// values against plain loops in fp32 and fp64; the dropout mask's hash against splitmix64's
// published outputs, its independence of the thread count and its statistics, and column shards
// (tensor parallelism) against the whole tensor's mask; aliasing; and argument errors that name
// the op and the argument.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/adapter_cpu.h"
#include "kernels/ops.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using ft::testing::cpu_context;
using ft::testing::dot;
using ft::testing::expect_error_mentioning;
using ft::testing::expect_gradient;
using ft::testing::MatrixShape;
using ft::testing::random_values;
using ft::testing::view;

// The dropout mask written out from its definition (ops.h, adapter_cpu.h) with a floating-point
// compare, independently of the kernel's integer threshold: u = 53 bits of the (i + 1)-th output
// of splitmix64 seeded with mix(seed), kept iff u >= p.
uint64_t splitmix64_output(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
bool reference_keeps(uint64_t seed, int64_t index, double p) {
  const uint64_t state = splitmix64_output(seed);
  const uint64_t bits = splitmix64_output(state + 0x9e3779b97f4a7c15ull * (index + 1));
  const double u = static_cast<double>(bits >> 11) * 0x1.0p-53;
  return u >= p;
}

// Column-block test geometry for a (rows, cols) parameter: a block of about a third of the
// columns, off both edges when there is room.
struct ColumnBlock {
  int64_t width, offset;
};
ColumnBlock column_block(int64_t cols) {
  const int64_t width = std::max<int64_t>(1, cols / 3);
  return {width, (cols - width + 1) / 2};
}

// Inputs at least `margin` away from 0, where ReLU is not differentiable.
std::vector<double> away_from_zero(std::vector<double> values, double margin) {
  for (double& v : values) v = v < 0 ? v - margin : v + margin;
  return values;
}

// ---- fp64 finite-difference gradients --------------------------------------------------------

class AdapterGradient : public ::testing::TestWithParam<MatrixShape> {};

TEST_P(AdapterGradient, Relu) {
  const auto [rows, cols] = GetParam();
  OpContext ctx = cpu_context();
  const Shape shape{rows, cols};
  std::vector<double> x = away_from_zero(random_values(rows * cols, 1, 3.0), 0.05);
  std::vector<double> probe = random_values(rows * cols, 2);
  std::vector<double> out(rows * cols);
  auto loss = [&] {
    ops::relu_forward(ctx, view(out, shape), view(x, shape));
    return dot(out, probe);
  };
  std::vector<double> dx = random_values(rows * cols, 3);  // overwritten
  ops::relu_backward(ctx, view(dx, shape), view(probe, shape), view(x, shape));
  expect_gradient("dx", x, dx, loss);
}

TEST_P(AdapterGradient, Tanh) {
  const auto [rows, cols] = GetParam();
  OpContext ctx = cpu_context();
  const Shape shape{rows, cols};
  std::vector<double> x = random_values(rows * cols, 4, 2.5);
  std::vector<double> probe = random_values(rows * cols, 5);
  std::vector<double> out(rows * cols);
  auto loss = [&] {
    ops::tanh_forward(ctx, view(out, shape), view(x, shape));
    return dot(out, probe);
  };
  loss();  // the backward reads the saved output
  std::vector<double> dx = random_values(rows * cols, 6);
  ops::tanh_backward(ctx, view(dx, shape), view(probe, shape), view(out, shape));
  expect_gradient("dx", x, dx, loss);
}

TEST_P(AdapterGradient, Dropout) {
  const auto [rows, cols] = GetParam();
  OpContext ctx = cpu_context();
  const Shape shape{rows, cols};
  const double p = 0.3;
  const uint64_t seed = 0x5eed;
  std::vector<double> x = random_values(rows * cols, 7);
  std::vector<double> probe = random_values(rows * cols, 8);
  std::vector<double> out(rows * cols);
  auto loss = [&] {
    ops::dropout_forward(ctx, view(out, shape), view(x, shape), p, seed);
    return dot(out, probe);
  };
  std::vector<double> dx = random_values(rows * cols, 9);
  ops::dropout_backward(ctx, view(dx, shape), view(probe, shape), p, seed);
  expect_gradient("dx", x, dx, loss);
}

// copy_columns and add_to_columns are each other's backward: the gradient of sum(copy * probe)
// with respect to src is add_to_columns(0, probe), and the gradient of sum(add_to_columns(base,
// src) * probe) with respect to src is copy_columns(probe).
TEST_P(AdapterGradient, ColumnBlocks) {
  const auto [rows, cols] = GetParam();
  OpContext ctx = cpu_context();
  const auto [width, offset] = column_block(cols);
  const Shape wide{rows, cols}, narrow{rows, width};

  std::vector<double> src = random_values(rows * cols, 10);
  std::vector<double> probe = random_values(rows * width, 11);
  std::vector<double> block(rows * width);
  auto copy_loss = [&] {
    ops::copy_columns(ctx, view(block, narrow), view(src, wide), offset);
    return dot(block, probe);
  };
  std::vector<double> dsrc(rows * cols, 0.0);
  ops::add_to_columns(ctx, view(dsrc, wide), view(probe, narrow), offset);
  expect_gradient("copy_columns dsrc", src, dsrc, copy_loss);

  const std::vector<double> base = random_values(rows * cols, 12);
  std::vector<double> part = random_values(rows * width, 13);
  std::vector<double> wide_probe = random_values(rows * cols, 14);
  std::vector<double> sum(rows * cols);
  auto add_loss = [&] {
    sum = base;
    ops::add_to_columns(ctx, view(sum, wide), view(part, narrow), offset);
    return dot(sum, wide_probe);
  };
  std::vector<double> dpart = random_values(rows * width, 15);  // overwritten
  ops::copy_columns(ctx, view(dpart, narrow), view(wide_probe, wide), offset);
  expect_gradient("add_to_columns dsrc", part, dpart, add_loss);
}

INSTANTIATE_TEST_SUITE_P(Shapes, AdapterGradient,
                         ::testing::Values(MatrixShape{7, 13}, MatrixShape{1, 1},
                                           MatrixShape{4, 96}, MatrixShape{3, 5}));

// ---- values against plain loops, fp32 and fp64 ----------------------------------------------

template <typename T>
class AdapterValues : public ::testing::Test {};
using FloatTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(AdapterValues, FloatTypes);

template <typename T>
std::vector<T> random_of(size_t count, uint64_t seed, double scale) {
  std::vector<double> values = random_values(count, seed, scale);
  return std::vector<T>(values.begin(), values.end());
}

template <typename T>
Tensor view_of(std::vector<T>& values, Shape shape) {
  return Tensor(values.data(), dtype_of<T>(), shape);
}

// 96 x 1100 values: enough for the kernels to split over threads.
constexpr int64_t kRows = 96, kCols = 1100;

TYPED_TEST(AdapterValues, ReluAndTanh) {
  using T = TypeParam;
  const Shape shape{kRows, kCols};
  const size_t count = kRows * kCols;
  OpContext ctx = cpu_context(3);
  std::vector<T> x = random_of<T>(count, 20, 4.0), dout = random_of<T>(count, 21, 1.0);
  x[0] = T{0};
  x[1] = -T{0};
  std::vector<T> out(count), dx(count);

  ops::relu_forward(ctx, view_of(out, shape), view_of(x, shape));
  ops::relu_backward(ctx, view_of(dx, shape), view_of(dout, shape), view_of(x, shape));
  for (size_t i = 0; i < count; ++i) {
    ASSERT_EQ(out[i], x[i] > 0 ? x[i] : T{0}) << i;
    ASSERT_EQ(dx[i], x[i] > 0 ? dout[i] : T{0}) << i;
  }

  ops::tanh_forward(ctx, view_of(out, shape), view_of(x, shape));
  ops::tanh_backward(ctx, view_of(dx, shape), view_of(dout, shape), view_of(out, shape));
  const double tolerance = std::numeric_limits<T>::epsilon() * 4;
  for (size_t i = 0; i < count; ++i) {
    const double expected = std::tanh(static_cast<double>(x[i]));
    ASSERT_NEAR(out[i], expected, tolerance * std::max(1e-3, std::abs(expected))) << x[i];
    const double t = out[i];
    ASSERT_NEAR(dx[i], dout[i] * (1 - t * t), tolerance) << i;
  }
}

TYPED_TEST(AdapterValues, ReluKeepsNaN) {
  using T = TypeParam;
  std::vector<T> x = {std::numeric_limits<T>::quiet_NaN(), T{-1}, T{2}}, out(3);
  ops::relu_forward(cpu_context(), view_of(out, {1, 3}), view_of(x, {1, 3}));
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_EQ(out[1], T{0});
  EXPECT_EQ(out[2], T{2});
}

TYPED_TEST(AdapterValues, Dropout) {
  using T = TypeParam;
  const Shape shape{kRows, kCols};
  const size_t count = kRows * kCols;
  const double p = 0.3;
  const uint64_t seed = 42;
  const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
  OpContext ctx = cpu_context(3);
  std::vector<T> x = random_of<T>(count, 22, 2.0), out(count), dx(count);
  ops::dropout_forward(ctx, view_of(out, shape), view_of(x, shape), p, seed);
  ops::dropout_backward(ctx, view_of(dx, shape), view_of(x, shape), p, seed);
  for (size_t i = 0; i < count; ++i) {
    const T expected = reference_keeps(seed, i, p) ? x[i] * keep_scale : T{0};
    ASSERT_EQ(out[i], expected) << i;
    ASSERT_EQ(dx[i], expected) << i;
  }
}

// Tensor parallelism: a column shard (col_offset, full_cols) gets the matching columns of the
// whole tensor's mask, forward and backward, in place too; the whole width is the default mask.
TYPED_TEST(AdapterValues, DropoutColumnShardsMatchTheFullMask) {
  using T = TypeParam;
  const int64_t rows = kRows, full_cols = 301;
  const Shape full_shape{rows, full_cols};
  const double p = 0.35;
  const uint64_t seed = 2024;
  OpContext ctx = cpu_context(3);
  std::vector<T> x = random_of<T>(rows * full_cols, 25, 2.0);
  std::vector<T> dout = random_of<T>(rows * full_cols, 26, 1.0);
  std::vector<T> out(rows * full_cols), dx(rows * full_cols);
  ops::dropout_forward(ctx, view_of(out, full_shape), view_of(x, full_shape), p, seed);
  ops::dropout_backward(ctx, view_of(dx, full_shape), view_of(dout, full_shape), p, seed);
  auto columns = [&](const std::vector<T>& full, int64_t offset, int64_t width) {
    std::vector<T> block;
    for (int64_t r = 0; r < rows; ++r) {
      const auto row = full.begin() + r * full_cols + offset;
      block.insert(block.end(), row, row + width);
    }
    return block;
  };
  const ColumnBlock shards[] = {{full_cols, 0}, {100, 0}, {101, 100},
                                {100, 201},     {1, 300}, {7, 13}};
  for (const auto& [width, offset] : shards) {
    SCOPED_TRACE(::testing::Message() << "columns " << offset << " + " << width);
    const Shape shape{rows, width};
    std::vector<T> x_shard = columns(x, offset, width), dout_shard = columns(dout, offset, width);
    std::vector<T> out_shard(rows * width), dx_shard(rows * width);
    ops::dropout_forward(ctx, view_of(out_shard, shape), view_of(x_shard, shape), p, seed, offset,
                         full_cols);
    ops::dropout_backward(ctx, view_of(dx_shard, shape), view_of(dout_shard, shape), p, seed,
                          offset, full_cols);
    EXPECT_EQ(out_shard, columns(out, offset, width));
    EXPECT_EQ(dx_shard, columns(dx, offset, width));
    ops::dropout_forward(ctx, view_of(x_shard, shape), view_of(x_shard, shape), p, seed, offset,
                         full_cols);
    EXPECT_EQ(x_shard, out_shard);
  }
  // The shard's own flat mask differs: a shard that ignored its offset would drop other elements.
  std::vector<T> x_shard = columns(x, 100, 101), flat(rows * 101), placed(rows * 101);
  ops::dropout_forward(ctx, view_of(flat, {rows, 101}), view_of(x_shard, {rows, 101}), p, seed);
  ops::dropout_forward(ctx, view_of(placed, {rows, 101}), view_of(x_shard, {rows, 101}), p, seed,
                       100, full_cols);
  EXPECT_NE(flat, placed);
}

TYPED_TEST(AdapterValues, ColumnBlocks) {
  using T = TypeParam;
  const int64_t rows = kRows, cols = kCols, width = 128, offset = 700;
  OpContext ctx = cpu_context(3);
  std::vector<T> wide = random_of<T>(rows * cols, 23, 1.0), narrow(rows * width);
  ops::copy_columns(ctx, view_of(narrow, {rows, width}), view_of(wide, {rows, cols}), offset);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < width; ++j) {
      ASSERT_EQ(narrow[r * width + j], wide[r * cols + offset + j]) << r << ", " << j;
    }
  }
  const std::vector<T> before = wide;
  ops::add_to_columns(ctx, view_of(wide, {rows, cols}), view_of(narrow, {rows, width}), offset);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t i = r * cols + j;
      const bool inside = j >= offset && j < offset + width;
      const T expected = inside ? before[i] + narrow[r * width + j - offset] : before[i];
      ASSERT_EQ(wide[i], expected) << r << ", " << j;
    }
  }
}

TYPED_TEST(AdapterValues, ThreadCountsGiveTheSameBits) {
  using T = TypeParam;
  const Shape shape{kRows, kCols};
  const size_t count = kRows * kCols;
  std::vector<T> x = random_of<T>(count, 24, 3.0);
  std::vector<std::vector<T>> results;
  for (int threads : {1, 3}) {
    OpContext ctx = cpu_context(threads);
    std::vector<T> dropped(count), tanh_out(count), relu_out(count);
    ops::dropout_forward(ctx, view_of(dropped, shape), view_of(x, shape), 0.25, 7);
    ops::tanh_forward(ctx, view_of(tanh_out, shape), view_of(x, shape));
    ops::relu_forward(ctx, view_of(relu_out, shape), view_of(x, shape));
    results.push_back(dropped);
    results.push_back(tanh_out);
    results.push_back(relu_out);
  }
  EXPECT_EQ(results[0], results[3]) << "dropout";
  EXPECT_EQ(results[1], results[4]) << "tanh";
  EXPECT_EQ(results[2], results[5]) << "relu";
}

// ---- the dropout mask ------------------------------------------------------------------------

TEST(DropoutMask, HashIsSplitmix64) {
  // splitmix64 seeded with 1234567: its published first outputs (Vigna's splitmix64.c).
  const uint64_t expected[] = {6457827717110365317ull, 3203168211198807973ull,
                               9817491932198370423ull, 4593380528125082431ull,
                               16408922859458223821ull};
  for (uint64_t k = 0; k < 5; ++k) {
    EXPECT_EQ(cpu::dropout_draw(1234567, k), expected[k] >> 11) << k;
  }
  EXPECT_EQ(cpu::dropout_stream(1234567), splitmix64_output(1234567));
}

TEST(DropoutMask, ThresholdAgreesWithTheFloatingPointCompare) {
  for (double p : {0.0, 1e-300, 0x1.0p-53, 0.1, 0.3, 0.5, 0.7, 1 - 0x1.0p-53}) {
    const uint64_t threshold = cpu::dropout_threshold(p);
    for (uint64_t draw : {threshold - 1, threshold, threshold + 1}) {
      if (draw >= (uint64_t{1} << 53)) continue;
      EXPECT_EQ(draw >= threshold, static_cast<double>(draw) * 0x1.0p-53 >= p)
          << "p " << p << " draw " << draw;
    }
  }
  EXPECT_EQ(cpu::dropout_threshold(0.0), 0u);  // p = 0 keeps every element
}

// Fraction of nonzero values (x is all ones, so a zero is a dropped element).
double kept_fraction(const std::vector<double>& out) {
  int64_t kept = 0;
  for (double v : out) kept += v != 0;
  return static_cast<double>(kept) / static_cast<double>(out.size());
}

TEST(DropoutMask, KeepsOneMinusPAndScalesTheKept) {
  const int64_t count = 100000;
  std::vector<double> x(count, 1.0), out(count);
  for (double p : {0.1, 0.3, 0.5}) {
    ops::dropout_forward(cpu_context(2), view(out, {count}), view(x, {count}), p, 1234);
    EXPECT_NEAR(kept_fraction(out), 1 - p, 0.01) << "p " << p;
    for (double v : out) {
      if (v != 0) {
        ASSERT_EQ(v, 1.0 / (1.0 - p)) << "p " << p;
      }
    }
  }
}

TEST(DropoutMask, SameForAnyThreadCount) {
  const int64_t count = 100000;
  std::vector<double> x = random_values(count, 30), one(count), three(count), dx3(count);
  std::vector<float> x32(x.begin(), x.end()), one32(count), three32(count);
  ops::dropout_forward(cpu_context(1), view(one, {count}), view(x, {count}), 0.3, 99);
  ops::dropout_forward(cpu_context(3), view(three, {count}), view(x, {count}), 0.3, 99);
  ops::dropout_backward(cpu_context(3), view(dx3, {count}), view(x, {count}), 0.3, 99);
  EXPECT_EQ(one, three);
  EXPECT_EQ(one, dx3);  // the backward recomputes the forward's mask
  ops::dropout_forward(cpu_context(1), view(one32, {count}), view(x32, {count}), 0.3, 99);
  ops::dropout_forward(cpu_context(3), view(three32, {count}), view(x32, {count}), 0.3, 99);
  EXPECT_EQ(one32, three32);
  for (int64_t i = 0; i < count; ++i) ASSERT_EQ(one32[i] == 0, one[i] == 0) << i;
}

TEST(DropoutMask, DependsOnlyOnSeedAndIndex) {
  // The mask of a prefix is the prefix of the mask, whatever the shape.
  const int64_t rows = 40, cols = 50;
  std::vector<double> x = random_values(rows * cols, 31), whole(rows * cols), head(cols * 7);
  ops::dropout_forward(cpu_context(2), view(whole, {rows, cols}), view(x, {rows, cols}), 0.4, 5);
  ops::dropout_forward(cpu_context(2), view(head, {7, cols}), view(x, {7, cols}), 0.4, 5);
  EXPECT_EQ(head, std::vector<double>(whole.begin(), whole.begin() + 7 * cols));
}

TEST(DropoutMask, DifferentSeedsDropDifferentElements) {
  const int64_t count = 100000;
  std::vector<double> x(count, 1.0), a(count), b(count), c(count);
  ops::dropout_forward(cpu_context(), view(a, {count}), view(x, {count}), 0.3, 1);
  ops::dropout_forward(cpu_context(), view(b, {count}), view(x, {count}), 0.3, 2);
  ops::dropout_forward(cpu_context(), view(c, {count}), view(x, {count}), 0.3, 1ull << 40);
  // Independent masks disagree on 2 p (1 - p) = 42% of the elements.
  auto disagreement = [&](const std::vector<double>& u, const std::vector<double>& v) {
    int64_t differ = 0;
    for (int64_t i = 0; i < count; ++i) differ += (u[i] == 0) != (v[i] == 0);
    return static_cast<double>(differ) / count;
  };
  EXPECT_NEAR(disagreement(a, b), 0.42, 0.01);
  EXPECT_NEAR(disagreement(a, c), 0.42, 0.01);
  EXPECT_NEAR(disagreement(b, c), 0.42, 0.01);
}

TEST(DropoutMask, PZeroIsTheIdentity) {
  const int64_t count = 50000;
  std::vector<double> x = random_values(count, 32), out(count), dx(count);
  std::vector<float> x32(x.begin(), x.end()), out32(count);
  ops::dropout_forward(cpu_context(2), view(out, {count}), view(x, {count}), 0.0, 77);
  ops::dropout_backward(cpu_context(2), view(dx, {count}), view(x, {count}), 0.0, 77);
  ops::dropout_forward(cpu_context(2), view(out32, {count}), view(x32, {count}), 0.0, 77);
  EXPECT_EQ(out, x);
  EXPECT_EQ(dx, x);
  EXPECT_EQ(out32, x32);
}

TEST(DropoutMask, InPlace) {
  const int64_t rows = 64, cols = 1000;
  const Shape shape{rows, cols};
  std::vector<double> x = random_values(rows * cols, 33), separate(rows * cols);
  ops::dropout_forward(cpu_context(3), view(separate, shape), view(x, shape), 0.2, 11);
  std::vector<double> in_place = x;
  ops::dropout_forward(cpu_context(3), view(in_place, shape), view(in_place, shape), 0.2, 11);
  EXPECT_EQ(in_place, separate);

  std::vector<double> dout = random_values(rows * cols, 34), dx(rows * cols);
  ops::dropout_backward(cpu_context(3), view(dx, shape), view(dout, shape), 0.2, 11);
  ops::dropout_backward(cpu_context(3), view(dout, shape), view(dout, shape), 0.2, 11);
  EXPECT_EQ(dout, dx);
}

// ---- argument errors -------------------------------------------------------------------------

TEST(AdapterErrors, NameTheOpAndTheArgument) {
  OpContext ctx = cpu_context();
  std::vector<double> a = random_values(24, 40), b(24), c(24);
  std::vector<float> a32(24);

  expect_error_mentioning(
      [&] {
        ops::relu_forward(ctx, view(b, {4, 6}), view(a, {6, 4}));
      },
      "relu_forward: argument out has shape (4, 6), expected (6, 4)");
  expect_error_mentioning(
      [&] {
        ops::relu_backward(ctx, view(b, {4, 6}), view(a32, {4, 6}), view(a, {4, 6}));
      },
      "relu_backward: argument dout has dtype f32, expected f64");
  expect_error_mentioning(
      [&] {
        ops::tanh_forward(ctx, Tensor(), view(a, {4, 6}));
      },
      "tanh_forward: argument out is empty");
  expect_error_mentioning(
      [&] {
        ops::tanh_backward(ctx, view(b, {4, 6}), view(c, {24}), view(a, {4, 6}));
      },
      "tanh_backward: argument dout has shape (24)");

  for (double p : {1.0, -0.1, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    expect_error_mentioning(
        [&] {
          ops::dropout_forward(ctx, view(b, {4, 6}), view(a, {4, 6}), p, 1);
        },
        "dropout_forward: argument p");
    expect_error_mentioning(
        [&] {
          ops::dropout_backward(ctx, view(b, {4, 6}), view(a, {4, 6}), p, 1);
        },
        "dropout_backward: argument p");
  }
  expect_error_mentioning(
      [&] {
        ops::dropout_forward(ctx, view(b, {4, 6}), view(a, {3, 8}), 0.1, 1);
      },
      "dropout_forward: argument out has shape (4, 6), expected (3, 8)");

  // copy_columns: dst (R, w) from src (R, W).
  expect_error_mentioning(
      [&] {
        ops::copy_columns(ctx, view(b, {4, 3}), view(a, {4, 6}), 4);
      },
      "copy_columns: argument offset is 4: columns [4, 7) do not fit in the 6 columns of src");
  expect_error_mentioning(
      [&] {
        ops::copy_columns(ctx, view(b, {4, 3}), view(a, {4, 6}), -1);
      },
      "copy_columns: argument offset is -1");
  expect_error_mentioning(
      [&] {
        ops::copy_columns(ctx, view(b, {3, 2}), view(a, {4, 6}), 0);
      },
      "copy_columns: argument dst has shape (3, 2), expected (4, 2)");
  expect_error_mentioning(
      [&] {
        ops::copy_columns(ctx, view(b, {4, 2}), view(a, {24}), 0);
      },
      "copy_columns: argument src must be (R, W), got (24)");
  expect_error_mentioning(
      [&] {
        ops::copy_columns(ctx, view(a32, {4, 2}), view(a, {4, 6}), 0);
      },
      "copy_columns: argument dst has dtype f32");

  // add_to_columns: dst (R, W) += src (R, w) into columns [offset, offset + w).
  expect_error_mentioning(
      [&] {
        ops::add_to_columns(ctx, view(a, {4, 6}), view(b, {4, 4}), 3);
      },
      "add_to_columns: argument offset is 3: columns [3, 7) do not fit in the 6 columns of dst");
  expect_error_mentioning(
      [&] {
        ops::add_to_columns(ctx, view(a, {4, 6}), view(b, {2, 4}), 0);
      },
      "add_to_columns: argument src has shape (2, 4), expected (4, 4)");
  expect_error_mentioning(
      [&] {
        ops::add_to_columns(ctx, view(a, {4, 6}), Tensor(), 0);
      },
      "add_to_columns: argument src must be (R, w), got an empty tensor");
}

TEST(AdapterErrors, DropoutColumnShardArguments) {
  OpContext ctx = cpu_context();
  std::vector<double> a = random_values(24, 42), b(24);
  expect_error_mentioning(
      [&] {
        ops::dropout_forward(ctx, view(b, {4, 6}), view(a, {4, 6}), 0.1, 1, 5, 10);
      },
      "dropout_forward: argument col_offset is 5: columns [5, 11) of x do not fit in full_cols 10");
  expect_error_mentioning(
      [&] {
        ops::dropout_backward(ctx, view(b, {4, 6}), view(a, {4, 6}), 0.1, 1, -1, 10);
      },
      "dropout_backward: argument col_offset is -1: columns [-1, 5) of dout");
  expect_error_mentioning(
      [&] {
        ops::dropout_forward(ctx, view(b, {4, 6}), view(a, {4, 6}), 0.1, 1, 2, 0);
      },
      "dropout_forward: argument col_offset is 2 but full_cols is 0");
  expect_error_mentioning(
      [&] {
        ops::dropout_forward(ctx, view(b, {4, 6}), view(a, {4, 6}), 0.1, 1, 0, -6);
      },
      "dropout_forward: argument full_cols is -6, expected >= 0");
  expect_error_mentioning(
      [&] { ops::dropout_forward(ctx, view(b, {24}), view(a, {24}), 0.1, 1, 0, 30); },
      "dropout_forward: argument x must be (N, w) for a column shard, got (24)");
  // The whole width as a shard is the default mask.
  std::vector<double> c(24);
  ops::dropout_forward(ctx, view(b, {4, 6}), view(a, {4, 6}), 0.5, 3);
  ops::dropout_forward(ctx, view(c, {4, 6}), view(a, {4, 6}), 0.5, 3, 0, 6);
  EXPECT_EQ(b, c);
}

TEST(AdapterErrors, WholeWidthAndEmptyBlocksAreFine) {
  OpContext ctx = cpu_context();
  std::vector<double> a = random_values(24, 41), b(24);
  ops::copy_columns(ctx, view(b, {4, 6}), view(a, {4, 6}), 0);
  EXPECT_EQ(a, b);
  // A zero-width block at the right edge touches nothing.
  std::vector<double> before = a;
  ops::add_to_columns(ctx, view(a, {4, 6}), Tensor(b.data(), DType::f64, {4, 0}), 6);
  EXPECT_EQ(a, before);
}

}  // namespace
}  // namespace ft
