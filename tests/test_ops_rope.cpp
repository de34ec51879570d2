// RoPE ops (CPU): tables and Llama 3 frequency scaling against hand-computed values, forward
// against Hugging Face's rotate_half formula, fp64 gradient check of the backward, backward
// inverting forward, f32 vs f64 and argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/cpu/rope_cpu.h"
#include "kernels/ops.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using ft::testing::cpu_context;
using ft::testing::expect_error_mentioning;

using ft::testing::dot;
using ft::testing::expect_gradient;
using ft::testing::random_values;
using ft::testing::relative_l2;
using ft::testing::view;

// Positions in any order, with repeats, all below max_positions.
std::vector<int32_t> scattered_positions(int64_t rows, int64_t max_positions) {
  std::vector<int32_t> positions(rows);
  for (int64_t i = 0; i < rows; ++i)
    positions[i] = static_cast<int32_t>((i * 7 + 2) % max_positions);
  return positions;
}

struct Tables {
  std::vector<double> cos, sin;
  Tables(int64_t max_positions, int64_t half_dim, double theta, const ops::RopeScaling& scaling)
      : cos(max_positions * half_dim), sin(max_positions * half_dim) {
    ops::rope_build_tables(cpu_context(), view(cos, {max_positions, half_dim}),
                           view(sin, {max_positions, half_dim}), theta, scaling);
  }
};

TEST(Rope, TablesHoldPositionTimesInverseFrequency) {
  const int64_t max_positions = 17, head_dim = 10, half_dim = 5;
  const double theta = 10000.0;
  Tables tables(max_positions, half_dim, theta, {});
  for (int64_t p = 0; p < max_positions; ++p) {
    for (int64_t i = 0; i < half_dim; ++i) {
      double angle = p * std::pow(theta, -2.0 * i / head_dim);
      EXPECT_NEAR(tables.cos[p * half_dim + i], std::cos(angle), 1e-14);
      EXPECT_NEAR(tables.sin[p * half_dim + i], std::sin(angle), 1e-14);
    }
  }
  std::vector<float> cos32(max_positions * half_dim), sin32(max_positions * half_dim);
  ops::rope_build_tables(cpu_context(), view(cos32, {max_positions, half_dim}),
                         view(sin32, {max_positions, half_dim}), theta, {});
  for (size_t i = 0; i < cos32.size(); ++i) {
    EXPECT_EQ(cos32[i], static_cast<float>(tables.cos[i]));
    EXPECT_EQ(sin32[i], static_cast<float>(tables.sin[i]));
  }
}

TEST(Rope, Llama3ScalingMatchesHandComputedFrequencies) {
  // head_dim 8, theta 1e4: unscaled inv_freq = 1, 0.1, 0.01, 0.001, wavelengths 2 pi / inv_freq =
  // 6.28, 62.8, 628, 6283. With original context 64, low_freq_factor 1, high_freq_factor 4:
  // low_freq_wavelen = 64, high_freq_wavelen = 16. So 1 stays (high band), 0.01 and 0.001 are
  // divided by factor 8 (low band), and 0.1 is interpolated:
  // smooth = (64 / 62.83 - 1) / (4 - 1) = 0.0061972119, (1 - smooth) * 0.1 / 8 + smooth * 0.1.
  ops::RopeScaling scaling;
  scaling.factor = 8.0;
  scaling.low_freq_factor = 1.0;
  scaling.high_freq_factor = 4.0;
  scaling.original_max_position_embeddings = 64;
  std::vector<double> inv_freq = cpu::rope_inverse_frequencies(8, 10000.0, scaling);
  ASSERT_EQ(inv_freq.size(), 4u);
  EXPECT_NEAR(inv_freq[0], 1.0, 1e-15);
  EXPECT_NEAR(inv_freq[1], 0.013042256043820463, 1e-15);
  EXPECT_NEAR(inv_freq[2], 0.00125, 1e-15);
  EXPECT_NEAR(inv_freq[3], 0.000125, 1e-15);

  // The tables use the scaled frequencies.
  Tables tables(3, 4, 10000.0, scaling);
  for (int64_t i = 0; i < 4; ++i)
    EXPECT_NEAR(tables.sin[2 * 4 + i], std::sin(2 * inv_freq[i]), 1e-15);

  // factor <= 0 disables scaling.
  std::vector<double> plain = cpu::rope_inverse_frequencies(8, 10000.0, {});
  EXPECT_NEAR(plain[1], 0.1, 1e-15);
  EXPECT_NEAR(plain[3], 0.001, 1e-15);
}

struct RopeShape {
  int64_t rows, heads, head_dim, max_positions;
};
std::ostream& operator<<(std::ostream& out, const RopeShape& shape) {
  return out << shape.rows << "x" << shape.heads << "x" << shape.head_dim << " positions "
             << shape.max_positions;
}

class RopeGradient : public ::testing::TestWithParam<RopeShape> {};

TEST_P(RopeGradient, ForwardMatchesRotateHalfAndBackwardIsItsGradient) {
  const auto [rows, heads, head_dim, max_positions] = GetParam();
  const int64_t half_dim = head_dim / 2;
  OpContext ctx = cpu_context();
  Tables tables(max_positions, half_dim, 500.0, {});
  std::vector<int32_t> positions = scattered_positions(rows, max_positions);
  const Shape shape{rows, heads, head_dim};
  auto cos = view(tables.cos, {max_positions, half_dim});
  auto sin = view(tables.sin, {max_positions, half_dim});

  // Forward: x cos + rotate_half(x) sin, rotate_half(x) = [-x2, x1], from the tables' angles.
  std::vector<double> x = random_values(rows * heads * head_dim, 1);
  std::vector<double> rotated = x;
  ops::rope_forward(ctx, view(rotated, shape), view(positions, {rows}), cos, sin);
  for (int64_t n = 0; n < rows; ++n) {
    for (int64_t h = 0; h < heads; ++h) {
      const double* in = x.data() + (n * heads + h) * head_dim;
      const double* out = rotated.data() + (n * heads + h) * head_dim;
      for (int64_t i = 0; i < head_dim; ++i) {
        int64_t k = i % half_dim;
        double angle = positions[n] * std::pow(500.0, -2.0 * k / head_dim);
        double rotate_half = i < half_dim ? -in[i + half_dim] : in[i - half_dim];
        EXPECT_NEAR(out[i], in[i] * std::cos(angle) + rotate_half * std::sin(angle), 1e-13);
      }
    }
  }

  // Backward: the gradient of sum(rope(x) * probe) with respect to x, computed in place.
  std::vector<double> probe = random_values(rows * heads * head_dim, 2);
  std::vector<double> dx = probe;
  ops::rope_backward(ctx, view(dx, shape), view(positions, {rows}), cos, sin);
  std::vector<double> out(x.size());
  auto loss = [&] {
    out = x;
    ops::rope_forward(ctx, view(out, shape), view(positions, {rows}), cos, sin);
    return dot(out, probe);
  };
  expect_gradient("dx", x, dx, loss);

  // The rotation is orthogonal: backward undoes forward.
  std::vector<double> round_trip = rotated;
  ops::rope_backward(ctx, view(round_trip, shape), view(positions, {rows}), cos, sin);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(round_trip[i], x[i], 1e-13);
}

INSTANTIATE_TEST_SUITE_P(Shapes, RopeGradient,
                         ::testing::Values(RopeShape{7, 3, 10, 13}, RopeShape{1, 1, 2, 1},
                                           RopeShape{5, 2, 64, 9}, RopeShape{11, 4, 6, 40}));

TEST(Rope, Float32AgreesWithFloat64AndThreadCounts) {
  const int64_t rows = 200, heads = 6, head_dim = 64, max_positions = 256;
  Tables tables(max_positions, head_dim / 2, 10000.0, {});
  std::vector<float> cos32(tables.cos.begin(), tables.cos.end());
  std::vector<float> sin32(tables.sin.begin(), tables.sin.end());
  std::vector<int32_t> positions = scattered_positions(rows, max_positions);
  std::vector<double> x = random_values(rows * heads * head_dim, 3);
  std::vector<float> x32(x.begin(), x.end()), x32_serial = x32;
  const Shape shape{rows, heads, head_dim};
  const Shape table_shape{max_positions, head_dim / 2};
  ops::rope_forward(cpu_context(2), view(x, shape), view(positions, {rows}),
                    view(tables.cos, table_shape), view(tables.sin, table_shape));
  ops::rope_forward(cpu_context(2), view(x32, shape), view(positions, {rows}),
                    view(cos32, table_shape), view(sin32, table_shape));
  ops::rope_forward(cpu_context(1), view(x32_serial, shape), view(positions, {rows}),
                    view(cos32, table_shape), view(sin32, table_shape));
  EXPECT_LT(relative_l2(std::vector<double>(x32.begin(), x32.end()), x), 1e-6);
  EXPECT_EQ(x32, x32_serial);
}

TEST(Rope, ArgumentErrorsNameTheArgument) {
  OpContext ctx = cpu_context();
  Tables tables(4, 3, 10000.0, {});
  std::vector<int32_t> positions = {0, 3};
  std::vector<double> x = random_values(2 * 2 * 6, 4);
  auto cos = view(tables.cos, {4, 3});
  auto sin = view(tables.sin, {4, 3});
  expect_error_mentioning(
      [&] {
        ops::rope_forward(ctx, view(x, {2, 3, 4}), view(positions, {2}), cos, sin);
      },
      "argument cos has shape (4, 3), expected (4, 2)");
  expect_error_mentioning(
      [&] {
        ops::rope_forward(ctx, view(x, {2, 8, 3}), view(positions, {2}), cos, sin);
      },
      "argument x has shape (2, 8, 3): head_dim must be even");
  expect_error_mentioning(
      [&] {
        ops::rope_backward(ctx, view(x, {2, 2, 6}), view(positions, {2}), cos,
                           view(tables.sin, {3, 4}));
      },
      "argument sin has shape (3, 4)");
  expect_error_mentioning(
      [&] {
        ops::rope_forward(ctx, view(x, {4, 6}), view(positions, {2}), cos, sin);
      },
      "argument x has shape (4, 6), expected rank 3");
  positions[1] = 4;
  std::vector<double> before = x;
  expect_error_mentioning(
      [&] {
        ops::rope_forward(ctx, view(x, {2, 2, 6}), view(positions, {2}), cos, sin);
      },
      "positions[1] = 4");
  EXPECT_EQ(x, before);
}

}  // namespace
}  // namespace ft
