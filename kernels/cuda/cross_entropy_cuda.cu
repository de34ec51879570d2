#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/cross_entropy_cuda.h"
#include "kernels/cuda/device_errors_cuda.h"
#include "kernels/ops.h"

// The formulas follow kernels/cpu/cross_entropy_cpu.cpp; sums are fp32 here.
namespace ft::cuda {
namespace {

// One block per row: max and first argmax, then sum(exp(z - max)), lse = max + log(sum).
template <typename T>
__global__ void forward_kernel(float* losses, float* lse, const T* logits, const int32_t* targets,
                               const float* weights, int64_t rows, int64_t vocab,
                               unsigned long long* correct, DeviceErrorRecord* errors,
                               const char* op) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int32_t target = targets[row];
    const bool ignored = target == ops::kIgnoreIndex;
    if (ignored || target < 0 || target >= vocab) {
      if (!ignored && threadIdx.x == 0) {
        report_index_error(errors, IndexRule::in_range_or_ignored, op, "targets", row, target, 0,
                           vocab);
      }
      if (threadIdx.x == 0) losses[row] = lse[row] = 0.0f;
      continue;
    }
    const T* z = logits + row * vocab;
    ArgMax best = argmax_identity();
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
      best = argmax_combine(best, ArgMax{to_float(z[j]), j});
    }
    best = block_argmax(best);
    // The CPU's running max starts at z[0]: a NaN there stays the max (and the argmax stays 0).
    const float first = to_float(z[0]);
    const float max = isnan(first) ? first : best.value;
    const int64_t argmax = isnan(first) ? 0 : best.index;
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) sum += expf(to_float(z[j]) - max);
    sum = block_sum(sum);
    if (threadIdx.x == 0) {
      const float row_lse = max + logf(sum);
      const float weight = weights ? weights[row] : 1.0f;
      lse[row] = row_lse;
      losses[row] = weight * (row_lse - to_float(z[target]));
      if (correct && argmax == target) atomicAdd(correct, 1ull);
    }
  }
}

// dlogits = dloss * weight * (exp(z - lse) - onehot(target)); 0 on ignored rows. Each element is
// read before it is written by the same thread, so dlogits may be logits.
template <typename T>
struct Backward {
  T* dlogits;
  const T* logits;
  const float *lse, *weights;
  const int32_t* targets;
  double dloss;
  int64_t vocab;
  DeviceErrorRecord* errors;
  const char* op;
  __device__ void operator()(int64_t i) const {
    const int64_t row = i / vocab, j = i - row * vocab;
    const int32_t target = targets[row];
    if (target == ops::kIgnoreIndex || target < 0 || target >= vocab) {
      if (target != ops::kIgnoreIndex && j == 0) {
        report_index_error(errors, IndexRule::in_range_or_ignored, op, "targets", row, target, 0,
                           vocab);
      }
      dlogits[i] = from_float<T>(0.0f);
      return;
    }
    const auto scale =
        static_cast<float>(dloss * (weights ? static_cast<double>(weights[row]) : 1.0));
    float d = scale * expf(to_float(logits[i]) - lse[row]);
    if (j == target) d -= scale;
    dlogits[i] = from_float<T>(d);
  }
};

}  // namespace

void cross_entropy_forward(const OpContext& ctx, Tensor losses, Tensor lse, Tensor logits,
                           Tensor targets, Tensor weights, int64_t* correct) {
  constexpr const char* op = "cross_entropy_forward";
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  if (correct) *correct = 0;
  if (rows == 0) return;
  DeviceErrorRecord* errors = device_error_record(op);
  const unsigned blocks = static_cast<unsigned>(rows < 65536 ? rows : 65536);
  auto launch = [&](unsigned long long* counter) {
    FT_DISPATCH_CUDA_FLOAT(op, logits.dtype, {
      forward_kernel<<<blocks, kThreads, 0, stream_of(ctx)>>>(
          data<float>(losses), data<float>(lse), data<scalar_t>(logits), data<int32_t>(targets),
          data_or_null<float>(weights), rows, vocab, counter, errors, op);
      check_launch(op);
    });
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

void cross_entropy_backward(const OpContext& ctx, Tensor dlogits, Tensor logits, Tensor lse,
                            Tensor targets, Tensor weights, double dloss) {
  constexpr const char* op = "cross_entropy_backward";
  const int64_t vocab = logits.dim(1);
  DeviceErrorRecord* errors = device_error_record(op);
  FT_DISPATCH_CUDA_FLOAT(
      op, logits.dtype,
      launch_elementwise(op, ctx, logits.numel(),
                         Backward<scalar_t>{data<scalar_t>(dlogits), data<scalar_t>(logits),
                                            data<float>(lse), data_or_null<float>(weights),
                                            data<int32_t>(targets), dloss, vocab, errors, op}));
}

}  // namespace ft::cuda
