// Residual add + norm ops (kernels/fused_norm_ops.h) on the CPU: every output equals the composed
// ops (add then rmsnorm/layernorm forward; norm backward then add) bit for bit in f32 and f64, in
// place and out of place, over thread counts and odd shapes; fp64 finite-difference checks of the
// gradients through both the norm and the skip connection; argument and aliasing errors.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/fused_norm_ops.h"
#include "kernels/ops.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using ft::testing::cpu_context;
using ft::testing::dot;
using ft::testing::expect_error_mentioning;
using ft::testing::expect_gradient;
using ft::testing::MatrixShape;
using ft::testing::random_values;
using ft::testing::view;

constexpr double kEps = 1e-5;

enum class NormKind { rmsnorm, layernorm, layernorm_without_bias };
// Where the fused forward writes residual_out (and the backward dresidual): a tensor of its own,
// or in place over residual_in / delta (dresidual_above).
enum class Placement { separate, over_first_input, over_second_input };

template <typename T>
std::vector<T> values(int64_t count, uint64_t seed, double scale = 1.0) {
  const std::vector<double> wide = random_values(static_cast<size_t>(count), seed, scale);
  return std::vector<T>(wide.begin(), wide.end());
}

// The norm's statistics: mean only for LayerNorm.
template <typename T>
struct Stats {
  std::vector<T> mean, rstd;
};

template <typename T>
void composed_norm_forward(const OpContext& ctx, NormKind kind, std::vector<T>& out,
                           Stats<T>& stats, std::vector<T>& x, std::vector<T>& weight,
                           std::vector<T>& bias, MatrixShape s) {
  const Shape matrix{s.rows, s.cols};
  if (kind == NormKind::rmsnorm) {
    ops::rmsnorm_forward(ctx, view(out, matrix), view(stats.rstd, {s.rows}), view(x, matrix),
                         view(weight, {s.cols}), kEps);
  } else {
    ops::layernorm_forward(ctx, view(out, matrix), view(stats.mean, {s.rows}),
                           view(stats.rstd, {s.rows}), view(x, matrix), view(weight, {s.cols}),
                           kind == NormKind::layernorm ? view(bias, {s.cols}) : Tensor(), kEps);
  }
}

template <typename T>
void fused_forward(const OpContext& ctx, NormKind kind, Tensor residual_out, std::vector<T>& out,
                   Stats<T>& stats, Tensor residual_in, Tensor delta, std::vector<T>& weight,
                   std::vector<T>& bias, MatrixShape s) {
  const Shape matrix{s.rows, s.cols};
  if (kind == NormKind::rmsnorm) {
    ops::residual_rmsnorm_forward(ctx, residual_out, view(out, matrix), view(stats.rstd, {s.rows}),
                                  residual_in, delta, view(weight, {s.cols}), kEps);
  } else {
    ops::residual_layernorm_forward(
        ctx, residual_out, view(out, matrix), view(stats.mean, {s.rows}),
        view(stats.rstd, {s.rows}), residual_in, delta, view(weight, {s.cols}),
        kind == NormKind::layernorm ? view(bias, {s.cols}) : Tensor(), kEps);
  }
}

template <typename T>
void check_forward_equals_composed(NormKind kind, Placement placement, MatrixShape s, int threads) {
  SCOPED_TRACE(::testing::Message() << "shape " << s << ", threads " << threads << ", placement "
                                    << static_cast<int>(placement));
  const OpContext ctx = cpu_context(threads);
  const Shape matrix{s.rows, s.cols};
  std::vector<T> residual_in = values<T>(s.rows * s.cols, 1, 2.0);
  for (T& value : residual_in) value += T(0.75);  // a mean away from 0 for LayerNorm
  std::vector<T> delta = values<T>(s.rows * s.cols, 2);
  std::vector<T> weight = values<T>(s.cols, 3, 1.5), bias = values<T>(s.cols, 4);
  const Stats<T> empty_stats{std::vector<T>(s.rows), std::vector<T>(s.rows)};

  std::vector<T> sum(s.rows * s.cols), out(s.rows * s.cols);
  Stats<T> stats = empty_stats;
  ops::add(ctx, view(sum, matrix), view(residual_in, matrix), view(delta, matrix));
  composed_norm_forward(ctx, kind, out, stats, sum, weight, bias, s);

  std::vector<T> first = residual_in, second = delta, separate(s.rows * s.cols);
  std::vector<T>& residual_out = placement == Placement::separate           ? separate
                                 : placement == Placement::over_first_input ? first
                                                                            : second;
  std::vector<T> fused_out(s.rows * s.cols);
  Stats<T> fused_stats = empty_stats;
  fused_forward(ctx, kind, view(residual_out, matrix), fused_out, fused_stats, view(first, matrix),
                view(second, matrix), weight, bias, s);
  EXPECT_EQ(residual_out, sum);
  EXPECT_EQ(fused_out, out);
  EXPECT_EQ(fused_stats.rstd, stats.rstd);
  EXPECT_EQ(fused_stats.mean, stats.mean);
}

template <typename T>
void check_backward_equals_composed(NormKind kind, Placement placement, MatrixShape s, int threads,
                                    bool frozen) {
  SCOPED_TRACE(::testing::Message() << "shape " << s << ", threads " << threads << ", placement "
                                    << static_cast<int>(placement) << ", frozen " << frozen);
  const OpContext ctx = cpu_context(threads);
  const Shape matrix{s.rows, s.cols};
  const Shape row{s.cols};
  std::vector<T> x = values<T>(s.rows * s.cols, 11, 2.0);
  for (T& value : x) value += T(0.5);
  std::vector<T> weight = values<T>(s.cols, 12, 1.5), bias = values<T>(s.cols, 13);
  std::vector<T> dout = values<T>(s.rows * s.cols, 14);
  std::vector<T> above = values<T>(s.rows * s.cols, 15);
  std::vector<T> out(s.rows * s.cols);
  Stats<T> stats{std::vector<T>(s.rows), std::vector<T>(s.rows)};
  composed_norm_forward(ctx, kind, out, stats, x, weight, bias, s);
  const bool with_bias = kind == NormKind::layernorm;

  std::vector<T> dx(s.rows * s.cols), dresidual(s.rows * s.cols);
  std::vector<T> dweight = values<T>(s.cols, 16), dbias = values<T>(s.cols, 17);
  std::vector<T> fused_dweight = dweight, fused_dbias = dbias;
  auto grad = [&](std::vector<T>& g, bool present) { return present ? view(g, row) : Tensor(); };
  if (kind == NormKind::rmsnorm) {
    ops::rmsnorm_backward(ctx, view(dx, matrix), grad(dweight, !frozen), view(dout, matrix),
                          view(x, matrix), view(weight, row), view(stats.rstd, {s.rows}));
  } else {
    ops::layernorm_backward(ctx, view(dx, matrix), grad(dweight, !frozen),
                            grad(dbias, !frozen && with_bias), view(dout, matrix), view(x, matrix),
                            view(weight, row), view(stats.mean, {s.rows}),
                            view(stats.rstd, {s.rows}));
  }
  ops::add(ctx, view(dresidual, matrix), view(above, matrix), view(dx, matrix));

  std::vector<T> fused_above = above, separate(s.rows * s.cols);
  std::vector<T>& fused = placement == Placement::separate ? separate : fused_above;
  if (kind == NormKind::rmsnorm) {
    ops::residual_rmsnorm_backward(ctx, view(fused, matrix), grad(fused_dweight, !frozen),
                                   view(dout, matrix), view(fused_above, matrix), view(x, matrix),
                                   view(weight, row), view(stats.rstd, {s.rows}));
  } else {
    ops::residual_layernorm_backward(ctx, view(fused, matrix), grad(fused_dweight, !frozen),
                                     grad(fused_dbias, !frozen && with_bias), view(dout, matrix),
                                     view(fused_above, matrix), view(x, matrix), view(weight, row),
                                     view(stats.mean, {s.rows}), view(stats.rstd, {s.rows}));
  }
  EXPECT_EQ(fused, dresidual);
  EXPECT_EQ(fused_dweight, dweight);
  EXPECT_EQ(fused_dbias, dbias);
}

struct FusedCase {
  MatrixShape shape;
  int threads;
};
std::ostream& operator<<(std::ostream& out, const FusedCase& c) {
  return out << c.shape << "_threads" << c.threads;
}

class FusedNormEqualsComposed : public ::testing::TestWithParam<FusedCase> {};

TEST_P(FusedNormEqualsComposed, ForwardF32AndF64) {
  const auto [shape, threads] = GetParam();
  for (NormKind kind : {NormKind::rmsnorm, NormKind::layernorm, NormKind::layernorm_without_bias}) {
    for (Placement placement :
         {Placement::separate, Placement::over_first_input, Placement::over_second_input}) {
      check_forward_equals_composed<float>(kind, placement, shape, threads);
      check_forward_equals_composed<double>(kind, placement, shape, threads);
    }
  }
}

TEST_P(FusedNormEqualsComposed, BackwardF32AndF64) {
  const auto [shape, threads] = GetParam();
  for (NormKind kind : {NormKind::rmsnorm, NormKind::layernorm, NormKind::layernorm_without_bias}) {
    for (Placement placement : {Placement::separate, Placement::over_first_input}) {
      for (bool frozen : {false, true}) {
        check_backward_equals_composed<float>(kind, placement, shape, threads, frozen);
        check_backward_equals_composed<double>(kind, placement, shape, threads, frozen);
      }
    }
  }
}

// Row counts off the 4-row pieces and the thread split; widths off the SIMD widths; enough
// elements (300 x 257) for the CPU kernels to split over threads.
INSTANTIATE_TEST_SUITE_P(Shapes, FusedNormEqualsComposed,
                         ::testing::Values(FusedCase{{1, 7}, 1}, FusedCase{{5, 1}, 2},
                                           FusedCase{{7, 13}, 2}, FusedCase{{37, 64}, 3},
                                           FusedCase{{300, 257}, 1}, FusedCase{{300, 257}, 3}));

// loss = sum(out * probe) + sum(residual_out * probe_residual): the residual stream feeds the norm
// and, through the skip connection, the next block. The backward with dout = probe and
// dresidual_above = probe_residual gives dL/d(residual_in) = dL/d(delta) = dresidual.
void check_gradients(NormKind kind, MatrixShape s) {
  const OpContext ctx = cpu_context();
  const Shape matrix{s.rows, s.cols};
  const Shape row{s.cols};
  std::vector<double> residual_in = random_values(s.rows * s.cols, 21, 1.5);
  std::vector<double> delta = random_values(s.rows * s.cols, 22);
  std::vector<double> weight = random_values(s.cols, 23, 2.0), bias = random_values(s.cols, 24);
  std::vector<double> probe = random_values(s.rows * s.cols, 25);
  std::vector<double> probe_residual = random_values(s.rows * s.cols, 26);
  std::vector<double> residual_out(s.rows * s.cols), out(s.rows * s.cols);
  Stats<double> stats{std::vector<double>(s.rows), std::vector<double>(s.rows)};
  auto forward = [&] {
    fused_forward(ctx, kind, view(residual_out, matrix), out, stats, view(residual_in, matrix),
                  view(delta, matrix), weight, bias, s);
  };
  auto loss = [&] {
    forward();
    return dot(out, probe) + dot(residual_out, probe_residual);
  };
  forward();
  std::vector<double> dresidual = random_values(s.rows * s.cols, 27);  // overwritten
  std::vector<double> dweight(s.cols, 0.0), dbias(s.cols, 0.0);
  if (kind == NormKind::rmsnorm) {
    ops::residual_rmsnorm_backward(ctx, view(dresidual, matrix), view(dweight, row),
                                   view(probe, matrix), view(probe_residual, matrix),
                                   view(residual_out, matrix), view(weight, row),
                                   view(stats.rstd, {s.rows}));
  } else {
    ops::residual_layernorm_backward(
        ctx, view(dresidual, matrix), view(dweight, row), view(dbias, row), view(probe, matrix),
        view(probe_residual, matrix), view(residual_out, matrix), view(weight, row),
        view(stats.mean, {s.rows}), view(stats.rstd, {s.rows}));
  }
  expect_gradient("residual_in", residual_in, dresidual, loss);
  expect_gradient("delta", delta, dresidual, loss);
  expect_gradient("weight", weight, dweight, loss);
  if (kind == NormKind::layernorm) expect_gradient("bias", bias, dbias, loss);
}

TEST(FusedNormGradient, RmsNorm) {
  for (MatrixShape shape : {MatrixShape{1, 1}, MatrixShape{3, 2}, MatrixShape{7, 13}})
    check_gradients(NormKind::rmsnorm, shape);
}

TEST(FusedNormGradient, LayerNorm) {
  for (MatrixShape shape : {MatrixShape{1, 2}, MatrixShape{3, 5}, MatrixShape{7, 13}})
    check_gradients(NormKind::layernorm, shape);
}

TEST(FusedNorm, EmptyRowsAreANoOp) {
  const OpContext ctx = cpu_context();
  std::vector<double> none, weight = random_values(4, 1);
  ops::residual_rmsnorm_forward(ctx, view(none, {0, 4}), view(none, {0, 4}), view(none, {0}),
                                view(none, {0, 4}), view(none, {0, 4}), view(weight, {4}), kEps);
  ops::residual_rmsnorm_backward(ctx, view(none, {0, 4}), view(weight, {4}), view(none, {0, 4}),
                                 view(none, {0, 4}), view(none, {0, 4}), view(weight, {4}),
                                 view(none, {0}));
}

TEST(FusedNorm, ArgumentErrorsNameTheTensor) {
  const OpContext ctx = cpu_context();
  const int64_t rows = 3, cols = 4, count = rows * cols;
  std::vector<double> a = random_values(count + cols, 1), b = random_values(count, 2);
  std::vector<double> c(count), d(count), weight = random_values(cols, 3), rstd(rows), mean(rows);
  std::vector<float> rstd32(rows);
  const Shape matrix{rows, cols};
  auto rms = [&](Tensor residual_out, Tensor out, Tensor residual_in, Tensor delta) {
    ops::residual_rmsnorm_forward(ctx, residual_out, out, view(rstd, {rows}), residual_in, delta,
                                  view(weight, {cols}), kEps);
  };
  expect_error_mentioning(
      [&] {
        rms(view(c, matrix), view(d, matrix), view(a, matrix), view(b, {4, 3}));
      },
      "residual_rmsnorm_forward: argument delta has shape (4, 3), expected (3, 4)");
  // residual_out one row into residual_in: neither in place nor separate.
  const Tensor shifted(a.data() + cols, DType::f64, matrix);
  expect_error_mentioning([&] { rms(shifted, view(d, matrix), view(a, matrix), view(b, matrix)); },
                          "argument residual_out partly overlaps argument residual_in");
  expect_error_mentioning(
      [&] { rms(view(c, matrix), view(c, matrix), view(a, matrix), view(b, matrix)); },
      "argument out overlaps argument residual_out");
  expect_error_mentioning(
      [&] { rms(view(c, matrix), view(b, matrix), view(a, matrix), view(b, matrix)); },
      "argument out overlaps argument delta");
  expect_error_mentioning(
      [&] {
        ops::residual_layernorm_forward(ctx, view(c, matrix), view(d, matrix), view(mean, {rows}),
                                        view(rstd32, {rows}), view(a, matrix), view(b, matrix),
                                        view(weight, {cols}), Tensor(), kEps);
      },
      "residual_layernorm_forward: argument rstd has dtype f32, expected f64");
  expect_error_mentioning(
      [&] {
        ops::residual_rmsnorm_backward(ctx, view(b, matrix), Tensor(), view(b, matrix),
                                       view(c, matrix), view(a, matrix), view(weight, {cols}),
                                       view(rstd, {rows}));
      },
      "residual_rmsnorm_backward: argument dresidual overlaps argument dout");
  expect_error_mentioning(
      [&] {
        ops::residual_layernorm_backward(ctx, view(a, matrix), Tensor(), Tensor(), view(b, matrix),
                                         view(c, matrix), view(a, matrix), view(weight, {cols}),
                                         view(mean, {rows}), view(rstd, {rows}));
      },
      "residual_layernorm_backward: argument dresidual overlaps argument x");
  expect_error_mentioning(
      [&] {
        ops::residual_rmsnorm_backward(ctx, view(c, matrix), view(weight, {2}), view(b, matrix),
                                       view(d, matrix), view(a, matrix), view(weight, {cols}),
                                       view(rstd, {rows}));
      },
      "argument dweight has shape (2), expected (4)");
}

}  // namespace
}  // namespace ft
