// AdamW and sum-of-squares ops (CPU): a two-step scalar AdamW example computed by hand, PyTorch's
// decoupled decay order, f32 vs f64 over a long span, thread-count independence, the fused
// gradient scale (clipping) against scaling first, and errors. adamw_update's optional
// params_copy (the bf16 weights beside fp32 master weights): in f64 and f32 the copy holds exactly
// the updated params converted to its dtype, and the update itself is unchanged by asking for a
// copy; bad copies are refused naming the argument. Neither op has a backward.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using ft::testing::cpu_context;
using ft::testing::expect_error_mentioning;
using ft::testing::random_floats;
using ft::testing::random_values;
using ft::testing::relative_l2;
using ft::testing::view;

ops::AdamWArgs example_args(int64_t step) {
  ops::AdamWArgs args;
  args.lr = 0.1;
  args.beta1 = 0.9;
  args.beta2 = 0.999;
  args.eps = 1e-8;
  args.weight_decay = 0.1;
  args.step = step;
  return args;
}

// The copy tests' steps: another learning rate, and a gradient scale at step 2.
ops::AdamWArgs copy_args(int64_t step) {
  ops::AdamWArgs args = example_args(step);
  args.lr = 0.05;
  args.grad_scale = step == 2 ? 0.5 : 1.0;
  return args;
}

template <typename T>
void run_two_step_example(double tolerance) {
  // p = 1, gradients 0.5 then -0.25, lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.1.
  // Step 1: p = 1 * (1 - 0.01) = 0.99; m = 0.05; v = 0.00025; mhat = 0.05 / 0.1 = 0.5;
  //   vhat = 0.00025 / 0.001 = 0.25; p = 0.99 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.890000002.
  // Step 2: p = 0.890000002 * 0.99 = 0.88110000198; m = 0.045 - 0.025 = 0.02;
  //   v = 0.00024975 + 0.0000625 = 0.00031225; mhat = 0.02 / 0.19 = 0.1052631579;
  //   vhat = 0.00031225 / 0.001999 = 0.1562031016; sqrt = 0.3952254;
  //   p = 0.88110000198 - 0.1 * 0.1052631579 / 0.3952254 = 0.8544662987.
  std::vector<T> p = {T(1)}, g = {T(0.5)}, m = {T(0)}, v = {T(0)};
  OpContext ctx = cpu_context();
  ops::adamw_update(ctx, view(p, {1}), view(g, {1}), view(m, {1}), view(v, {1}), example_args(1));
  EXPECT_NEAR(p[0], 0.890000002, tolerance);
  EXPECT_NEAR(m[0], 0.05, tolerance);
  EXPECT_NEAR(v[0], 0.00025, tolerance);
  g[0] = T(-0.25);
  ops::adamw_update(ctx, view(p, {1}), view(g, {1}), view(m, {1}), view(v, {1}), example_args(2));
  EXPECT_NEAR(p[0], 0.8544662986878463, tolerance);
  EXPECT_NEAR(m[0], 0.02, tolerance);
  EXPECT_NEAR(v[0], 0.00031225, tolerance);
}

TEST(AdamW, TwoStepScalarExampleByHand) {
  run_two_step_example<double>(1e-12);
  run_two_step_example<float>(1e-6);
}

TEST(AdamW, DecayIsDecoupledAndAppliedFirst) {
  // With a zero gradient the Adam term is 0 (m = v = 0): only p *= 1 - lr * wd remains.
  std::vector<double> p = {2.0, -3.0}, g = {0.0, 0.0}, m = {0.0, 0.0}, v = {0.0, 0.0};
  ops::AdamWArgs args = example_args(1);
  ops::adamw_update(cpu_context(), view(p, {2}), view(g, {2}), view(m, {2}), view(v, {2}), args);
  EXPECT_DOUBLE_EQ(p[0], 2.0 * (1 - 0.1 * 0.1));
  EXPECT_DOUBLE_EQ(p[1], -3.0 * (1 - 0.1 * 0.1));
  // Spans that must not decay pass weight_decay = 0: then p only moves by the Adam term.
  args.weight_decay = 0.0;
  g = {1.0, -1.0};
  p = {2.0, -3.0};
  m = v = {0.0, 0.0};
  ops::adamw_update(cpu_context(), view(p, {2}), view(g, {2}), view(m, {2}), view(v, {2}), args);
  // m / (1 - beta1) = g and sqrt(v / (1 - beta2)) = |g| = 1: the step is lr * g / (1 + eps).
  EXPECT_NEAR(p[0], 2.0 - 0.1 / (1 + 1e-8), 1e-12);
  EXPECT_NEAR(p[1], -3.0 + 0.1 / (1 + 1e-8), 1e-12);
}

TEST(AdamW, Float32AgreesWithFloat64AndThreadCounts) {
  const int64_t count = 300007;
  std::vector<double> p = random_values(count, 1), m = random_values(count, 2, 0.1);
  std::vector<double> v = random_values(count, 3, 0.01), g = random_values(count, 4);
  for (double& value : v) value = std::abs(value);
  std::vector<float> p32(p.begin(), p.end()), m32(m.begin(), m.end()), v32(v.begin(), v.end());
  std::vector<float> g32(g.begin(), g.end());
  std::vector<float> p_serial = p32, m_serial = m32, v_serial = v32;
  ops::AdamWArgs args = example_args(7);
  ops::adamw_update(cpu_context(2), view(p, {count}), view(g, {count}), view(m, {count}),
                    view(v, {count}), args);
  ops::adamw_update(cpu_context(2), view(p32, {count}), view(g32, {count}), view(m32, {count}),
                    view(v32, {count}), args);
  ops::adamw_update(cpu_context(1), view(p_serial, {count}), view(g32, {count}),
                    view(m_serial, {count}), view(v_serial, {count}), args);
  EXPECT_LT(relative_l2(std::vector<double>(p32.begin(), p32.end()), p), 1e-6);
  EXPECT_LT(relative_l2(std::vector<double>(v32.begin(), v32.end()), v), 1e-6);
  EXPECT_EQ(p32, p_serial);
  EXPECT_EQ(m32, m_serial);
  EXPECT_EQ(v32, v_serial);
}

// Clipping is fused into the update: grad_scale must give the very bits that scaling the
// gradient in place first (what clipping did before) gives, and leave the gradient unchanged.
template <typename T>
void check_grad_scale_matches_scaled_gradient() {
  const int64_t count = 100003;
  const double factor = 0.3183;
  std::vector<double> p64 = random_values(count, 11), m64 = random_values(count, 12, 0.1);
  std::vector<double> v64 = random_values(count, 13, 0.01), g64 = random_values(count, 14, 5.0);
  for (double& value : v64) value = std::abs(value);
  std::vector<T> p(p64.begin(), p64.end()), m(m64.begin(), m64.end()), v(v64.begin(), v64.end());
  std::vector<T> g(g64.begin(), g64.end());
  std::vector<T> p_fused = p, m_fused = m, v_fused = v, g_fused = g;
  ops::scale(cpu_context(2), view(g, {count}), factor);
  ops::adamw_update(cpu_context(2), view(p, {count}), view(g, {count}), view(m, {count}),
                    view(v, {count}), example_args(3));
  ops::AdamWArgs args = example_args(3);
  args.grad_scale = factor;
  ops::adamw_update(cpu_context(2), view(p_fused, {count}), view(g_fused, {count}),
                    view(m_fused, {count}), view(v_fused, {count}), args);
  EXPECT_EQ(p_fused, p);
  EXPECT_EQ(m_fused, m);
  EXPECT_EQ(v_fused, v);
  EXPECT_EQ(g_fused, std::vector<T>(g64.begin(), g64.end()));
}

TEST(AdamW, GradScaleEqualsScalingTheGradientFirst) {
  check_grad_scale_matches_scaled_gradient<float>();
  check_grad_scale_matches_scaled_gradient<double>();
}

TEST(SumSquares, MatchesDirectSumAndIgnoresThreadCount) {
  for (int64_t count : {1, 13, 1000003}) {
    std::vector<double> x = random_values(count, 5);
    std::vector<float> x32 = random_floats(count, 5);
    double expected = 0;
    for (double value : x) expected += value * value;
    double total = ops::sum_squares(cpu_context(2), view(x, {count}));
    EXPECT_NEAR(total, expected, 1e-12 * expected);
    double total32 = ops::sum_squares(cpu_context(2), view(x32, {count}));
    EXPECT_NEAR(total32, expected, 1e-6 * expected);
    EXPECT_EQ(total32, ops::sum_squares(cpu_context(1), view(x32, {count})));
  }
}

TEST(AdamW, ArgumentErrors) {
  std::vector<double> p = random_values(6, 6), g = random_values(6, 7), m(6), v(6);
  std::vector<float> m32(6);
  expect_error_mentioning(
      [&] {
        ops::adamw_update(cpu_context(), view(p, {6}), view(g, {3, 2}), view(m, {6}), view(v, {6}),
                          example_args(1));
      },
      "adamw_update: argument grads has shape (3, 2), expected (6)");
  expect_error_mentioning(
      [&] {
        ops::adamw_update(cpu_context(), view(p, {6}), view(g, {6}), view(m32, {6}), view(v, {6}),
                          example_args(1));
      },
      "argument m has dtype f32");
  expect_error_mentioning(
      [&] {
        ops::adamw_update(cpu_context(), view(p, {6}), view(g, {6}), view(m, {6}), view(v, {6}),
                          example_args(0));
      },
      "step is 0");
}

TEST(AdamWCopy, F64CopyInF32AndBf16IsTheConvertedUpdate) {
  const int64_t count = 1001;
  std::vector<double> params = random_values(count, 1), m(count, 0.0), v(count, 0.0);
  std::vector<double> plain = params, plain_m = m, plain_v = v;
  std::vector<float> copy32(count, 0.0f);
  std::vector<bf16> copy16(count);
  for (int64_t step = 1; step <= 2; ++step) {
    std::vector<double> grads = random_values(count, 10 + step);
    ops::adamw_update(cpu_context(), view(params, {count}), view(grads, {count}), view(m, {count}),
                      view(v, {count}), copy_args(step), view(copy32, {count}));
    ops::adamw_update(cpu_context(), view(plain, {count}), view(grads, {count}),
                      view(plain_m, {count}), view(plain_v, {count}), copy_args(step));
  }
  EXPECT_EQ(params, plain) << "asking for a copy must not change the update";
  EXPECT_EQ(m, plain_m);
  EXPECT_EQ(v, plain_v);
  for (int64_t i = 0; i < count; ++i) ASSERT_EQ(copy32[i], static_cast<float>(params[i])) << i;
  // A bf16 copy of one more step: rounded from float, as cast rounds f64 -> bf16.
  std::vector<double> grads = random_values(count, 20);
  ops::adamw_update(cpu_context(), view(params, {count}), view(grads, {count}), view(m, {count}),
                    view(v, {count}), copy_args(3), Tensor(copy16.data(), DType::bf16, {count}));
  for (int64_t i = 0; i < count; ++i) {
    ASSERT_EQ(copy16[i].bits, float_to_bf16(static_cast<float>(params[i])).bits) << i;
  }
}

TEST(AdamWCopy, F32CopyInBf16) {
  const int64_t count = 257;
  std::vector<float> params = random_floats(count, 2), grads = random_floats(count, 3);
  std::vector<float> m(count, 0.0f), v(count, 0.0f);
  std::vector<bf16> copy(count);
  ops::adamw_update(cpu_context(), view(params, {count}), view(grads, {count}), view(m, {count}),
                    view(v, {count}), copy_args(1), Tensor(copy.data(), DType::bf16, {count}));
  for (int64_t i = 0; i < count; ++i) ASSERT_EQ(copy[i].bits, float_to_bf16(params[i]).bits) << i;
}

TEST(AdamWCopy, BadCopiesAreRefused) {
  std::vector<double> p(4, 1.0), g(4, 0.5), m(4, 0.0), v(4, 0.0);
  std::vector<double> short_copy(3);
  std::vector<int32_t> ints(4);
  expect_error_mentioning(
      [&] {
        ops::adamw_update(cpu_context(), view(p, {4}), view(g, {4}), view(m, {4}), view(v, {4}),
                          copy_args(1), view(short_copy, {3}));
      },
      "argument params_copy has shape (3), expected (4)");
  expect_error_mentioning(
      [&] {
        ops::adamw_update(cpu_context(), view(p, {4}), view(g, {4}), view(m, {4}), view(v, {4}),
                          copy_args(1), view(ints, {4}));
      },
      "argument params_copy has dtype i32, expected a float dtype");
}

}  // namespace
}  // namespace ft
