#include "tests/support/gradcheck.h"

#include <algorithm>

namespace ft::testing {

std::vector<double> random_values(size_t count, uint64_t seed, double scale) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(-scale, scale);
  std::vector<double> values(count);
  for (double& value : values) value = uniform(engine);
  return values;
}

std::vector<float> random_floats(size_t count, uint64_t seed, double scale) {
  std::vector<double> values = random_values(count, seed, scale);
  return std::vector<float>(values.begin(), values.end());
}

void expect_gradient(const std::string& name, std::vector<double>& input,
                     const std::vector<double>& analytic, const std::function<double()>& loss,
                     double step, double tolerance, size_t max_checks) {
  ASSERT_EQ(input.size(), analytic.size()) << name;
  size_t stride = std::max<size_t>(1, input.size() / max_checks);
  double worst = 0.0;
  size_t worst_index = 0;
  double worst_numeric = 0.0;
  for (size_t i = 0; i < input.size(); i += stride) {
    double saved = input[i];
    input[i] = saved + step;
    double plus = loss();
    input[i] = saved - step;
    double minus = loss();
    input[i] = saved;
    double numeric = (plus - minus) / (2 * step);
    double error = std::abs(numeric - analytic[i]) / std::max(1.0, std::abs(numeric));
    if (error > worst) {
      worst = error;
      worst_index = i;
      worst_numeric = numeric;
    }
  }
  EXPECT_LE(worst, tolerance) << name << ": worst element " << worst_index << " analytic "
                              << analytic[worst_index] << " numeric " << worst_numeric;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double total = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) total += a[i] * b[i];
  return total;
}

double relative_l2(const std::vector<double>& a, const std::vector<double>& b) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

}  // namespace ft::testing
