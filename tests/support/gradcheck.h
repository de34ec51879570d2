// Finite-difference gradient checks in fp64. The pattern: a forward computes outputs from inputs;
// the scalar loss is sum(output * probe) with a fixed random probe, so dout = probe; the backward's
// gradient for each input element is compared with (L(x + h) - L(x - h)) / 2h.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/context.h"
#include "runtime/error.h"
#include "runtime/tensor.h"

namespace ft::testing {

// Deterministic random values in [-scale, scale] (never all zeros).
std::vector<double> random_values(size_t count, uint64_t seed, double scale = 1.0);
std::vector<float> random_floats(size_t count, uint64_t seed, double scale = 1.0);

inline Tensor view(std::vector<double>& values, Shape shape) {
  return Tensor(values.data(), DType::f64, shape);
}
inline Tensor view(std::vector<float>& values, Shape shape) {
  return Tensor(values.data(), DType::f32, shape);
}
inline Tensor view(std::vector<int32_t>& values, Shape shape) {
  return Tensor(values.data(), DType::i32, shape);
}

// Compares analytic[i] with the central difference of `loss` perturbing input[i], for every i
// (or a deterministic subset of `max_checks` indices when the input is large). Reports the worst
// element by name. `loss` must read `input` afresh on each call.
void expect_gradient(const std::string& name, std::vector<double>& input,
                     const std::vector<double>& analytic, const std::function<double()>& loss,
                     double step = 1e-6, double tolerance = 1e-6, size_t max_checks = 4096);

// sum(a[i] * b[i]).
double dot(const std::vector<double>& a, const std::vector<double>& b);

// Relative L2 error ||a - b|| / max(||b||, tiny).
double relative_l2(const std::vector<double>& a, const std::vector<double>& b);

// A (rows, cols) test shape that gtest prints as "7x13" in parameterised test names.
struct MatrixShape {
  int64_t rows, cols;
};
inline std::ostream& operator<<(std::ostream& out, const MatrixShape& shape) {
  return out << shape.rows << "x" << shape.cols;
}

// A CPU op context with `threads` OpenMP threads.
inline OpContext cpu_context(int threads = 2) {
  OpContext ctx;
  ctx.num_threads = threads;
  return ctx;
}

// Runs `body`, expecting an ft::Error, and returns its message ("" and a failure if none).
template <typename Body>
std::string error_message(Body&& body) {
  try {
    body();
  } catch (const Error& error) {
    return error.what();
  }
  ADD_FAILURE() << "expected an ft::Error";
  return "";
}

// Expects `call` to throw an ft::Error whose message contains `text`.
template <typename Fn>
void expect_error_mentioning(Fn&& call, const std::string& text) {
  const std::string message = error_message(call);
  EXPECT_NE(message.find(text), std::string::npos) << "expected '" << text << "' in: " << message;
}

// Expects `call` to throw an ft::Error whose message contains each of `texts`.
template <typename Fn>
void expect_error_naming(Fn&& call, const std::vector<std::string>& texts) {
  const std::string message = error_message(call);
  for (const std::string& text : texts)
    EXPECT_NE(message.find(text), std::string::npos) << "expected '" << text << "' in: " << message;
}

template <typename T>
std::vector<double> widen(const std::vector<T>& values) {
  return std::vector<double>(values.begin(), values.end());
}

}  // namespace ft::testing
