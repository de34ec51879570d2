// The learning-rate schedule: warm-up, then cosine, linear or constant.
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/error.h"
#include "runtime/train/lr_schedule.h"

namespace ft {
namespace {

LrSchedule schedule(const std::string& kind, int64_t warmup, int64_t total) {
  LrSchedule s;
  s.peak_lr = 1e-3;
  s.min_lr_ratio = 0.1;
  s.kind = kind;
  s.warmup_steps = warmup;
  s.total_steps = total;
  return s;
}

TEST(LrSchedule, WarmupRisesLinearlyToThePeak) {
  LrSchedule s = schedule("cosine", 4, 20);
  EXPECT_DOUBLE_EQ(s.at(1), 0.25e-3);
  EXPECT_DOUBLE_EQ(s.at(2), 0.5e-3);
  EXPECT_DOUBLE_EQ(s.at(4), 1e-3);
}

TEST(LrSchedule, CosineDecaysToTheMinimumAtTheLastStep) {
  LrSchedule s = schedule("cosine", 4, 20);
  EXPECT_DOUBLE_EQ(s.at(20), 1e-4);
  // Halfway through the decay: the mean of peak and minimum.
  EXPECT_NEAR(s.at(12), 0.55e-3, 1e-15);
  for (int64_t step = 5; step < 20; ++step) EXPECT_GT(s.at(step), s.at(step + 1)) << step;
}

TEST(LrSchedule, LinearAndConstant) {
  LrSchedule linear = schedule("linear", 0, 10);
  EXPECT_DOUBLE_EQ(linear.at(10), 1e-4);
  EXPECT_NEAR(linear.at(5), 1e-3 - 0.5 * 0.9e-3, 1e-15);
  LrSchedule constant = schedule("constant", 3, 10);
  EXPECT_DOUBLE_EQ(constant.at(2), 1e-3 * 2 / 3);
  EXPECT_DOUBLE_EQ(constant.at(4), 1e-3);
  EXPECT_DOUBLE_EQ(constant.at(10), 1e-3);
}

TEST(LrSchedule, UnknownKindIsAnError) {
  EXPECT_THROW(schedule("exponential", 0, 10).at(1), Error);
}

}  // namespace
}  // namespace ft
