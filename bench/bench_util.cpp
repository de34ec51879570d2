#include "bench_util.h"

#include <algorithm>
#include <numeric>

namespace ft::bench {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

double mean(const std::vector<double>& values) {
  if (values.empty()) return 0.0;
  return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

double time_median(int reps, const std::function<void()>& body) {
  body();
  std::vector<double> samples;
  for (int i = 0; i < reps; ++i) {
    const auto start = Clock::now();
    body();
    samples.push_back(seconds_since(start));
  }
  return median(samples);
}

Tensor TensorPool::make(Shape shape, double low, double high) {
  buffers_.emplace_back(Device::cpu, static_cast<size_t>(shape.numel()) * dtype_size(dtype_));
  Tensor t = buffers_.back().view(dtype_, shape);
  std::uniform_real_distribution<double> uniform(low, high);
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (dtype_ == DType::f32)
      t.ptr<float>()[i] = static_cast<float>(uniform(rng_));
    else
      t.ptr<double>()[i] = uniform(rng_);
  }
  return t;
}

}  // namespace ft::bench
