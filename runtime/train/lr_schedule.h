// Learning rate at a step: linear warm-up from 0, then cosine, linear or constant decay to
// min_lr_ratio * lr at the last step.
#pragma once

#include <cstdint>
#include <string>

namespace ft {

struct LrSchedule {
  double peak_lr = 3e-4;
  double min_lr_ratio = 0.1;
  std::string kind = "cosine";  // cosine | linear | constant
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  // `step` counts from 1 (the first optimizer step).
  double at(int64_t step) const;
};

}  // namespace ft
