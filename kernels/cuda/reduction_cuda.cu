#include <mutex>

#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/device_errors_cuda.h"
#include "kernels/cuda/reduction_cuda.h"
#include "kernels/ops.h"

namespace ft::cuda {
namespace {

constexpr int kMaxDevices = 64;
std::mutex g_scratch_mutex[kMaxDevices];
ReadbackScratch* g_scratch[kMaxDevices] = {};
std::mutex g_allocation_mutex;

// Pass 1: block b sums its grid-stride share of x (squared or not) into partial[b].
template <typename T, bool squares>
__global__ void partial_sums_kernel(double* partial, const T* x, int64_t count) {
  double total = 0.0;
  FT_GRID_STRIDE_LOOP(i, count) {
    const double value = widen(x[i]);
    total += squares ? value * value : value;
  }
  total = block_sum(total);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// Pass 2: one thread adds the partials in order.
__global__ void add_partials_kernel(double* total, const double* partial, int blocks) {
  double sum = 0.0;
  for (int b = 0; b < blocks; ++b) sum += partial[b];
  *total = sum;
}

template <bool squares>
double reduce(const OpContext& ctx, const char* op, Tensor x) {
  const int64_t count = x.numel();
  if (count == 0) return 0.0;
  ReadbackLease lease(op);
  const unsigned blocks =
      grid_for(count) < kMaxReductionBlocks ? grid_for(count) : kMaxReductionBlocks;
  double* partial = lease.device()->partial;
  switch (x.dtype) {
    case DType::f32:
      launch_kernel(op, ctx, partial_sums_kernel<float, squares>, blocks, kThreads, 0, partial,
                    data<float>(x), count);
      break;
    case DType::bf16:
      launch_kernel(op, ctx, partial_sums_kernel<bfloat, squares>, blocks, kThreads, 0, partial,
                    data<bfloat>(x), count);
      break;
    case DType::f64:
      launch_kernel(op, ctx, partial_sums_kernel<double, squares>, blocks, kThreads, 0, partial,
                    data<double>(x), count);
      break;
    default:
      ops::unsupported(op, Device::cuda, x.dtype);
  }
  launch_kernel(op, ctx, add_partials_kernel, 1, 1, 0, &lease.device()->total, partial,
                static_cast<int>(blocks));
  double total = 0.0;
  FT_CUDA_OP_CHECK(op, cudaMemcpyAsync(&total, &lease.device()->total, sizeof total,
                                       cudaMemcpyDeviceToHost, stream_of(ctx)));
  FT_CUDA_OP_CHECK(op, cudaStreamSynchronize(stream_of(ctx)));
  return total;
}

// One block per row: the row's first argmax (count_correct's scalar rule) against the target.
template <typename T>
__global__ void count_correct_kernel(unsigned long long* correct, const T* logits,
                                     const int32_t* targets, int64_t rows, int64_t vocab) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int32_t target = targets[row];
    if (target == ops::kIgnoreIndex) continue;
    const ArgMax best = row_argmax(logits + row * vocab, vocab, /*row_start=*/true);
    if (threadIdx.x == 0 && best.index == target) atomicAdd(correct, 1ull);
  }
}

}  // namespace

ReadbackLease::ReadbackLease(std::string_view op) {
  FT_CUDA_OP_CHECK(op, cudaGetDevice(&device_));
  if (device_ < 0 || device_ >= kMaxDevices)
    fail("op {}: CUDA device {} out of range", op, device_);
  {
    std::lock_guard<std::mutex> lock(g_allocation_mutex);
    if (!g_scratch[device_]) {
      void* memory = nullptr;
      FT_CUDA_OP_CHECK(op, cudaMalloc(&memory, sizeof(ReadbackScratch)));
      g_scratch[device_] = static_cast<ReadbackScratch*>(memory);
    }
  }
  g_scratch_mutex[device_].lock();
  scratch_ = g_scratch[device_];
}

ReadbackLease::~ReadbackLease() {
  g_scratch_mutex[device_].unlock();
}

double sum(const OpContext& ctx, Tensor x) {
  const double total = reduce<false>(ctx, "sum", x);
  check_device_errors(ctx);
  return total;
}

double sum_squares(const OpContext& ctx, Tensor x) {
  const double total = reduce<true>(ctx, "sum_squares", x);
  check_device_errors(ctx);
  return total;
}

int64_t count_correct(const OpContext& ctx, Tensor logits, Tensor targets) {
  constexpr const char* op = "count_correct";
  const int64_t rows = logits.dim(0), vocab = logits.dim(1);
  unsigned long long correct = 0;
  if (rows > 0 && vocab > 0) {
    correct = count_on_device(op, ctx, [&](unsigned long long* counter) {
      FT_DISPATCH_CUDA_FLOAT(
          op, logits.dtype,
          launch_per_row(op, ctx, count_correct_kernel<scalar_t>, rows, counter,
                         data<scalar_t>(logits), data<int32_t>(targets), rows, vocab));
    });
  }
  check_device_errors(ctx);
  return static_cast<int64_t>(correct);
}

}  // namespace ft::cuda
