// Attention op (CPU): forward against a direct implementation of the definition, fp64 gradient
// checks of every input (incl. the batch-summed, accumulated prefix gradients), segment isolation,
// f32 vs f64, thread-count independence, and the argument/workspace errors.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/attention_cpu.h"
#include "kernels/ops.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using ft::testing::widen;

using ft::testing::dot;
using ft::testing::expect_gradient;
using ft::testing::random_values;
using ft::testing::relative_l2;
using ft::testing::view;

struct AttentionCase {
  std::string name;
  int64_t batch, seq_len, q_heads, kv_heads, head_dim, prefix_len;
  bool causal;
  std::vector<int32_t> segments;  // (B * T), empty: none
  double scale = 0.0;
};

// Segment ids of `batch` rows given as run lengths per row (each row's runs sum to seq_len).
std::vector<int32_t> segments_from_runs(const std::vector<std::vector<int>>& runs_per_row) {
  std::vector<int32_t> ids;
  int32_t next_id = 3;
  for (const auto& runs : runs_per_row) {
    for (int run : runs) {
      ids.insert(ids.end(), run, next_id);
      next_id += 2;
    }
  }
  return ids;
}

// T crossing two query-block boundaries, so blocks and their key ranges are exercised.
const int64_t kLongSeq = 2 * cpu::kAttentionQueryBlock + 3;

struct AttentionData {
  AttentionCase c;
  std::vector<double> q, k, v, prefix_k, prefix_v, probe;

  explicit AttentionData(AttentionCase attention_case, uint64_t seed = 1)
      : c(std::move(attention_case)) {
    const int64_t tokens = c.batch * c.seq_len;
    q = random_values(tokens * c.q_heads * c.head_dim, seed + 1);
    k = random_values(tokens * c.kv_heads * c.head_dim, seed + 2);
    v = random_values(tokens * c.kv_heads * c.head_dim, seed + 3);
    prefix_k = random_values(c.prefix_len * c.kv_heads * c.head_dim, seed + 4);
    prefix_v = random_values(c.prefix_len * c.kv_heads * c.head_dim, seed + 5);
    probe = random_values(tokens * c.q_heads * c.head_dim, seed + 6);
  }
  Shape q_shape() const { return {c.batch, c.seq_len, c.q_heads, c.head_dim}; }
  Shape kv_shape() const { return {c.batch, c.seq_len, c.kv_heads, c.head_dim}; }
  Shape prefix_shape() const { return {c.prefix_len, c.kv_heads, c.head_dim}; }
  Shape lse_shape() const { return {c.batch, c.q_heads, c.seq_len}; }
  ops::AttentionArgs args() const { return {c.causal, c.scale}; }
};

template <typename T>
std::vector<T> convert(const std::vector<double>& values) {
  return std::vector<T>(values.begin(), values.end());
}
template <typename T>
Tensor view_or_empty(std::vector<T>& values, Shape shape) {
  return values.empty() ? Tensor() : Tensor(values.data(), dtype_of<T>(), shape);
}

// Inputs of one precision plus a workspace sized for `threads`.
template <typename T>
struct AttentionRun {
  const AttentionData& d;
  std::vector<T> q, k, v, prefix_k, prefix_v;
  std::vector<int32_t> segments;
  std::vector<std::byte> workspace;
  OpContext ctx;

  AttentionRun(const AttentionData& data, int threads)
      : d(data),
        q(convert<T>(data.q)),
        k(convert<T>(data.k)),
        v(convert<T>(data.v)),
        prefix_k(convert<T>(data.prefix_k)),
        prefix_v(convert<T>(data.prefix_v)),
        segments(data.c.segments) {
    ctx.num_threads = threads;
    const AttentionCase& c = data.c;
    workspace.resize(ops::attention_workspace_bytes(
        ctx, dtype_of<T>(), c.batch, c.seq_len, c.q_heads, c.kv_heads, c.head_dim, c.prefix_len));
    ctx.workspace = {workspace.data(), workspace.size()};
  }
  Tensor tq() { return Tensor(q.data(), dtype_of<T>(), d.q_shape()); }
  Tensor tk() { return Tensor(k.data(), dtype_of<T>(), d.kv_shape()); }
  Tensor tv() { return Tensor(v.data(), dtype_of<T>(), d.kv_shape()); }
  Tensor tprefix_k() { return view_or_empty(prefix_k, d.prefix_shape()); }
  Tensor tprefix_v() { return view_or_empty(prefix_v, d.prefix_shape()); }
  Tensor tsegments() { return view_or_empty(segments, Shape{d.c.batch, d.c.seq_len}); }

  void forward(std::vector<T>& out, std::vector<T>& lse) {
    out.assign(d.q.size(), T(0));
    lse.assign(d.c.batch * d.c.q_heads * d.c.seq_len, T(0));
    ops::attention_forward(ctx, Tensor(out.data(), dtype_of<T>(), d.q_shape()),
                           Tensor(lse.data(), dtype_of<T>(), d.lse_shape()), tq(), tk(), tv(),
                           tprefix_k(), tprefix_v(), tsegments(), d.args());
  }
};

struct ForwardResult {
  std::vector<double> out, lse;
};

template <typename T>
ForwardResult forward(const AttentionData& d, int threads = 2) {
  AttentionRun<T> run(d, threads);
  std::vector<T> out, lse;
  run.forward(out, lse);
  return {widen(out), widen(lse)};
}

struct BackwardResult {
  std::vector<double> dq, dk, dv, dprefix_k, dprefix_v;
};

// Forward, then backward with dout = probe. dq, dk, dv start as garbage (they are overwritten);
// dprefix_* start as `dprefix_initial` (they accumulate).
template <typename T>
BackwardResult backward(const AttentionData& d, const std::vector<double>& dprefix_k_initial,
                        const std::vector<double>& dprefix_v_initial, int threads = 2) {
  AttentionRun<T> run(d, threads);
  std::vector<T> out, lse;
  run.forward(out, lse);
  std::vector<T> dout = convert<T>(d.probe);
  std::vector<T> dq = convert<T>(random_values(d.q.size(), 91, 50.0));
  std::vector<T> dk = convert<T>(random_values(d.k.size(), 92, 50.0));
  std::vector<T> dv = convert<T>(random_values(d.v.size(), 93, 50.0));
  std::vector<T> dprefix_k = convert<T>(dprefix_k_initial);
  std::vector<T> dprefix_v = convert<T>(dprefix_v_initial);
  ops::attention_backward(
      run.ctx, Tensor(dq.data(), dtype_of<T>(), d.q_shape()),
      Tensor(dk.data(), dtype_of<T>(), d.kv_shape()),
      Tensor(dv.data(), dtype_of<T>(), d.kv_shape()), view_or_empty(dprefix_k, d.prefix_shape()),
      view_or_empty(dprefix_v, d.prefix_shape()), Tensor(dout.data(), dtype_of<T>(), d.q_shape()),
      Tensor(out.data(), dtype_of<T>(), d.q_shape()),
      Tensor(lse.data(), dtype_of<T>(), d.lse_shape()), run.tq(), run.tk(), run.tv(),
      run.tprefix_k(), run.tprefix_v(), run.tsegments(), d.args());
  return {widen(dq), widen(dk), widen(dv), widen(dprefix_k), widen(dprefix_v)};
}

// The definition, directly: loops in double over every (b, h, i) and every visible key.
ForwardResult reference_forward(const AttentionData& d) {
  const AttentionCase& c = d.c;
  const int64_t D = c.head_dim, T = c.seq_len, P = c.prefix_len;
  const double scale = c.scale != 0.0 ? c.scale : 1.0 / std::sqrt(static_cast<double>(D));
  ForwardResult result{std::vector<double>(d.q.size()),
                       std::vector<double>(c.batch * c.q_heads * T)};
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t h = 0; h < c.q_heads; ++h) {
      const int64_t kv_head = h / (c.q_heads / c.kv_heads);
      for (int64_t i = 0; i < T; ++i) {
        const double* q_row = &d.q[((b * T + i) * c.q_heads + h) * D];
        std::vector<double> scores;
        std::vector<const double*> values;
        auto add_key = [&](const double* key, const double* value) {
          double s = 0.0;
          for (int64_t x = 0; x < D; ++x) s += q_row[x] * key[x];
          scores.push_back(scale * s);
          values.push_back(value);
        };
        for (int64_t p = 0; p < P; ++p) {
          add_key(&d.prefix_k[(p * c.kv_heads + kv_head) * D],
                  &d.prefix_v[(p * c.kv_heads + kv_head) * D]);
        }
        for (int64_t j = 0; j < T; ++j) {
          if (c.causal && j > i) continue;
          if (!c.segments.empty() && c.segments[b * T + i] != c.segments[b * T + j]) continue;
          add_key(&d.k[((b * T + j) * c.kv_heads + kv_head) * D],
                  &d.v[((b * T + j) * c.kv_heads + kv_head) * D]);
        }
        double max_score = -std::numeric_limits<double>::infinity();
        for (double s : scores) max_score = std::max(max_score, s);
        double sum = 0.0;
        for (double s : scores) sum += std::exp(s - max_score);
        result.lse[(b * c.q_heads + h) * T + i] = max_score + std::log(sum);
        double* out_row = &result.out[((b * T + i) * c.q_heads + h) * D];
        for (size_t n = 0; n < scores.size(); ++n) {
          const double weight = std::exp(scores[n] - max_score) / sum;
          for (int64_t x = 0; x < D; ++x) out_row[x] += weight * values[n][x];
        }
      }
    }
  }
  return result;
}

std::vector<AttentionCase> gradient_cases() {
  const std::vector<int32_t> packed8 = segments_from_runs({{3, 2, 3}, {2, 5, 1}});
  // Not contiguous: segment ids repeat after another segment; the definition still applies.
  const std::vector<int32_t> scattered7 = {0, 0, 1, 1, 0, 0, 2};
  const std::vector<int32_t> packed_long = segments_from_runs({{50, 41, 40}, {1, 129, 1}});
  return {
      {"mha_causal", 2, 7, 2, 2, 5, 0, true, {}},
      {"mha_full", 2, 7, 2, 2, 5, 0, false, {}},
      {"gqa4x2_causal", 2, 7, 4, 2, 5, 0, true, {}},
      {"mqa6x1_full", 1, 6, 6, 1, 4, 0, false, {}},
      {"prefix_causal", 2, 7, 2, 2, 5, 3, true, {}},
      {"prefix_gqa_full", 2, 5, 4, 2, 3, 3, false, {}},
      {"segments_causal", 2, 8, 2, 1, 4, 0, true, packed8},
      {"segments_full", 2, 8, 2, 1, 4, 0, false, packed8},
      {"scattered_segments_causal", 1, 7, 2, 2, 3, 0, true, scattered7},
      {"scattered_segments_full", 1, 7, 2, 2, 3, 2, false, scattered7},
      {"all_features_mqa", 2, 8, 6, 1, 5, 3, true, packed8, 0.3},
      {"all_features_gqa_full", 2, 8, 4, 2, 5, 3, false, packed8, 0.7},
      {"long_causal_segments_prefix", 2, kLongSeq, 2, 1, 3, 2, true, packed_long},
      {"long_full", 1, kLongSeq, 2, 2, 3, 0, false, {}},
      {"long_full_segments", 2, kLongSeq, 2, 1, 2, 1, false, packed_long},
  };
}

class AttentionCaseTest : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(AttentionCaseTest, ForwardMatchesDefinition) {
  const AttentionData d(GetParam());
  const ForwardResult expected = reference_forward(d);
  const ForwardResult f64 = forward<double>(d);
  EXPECT_LT(relative_l2(f64.out, expected.out), 1e-13);
  EXPECT_LT(relative_l2(f64.lse, expected.lse), 1e-13);
  const ForwardResult f32 = forward<float>(d);
  EXPECT_LT(relative_l2(f32.out, expected.out), 1e-5);
  EXPECT_LT(relative_l2(f32.lse, expected.lse), 1e-5);
}

TEST_P(AttentionCaseTest, GradientsMatchFiniteDifferences) {
  AttentionData d(GetParam());
  const std::vector<double> dprefix_k_initial = random_values(d.prefix_k.size(), 71);
  const std::vector<double> dprefix_v_initial = random_values(d.prefix_v.size(), 72);
  const BackwardResult grad = backward<double>(d, dprefix_k_initial, dprefix_v_initial);
  auto loss = [&d] { return dot(forward<double>(d, 1).out, d.probe); };
  expect_gradient("dq", d.q, grad.dq, loss);
  expect_gradient("dk", d.k, grad.dk, loss);
  expect_gradient("dv", d.v, grad.dv, loss);
  if (d.c.prefix_len > 0) {
    // Accumulated: what the op added to the initial values is the gradient.
    std::vector<double> added_k(grad.dprefix_k.size()), added_v(grad.dprefix_v.size());
    for (size_t i = 0; i < added_k.size(); ++i) {
      added_k[i] = grad.dprefix_k[i] - dprefix_k_initial[i];
      added_v[i] = grad.dprefix_v[i] - dprefix_v_initial[i];
    }
    expect_gradient("dprefix_k", d.prefix_k, added_k, loss);
    expect_gradient("dprefix_v", d.prefix_v, added_v, loss);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionCaseTest, ::testing::ValuesIn(gradient_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(Attention, FrozenPrefixSkipsPrefixGradients) {
  AttentionData d({"prefix", 2, 7, 4, 2, 5, 3, true, {}});
  const BackwardResult with_prefix_grads = backward<double>(d, random_values(d.prefix_k.size(), 71),
                                                            random_values(d.prefix_v.size(), 72));
  const BackwardResult frozen = backward<double>(d, {}, {});
  EXPECT_TRUE(frozen.dprefix_k.empty());
  EXPECT_EQ(frozen.dq, with_prefix_grads.dq);
  EXPECT_EQ(frozen.dk, with_prefix_grads.dk);
  EXPECT_EQ(frozen.dv, with_prefix_grads.dv);
}

TEST(Attention, SegmentsIsolateDocuments) {
  for (bool causal : {true, false}) {
    SCOPED_TRACE(causal ? "causal" : "full");
    const std::vector<int32_t> row = {0, 0, 0, 1, 1, 2, 2, 2};
    std::vector<int32_t> segments = row;
    segments.insert(segments.end(), row.begin(), row.end());
    const AttentionData original({"packed", 2, 8, 4, 2, 5, 3, causal, segments});
    AttentionData changed = original;
    // New q, k, v for the tokens of segment 1 (positions 3, 4) in both rows.
    const std::vector<double> noise = random_values(original.q.size(), 99, 3.0);
    auto replace_segment_one = [&](std::vector<double>& x, int64_t heads) {
      const int64_t row_elements = heads * original.c.head_dim;
      for (int64_t token = 0; token < 16; ++token) {
        if (segments[token] != 1) continue;
        for (int64_t e = 0; e < row_elements; ++e) x[token * row_elements + e] = noise[e + token];
      }
    };
    replace_segment_one(changed.q, 4);
    replace_segment_one(changed.k, 2);
    replace_segment_one(changed.v, 2);
    const ForwardResult before = forward<double>(original);
    const ForwardResult after = forward<double>(changed);
    const int64_t row_elements = 4 * 5;
    for (int64_t token = 0; token < 16; ++token) {
      double difference = 0.0;
      for (int64_t e = 0; e < row_elements; ++e) {
        difference = std::max(difference, std::abs(before.out[token * row_elements + e] -
                                                   after.out[token * row_elements + e]));
      }
      if (segments[token] == 1) {
        EXPECT_GT(difference, 1e-3) << "token " << token;
      } else {
        EXPECT_LT(difference, 1e-14) << "token " << token;
      }
    }
  }
}

TEST(Attention, FloatMatchesDouble) {
  const AttentionData d(
      {"mixed", 2, kLongSeq, 4, 2, 16, 3, true, segments_from_runs({{60, 71}, {131}})});
  const std::vector<double> dprefix_k = random_values(d.prefix_k.size(), 71);
  const std::vector<double> dprefix_v = random_values(d.prefix_v.size(), 72);
  const ForwardResult f64 = forward<double>(d), f32 = forward<float>(d);
  EXPECT_LT(relative_l2(f32.out, f64.out), 1e-5);
  EXPECT_LT(relative_l2(f32.lse, f64.lse), 1e-5);
  const BackwardResult g64 = backward<double>(d, dprefix_k, dprefix_v);
  const BackwardResult g32 = backward<float>(d, dprefix_k, dprefix_v);
  EXPECT_LT(relative_l2(g32.dq, g64.dq), 1e-5);
  EXPECT_LT(relative_l2(g32.dk, g64.dk), 1e-5);
  EXPECT_LT(relative_l2(g32.dv, g64.dv), 1e-5);
  EXPECT_LT(relative_l2(g32.dprefix_k, g64.dprefix_k), 1e-5);
  EXPECT_LT(relative_l2(g32.dprefix_v, g64.dprefix_v), 1e-5);
}

TEST(Attention, ThreadCountDoesNotChangeResults) {
  const AttentionData d({"threads", 3, kLongSeq, 4, 2, 8, 2, true,
                         segments_from_runs({{131}, {30, 101}, {100, 31}})});
  const std::vector<double> dprefix_k = random_values(d.prefix_k.size(), 71);
  const std::vector<double> dprefix_v = random_values(d.prefix_v.size(), 72);
  const int caller_max_threads = omp_get_max_threads();
  const ForwardResult one = forward<float>(d, 1), three = forward<float>(d, 3);
  EXPECT_EQ(one.out, three.out);
  EXPECT_EQ(one.lse, three.lse);
  const BackwardResult g1 = backward<float>(d, dprefix_k, dprefix_v, 1);
  const BackwardResult g3 = backward<float>(d, dprefix_k, dprefix_v, 3);
  EXPECT_EQ(g1.dq, g3.dq);
  EXPECT_EQ(g1.dk, g3.dk);
  EXPECT_EQ(g1.dv, g3.dv);
  EXPECT_EQ(g1.dprefix_k, g3.dprefix_k);
  EXPECT_EQ(g1.dprefix_v, g3.dprefix_v);
  // The op confines BLAS to its own threads without changing the caller's OpenMP setting.
  EXPECT_EQ(omp_get_max_threads(), caller_max_threads);
}

TEST(Attention, WorkspaceTooSmallNamesTheBytesNeeded) {
  const AttentionData d({"small", 2, 7, 2, 2, 5, 3, true, {}});
  AttentionRun<float> run(d, 2);
  const size_t needed = run.workspace.size();
  ASSERT_GT(needed, 0u);
  std::vector<float> out(d.q.size()), lse(d.c.batch * d.c.q_heads * d.c.seq_len);
  for (size_t bytes : {needed - 1, size_t(0)}) {
    run.ctx.workspace = {run.workspace.data(), bytes};
    try {
      run.forward(out, lse);
      ADD_FAILURE() << "no error with a workspace of " << bytes << " bytes";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("needs " + std::to_string(needed) + " bytes"),
                std::string::npos)
          << error.what();
    }
  }
  // More threads need more scratch.
  OpContext four_threads;
  four_threads.num_threads = 4;
  EXPECT_GT(ops::attention_workspace_bytes(four_threads, DType::f32, 2, 7, 2, 2, 5, 3), needed);
}

std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& error) {
    return error.what();
  }
  return "no error";
}

TEST(Attention, BadArgumentsAreNamed) {
  AttentionData d({"args", 2, 7, 4, 2, 5, 3, true, segments_from_runs({{7}, {3, 4}})});
  AttentionRun<double> run(d, 1);
  std::vector<double> out(d.q.size()), lse(d.c.batch * d.c.q_heads * d.c.seq_len);
  std::vector<int32_t> segments = d.c.segments;
  Tensor t_out = view(out, d.q_shape()), t_lse = view(lse, d.lse_shape());
  auto call = [&](Tensor q, Tensor k, Tensor v, Tensor pk, Tensor pv, Tensor seg) {
    return error_of(
        [&] { ops::attention_forward(run.ctx, t_out, t_lse, q, k, v, pk, pv, seg, d.args()); });
  };
  EXPECT_EQ(call(run.tq(), run.tk(), run.tv(), run.tprefix_k(), run.tprefix_v(), run.tsegments()),
            "no error");
  EXPECT_NE(call(run.tq(), run.tk(), run.tv().reshape({2, 7, 1, 10}), run.tprefix_k(),
                 run.tprefix_v(), run.tsegments())
                .find("argument v has shape (2, 7, 1, 10), expected (2, 7, 2, 5)"),
            std::string::npos);
  EXPECT_NE(call(run.tq(), run.tk().reshape({2, 7, 5, 2}), run.tv(), run.tprefix_k(),
                 run.tprefix_v(), run.tsegments())
                .find("multiple of the kv heads"),
            std::string::npos);
  EXPECT_NE(call(run.tq(), run.tk(), run.tv(), run.tprefix_k(), Tensor(), run.tsegments())
                .find("prefix_k and prefix_v must both be given"),
            std::string::npos);
  EXPECT_NE(call(run.tq(), run.tk(), run.tv(), run.tprefix_k(), run.tprefix_v(),
                 Tensor(run.q.data(), DType::f64, {2, 7}))
                .find("argument segment_ids has dtype f64, expected i32"),
            std::string::npos);
  EXPECT_NE(call(run.tq().reshape({14, 4, 5}), run.tk(), run.tv(), run.tprefix_k(), run.tprefix_v(),
                 run.tsegments())
                .find("argument q must be (B, T, Hq, D)"),
            std::string::npos);
  std::vector<float> q_f32(d.q.size(), 0.5f);
  EXPECT_NE(call(view(q_f32, d.q_shape()), run.tk(), run.tv(), run.tprefix_k(), run.tprefix_v(),
                 run.tsegments())
                .find("argument k has dtype f64, expected f32"),
            std::string::npos);
}

// Rough speed of the GPT-2-small-like shape of the benchmark; run with
// --gtest_also_run_disabled_tests. Prints, asserts nothing about time.
TEST(Attention, DISABLED_PrintTiming) {
  const AttentionData d({"gpt2", 8, 256, 6, 6, 64, 0, true, {}});
  for (int threads : {1, 2}) {
    AttentionRun<float> run(d, threads);
    std::vector<float> out, lse, dout = convert<float>(d.probe);
    std::vector<float> dq(d.q.size()), dk(d.k.size()), dv(d.v.size());
    auto step = [&] {
      run.forward(out, lse);
      ops::attention_backward(run.ctx, view(dq, d.q_shape()), view(dk, d.kv_shape()),
                              view(dv, d.kv_shape()), Tensor(), Tensor(), view(dout, d.q_shape()),
                              view(out, d.q_shape()), view(lse, d.lse_shape()), run.tq(), run.tk(),
                              run.tv(), Tensor(), Tensor(), Tensor(), d.args());
    };
    step();
    const int repeats = 10;
    double forward_seconds = 0.0, total_seconds = 0.0;
    for (int r = 0; r < repeats; ++r) {
      auto start = std::chrono::steady_clock::now();
      run.forward(out, lse);
      auto middle = std::chrono::steady_clock::now();
      step();
      auto end = std::chrono::steady_clock::now();
      forward_seconds += std::chrono::duration<double>(middle - start).count();
      total_seconds += std::chrono::duration<double>(end - middle).count();
    }
    std::printf(
        "attention B=8 T=256 H=6 D=64 f32, %d thread(s): forward %.2f ms, "
        "forward+backward %.2f ms\n",
        threads, 1e3 * forward_seconds / repeats, 1e3 * total_seconds / repeats);
  }
}

}  // namespace
}  // namespace ft
