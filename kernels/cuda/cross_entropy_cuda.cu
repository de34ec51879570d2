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
    if (!usable_target(target, row, /*bounded=*/true, vocab, threadIdx.x == 0, errors, op)) {
      if (threadIdx.x == 0) losses[row] = lse[row] = 0.0f;
      continue;
    }
    const T* z = logits + row * vocab;
    const SoftmaxRow stats = softmax_row(z, vocab, /*row_start=*/true);
    if (threadIdx.x == 0) {
      const float row_lse = stats.max.value + logf(stats.sum_exp);
      const float weight = weights ? weights[row] : 1.0f;
      lse[row] = row_lse;
      losses[row] = weight * (row_lse - to_float(z[target]));
      if (correct && stats.max.index == target) atomicAdd(correct, 1ull);
    }
  }
}

// dlogits = dloss * weight * (exp(z - lse) - onehot(target - vocab_begin)); 0 on ignored rows.
// Each element is read before it is written by the same thread, so dlogits may be logits.
template <typename T>
struct Backward {
  T* dlogits;
  const T* logits;
  const float *lse, *weights;
  const int32_t* targets;
  double dloss;
  float unweighted_scale;  // dloss rounded to float once
  int64_t vocab_begin, cols;
  bool whole_vocab;
  DeviceErrorRecord* errors;
  const char* op;
  __device__ void operator()(int64_t i) const {
    const int64_t row = i / cols, j = i - row * cols;
    const int32_t target = targets[row];
    if (!usable_target(target, row, whole_vocab, cols, j == 0, errors, op)) {
      dlogits[i] = from_float<T>(0.0f);
      return;
    }
    const float scale =
        weights ? static_cast<float>(dloss * static_cast<double>(weights[row])) : unweighted_scale;
    float d = scale * expf(to_float(logits[i]) - lse[row]);
    if (vocab_begin + j == target) d -= scale;
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
  auto launch = [&](unsigned long long* counter) {
    FT_DISPATCH_CUDA_FLOAT(
        op, logits.dtype,
        launch_per_row(op, ctx, forward_kernel<scalar_t>, rows, data<float>(losses),
                       data<float>(lse), data<scalar_t>(logits), data<int32_t>(targets),
                       data_or_null<float>(weights), rows, vocab, counter, errors, op));
  };
  if (!correct) return launch(nullptr);
  const unsigned long long count = count_on_device(op, ctx, launch);
  check_device_errors(ctx);
  *correct = static_cast<int64_t>(count);
}

void cross_entropy_backward_rows(const OpContext& ctx, const char* op, Tensor dlogits,
                                 Tensor logits, Tensor lse, Tensor targets, Tensor weights,
                                 int64_t vocab_begin, bool whole_vocab, double dloss) {
  const int64_t cols = logits.dim(1);
  DeviceErrorRecord* errors = device_error_record(op);
  FT_DISPATCH_CUDA_FLOAT(
      op, logits.dtype,
      launch_elementwise(
          op, ctx, logits.numel(),
          Backward<scalar_t>{data<scalar_t>(dlogits), data<scalar_t>(logits), data<float>(lse),
                             data_or_null<float>(weights), data<int32_t>(targets), dloss,
                             static_cast<float>(dloss), vocab_begin, cols, whole_vocab, errors,
                             op}));
}

void cross_entropy_backward(const OpContext& ctx, Tensor dlogits, Tensor logits, Tensor lse,
                            Tensor targets, Tensor weights, double dloss) {
  cross_entropy_backward_rows(ctx, "cross_entropy_backward", dlogits, logits, lse, targets, weights,
                              /*vocab_begin=*/0, /*whole_vocab=*/true, dloss);
}

}  // namespace ft::cuda
