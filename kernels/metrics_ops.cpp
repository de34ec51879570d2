// Reductions the training loop reports: the loss sum and the argmax accuracy.
#include <omp.h>

#include <algorithm>

#include "kernels/dispatch.h"
#include "kernels/ops.h"

#ifdef FT_WITH_CUDA
#include "kernels/cuda/device_errors_cuda.h"
#include "kernels/cuda/reduction_cuda.h"
#endif

namespace ft::ops {
namespace {

// A fixed number of blocks, each summed in order and then added in order: the same bits for any
// thread count (an OpenMP reduction adds the threads' partials in arrival order).
constexpr int kSumBlocks = 64;

template <typename T>
double sum_cpu(const T* x, int64_t count, int threads) {
  double partial[kSumBlocks] = {};
  const int64_t block = (count + kSumBlocks - 1) / kSumBlocks;
#pragma omp parallel for num_threads(threads) if (count > 65536)
  for (int b = 0; b < kSumBlocks; ++b) {
    const int64_t end = std::min(count, (b + 1) * block);
    double total = 0.0;
    for (int64_t i = b * block; i < end; ++i) total += static_cast<double>(x[i]);
    partial[b] = total;
  }
  double total = 0.0;
  for (double value : partial) total += value;
  return total;
}

template <typename T>
int64_t count_correct_cpu(const T* logits, const int32_t* targets, int64_t rows, int64_t vocab,
                          int threads) {
  int64_t correct = 0;
#pragma omp parallel for reduction(+ : correct) num_threads(threads) if (rows > 16)
  for (int64_t row = 0; row < rows; ++row) {
    if (targets[row] == kIgnoreIndex) continue;
    const T* logit = logits + row * vocab;
    int64_t best = 0;
    for (int64_t j = 1; j < vocab; ++j)
      if (logit[j] > logit[best]) best = j;
    correct += best == targets[row];
  }
  return correct;
}

}  // namespace

double sum(const OpContext& ctx, Tensor x) {
  check_device("sum", ctx, "x", x);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::sum(ctx, x);
#endif
  if (ctx.device != Device::cpu) unsupported("sum", ctx.device, x.dtype);
  double total = 0.0;
  FT_DISPATCH_CPU_FLOAT("sum", x.dtype,
                        total = sum_cpu(x.ptr<scalar_t>(), x.numel(), ctx.num_threads));
  return total;
}

int64_t count_correct(const OpContext& ctx, Tensor logits, Tensor targets) {
  check_device("count_correct", ctx, "logits", logits);
  check_device("count_correct", ctx, "targets", targets);
  check_dtype("count_correct", "targets", targets, DType::i32);
  FT_CHECK(logits.rank() == 2, "count_correct: logits must be (N, V), got {}", logits.shape.str());
  check_shape("count_correct", "targets", targets, Shape{logits.dim(0)});
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::count_correct(ctx, logits, targets);
#endif
  if (ctx.device != Device::cpu) unsupported("count_correct", ctx.device, logits.dtype);
  int64_t correct = 0;
  FT_DISPATCH_CPU_FLOAT("count_correct", logits.dtype,
                        correct = count_correct_cpu(logits.ptr<scalar_t>(), targets.ptr<int32_t>(),
                                                    logits.dim(0), logits.dim(1), ctx.num_threads));
  return correct;
}

void check_device_errors(const OpContext& ctx) {
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) cuda::check_device_errors(ctx);
#else
  (void)ctx;  // CPU kernels throw where they find a bad index
#endif
}

}  // namespace ft::ops
