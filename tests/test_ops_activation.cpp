// SwiGLU and GELU ops (CPU): forward against the formulas, fp64 gradient checks, f32 (which uses
// the vectorizable exp) vs f64, saturation, thread-count independence and argument errors; and
// the accuracy of that exp itself.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_common.h"
#include "kernels/ops.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using ft::testing::cpu_context;
using ft::testing::expect_error_mentioning;
using ft::testing::MatrixShape;
using ft::testing::widen;

using ft::testing::dot;
using ft::testing::expect_gradient;
using ft::testing::random_floats;
using ft::testing::random_values;
using ft::testing::relative_l2;
using ft::testing::view;

double gelu_reference(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

class ActivationGradient : public ::testing::TestWithParam<MatrixShape> {};

TEST_P(ActivationGradient, SwiGlu) {
  const auto [rows, cols] = GetParam();
  OpContext ctx = cpu_context();
  const Shape shape{rows, cols};
  std::vector<double> gate = random_values(rows * cols, 1, 4.0);
  std::vector<double> up = random_values(rows * cols, 2, 2.0);
  std::vector<double> probe = random_values(rows * cols, 3);
  std::vector<double> out(rows * cols);
  auto loss = [&] {
    ops::swiglu_forward(ctx, view(out, shape), view(gate, shape), view(up, shape));
    return dot(out, probe);
  };
  loss();
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_NEAR(out[i], gate[i] / (1 + std::exp(-gate[i])) * up[i], 1e-14);
  }
  std::vector<double> dgate = random_values(rows * cols, 4), dup = random_values(rows * cols, 5);
  ops::swiglu_backward(ctx, view(dgate, shape), view(dup, shape), view(probe, shape),
                       view(gate, shape), view(up, shape));
  expect_gradient("dgate", gate, dgate, loss);
  expect_gradient("dup", up, dup, loss);
}

TEST_P(ActivationGradient, Gelu) {
  const auto [rows, cols] = GetParam();
  OpContext ctx = cpu_context();
  const Shape shape{rows, cols};
  std::vector<double> x = random_values(rows * cols, 6, 4.0);
  std::vector<double> probe = random_values(rows * cols, 7);
  std::vector<double> out(rows * cols);
  auto loss = [&] {
    ops::gelu_forward(ctx, view(out, shape), view(x, shape));
    return dot(out, probe);
  };
  loss();
  for (size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out[i], gelu_reference(x[i]), 1e-14);
  std::vector<double> dx = random_values(rows * cols, 8);
  ops::gelu_backward(ctx, view(dx, shape), view(probe, shape), view(x, shape));
  expect_gradient("dx", x, dx, loss);
}

INSTANTIATE_TEST_SUITE_P(Shapes, ActivationGradient,
                         ::testing::Values(MatrixShape{7, 13}, MatrixShape{1, 1},
                                           MatrixShape{4, 96}, MatrixShape{3, 5}));

TEST(Activation, Float32AgreesWithFloat64AndThreadCounts) {
  const int64_t rows = 64, cols = 1536;  // large enough to run on two threads
  const Shape shape{rows, cols};
  std::vector<double> a = random_values(rows * cols, 10, 8.0), b = random_values(rows * cols, 11);
  std::vector<double> dout = random_values(rows * cols, 12);
  std::vector<float> a32(a.begin(), a.end()), b32(b.begin(), b.end()),
      dout32(dout.begin(), dout.end());
  std::vector<double> out(rows * cols), d1(rows * cols), d2(rows * cols);
  std::vector<float> out32(rows * cols), d1_32(rows * cols), d2_32(rows * cols);
  std::vector<float> serial(rows * cols), serial_d1(rows * cols), serial_d2(rows * cols);
  OpContext ctx = cpu_context(2), serial_ctx = cpu_context(1);

  ops::swiglu_forward(ctx, view(out, shape), view(a, shape), view(b, shape));
  ops::swiglu_forward(ctx, view(out32, shape), view(a32, shape), view(b32, shape));
  ops::swiglu_forward(serial_ctx, view(serial, shape), view(a32, shape), view(b32, shape));
  EXPECT_LT(relative_l2(widen(out32), out), 1e-6);
  EXPECT_EQ(out32, serial);
  ops::swiglu_backward(ctx, view(d1, shape), view(d2, shape), view(dout, shape), view(a, shape),
                       view(b, shape));
  ops::swiglu_backward(ctx, view(d1_32, shape), view(d2_32, shape), view(dout32, shape),
                       view(a32, shape), view(b32, shape));
  ops::swiglu_backward(serial_ctx, view(serial_d1, shape), view(serial_d2, shape),
                       view(dout32, shape), view(a32, shape), view(b32, shape));
  EXPECT_LT(relative_l2(widen(d1_32), d1), 1e-6);
  EXPECT_LT(relative_l2(widen(d2_32), d2), 1e-6);
  EXPECT_EQ(d1_32, serial_d1);
  EXPECT_EQ(d2_32, serial_d2);

  ops::gelu_forward(ctx, view(out, shape), view(a, shape));
  ops::gelu_forward(ctx, view(out32, shape), view(a32, shape));
  ops::gelu_forward(serial_ctx, view(serial, shape), view(a32, shape));
  EXPECT_LT(relative_l2(widen(out32), out), 1e-6);
  EXPECT_EQ(out32, serial);
  ops::gelu_backward(ctx, view(d1, shape), view(dout, shape), view(a, shape));
  ops::gelu_backward(ctx, view(d1_32, shape), view(dout32, shape), view(a32, shape));
  EXPECT_LT(relative_l2(widen(d1_32), d1), 1e-6);
}

TEST(Activation, Float32SaturatesCleanly) {
  std::vector<float> x = {-200.0f, -30.0f, -10.0f, 0.0f, 1e-6f, 10.0f, 30.0f, 200.0f};
  const int64_t count = static_cast<int64_t>(x.size());
  std::vector<float> gelu(count), silu(count), ones(count, 1.0f);
  ops::gelu_forward(cpu_context(), view(gelu, {1, count}), view(x, {1, count}));
  ops::swiglu_forward(cpu_context(), view(silu, {1, count}), view(x, {1, count}),
                      view(ones, {1, count}));
  for (int64_t i = 0; i < count; ++i) {
    EXPECT_NEAR(gelu[i], gelu_reference(x[i]), 1e-6 * std::max(1.0f, std::abs(x[i]))) << x[i];
    EXPECT_NEAR(silu[i], x[i] / (1 + std::exp(-double{x[i]})),
                1e-6 * std::max(1.0f, std::abs(x[i])))
        << x[i];
  }
}

TEST(Activation, VectorizableExpIsAccurateAndKeepsSpecialValues) {
  double worst = 0.0;
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    double exact = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(cpu::exp_vectorizable(x) - exact) / exact);
  }
  EXPECT_LT(worst, 2e-7);
  EXPECT_EQ(cpu::exp_vectorizable(0.0f), 1.0f);
  EXPECT_LT(cpu::exp_vectorizable(-std::numeric_limits<float>::infinity()), 1e-37f);
  EXPECT_GT(cpu::exp_vectorizable(std::numeric_limits<float>::infinity()), 1e38f);
  EXPECT_TRUE(std::isnan(cpu::exp_vectorizable(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(cpu::tanh_vectorizable(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_NEAR(cpu::tanh_vectorizable(0.3f), std::tanh(0.3), 2e-7);
}

TEST(Activation, BadShapesNameTheArgument) {
  OpContext ctx = cpu_context();
  std::vector<double> a = random_values(12, 20), b = random_values(12, 21), out(12);
  std::vector<float> b32(12);
  expect_error_mentioning(
      [&] {
        ops::swiglu_forward(ctx, view(out, {3, 4}), view(a, {3, 4}), view(b, {4, 3}));
      },
      "swiglu_forward: argument up has shape (4, 3), expected (3, 4)");
  expect_error_mentioning(
      [&] {
        ops::swiglu_backward(ctx, view(out, {3, 4}), view(b32, {3, 4}), view(a, {3, 4}),
                             view(a, {3, 4}), view(b, {3, 4}));
      },
      "argument dup has dtype f32");
  expect_error_mentioning(
      [&] {
        ops::gelu_backward(ctx, view(out, {3, 4}), view(b, {12}), view(a, {3, 4}));
      },
      "argument dout");
}

}  // namespace
}  // namespace ft
