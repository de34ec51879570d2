// adamw_update's optional params_copy (the bf16 weights beside fp32 master weights) on the CPU:
// in f64 and f32 the copy holds exactly the updated params converted to its dtype, and the update
// itself is unchanged by asking for a copy. Bad copies are refused naming the argument.
#include <gtest/gtest.h>

#include <cstdint>
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

ops::AdamWArgs two_step_args(int64_t step) {
  ops::AdamWArgs args;
  args.lr = 0.05;
  args.weight_decay = 0.1;
  args.step = step;
  args.grad_scale = step == 2 ? 0.5 : 1.0;
  return args;
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
                      view(v, {count}), two_step_args(step), view(copy32, {count}));
    ops::adamw_update(cpu_context(), view(plain, {count}), view(grads, {count}),
                      view(plain_m, {count}), view(plain_v, {count}), two_step_args(step));
  }
  EXPECT_EQ(params, plain) << "asking for a copy must not change the update";
  EXPECT_EQ(m, plain_m);
  EXPECT_EQ(v, plain_v);
  for (int64_t i = 0; i < count; ++i) ASSERT_EQ(copy32[i], static_cast<float>(params[i])) << i;
  // A bf16 copy of one more step: rounded from float, as cast rounds f64 -> bf16.
  std::vector<double> grads = random_values(count, 20);
  ops::adamw_update(cpu_context(), view(params, {count}), view(grads, {count}), view(m, {count}),
                    view(v, {count}), two_step_args(3),
                    Tensor(copy16.data(), DType::bf16, {count}));
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
                    view(v, {count}), two_step_args(1), Tensor(copy.data(), DType::bf16, {count}));
  for (int64_t i = 0; i < count; ++i) ASSERT_EQ(copy[i].bits, float_to_bf16(params[i]).bits) << i;
}

TEST(AdamWCopy, BadCopiesAreRefused) {
  std::vector<double> p(4, 1.0), g(4, 0.5), m(4, 0.0), v(4, 0.0);
  std::vector<double> short_copy(3);
  std::vector<int32_t> ints(4);
  expect_error_mentioning(
      [&] {
        ops::adamw_update(cpu_context(), view(p, {4}), view(g, {4}), view(m, {4}), view(v, {4}),
                          two_step_args(1), view(short_copy, {3}));
      },
      "argument params_copy has shape (3), expected (4)");
  expect_error_mentioning(
      [&] {
        ops::adamw_update(cpu_context(), view(p, {4}), view(g, {4}), view(m, {4}), view(v, {4}),
                          two_step_args(1), view(ints, {4}));
      },
      "argument params_copy has dtype i32, expected a float dtype");
}

}  // namespace
}  // namespace ft
