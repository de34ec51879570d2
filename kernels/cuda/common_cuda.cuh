// Helpers shared by the CUDA kernels of kernels/cuda/*_cuda.cu (device code only; the .h files of
// the ops stay free of CUDA headers so the C++ dispatch can include them): launch checks naming the
// op, dtype dispatch (f32 and bf16 activations), bf16 <-> float conversion, grid-stride and
// per-row launches, deterministic block, row and column reductions, and the cross-entropy row
// statistics. Kernels read and write their storage dtype and compute in fp32 (fp64 for the sums
// the host reads back).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string_view>
#include <utility>

#include "kernels/context.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "runtime/error.h"
#include "runtime/tensor.h"

namespace ft::cuda {

using bfloat = __nv_bfloat16;

inline cudaStream_t stream_of(const OpContext& ctx) {
  return static_cast<cudaStream_t>(ctx.stream);
}

// Throws naming the op when the last kernel launch failed (bad configuration, no device, a
// sticky error from an earlier kernel).
inline void check_launch(std::string_view op) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    fail("op {}: CUDA kernel launch failed: {} ({})", op, cudaGetErrorName(status),
         cudaGetErrorString(status));
  }
}

// Checks a CUDA runtime call an op makes, naming the op and the call.
inline void check_call(std::string_view op, cudaError_t status, const char* call) {
  if (status != cudaSuccess) {
    fail("op {}: CUDA error {} ({}) in {}", op, cudaGetErrorName(status),
         cudaGetErrorString(status), call);
  }
}
#define FT_CUDA_OP_CHECK(op, call) ::ft::cuda::check_call(op, (call), #call)

// Dynamic shared memory past 48 KiB needs a per-kernel, per-device opt-in. It is made once for the
// largest size asked so far (a smaller launch needs no new opt-in).
inline void allow_dynamic_shared(std::string_view op, const void* kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return;
  static std::mutex mutex;
  static std::map<std::pair<const void*, int>, size_t> allowed;
  int device = 0;
  FT_CUDA_OP_CHECK(op, cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mutex);
  size_t& largest = allowed[{kernel, device}];
  if (bytes <= largest) return;
  FT_CUDA_OP_CHECK(op, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(bytes)));
  largest = bytes;
}
template <typename... Params>
void allow_dynamic_shared(std::string_view op, void (*kernel)(Params...), size_t bytes) {
  allow_dynamic_shared(op, reinterpret_cast<const void*>(kernel), bytes);
}

// Bad indices (ids, targets, positions) found by a kernel: the kernel cannot throw, so it records
// the first one here (and leaves the offending row alone) and the host raises it at the next
// synchronizing op or ops::check_device_errors (kernels/cuda/device_errors_cuda.cu).
enum class IndexRule : int {
  in_range,             // expected in [lo, hi)
  in_range_or_ignored,  // expected in [lo, hi) or the ignore index
  non_negative,         // expected >= 0
  non_negative_or_ignored,
  column_index,  // a whole number in [0, hi) (cross_entropy_combine_shards' argmax entries)
};
struct DeviceErrorRecord {
  int flag;  // 0 until a kernel records an error
  IndexRule rule;
  const char* op;  // host string literals, stored as values and read back by the host
  const char* arg;
  int64_t index;
  double value;
  int64_t lo, hi;
};
// The current device's record (allocated once per device, zeroed), for kernels to report into.
DeviceErrorRecord* device_error_record(std::string_view op);

__device__ __forceinline__ void report_index_error(DeviceErrorRecord* record, IndexRule rule,
                                                   const char* op, const char* arg, int64_t index,
                                                   double value, int64_t lo, int64_t hi) {
  if (atomicCAS(&record->flag, 0, 1) != 0) return;  // an earlier error is already recorded
  record->rule = rule;
  record->op = op;
  record->arg = arg;
  record->index = index;
  record->value = value;
  record->lo = lo;
  record->hi = hi;
}

// Device memory for ops that hand a value back to the host (sums, correct counts): one per
// device, allocated once. A lease holds the device's scratch (a mutex) until the op has copied the
// result back and synchronized, so concurrent host threads take turns.
constexpr int kMaxReductionBlocks = 1024;
struct ReadbackScratch {
  unsigned long long count;
  double total;
  double partial[kMaxReductionBlocks];
};
class ReadbackLease {
 public:
  explicit ReadbackLease(std::string_view op);
  ReadbackLease(const ReadbackLease&) = delete;
  ReadbackLease& operator=(const ReadbackLease&) = delete;
  ~ReadbackLease();
  ReadbackScratch* device() const { return scratch_; }

 private:
  ReadbackScratch* scratch_ = nullptr;
  int device_ = 0;
};

// Runs launch(counter) with the device's zeroed readback counter (a kernel adds to it) and returns
// the count once ctx.stream has finished: one synchronization.
template <typename Launch>
unsigned long long count_on_device(std::string_view op, const OpContext& ctx, Launch launch) {
  ReadbackLease lease(op);
  unsigned long long* counter = &lease.device()->count;
  FT_CUDA_OP_CHECK(op, cudaMemsetAsync(counter, 0, sizeof *counter, stream_of(ctx)));
  launch(counter);
  unsigned long long count = 0;
  FT_CUDA_OP_CHECK(
      op, cudaMemcpyAsync(&count, counter, sizeof count, cudaMemcpyDeviceToHost, stream_of(ctx)));
  FT_CUDA_OP_CHECK(op, cudaStreamSynchronize(stream_of(ctx)));
  return count;
}

// The storage of a tensor whose dtype the caller has dispatched on.
template <typename T>
T* data(const Tensor& t) {
  return static_cast<T*>(t.data);
}
template <typename T>
T* data_or_null(const Tensor& t) {
  return t.empty() ? nullptr : static_cast<T*>(t.data);
}

__device__ __forceinline__ float to_float(float value) {
  return value;
}
__device__ __forceinline__ float to_float(bfloat value) {
  return __bfloat162float(value);
}
__device__ __forceinline__ float to_float(double value) {
  return static_cast<float>(value);
}

template <typename T>
__device__ __forceinline__ T from_float(float value);
template <>
__device__ __forceinline__ float from_float<float>(float value) {
  return value;
}
template <>
__device__ __forceinline__ bfloat from_float<bfloat>(float value) {
  return __float2bfloat16_rn(value);  // nearest even, as ft::float_to_bf16
}

// The widest value of a stored element: double for f32/f64, float (exact) for bf16.
__device__ __forceinline__ double widen(float value) {
  return value;
}
__device__ __forceinline__ double widen(double value) {
  return value;
}
__device__ __forceinline__ double widen(bfloat value) {
  return __bfloat162float(value);
}

// Threads per block of every kernel here: a multiple of the warp size, at most 1024.
constexpr int kThreads = 256;

// Blocks for a grid-stride loop over `count` items: enough to fill the GPU, capped so that huge
// tensors loop instead of launching millions of blocks.
inline unsigned grid_for(int64_t count, int threads = kThreads) {
  const int64_t blocks = (count + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65536 ? 65536 : blocks));
}

// Blocks for kernels that take one row per block at a time (grid-stride over the rows).
inline unsigned row_blocks(int64_t rows) {
  return static_cast<unsigned>(rows < 65536 ? (rows < 1 ? 1 : rows) : 65536);
}

// kernel<<<grid, block, shared_bytes, ctx.stream>>>(args...), then check_launch(op).
template <typename... Params, typename... Args>
void launch_kernel(std::string_view op, const OpContext& ctx, void (*kernel)(Params...), dim3 grid,
                   dim3 block, size_t shared_bytes, Args&&... args) {
  kernel<<<grid, block, shared_bytes, stream_of(ctx)>>>(std::forward<Args>(args)...);
  check_launch(op);
}
// A kernel that loops over `rows` rows, one per block at a time, kThreads threads each.
template <typename... Params, typename... Args>
void launch_per_row(std::string_view op, const OpContext& ctx, void (*kernel)(Params...),
                    int64_t rows, Args&&... args) {
  launch_kernel(op, ctx, kernel, row_blocks(rows), kThreads, 0, std::forward<Args>(args)...);
}

// for (i = this thread; i < count; i += all threads): the grid-stride loop.
#define FT_GRID_STRIDE_LOOP(i, count)                                                        \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (count); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// body(i) for every i in [0, count): one thread per element, grid-stride.
template <typename Body>
__global__ void elementwise_kernel(int64_t count, Body body) {
  FT_GRID_STRIDE_LOOP(i, count) body(i);
}
template <typename Body>
void launch_elementwise(std::string_view op, const OpContext& ctx, int64_t count, Body body) {
  if (count <= 0) return;
  elementwise_kernel<<<grid_for(count), kThreads, 0, stream_of(ctx)>>>(count, body);
  check_launch(op);
}

}  // namespace ft::cuda

// FT_DISPATCH_CUDA_AS(type, op, dtype, ...): runs the body with `type` = float (f32) or bfloat
// (bf16); other dtypes are refused with dispatch.h's unsupported() message.
#define FT_DISPATCH_CUDA_AS(type, op, dtype, ...)              \
  do {                                                         \
    switch (dtype) {                                           \
      case ::ft::DType::f32: {                                 \
        using type = float;                                    \
        __VA_ARGS__;                                           \
        break;                                                 \
      }                                                        \
      case ::ft::DType::bf16: {                                \
        using type = ::ft::cuda::bfloat;                       \
        __VA_ARGS__;                                           \
        break;                                                 \
      }                                                        \
      default:                                                 \
        ::ft::ops::unsupported(op, ::ft::Device::cuda, dtype); \
    }                                                          \
  } while (0)
// An activation's dtype (`scalar_t`).
#define FT_DISPATCH_CUDA_FLOAT(op, dtype, ...) FT_DISPATCH_CUDA_AS(scalar_t, op, dtype, __VA_ARGS__)
// A parameter gradient's dtype (`grad_t`): f32, or bf16 beside bf16 activations.
#define FT_DISPATCH_CUDA_GRAD(op, dtype, ...) FT_DISPATCH_CUDA_AS(grad_t, op, dtype, __VA_ARGS__)

namespace ft::cuda {

// Functor<T>{data<T>(tensors)...} over `count` elements, T the storage type of `dtype`: for
// elementwise functors whose members are exactly the tensors' storage, in order.
template <template <typename> class Functor, typename... Tensors>
void launch_tensor_map(std::string_view op, const OpContext& ctx, DType dtype, int64_t count,
                       const Tensors&... tensors) {
  FT_DISPATCH_CUDA_FLOAT(
      op, dtype, launch_elementwise(op, ctx, count, Functor<scalar_t>{data<scalar_t>(tensors)...}));
}

template <typename T>
__device__ __forceinline__ T warp_sum(T value) {
  for (int offset = 16; offset > 0; offset >>= 1)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}
__device__ __forceinline__ float warp_max(float value) {
  for (int offset = 16; offset > 0; offset >>= 1)
    value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

// The sum of `value` over the block, returned to every thread. Fixed order for a fixed block size
// (deterministic). Every thread of the block must call it; it may be called repeatedly.
template <typename T>
__device__ T block_sum(T value) {
  __shared__ T partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  value = warp_sum(value);
  __syncthreads();  // an earlier call's readers are done with `partial`
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  return warp_sum(lane < warps ? partial[lane] : T(0));
}

// The fp32 sum of term(j) over a row's columns j in [0, cols): each thread of the block takes
// every blockDim.x-th column, then block_sum. Every thread of the block must call it.
template <typename Term>
__device__ float block_row_sum(int64_t cols, Term term) {
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += term(j);
  return block_sum(sum);
}

// The largest value and the first index holding it, as a scalar loop "if (z[j] > z[best]) best =
// j" finds it among non-NaN values: NaNs never win, ties go to the lower index. index is
// kNoIndex when the block saw no non-NaN value.
struct ArgMax {
  float value;
  int64_t index;
};
constexpr int64_t kNoIndex = INT64_MAX;

__device__ __forceinline__ ArgMax argmax_identity() {
  return {-INFINITY, kNoIndex};
}
// Folds a candidate in: the greater value wins, the lower index on ties; NaN never compares.
__device__ __forceinline__ ArgMax argmax_combine(ArgMax a, ArgMax b) {
  if (b.value > a.value || (b.value == a.value && b.index < a.index)) return b;
  return a;
}
__device__ __forceinline__ ArgMax warp_argmax(ArgMax a) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    ArgMax other{__shfl_xor_sync(0xffffffffu, a.value, offset),
                 __shfl_xor_sync(0xffffffffu, a.index, offset)};
    a = argmax_combine(a, other);
  }
  return a;
}
// The block's argmax, returned to every thread (the combine is order-independent).
__device__ inline ArgMax block_argmax(ArgMax a) {
  __shared__ float values[32];
  __shared__ int64_t indices[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  a = warp_argmax(a);
  __syncthreads();
  if (lane == 0) {
    values[warp] = a.value;
    indices[warp] = a.index;
  }
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  ArgMax mine = lane < warps ? ArgMax{values[lane], indices[lane]} : argmax_identity();
  return warp_argmax(mine);
}

// The max and first argmax of a row z[0, cols) by the CPU's scalar rule, computed by the whole
// block and returned to every thread. row_start (then cols >= 1): z[0] is the row's column 0,
// where the CPU's running max starts, so a NaN there stays the max (argmax 0). A block of NaNs
// only (a vocabulary shard) has max NaN and argmax 0.
template <typename T>
__device__ ArgMax row_argmax(const T* z, int64_t cols, bool row_start) {
  ArgMax best = argmax_identity();
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    best = argmax_combine(best, ArgMax{to_float(z[j]), j});
  }
  best = block_argmax(best);
  if (row_start && isnan(to_float(z[0]))) return {to_float(z[0]), 0};
  if (best.index == kNoIndex) return {NAN, 0};
  return best;
}

// A row's softmax statistics: its max and first argmax (row_argmax) and sum(exp(z - max)).
struct SoftmaxRow {
  ArgMax max;
  float sum_exp;
};
template <typename T>
__device__ SoftmaxRow softmax_row(const T* z, int64_t cols, bool row_start) {
  const ArgMax max = row_argmax(z, cols, row_start);
  const float sum_exp =
      block_row_sum(cols, [&](int64_t j) { return expf(to_float(z[j]) - max.value); });
  return {max, sum_exp};
}

// Whether a cross-entropy row's target takes part: false for the ignore index and for a bad
// target, which `reporter` records. bounded: targets index [0, vocab) (the fused loss); else only
// non-negative (a vocabulary shard, which may not hold the target).
__device__ __forceinline__ bool usable_target(int32_t target, int64_t row, bool bounded,
                                              int64_t vocab, bool reporter,
                                              DeviceErrorRecord* errors, const char* op) {
  if (target == ops::kIgnoreIndex) return false;
  if (target >= 0 && (!bounded || target < vocab)) return true;
  if (reporter) {
    report_index_error(
        errors, bounded ? IndexRule::in_range_or_ignored : IndexRule::non_negative_or_ignored, op,
        "targets", row, target, 0, bounded ? vocab : 0);
  }
  return false;
}

// Column sums for parameter gradients: total[j] += sum over rows of term(i, j), fp32. A block owns
// 32 columns; its kRowLanes lanes of threads take every kRowLanes-th row, then the lanes are added
// in a fixed order: deterministic, no atomics.
constexpr int kColumnTile = 32;

template <int kRowLanes, typename G, typename Term>
__global__ void column_sum_kernel(G* total, int64_t rows, int64_t cols, Term term) {
  __shared__ float partial[kRowLanes][kColumnTile];
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kColumnTile + threadIdx.x;
  float sum = 0.0f;
  if (col < cols) {
    for (int64_t row = threadIdx.y; row < rows; row += kRowLanes) sum += term(row, col);
  }
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    float column_total = 0.0f;
    for (int lane = 0; lane < kRowLanes; ++lane) column_total += partial[lane][threadIdx.x];
    total[col] = from_float<G>(to_float(total[col]) + column_total);
  }
}

template <int kRowLanes, typename G, typename Term>
void launch_column_sum(std::string_view op, const OpContext& ctx, G* total, int64_t rows,
                       int64_t cols, Term term) {
  if (cols == 0) return;
  const unsigned blocks = static_cast<unsigned>((cols + kColumnTile - 1) / kColumnTile);
  launch_kernel(op, ctx, column_sum_kernel<kRowLanes, G, Term>, blocks,
                dim3(kColumnTile, kRowLanes), 0, total, rows, cols, term);
}

// The column-sum terms of a bias gradient: dout (rows, cols) itself.
template <typename T>
struct OutputGradientTerm {
  const T* dout;
  int64_t cols;
  __device__ float operator()(int64_t i, int64_t j) const { return to_float(dout[i * cols + j]); }
};

}  // namespace ft::cuda
