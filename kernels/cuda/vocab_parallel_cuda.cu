#include "kernels/cpu/vocab_parallel_cpu.h"
#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/cross_entropy_cuda.h"
#include "kernels/cuda/device_errors_cuda.h"
#include "kernels/cuda/vocab_parallel_cuda.h"
#include "kernels/ops.h"

namespace ft::cuda {
namespace {

constexpr int64_t kStats = cpu::kShardStatCount;

// One block per row of the shard.
template <typename T>
__global__ void shard_stats_kernel(float* stats, const T* logits, const int32_t* targets,
                                   int64_t rows, int64_t vocab_begin, int64_t local_vocab,
                                   DeviceErrorRecord* errors, const char* op) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    float* out = stats + row * kStats;
    const int32_t target = targets[row];
    if (!usable_target(target, row, /*bounded=*/false, 0, threadIdx.x == 0, errors, op)) {
      if (threadIdx.x < kStats) out[threadIdx.x] = 0.0f;
      continue;
    }
    const T* z = logits + row * local_vocab;
    // count_correct's argmax never leaves global column 0 when it holds a NaN.
    const SoftmaxRow shard = softmax_row(z, local_vocab, /*row_start=*/vocab_begin == 0);
    if (threadIdx.x == 0) {
      const bool in_shard = target >= vocab_begin && target < vocab_begin + local_vocab;
      out[cpu::kShardLse] = shard.max.value + logf(shard.sum_exp);
      out[cpu::kShardTargetLogit] = in_shard ? to_float(z[target - vocab_begin]) : 0.0f;
      out[cpu::kShardMax] = shard.max.value;
      out[cpu::kShardArgmax] = static_cast<float>(vocab_begin + shard.max.index);
    }
  }
}

// One thread per row: the shards' log-sum-exps combined in fp64, as the CPU.
struct Combine {
  float *losses, *lse;
  const float* parts;
  const int32_t* targets;
  int64_t shards, rows;
  unsigned long long* correct;
  DeviceErrorRecord* errors;
  const char* op;
  __device__ void operator()(int64_t row) const {
    const int32_t target = targets[row];
    losses[row] = lse[row] = 0.0f;
    if (target == ops::kIgnoreIndex) return;
    if (target < 0) {
      report_index_error(errors, IndexRule::non_negative_or_ignored, op, "targets", row, target, 0,
                         0);
      return;
    }
    const int64_t shard_stride = rows * kStats;
    const float* first = parts + row * kStats;
    constexpr double kIndexLimit = 16777216.0;  // 2^24: f32 holds every column index below it
    for (int64_t s = 0; s < shards; ++s) {
      const double index = first[s * shard_stride + cpu::kShardArgmax];
      if (!(index >= 0 && index < kIndexLimit && index == floor(index))) {
        report_index_error(errors, IndexRule::column_index, op, "parts",
                           (s * rows + row) * kStats + cpu::kShardArgmax, index, 0,
                           static_cast<int64_t>(kIndexLimit));
        return;
      }
    }
    double max_lse = -INFINITY;
    for (int64_t s = 0; s < shards; ++s) {
      const double shard_lse = first[s * shard_stride + cpu::kShardLse];
      max_lse = shard_lse > max_lse ? shard_lse : max_lse;  // a NaN reaches the sum below
    }
    double sum = 0.0, target_logit = 0.0;
    for (int64_t s = 0; s < shards; ++s) {
      sum += exp(static_cast<double>(first[s * shard_stride + cpu::kShardLse]) - max_lse);
      target_logit += first[s * shard_stride + cpu::kShardTargetLogit];
    }
    const double row_lse = max_lse + log(sum);
    lse[row] = static_cast<float>(row_lse);
    losses[row] = static_cast<float>(row_lse - target_logit);
    if (!correct) return;
    // Shards in vocabulary order, a later one winning only when strictly greater.
    float best = first[cpu::kShardMax];
    float best_index = first[cpu::kShardArgmax];
    for (int64_t s = 1; s < shards; ++s) {
      const float* part = first + s * shard_stride;
      if (part[cpu::kShardMax] > best) {
        best = part[cpu::kShardMax];
        best_index = part[cpu::kShardArgmax];
      }
    }
    if (static_cast<int64_t>(best_index) == target) atomicAdd(correct, 1ull);
  }
};

}  // namespace

void cross_entropy_shard_stats(const OpContext& ctx, Tensor stats, Tensor logits, Tensor targets,
                               int64_t vocab_begin) {
  constexpr const char* op = "cross_entropy_shard_stats";
  const int64_t rows = logits.dim(0), local_vocab = logits.dim(1);
  if (rows == 0) return;
  DeviceErrorRecord* errors = device_error_record(op);
  FT_DISPATCH_CUDA_FLOAT(
      op, logits.dtype,
      launch_per_row(op, ctx, shard_stats_kernel<scalar_t>, rows, data<float>(stats),
                     data<scalar_t>(logits), data<int32_t>(targets), rows, vocab_begin, local_vocab,
                     errors, op));
}

void cross_entropy_combine_shards(const OpContext& ctx, Tensor losses, Tensor lse, Tensor parts,
                                  Tensor targets, int64_t* correct) {
  constexpr const char* op = "cross_entropy_combine_shards";
  if (parts.dtype != DType::f32) ops::unsupported(op, Device::cuda, parts.dtype);
  const int64_t shards = parts.dim(0), rows = parts.dim(1);
  if (correct) *correct = 0;
  if (rows == 0) return;
  DeviceErrorRecord* errors = device_error_record(op);
  auto launch = [&](unsigned long long* counter) {
    launch_elementwise(op, ctx, rows,
                       Combine{data<float>(losses), data<float>(lse), data<float>(parts),
                               data<int32_t>(targets), shards, rows, counter, errors, op});
  };
  if (!correct) return launch(nullptr);
  const unsigned long long count = count_on_device(op, ctx, launch);
  check_device_errors(ctx);
  *correct = static_cast<int64_t>(count);
}

void cross_entropy_backward_shard(const OpContext& ctx, Tensor dlogits, Tensor logits, Tensor lse,
                                  Tensor targets, int64_t vocab_begin, double dloss) {
  cross_entropy_backward_rows(ctx, "cross_entropy_backward_shard", dlogits, logits, lse, targets,
                              /*weights=*/Tensor{}, vocab_begin, /*whole_vocab=*/false, dloss);
}

}  // namespace ft::cuda
