#include "gemm_ceiling.h"

#include <cblas.h>

#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <type_traits>

#include "bench_util.h"

namespace ft::bench {
namespace {

const char* pass_suffix(Pass pass) {
  return pass == Pass::forward ? " fwd" : pass == Pass::input_grad ? " dX" : " dW";
}

template <typename scalar_t>
void run_gemm(const GemmShape& g, const scalar_t* a, const scalar_t* b, scalar_t* c) {
  const int64_t lda = g.trans_a ? g.m : g.k, ldb = g.trans_b ? g.k : g.n;
  const auto ta = g.trans_a ? CblasTrans : CblasNoTrans, tb = g.trans_b ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<scalar_t, float>) {
    cblas_sgemm(CblasRowMajor, ta, tb, g.m, g.n, g.k, 1.0f, a, lda, b, ldb,
                static_cast<float>(g.beta), c, g.n);
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, g.m, g.n, g.k, 1.0, a, lda, b, ldb, g.beta, c, g.n);
  }
}

template <typename scalar_t>
Ceiling measure_ceiling_typed(const ModelConfig& config, int64_t tokens, int reps, DType dtype) {
  std::map<GemmShape, CeilingRow> distinct;
  for (const LinearKind& kind : linear_kinds(config)) {
    for (Pass pass : {Pass::forward, Pass::input_grad, Pass::weight_grad}) {
      const GemmShape shape = gemm_for(kind, pass, tokens);
      CeilingRow& row = distinct[shape];
      row.shape = shape;
      row.users += (row.users.empty() ? "" : ", ") + kind.name + pass_suffix(pass);
      row.calls += kind.calls;
    }
  }
  // One set of operands, sized for the largest GEMM, serves every shape.
  int64_t max_a = 0, max_b = 0, max_c = 0;
  for (const auto& [shape, row] : distinct) {
    max_a = std::max(max_a, shape.m * shape.k);
    max_b = std::max(max_b, shape.k * shape.n);
    max_c = std::max(max_c, shape.m * shape.n);
  }
  TensorPool pool(dtype, 99);
  Tensor a = pool.make({max_a}), b = pool.make({max_b}, -0.02, 0.02), c = pool.make({max_c});
  Ceiling ceiling;
  for (auto& [shape, row] : distinct) {
    row.seconds = time_median(reps, [&, s = shape] {
      run_gemm<scalar_t>(s, a.ptr<scalar_t>(), b.ptr<scalar_t>(), c.ptr<scalar_t>());
    });
    ceiling.gemm_flops_per_step += shape.flops() * static_cast<double>(row.calls);
    ceiling.gemm_seconds_per_step += row.seconds * static_cast<double>(row.calls);
    ceiling.rows.push_back(row);
  }
  std::sort(ceiling.rows.begin(), ceiling.rows.end(), [](const CeilingRow& x, const CeilingRow& y) {
    return x.shape.flops() * x.calls > y.shape.flops() * y.calls;
  });
  return ceiling;
}

}  // namespace

std::vector<LinearKind> linear_kinds(const ModelConfig& c) {
  const int64_t C = c.hidden_size, F = c.intermediate_size, L = c.num_layers;
  std::vector<LinearKind> kinds = {{"q", c.q_dim(), C, L, c.qkv_bias},
                                   {"k", c.kv_dim(), C, L, c.qkv_bias},
                                   {"v", c.kv_dim(), C, L, c.qkv_bias},
                                   {"attn out", C, c.q_dim(), L, c.linear_bias}};
  if (c.mlp == MlpKind::swiglu) kinds.push_back({"mlp gate", F, C, L, false});
  kinds.push_back({"mlp up", F, C, L, c.linear_bias});
  kinds.push_back({"mlp down", C, F, L, c.linear_bias});
  kinds.push_back({"lm head", c.vocab_size, C, 1, false});
  return kinds;
}

GemmShape gemm_for(const LinearKind& kind, Pass pass, int64_t tokens) {
  switch (pass) {
    case Pass::forward:
      return {false, true, tokens, kind.out, kind.in, 1.0};  // bias first, beta 1
    case Pass::input_grad:
      return {false, false, tokens, kind.in, kind.out, 0.0};
    case Pass::weight_grad:
      return {true, false, kind.out, kind.in, tokens, 1.0};  // accumulates
  }
  return {};
}

double Ceiling::seconds_for(const GemmShape& shape) const {
  for (const CeilingRow& row : rows)
    if (!(row.shape < shape) && !(shape < row.shape)) return row.seconds;
  return 0.0;
}

Ceiling measure_ceiling(const ModelConfig& config, int64_t tokens, int reps, DType dtype) {
  return dtype == DType::f32 ? measure_ceiling_typed<float>(config, tokens, reps, dtype)
                             : measure_ceiling_typed<double>(config, tokens, reps, dtype);
}

void print_ceiling(const Ceiling& ceiling, int threads) {
  std::cout << fmt::format(
      "\nBLAS ceiling: every distinct GEMM of the step, timed alone ({} "
      "threads, median)\n",
      threads);
  std::cout << fmt::format("  {:>2} {:>2} {:>6} {:>6} {:>6} {:>5} {:>9} {:>9} {:>7}  {}\n", "tA",
                           "tB", "M", "N", "K", "calls", "ms/call", "GFLOP/s", "% flops",
                           "used by");
  for (const CeilingRow& row : ceiling.rows) {
    const double share = row.shape.flops() * row.calls / ceiling.gemm_flops_per_step * 100.0;
    std::cout << fmt::format(
        "  {:>2} {:>2} {:>6} {:>6} {:>6} {:>5} {:>9.3f} {:>9.1f} {:>6.1f}%  {}\n",
        row.shape.trans_a ? "T" : "N", row.shape.trans_b ? "T" : "N", row.shape.m, row.shape.n,
        row.shape.k, row.calls, row.seconds * 1e3, row.shape.flops() / row.seconds * 1e-9, share,
        row.users);
  }
  std::cout << fmt::format(
      "  all GEMMs of one step: {:.1f} GFLOP in {:.1f} ms at the ceiling -> {:.1f} GFLOP/s "
      "(FLOP-weighted)\n",
      ceiling.gemm_flops_per_step * 1e-9, ceiling.gemm_seconds_per_step * 1e3, ceiling.gflops());
}

}  // namespace ft::bench
