#include "runtime/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "runtime/error.h"

namespace ft {

double LrSchedule::at(int64_t step) const {
  if (warmup_steps > 0 && step <= warmup_steps) {
    return peak_lr * static_cast<double>(step) / static_cast<double>(warmup_steps);
  }
  if (kind == "constant") return peak_lr;
  const double min_lr = peak_lr * min_lr_ratio;
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - warmup_steps);
  const double progress = std::clamp(
      static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps), 0.0, 1.0);
  if (kind == "linear") return peak_lr + (min_lr - peak_lr) * progress;
  if (kind == "cosine")
    return min_lr + 0.5 * (peak_lr - min_lr) * (1.0 + std::cos(M_PI * progress));
  fail("optim.schedule: expected cosine, linear or constant, got '{}'", kind);
}

}  // namespace ft
