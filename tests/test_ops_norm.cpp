// RMSNorm and LayerNorm ops (CPU): forward against the definitions, fp64 gradient checks of
// dx (overwritten) and of dweight/dbias (accumulated), frozen and absent parameters, f32 vs f64,
// thread-count independence and argument errors.
#include <gtest/gtest.h>

#include <cmath>
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
using ft::testing::MatrixShape;

using ft::testing::dot;
using ft::testing::expect_gradient;
using ft::testing::random_floats;
using ft::testing::random_values;
using ft::testing::relative_l2;
using ft::testing::view;

constexpr double kEps = 1e-5;

std::vector<double> minus(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> result(a.size());
  for (size_t i = 0; i < a.size(); ++i) result[i] = a[i] - b[i];
  return result;
}

class NormGradient : public ::testing::TestWithParam<MatrixShape> {};

TEST_P(NormGradient, RmsNorm) {
  const auto [rows, cols] = GetParam();
  OpContext ctx = cpu_context();
  std::vector<double> x = random_values(rows * cols, 1);
  std::vector<double> weight = random_values(cols, 2, 2.0);
  std::vector<double> probe = random_values(rows * cols, 3);
  std::vector<double> out(rows * cols), rstd(rows);
  auto forward = [&] {
    ops::rmsnorm_forward(ctx, view(out, {rows, cols}), view(rstd, {rows}), view(x, {rows, cols}),
                         view(weight, {cols}), kEps);
  };
  auto loss = [&] {
    forward();
    return dot(out, probe);
  };
  forward();
  std::vector<double> dx = random_values(rows * cols, 4);  // overwritten
  std::vector<double> initial_dweight = random_values(cols, 5);
  std::vector<double> dweight = initial_dweight;
  ops::rmsnorm_backward(ctx, view(dx, {rows, cols}), view(dweight, {cols}),
                        view(probe, {rows, cols}), view(x, {rows, cols}), view(weight, {cols}),
                        view(rstd, {rows}));
  expect_gradient("dx", x, dx, loss);
  expect_gradient("dweight", weight, minus(dweight, initial_dweight), loss);

  // A frozen weight changes nothing about dx.
  std::vector<double> dx_frozen(rows * cols);
  ops::rmsnorm_backward(ctx, view(dx_frozen, {rows, cols}), Tensor(), view(probe, {rows, cols}),
                        view(x, {rows, cols}), view(weight, {cols}), view(rstd, {rows}));
  EXPECT_EQ(dx_frozen, dx);
}

TEST_P(NormGradient, LayerNormWithBias) {
  const auto [rows, cols] = GetParam();
  OpContext ctx = cpu_context();
  std::vector<double> x = random_values(rows * cols, 6);
  std::vector<double> weight = random_values(cols, 7, 2.0);
  std::vector<double> bias = random_values(cols, 8);
  std::vector<double> probe = random_values(rows * cols, 9);
  std::vector<double> out(rows * cols), mean(rows), rstd(rows);
  auto forward = [&] {
    ops::layernorm_forward(ctx, view(out, {rows, cols}), view(mean, {rows}), view(rstd, {rows}),
                           view(x, {rows, cols}), view(weight, {cols}), view(bias, {cols}), kEps);
  };
  auto loss = [&] {
    forward();
    return dot(out, probe);
  };
  forward();
  std::vector<double> dx = random_values(rows * cols, 10);
  std::vector<double> initial_dweight = random_values(cols, 11), dweight = initial_dweight;
  std::vector<double> initial_dbias = random_values(cols, 12), dbias = initial_dbias;
  ops::layernorm_backward(ctx, view(dx, {rows, cols}), view(dweight, {cols}), view(dbias, {cols}),
                          view(probe, {rows, cols}), view(x, {rows, cols}), view(weight, {cols}),
                          view(mean, {rows}), view(rstd, {rows}));
  expect_gradient("dx", x, dx, loss);
  expect_gradient("dweight", weight, minus(dweight, initial_dweight), loss);
  expect_gradient("dbias", bias, minus(dbias, initial_dbias), loss);
}

TEST_P(NormGradient, LayerNormWithoutBias) {
  const auto [rows, cols] = GetParam();
  OpContext ctx = cpu_context();
  std::vector<double> x = random_values(rows * cols, 13);
  std::vector<double> weight = random_values(cols, 14, 2.0);
  std::vector<double> probe = random_values(rows * cols, 15);
  std::vector<double> out(rows * cols), mean(rows), rstd(rows);
  auto forward = [&] {
    ops::layernorm_forward(ctx, view(out, {rows, cols}), view(mean, {rows}), view(rstd, {rows}),
                           view(x, {rows, cols}), view(weight, {cols}), Tensor(), kEps);
  };
  auto loss = [&] {
    forward();
    return dot(out, probe);
  };
  forward();
  std::vector<double> dx(rows * cols);
  std::vector<double> initial_dweight = random_values(cols, 16), dweight = initial_dweight;
  ops::layernorm_backward(ctx, view(dx, {rows, cols}), view(dweight, {cols}), Tensor(),
                          view(probe, {rows, cols}), view(x, {rows, cols}), view(weight, {cols}),
                          view(mean, {rows}), view(rstd, {rows}));
  expect_gradient("dx", x, dx, loss);
  expect_gradient("dweight", weight, minus(dweight, initial_dweight), loss);
}

INSTANTIATE_TEST_SUITE_P(Shapes, NormGradient,
                         ::testing::Values(MatrixShape{7, 13}, MatrixShape{1, 1}, MatrixShape{3, 2},
                                           MatrixShape{5, 64}, MatrixShape{2, 129}));

TEST(Norm, ForwardMatchesDefinitions) {
  const int64_t rows = 4, cols = 9;
  OpContext ctx = cpu_context();
  std::vector<double> x = random_values(rows * cols, 20, 3.0);
  for (double& value : x) value += 1.5;  // a mean far from 0
  std::vector<double> weight = random_values(cols, 21), bias = random_values(cols, 22);
  std::vector<double> rms_out(rows * cols), rms_rstd(rows);
  std::vector<double> ln_out(rows * cols), ln_mean(rows), ln_rstd(rows);
  ops::rmsnorm_forward(ctx, view(rms_out, {rows, cols}), view(rms_rstd, {rows}),
                       view(x, {rows, cols}), view(weight, {cols}), kEps);
  ops::layernorm_forward(ctx, view(ln_out, {rows, cols}), view(ln_mean, {rows}),
                         view(ln_rstd, {rows}), view(x, {rows, cols}), view(weight, {cols}),
                         view(bias, {cols}), kEps);
  for (int64_t i = 0; i < rows; ++i) {
    double sum = 0, sum_squares = 0;
    for (int64_t j = 0; j < cols; ++j) {
      sum += x[i * cols + j];
      sum_squares += x[i * cols + j] * x[i * cols + j];
    }
    double mean = sum / cols;
    double variance = 0;
    for (int64_t j = 0; j < cols; ++j) variance += std::pow(x[i * cols + j] - mean, 2) / cols;
    double rms_r = 1 / std::sqrt(sum_squares / cols + kEps);
    double ln_r = 1 / std::sqrt(variance + kEps);
    EXPECT_NEAR(rms_rstd[i], rms_r, 1e-12);
    EXPECT_NEAR(ln_mean[i], mean, 1e-12);
    EXPECT_NEAR(ln_rstd[i], ln_r, 1e-12);
    for (int64_t j = 0; j < cols; ++j) {
      EXPECT_NEAR(rms_out[i * cols + j], x[i * cols + j] * rms_r * weight[j], 1e-12);
      EXPECT_NEAR(ln_out[i * cols + j], (x[i * cols + j] - mean) * ln_r * weight[j] + bias[j],
                  1e-12);
    }
  }
}

TEST(Norm, Float32AgreesWithFloat64) {
  const int64_t rows = 33, cols = 384;
  OpContext ctx = cpu_context();
  std::vector<double> x = random_values(rows * cols, 30), weight = random_values(cols, 31);
  std::vector<double> bias = random_values(cols, 32), dout = random_values(rows * cols, 33);
  std::vector<float> x32(x.begin(), x.end()), weight32(weight.begin(), weight.end());
  std::vector<float> bias32(bias.begin(), bias.end()), dout32(dout.begin(), dout.end());
  std::vector<double> out(rows * cols), mean(rows), rstd(rows), dx(rows * cols), dw(cols, 0.0),
      db(cols, 0.0);
  std::vector<float> out32(rows * cols), mean32(rows), rstd32(rows), dx32(rows * cols),
      dw32(cols, 0.0f), db32(cols, 0.0f);
  auto widen = [](const std::vector<float>& values) {
    return std::vector<double>(values.begin(), values.end());
  };

  ops::rmsnorm_forward(ctx, view(out, {rows, cols}), view(rstd, {rows}), view(x, {rows, cols}),
                       view(weight, {cols}), kEps);
  ops::rmsnorm_forward(ctx, view(out32, {rows, cols}), view(rstd32, {rows}),
                       view(x32, {rows, cols}), view(weight32, {cols}), kEps);
  EXPECT_LT(relative_l2(widen(out32), out), 1e-6);
  ops::rmsnorm_backward(ctx, view(dx, {rows, cols}), view(dw, {cols}), view(dout, {rows, cols}),
                        view(x, {rows, cols}), view(weight, {cols}), view(rstd, {rows}));
  ops::rmsnorm_backward(ctx, view(dx32, {rows, cols}), view(dw32, {cols}),
                        view(dout32, {rows, cols}), view(x32, {rows, cols}), view(weight32, {cols}),
                        view(rstd32, {rows}));
  EXPECT_LT(relative_l2(widen(dx32), dx), 1e-5);
  EXPECT_LT(relative_l2(widen(dw32), dw), 1e-5);

  ops::layernorm_forward(ctx, view(out, {rows, cols}), view(mean, {rows}), view(rstd, {rows}),
                         view(x, {rows, cols}), view(weight, {cols}), view(bias, {cols}), kEps);
  ops::layernorm_forward(ctx, view(out32, {rows, cols}), view(mean32, {rows}), view(rstd32, {rows}),
                         view(x32, {rows, cols}), view(weight32, {cols}), view(bias32, {cols}),
                         kEps);
  EXPECT_LT(relative_l2(widen(out32), out), 1e-6);
  ops::layernorm_backward(ctx, view(dx, {rows, cols}), view(dw, {cols}), view(db, {cols}),
                          view(dout, {rows, cols}), view(x, {rows, cols}), view(weight, {cols}),
                          view(mean, {rows}), view(rstd, {rows}));
  ops::layernorm_backward(ctx, view(dx32, {rows, cols}), view(dw32, {cols}), view(db32, {cols}),
                          view(dout32, {rows, cols}), view(x32, {rows, cols}),
                          view(weight32, {cols}), view(mean32, {rows}), view(rstd32, {rows}));
  EXPECT_LT(relative_l2(widen(dx32), dx), 1e-5);
  EXPECT_LT(relative_l2(widen(dw32), dw), 1e-5);
  EXPECT_LT(relative_l2(widen(db32), db), 1e-5);
}

TEST(Norm, ThreadCountDoesNotChangeResults) {
  const int64_t rows = 256, cols = 384;
  std::vector<float> x = random_floats(rows * cols, 40), weight = random_floats(cols, 41);
  std::vector<float> dout = random_floats(rows * cols, 42);
  std::vector<std::vector<float>> dx(2, std::vector<float>(rows * cols));
  std::vector<std::vector<float>> dweight(2, random_floats(cols, 43));
  std::vector<std::vector<float>> out(2, std::vector<float>(rows * cols));
  std::vector<float> rstd(rows);
  for (int run = 0; run < 2; ++run) {
    OpContext ctx = cpu_context(run + 1);
    ops::rmsnorm_forward(ctx, view(out[run], {rows, cols}), view(rstd, {rows}),
                         view(x, {rows, cols}), view(weight, {cols}), kEps);
    ops::rmsnorm_backward(ctx, view(dx[run], {rows, cols}), view(dweight[run], {cols}),
                          view(dout, {rows, cols}), view(x, {rows, cols}), view(weight, {cols}),
                          view(rstd, {rows}));
  }
  EXPECT_EQ(out[0], out[1]);
  EXPECT_EQ(dx[0], dx[1]);
  EXPECT_EQ(dweight[0], dweight[1]);
}

TEST(Norm, BadShapesNameTheArgument) {
  OpContext ctx = cpu_context();
  std::vector<double> x = random_values(12, 50), weight = random_values(4, 51);
  std::vector<double> out(12), mean(3), rstd(3), dx(12);
  std::vector<float> rstd32(3);
  expect_error_mentioning(
      [&] {
        ops::rmsnorm_forward(ctx, view(out, {3, 4}), view(rstd, {3}), view(x, {3, 4}),
                             view(weight, {3}), kEps);
      },
      "rmsnorm_forward: argument weight has shape (3)");
  expect_error_mentioning(
      [&] {
        ops::rmsnorm_forward(ctx, view(out, {3, 4}), view(rstd32, {3}), view(x, {3, 4}),
                             view(weight, {4}), kEps);
      },
      "argument rstd has dtype f32");
  expect_error_mentioning(
      [&] {
        ops::layernorm_forward(ctx, view(out, {3, 4}), view(mean, {3}), view(rstd, {3}),
                               view(x, {3, 4}), view(weight, {4}), view(weight, {2, 2}), kEps);
      },
      "argument bias has shape (2, 2)");
  expect_error_mentioning(
      [&] {
        ops::layernorm_backward(ctx, view(dx, {3, 4}), view(weight, {4}), Tensor(),
                                view(out, {4, 3}), view(x, {3, 4}), view(weight, {4}),
                                view(mean, {3}), view(rstd, {3}));
      },
      "argument dout");
  expect_error_mentioning(
      [&] {
        ops::rmsnorm_backward(ctx, Tensor(), view(weight, {4}), view(out, {3, 4}), view(x, {3, 4}),
                              view(weight, {4}), view(rstd, {3}));
      },
      "argument dx is empty");
}

}  // namespace
}  // namespace ft
