#include "kernels/cpu/vocab_parallel_cpu.h"
#include "kernels/cuda/common_cuda.cuh"
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
    if (target == ops::kIgnoreIndex || target < 0) {
      if (target != ops::kIgnoreIndex && threadIdx.x == 0) {
        report_index_error(errors, IndexRule::non_negative_or_ignored, op, "targets", row, target,
                           0, 0);
      }
      if (threadIdx.x < kStats) out[threadIdx.x] = 0.0f;
      continue;
    }
    const T* z = logits + row * local_vocab;
    ArgMax best = argmax_identity();
    for (int64_t j = threadIdx.x; j < local_vocab; j += blockDim.x) {
      best = argmax_combine(best, ArgMax{to_float(z[j]), j});
    }
    best = block_argmax(best);
    float max;
    int64_t argmax;
    if (vocab_begin == 0 && isnan(to_float(z[0]))) {
      max = to_float(z[0]);  // count_correct's argmax never leaves global column 0
      argmax = 0;
    } else if (best.index == kNoIndex) {
      max = NAN;  // a shard of NaNs only
      argmax = 0;
    } else {
      max = best.value;
      argmax = best.index;
    }
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < local_vocab; j += blockDim.x) {
      sum += expf(to_float(z[j]) - max);
    }
    sum = block_sum(sum);
    if (threadIdx.x == 0) {
      const bool in_shard = target >= vocab_begin && target < vocab_begin + local_vocab;
      out[cpu::kShardLse] = max + logf(sum);
      out[cpu::kShardTargetLogit] = in_shard ? to_float(z[target - vocab_begin]) : 0.0f;
      out[cpu::kShardMax] = max;
      out[cpu::kShardArgmax] = static_cast<float>(vocab_begin + argmax);
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

// dlogits = dloss * (exp(z - lse) - onehot(target - vocab_begin)); 0 on ignored rows.
template <typename T>
struct BackwardShard {
  T* dlogits;
  const T* logits;
  const float* lse;
  const int32_t* targets;
  float scale;
  int64_t vocab_begin, local_vocab;
  DeviceErrorRecord* errors;
  const char* op;
  __device__ void operator()(int64_t i) const {
    const int64_t row = i / local_vocab, j = i - row * local_vocab;
    const int32_t target = targets[row];
    if (target == ops::kIgnoreIndex || target < 0) {
      if (target != ops::kIgnoreIndex && j == 0) {
        report_index_error(errors, IndexRule::non_negative_or_ignored, op, "targets", row, target,
                           0, 0);
      }
      dlogits[i] = from_float<T>(0.0f);
      return;
    }
    float d = scale * expf(to_float(logits[i]) - lse[row]);
    if (vocab_begin + j == target) d -= scale;
    dlogits[i] = from_float<T>(d);
  }
};

}  // namespace

void cross_entropy_shard_stats(const OpContext& ctx, Tensor stats, Tensor logits, Tensor targets,
                               int64_t vocab_begin) {
  constexpr const char* op = "cross_entropy_shard_stats";
  const int64_t rows = logits.dim(0), local_vocab = logits.dim(1);
  if (rows == 0) return;
  DeviceErrorRecord* errors = device_error_record(op);
  const unsigned blocks = static_cast<unsigned>(rows < 65536 ? rows : 65536);
  FT_DISPATCH_CUDA_FLOAT(op, logits.dtype, {
    shard_stats_kernel<<<blocks, kThreads, 0, stream_of(ctx)>>>(
        data<float>(stats), data<scalar_t>(logits), data<int32_t>(targets), rows, vocab_begin,
        local_vocab, errors, op);
    check_launch(op);
  });
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
  unsigned long long count = 0;
  {
    ReadbackLease lease(op);
    unsigned long long* counter = &lease.device()->count;
    FT_CUDA_OP_CHECK(op, cudaMemsetAsync(counter, 0, sizeof *counter, stream_of(ctx)));
    launch(counter);
    FT_CUDA_OP_CHECK(
        op, cudaMemcpyAsync(&count, counter, sizeof count, cudaMemcpyDeviceToHost, stream_of(ctx)));
    FT_CUDA_OP_CHECK(op, cudaStreamSynchronize(stream_of(ctx)));
  }
  check_device_errors(ctx);
  *correct = static_cast<int64_t>(count);
}

void cross_entropy_backward_shard(const OpContext& ctx, Tensor dlogits, Tensor logits, Tensor lse,
                                  Tensor targets, int64_t vocab_begin, double dloss) {
  constexpr const char* op = "cross_entropy_backward_shard";
  const int64_t local_vocab = logits.dim(1);
  DeviceErrorRecord* errors = device_error_record(op);
  FT_DISPATCH_CUDA_FLOAT(
      op, logits.dtype,
      launch_elementwise(
          op, ctx, logits.numel(),
          BackwardShard<scalar_t>{data<scalar_t>(dlogits), data<scalar_t>(logits), data<float>(lse),
                                  data<int32_t>(targets), static_cast<float>(dloss), vocab_begin,
                                  local_vocab, errors, op}));
}

}  // namespace ft::cuda
