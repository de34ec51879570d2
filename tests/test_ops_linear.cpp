// Linear op (CPU, BLAS): forward against the definition, fp64 gradient checks of dx (overwritten)
// and dweight/dbias (accumulated), skipped gradients and the work counters, f32 vs f64 and
// argument errors.
#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using ft::testing::expect_error_mentioning;

using ft::testing::dot;
using ft::testing::expect_gradient;
using ft::testing::random_values;
using ft::testing::relative_l2;
using ft::testing::view;

OpContext cpu_context(OpCounters* counters = nullptr) {
  OpContext ctx;
  ctx.num_threads = 2;
  ctx.counters = counters;
  return ctx;
}

std::vector<double> minus(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> result(a.size());
  for (size_t i = 0; i < a.size(); ++i) result[i] = a[i] - b[i];
  return result;
}

struct LinearShape {
  int64_t rows, in_features, out_features;
};
std::ostream& operator<<(std::ostream& out, const LinearShape& shape) {
  return out << shape.rows << "x" << shape.in_features << "->" << shape.out_features;
}

class LinearGradient : public ::testing::TestWithParam<LinearShape> {};

TEST_P(LinearGradient, ForwardAndAllGradients) {
  const auto [rows, in, out_features] = GetParam();
  OpContext ctx = cpu_context();
  std::vector<double> x = random_values(rows * in, 1);
  std::vector<double> weight = random_values(out_features * in, 2);
  std::vector<double> bias = random_values(out_features, 3);
  std::vector<double> probe = random_values(rows * out_features, 4);
  std::vector<double> out(rows * out_features);
  auto forward = [&] {
    ops::linear_forward(ctx, view(out, {rows, out_features}), view(x, {rows, in}),
                        view(weight, {out_features, in}), view(bias, {out_features}));
  };
  auto loss = [&] {
    forward();
    return dot(out, probe);
  };

  forward();
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t o = 0; o < out_features; ++o) {
      double expected = bias[o];
      for (int64_t k = 0; k < in; ++k) expected += x[i * in + k] * weight[o * in + k];
      EXPECT_NEAR(out[i * out_features + o], expected, 1e-12);
    }
  }

  std::vector<double> dx = random_values(rows * in, 5);  // overwritten
  std::vector<double> initial_dweight = random_values(out_features * in, 6);
  std::vector<double> initial_dbias = random_values(out_features, 7);
  std::vector<double> dweight = initial_dweight, dbias = initial_dbias;
  ops::linear_backward(ctx, view(dx, {rows, in}), view(dweight, {out_features, in}),
                       view(dbias, {out_features}), view(probe, {rows, out_features}),
                       view(x, {rows, in}), view(weight, {out_features, in}));
  expect_gradient("dx", x, dx, loss);
  expect_gradient("dweight", weight, minus(dweight, initial_dweight), loss);
  expect_gradient("dbias", bias, minus(dbias, initial_dbias), loss);
}

TEST_P(LinearGradient, WithoutBias) {
  const auto [rows, in, out_features] = GetParam();
  OpContext ctx = cpu_context();
  std::vector<double> x = random_values(rows * in, 8);
  std::vector<double> weight = random_values(out_features * in, 9);
  std::vector<double> probe = random_values(rows * out_features, 10);
  std::vector<double> out = random_values(rows * out_features, 11);  // overwritten
  auto loss = [&] {
    ops::linear_forward(ctx, view(out, {rows, out_features}), view(x, {rows, in}),
                        view(weight, {out_features, in}), Tensor());
    return dot(out, probe);
  };
  std::vector<double> dx(rows * in);
  std::vector<double> initial_dweight = random_values(out_features * in, 12);
  std::vector<double> dweight = initial_dweight;
  ops::linear_backward(ctx, view(dx, {rows, in}), view(dweight, {out_features, in}), Tensor(),
                       view(probe, {rows, out_features}), view(x, {rows, in}),
                       view(weight, {out_features, in}));
  expect_gradient("dx", x, dx, loss);
  expect_gradient("dweight", weight, minus(dweight, initial_dweight), loss);
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearGradient,
                         ::testing::Values(LinearShape{7, 13, 5}, LinearShape{1, 1, 1},
                                           LinearShape{16, 3, 9}, LinearShape{5, 33, 17}));

TEST(Linear, FrozenWeightCostsNoWeightGradientProduct) {
  const int64_t rows = 6, in = 5, out_features = 4;
  OpCounters counters;
  OpContext ctx = cpu_context(&counters);
  std::vector<double> x = random_values(rows * in, 20),
                      weight = random_values(out_features * in, 21);
  std::vector<double> dout = random_values(rows * out_features, 22), out(rows * out_features);
  std::vector<double> dx(rows * in), dweight = random_values(out_features * in, 23);
  const std::vector<double> dweight_before = dweight;

  ops::linear_forward(ctx, view(out, {rows, out_features}), view(x, {rows, in}),
                      view(weight, {out_features, in}), Tensor());
  EXPECT_EQ(counters.forward_products, 1);

  // Frozen: dweight empty. Only dx is computed.
  ops::linear_backward(ctx, view(dx, {rows, in}), Tensor(), Tensor(),
                       view(dout, {rows, out_features}), view(x, {rows, in}),
                       view(weight, {out_features, in}));
  EXPECT_EQ(counters.weight_grad_products, 0);
  EXPECT_EQ(counters.input_grad_products, 1);

  // Trainable, first layer: dx empty. Only dweight is computed.
  ops::linear_backward(ctx, Tensor(), view(dweight, {out_features, in}), Tensor(),
                       view(dout, {rows, out_features}), view(x, {rows, in}),
                       view(weight, {out_features, in}));
  EXPECT_EQ(counters.weight_grad_products, 1);
  EXPECT_EQ(counters.input_grad_products, 1);
  EXPECT_NE(dweight, dweight_before);

  // Without counters nothing is counted and nothing fails.
  EXPECT_NO_THROW(ops::linear_backward(cpu_context(), view(dx, {rows, in}), Tensor(), Tensor(),
                                       view(dout, {rows, out_features}), view(x, {rows, in}),
                                       view(weight, {out_features, in})));
}

TEST(Linear, Float32AgreesWithFloat64) {
  const int64_t rows = 64, in = 96, out_features = 80;
  OpContext ctx = cpu_context();
  std::vector<double> x = random_values(rows * in, 30),
                      weight = random_values(out_features * in, 31);
  std::vector<double> bias = random_values(out_features, 32);
  std::vector<double> dout = random_values(rows * out_features, 33);
  std::vector<float> x32(x.begin(), x.end()), weight32(weight.begin(), weight.end());
  std::vector<float> bias32(bias.begin(), bias.end()), dout32(dout.begin(), dout.end());
  std::vector<double> out(rows * out_features), dx(rows * in), dw(out_features * in, 0.0),
      db(out_features, 0.0);
  std::vector<float> out32(rows * out_features), dx32(rows * in), dw32(out_features * in, 0.0f),
      db32(out_features, 0.0f);
  auto widen = [](const std::vector<float>& values) {
    return std::vector<double>(values.begin(), values.end());
  };
  ops::linear_forward(ctx, view(out, {rows, out_features}), view(x, {rows, in}),
                      view(weight, {out_features, in}), view(bias, {out_features}));
  ops::linear_forward(ctx, view(out32, {rows, out_features}), view(x32, {rows, in}),
                      view(weight32, {out_features, in}), view(bias32, {out_features}));
  ops::linear_backward(ctx, view(dx, {rows, in}), view(dw, {out_features, in}),
                       view(db, {out_features}), view(dout, {rows, out_features}),
                       view(x, {rows, in}), view(weight, {out_features, in}));
  ops::linear_backward(ctx, view(dx32, {rows, in}), view(dw32, {out_features, in}),
                       view(db32, {out_features}), view(dout32, {rows, out_features}),
                       view(x32, {rows, in}), view(weight32, {out_features, in}));
  EXPECT_LT(relative_l2(widen(out32), out), 1e-6);
  EXPECT_LT(relative_l2(widen(dx32), dx), 1e-6);
  EXPECT_LT(relative_l2(widen(dw32), dw), 1e-6);
  EXPECT_LT(relative_l2(widen(db32), db), 1e-6);
}

TEST(Linear, BadShapesNameTheArgument) {
  OpContext ctx = cpu_context();
  std::vector<double> x = random_values(3 * 4, 40), weight = random_values(5 * 4, 41);
  std::vector<double> out(3 * 5), bias = random_values(5, 42), dx(3 * 4);
  expect_error_mentioning(
      [&] {
        ops::linear_forward(ctx, view(out, {3, 5}), view(x, {3, 4}), view(weight, {4, 5}),
                            Tensor());
      },
      "linear_forward: argument weight has shape (4, 5), expected (4, 4)");
  expect_error_mentioning(
      [&] {
        ops::linear_forward(ctx, view(out, {3, 5}), view(x, {3, 4}), view(weight, {5, 4}),
                            view(bias, {1, 5}));
      },
      "argument bias");
  expect_error_mentioning(
      [&] {
        ops::linear_backward(ctx, view(dx, {4, 3}), Tensor(), Tensor(), view(out, {3, 5}),
                             view(x, {3, 4}), view(weight, {5, 4}));
      },
      "argument dx has shape (4, 3)");
  expect_error_mentioning(
      [&] {
        ops::linear_backward(ctx, view(dx, {3, 4}), view(weight, {5, 4}), Tensor(),
                             view(out, {5, 3}), view(x, {3, 4}), view(weight, {5, 4}));
      },
      "argument dout");
  Tensor on_gpu = view(weight, {5, 4});
  on_gpu.device = Device::cuda;
  expect_error_mentioning(
      [&] {
        ops::linear_forward(ctx, view(out, {3, 5}), view(x, {3, 4}), on_gpu, Tensor());
      },
      "argument weight is on cuda");
}

}  // namespace
}  // namespace ft
