// The BLAS ceiling of a training step: every distinct GEMM the step's linears issue, timed with
// the BLAS directly, so the step's throughput reads as "a fraction of what this machine can do".
#pragma once

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "models/model_config.h"
#include "runtime/tensor.h"

namespace ft::bench {

// One kind of linear layer: weight (out, in), run `calls` times per step (once per layer).
struct LinearKind {
  std::string name;
  int64_t out = 0, in = 0, calls = 0;
  bool bias = false;
};

// The model's linears in the order models/transformer.cpp runs them; "lm head" last.
std::vector<LinearKind> linear_kinds(const ModelConfig& c);

enum class Pass { forward, input_grad, weight_grad };

// A row-major GEMM C (m, n) = op(A) op(B) + beta C, exactly as kernels/cpu/linear_cpu.cpp
// issues it for `pass` of a linear with weight (out, in) over `tokens` rows.
struct GemmShape {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  double beta = 0.0;
  auto key() const { return std::tie(trans_a, trans_b, m, n, k, beta); }
  bool operator<(const GemmShape& other) const { return key() < other.key(); }
  double flops() const { return 2.0 * static_cast<double>(m) * n * k; }
};

GemmShape gemm_for(const LinearKind& kind, Pass pass, int64_t tokens);

struct CeilingRow {
  GemmShape shape;
  std::string users;   // "q, k, v fwd"
  int64_t calls = 0;   // per step
  double seconds = 0;  // median per call
};

struct Ceiling {
  std::vector<CeilingRow> rows;  // largest FLOP share per step first
  double gemm_flops_per_step = 0, gemm_seconds_per_step = 0;
  double gflops() const { return gemm_flops_per_step / gemm_seconds_per_step * 1e-9; }
  // The median seconds of `shape`'s row; 0 when the step never issues it.
  double seconds_for(const GemmShape& shape) const;
};

// Times each distinct GEMM of the step with the BLAS directly (the threads already set, median
// of `reps`), in `dtype` (f32 or f64).
Ceiling measure_ceiling(const ModelConfig& config, int64_t tokens, int reps, DType dtype);

void print_ceiling(const Ceiling& ceiling, int threads);

}  // namespace ft::bench
