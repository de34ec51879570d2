#include "kernels/cpu/vocab_parallel_cpu.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <string_view>

#include "kernels/cpu/cpu_common.h"
#include "kernels/ops.h"
#include "runtime/error.h"

namespace ft::cpu {
namespace {

// exp of a whole row dominates the loss kernels: about 20 flops per logit.
constexpr int64_t kLogitCost = 20;

bool in_shard(int64_t index, int64_t vocab_begin, int64_t local_vocab) {
  return index >= vocab_begin && index < vocab_begin + local_vocab;
}

// A shard cannot see vocab_size, so only the lower end of a target is checked here.
void check_targets(std::string_view op, const int32_t* targets, int64_t rows) {
  for (int64_t i = 0; i < rows; ++i) {
    if (targets[i] < 0 && targets[i] != ops::kIgnoreIndex) {
      fail("op {}: targets[{}] = {} is negative and is not the ignore index {}", op, i, targets[i],
           ops::kIgnoreIndex);
    }
  }
}

// The shard's largest non-NaN logit and the first column holding it, with count_correct's rule for
// a NaN at global column 0 (its scalar argmax never leaves index 0 then). Returns the local column.
template <typename scalar_t>
[[gnu::always_inline]] inline int64_t shard_argmax(const scalar_t* z, int64_t local_vocab,
                                                   int64_t vocab_begin, scalar_t& max) {
  if (vocab_begin == 0 && z[0] != z[0]) {
    max = z[0];
    return 0;
  }
  scalar_t largest = -std::numeric_limits<scalar_t>::infinity();
#pragma omp simd reduction(max : largest)
  for (int64_t j = 0; j < local_vocab; ++j)
    largest = z[j] > largest ? z[j] : largest;  // NaN is never greater: skipped
  max = largest;
  for (int64_t j = 0; j < local_vocab; ++j)
    if (z[j] == largest) return j;
  max = std::numeric_limits<scalar_t>::quiet_NaN();  // no column compares equal: all are NaN
  return 0;
}

template <typename scalar_t>
FT_CPU_CLONES void stats_rows(scalar_t* stats, const scalar_t* logits, const int32_t* targets,
                              int64_t vocab_begin, int64_t local_vocab, int64_t begin,
                              int64_t end) {
  for (int64_t row = begin; row < end; ++row) {
    scalar_t* out = stats + row * kShardStatCount;
    const int32_t target = targets[row];
    if (target == ops::kIgnoreIndex) {
      std::fill_n(out, kShardStatCount, scalar_t{0});
      continue;
    }
    const scalar_t* z = logits + row * local_vocab;
    scalar_t max;
    const int64_t argmax = shard_argmax(z, local_vocab, vocab_begin, max);
    // As cross_entropy_forward: scalar_t partial sums over short chunks, each added into a double.
    constexpr int64_t kSumChunk = 256;
    double sum = 0.0;
    for (int64_t chunk = 0; chunk < local_vocab; chunk += kSumChunk) {
      const int64_t stop = std::min(local_vocab, chunk + kSumChunk);
      scalar_t chunk_sum = 0;
#pragma omp simd reduction(+ : chunk_sum)
      for (int64_t j = chunk; j < stop; ++j) chunk_sum += exp_vectorizable(z[j] - max);
      sum += chunk_sum;
    }
    out[kShardLse] = static_cast<scalar_t>(static_cast<double>(max) + std::log(sum));
    out[kShardTargetLogit] =
        in_shard(target, vocab_begin, local_vocab) ? z[target - vocab_begin] : scalar_t{0};
    out[kShardMax] = max;
    out[kShardArgmax] = static_cast<scalar_t>(vocab_begin + argmax);
  }
}

// Every non-ignored row's argmax entries must be column indices: whole numbers below 2^digits,
// where the dtype holds every integer exactly.
template <typename scalar_t>
void check_argmax_entries(const scalar_t* parts, const int32_t* targets, int64_t shards,
                          int64_t rows) {
  constexpr int digits = std::numeric_limits<scalar_t>::digits;
  const double limit = std::ldexp(1.0, digits);
  for (int64_t shard = 0; shard < shards; ++shard) {
    for (int64_t row = 0; row < rows; ++row) {
      if (targets[row] == ops::kIgnoreIndex) continue;
      const double index = parts[(shard * rows + row) * kShardStatCount + kShardArgmax];
      if (!(index >= 0 && index < limit && index == std::floor(index))) {
        fail(
            "op cross_entropy_combine_shards: parts[{}, {}, {}] = {} is not a column index (a "
            "whole number in [0, 2^{})): parts must be cross_entropy_shard_stats outputs",
            shard, row, static_cast<int64_t>(kShardArgmax), index, digits);
      }
    }
  }
}

template <typename scalar_t>
int64_t combine_rows(scalar_t* losses, scalar_t* lse, const scalar_t* parts, const int32_t* targets,
                     int64_t shards, int64_t rows, bool count_correct, int64_t begin, int64_t end) {
  const int64_t shard_stride = rows * kShardStatCount;
  int64_t correct = 0;
  for (int64_t row = begin; row < end; ++row) {
    const int32_t target = targets[row];
    if (target == ops::kIgnoreIndex) {
      losses[row] = scalar_t{0};
      lse[row] = scalar_t{0};
      continue;
    }
    const scalar_t* first = parts + row * kShardStatCount;
    double max_lse = -std::numeric_limits<double>::infinity();
    for (int64_t s = 0; s < shards; ++s) {
      const double shard_lse = first[s * shard_stride + kShardLse];
      max_lse = shard_lse > max_lse ? shard_lse : max_lse;  // a NaN reaches the sum below
    }
    double sum = 0.0, target_logit = 0.0;
    for (int64_t s = 0; s < shards; ++s) {
      sum += std::exp(static_cast<double>(first[s * shard_stride + kShardLse]) - max_lse);
      target_logit += first[s * shard_stride + kShardTargetLogit];  // one shard's is nonzero
    }
    const double row_lse = max_lse + std::log(sum);
    lse[row] = static_cast<scalar_t>(row_lse);
    losses[row] = static_cast<scalar_t>(row_lse - target_logit);
    if (!count_correct) continue;
    // Shards in vocabulary order, a later one winning only when strictly greater: the first
    // column on ties, and NaN maxima never win, as count_correct's scalar argmax.
    scalar_t best = first[kShardMax];
    scalar_t best_index = first[kShardArgmax];
    for (int64_t s = 1; s < shards; ++s) {
      const scalar_t* part = first + s * shard_stride;
      if (part[kShardMax] > best) {
        best = part[kShardMax];
        best_index = part[kShardArgmax];
      }
    }
    correct += static_cast<int64_t>(best_index) == target;
  }
  return correct;
}

template <typename scalar_t>
FT_CPU_CLONES void backward_rows(scalar_t* dlogits, const scalar_t* logits, const scalar_t* lse,
                                 const int32_t* targets, double dloss, int64_t vocab_begin,
                                 int64_t local_vocab, int64_t begin, int64_t end) {
  const auto scale = static_cast<scalar_t>(dloss);
  for (int64_t row = begin; row < end; ++row) {
    scalar_t* d = dlogits + row * local_vocab;
    const int32_t target = targets[row];
    if (target == ops::kIgnoreIndex) {
      std::fill_n(d, local_vocab, scalar_t{0});
      continue;
    }
    const scalar_t* z = logits + row * local_vocab;  // may be d itself: each element is read first
    const scalar_t row_lse = lse[row];
    for (int64_t j = 0; j < local_vocab; ++j) d[j] = scale * exp_vectorizable(z[j] - row_lse);
    if (in_shard(target, vocab_begin, local_vocab)) d[target - vocab_begin] -= scale;
  }
}

}  // namespace

template <typename scalar_t>
void embedding_forward_shard(scalar_t* out, const int32_t* ids, const scalar_t* table, int64_t rows,
                             int64_t vocab_begin, int64_t local_vocab, int64_t vocab_size,
                             int64_t cols, int threads) {
  for (int64_t i = 0; i < rows; ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      fail("op embedding_forward_shard: ids[{}] = {} is outside the vocabulary's [0, {})", i,
           ids[i], vocab_size);
    }
  }
  parallel_ranges(rows, threads, cols, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (in_shard(ids[i], vocab_begin, local_vocab)) {
        std::copy_n(table + (ids[i] - vocab_begin) * cols, cols, out + i * cols);
      } else {
        std::fill_n(out + i * cols, cols, scalar_t{0});  // another shard's row
      }
    }
  });
}

template <typename scalar_t>
void embedding_backward_shard(scalar_t* dtable, const int32_t* ids, const scalar_t* dout,
                              int64_t rows, int64_t vocab_begin, int64_t local_vocab, int64_t cols,
                              int threads) {
  for (int64_t i = 0; i < rows; ++i) {
    if (ids[i] < 0) fail("op embedding_backward_shard: ids[{}] = {} is negative", i, ids[i]);
  }
  // As embedding_backward: threads own disjoint column ranges, rows add in order.
  parallel_ranges(cols, threads, rows, [&](int64_t begin, int64_t end) {
    for (int64_t i = 0; i < rows; ++i) {
      if (!in_shard(ids[i], vocab_begin, local_vocab)) continue;
      scalar_t* target = dtable + (ids[i] - vocab_begin) * cols;
      const scalar_t* source = dout + i * cols;
      for (int64_t j = begin; j < end; ++j) target[j] += source[j];
    }
  });
}

template <typename scalar_t>
void cross_entropy_shard_stats(scalar_t* stats, const scalar_t* logits, const int32_t* targets,
                               int64_t rows, int64_t vocab_begin, int64_t local_vocab,
                               int threads) {
  check_targets("cross_entropy_shard_stats", targets, rows);
  parallel_ranges(rows, threads, local_vocab * kLogitCost, [&](int64_t begin, int64_t end) {
    stats_rows(stats, logits, targets, vocab_begin, local_vocab, begin, end);
  });
}

template <typename scalar_t>
void cross_entropy_combine_shards(scalar_t* losses, scalar_t* lse, const scalar_t* parts,
                                  const int32_t* targets, int64_t shards, int64_t rows, int threads,
                                  int64_t* correct) {
  check_targets("cross_entropy_combine_shards", targets, rows);
  check_argmax_entries(parts, targets, shards, rows);
  std::atomic<int64_t> correct_rows{0};  // an integer sum: the same for any thread split
  parallel_ranges(rows, threads, shards * kLogitCost, [&](int64_t begin, int64_t end) {
    correct_rows +=
        combine_rows(losses, lse, parts, targets, shards, rows, correct != nullptr, begin, end);
  });
  if (correct) *correct = correct_rows.load();
}

template <typename scalar_t>
void cross_entropy_backward_shard(scalar_t* dlogits, const scalar_t* logits, const scalar_t* lse,
                                  const int32_t* targets, double dloss, int64_t rows,
                                  int64_t vocab_begin, int64_t local_vocab, int threads) {
  check_targets("cross_entropy_backward_shard", targets, rows);
  parallel_ranges(rows, threads, local_vocab * kLogitCost, [&](int64_t begin, int64_t end) {
    backward_rows(dlogits, logits, lse, targets, dloss, vocab_begin, local_vocab, begin, end);
  });
}

#define FT_INSTANTIATE(scalar_t)                                                                \
  template void embedding_forward_shard<scalar_t>(scalar_t*, const int32_t*, const scalar_t*,   \
                                                  int64_t, int64_t, int64_t, int64_t, int64_t,  \
                                                  int);                                         \
  template void embedding_backward_shard<scalar_t>(scalar_t*, const int32_t*, const scalar_t*,  \
                                                   int64_t, int64_t, int64_t, int64_t, int);    \
  template void cross_entropy_shard_stats<scalar_t>(scalar_t*, const scalar_t*, const int32_t*, \
                                                    int64_t, int64_t, int64_t, int);            \
  template void cross_entropy_combine_shards<scalar_t>(                                         \
      scalar_t*, scalar_t*, const scalar_t*, const int32_t*, int64_t, int64_t, int, int64_t*);  \
  template void cross_entropy_backward_shard<scalar_t>(scalar_t*, const scalar_t*,              \
                                                       const scalar_t*, const int32_t*, double, \
                                                       int64_t, int64_t, int64_t, int);
FT_INSTANTIATE(float)
FT_INSTANTIATE(double)
#undef FT_INSTANTIATE

}  // namespace ft::cpu
