// Elementwise ops (CPU): add (also in place), scale, zero, and cast between f32, f64 and bf16
// with round-to-nearest-even; argument errors. None of these has a backward op: the gradient of
// add is the identity and that of scale is scale itself, which the model code applies directly.
#include <gtest/gtest.h>

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
using ft::testing::view;

Tensor view(std::vector<bf16>& values, Shape shape) {
  return Tensor(values.data(), DType::bf16, shape);
}

TEST(Elementwise, AddAndAddInPlace) {
  for (int64_t count : {1, 13, 100003}) {  // the last splits over threads
    std::vector<double> a = random_values(count, 1), b = random_values(count, 2), out(count);
    ops::add(cpu_context(), view(out, {count}), view(a, {count}), view(b, {count}));
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(out[i], a[i] + b[i]);
    std::vector<float> a32 = random_floats(count, 3), b32 = random_floats(count, 4);
    std::vector<float> sum = a32;
    ops::add(cpu_context(), view(sum, {count}), view(sum, {count}), view(b32, {count}));
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(sum[i], a32[i] + b32[i]);
  }
}

TEST(Elementwise, ScaleAndZero) {
  for (int64_t count : {1, 7, 70001}) {
    std::vector<double> x = random_values(count, 5);
    std::vector<double> scaled = x;
    ops::scale(cpu_context(), view(scaled, {count}), -0.375);
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(scaled[i], x[i] * -0.375);
    std::vector<float> x32 = random_floats(count, 6);
    std::vector<float> scaled32 = x32;
    ops::scale(cpu_context(), view(scaled32, {count}), 0.1);
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(scaled32[i], x32[i] * 0.1f);
    ops::zero(cpu_context(), view(scaled32, {count}));
    ops::zero(cpu_context(), view(scaled, {count}));
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(scaled32[i], 0.0f);
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(scaled[i], 0.0);
  }
}

TEST(Elementwise, CastBetweenFloatFormats) {
  // bf16 keeps float's upper 16 bits, rounding the rest to nearest even.
  std::vector<float> source = {1.0f,
                               -2.5f,
                               1.00390625f /* tie: rounds down to 1 */,
                               1.01171875f /* tie: rounds up to 1.015625 */,
                               3.0e38f,
                               1.0e-3f};
  const int64_t count = static_cast<int64_t>(source.size());
  std::vector<bf16> half(count);
  ops::cast(cpu_context(), view(half, {count}), view(source, {count}));
  EXPECT_EQ(half[0].bits, 0x3f80);
  EXPECT_EQ(half[1].bits, 0xc020);
  EXPECT_EQ(half[2].bits, 0x3f80);
  EXPECT_EQ(half[3].bits, 0x3f82);
  std::vector<double> widened(count);
  ops::cast(cpu_context(), view(widened, {count}), view(half, {count}));
  EXPECT_EQ(widened[1], -2.5);
  EXPECT_EQ(widened[3], 1.015625);
  EXPECT_NEAR(widened[5], 1.0e-3, 1.0e-3 / 128);

  std::vector<double> x = random_values(1001, 7);
  std::vector<float> narrowed(1001);
  std::vector<double> back(1001);
  ops::cast(cpu_context(), view(narrowed, {7, 11, 13}), view(x, {1001}));  // shapes may differ
  ops::cast(cpu_context(), view(back, {1001}), view(narrowed, {7, 11, 13}));
  for (int i = 0; i < 1001; ++i) {
    ASSERT_EQ(narrowed[i], static_cast<float>(x[i]));
    ASSERT_EQ(back[i], static_cast<double>(narrowed[i]));
  }
  std::vector<double> copy(1001);
  ops::cast(cpu_context(), view(copy, {1001}), view(x, {1001}));
  EXPECT_EQ(copy, x);
}

TEST(Elementwise, ArgumentErrors) {
  std::vector<double> a = random_values(6, 8), b = random_values(6, 9);
  std::vector<float> a32(6);
  std::vector<int32_t> ints(6);
  expect_error_mentioning(
      [&] {
        ops::add(cpu_context(), view(a, {6}), view(a, {6}), view(b, {2, 3}));
      },
      "add: argument b has shape (2, 3), expected (6)");
  expect_error_mentioning(
      [&] { ops::add(cpu_context(), view(a32, {6}), view(a, {6}), view(b, {6})); },
      "argument out has dtype f32");
  expect_error_mentioning(
      [&] { ops::cast(cpu_context(), view(a32, {5}), view(a, {6})); },
      "argument dst has shape (5) (5 elements), src has shape (6) (6 elements)");
  expect_error_mentioning([&] { ops::cast(cpu_context(), view(a32, {6}), view(ints, {6})); },
                          "op cast has no cpu implementation for dtype i32");
  expect_error_mentioning([&] { ops::scale(cpu_context(), view(ints, {6}), 2.0); },
                          "op scale has no cpu implementation for dtype i32");
  expect_error_mentioning([&] { ops::zero(cpu_context(), Tensor(nullptr, DType::f32, {4})); },
                          "argument x is empty");
}

}  // namespace
}  // namespace ft
