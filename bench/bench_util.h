// Shared helpers of the bench_step benchmark: wall-clock timing, medians and host tensors filled
// with seeded random values. Benchmarks print figures; nothing here passes or fails.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "runtime/buffer.h"
#include "runtime/tensor.h"

namespace ft::bench {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start);

// The middle value (mean of the two middle values for an even count); 0 when empty.
double median(std::vector<double> values);

// 0 when empty.
double mean(const std::vector<double>& values);

// Runs `body` once untimed (first-touch, BLAS buffers), then `reps` times; the median seconds.
double time_median(int reps, const std::function<void()>& body);

// Host tensors that live as long as the pool, filled uniform in [low, high).
class TensorPool {
 public:
  TensorPool(DType dtype, uint64_t seed) : dtype_(dtype), rng_(seed) {}
  Tensor make(Shape shape, double low = -1.0, double high = 1.0);

 private:
  DType dtype_;
  std::mt19937_64 rng_;
  std::vector<Buffer> buffers_;
};

}  // namespace ft::bench
