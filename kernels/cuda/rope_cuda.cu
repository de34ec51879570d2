#include <vector>

#include "kernels/cpu/rope_cpu.h"
#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/rope_cuda.h"

namespace ft::cuda {
namespace {

template <typename T>
struct BuildTables {
  T *cos, *sin;
  const double* inv_freq;
  int64_t half_dim;
  __device__ void operator()(int64_t i) const {
    const int64_t position = i / half_dim, k = i - position * half_dim;
    const double angle = static_cast<double>(position) * inv_freq[k];
    // double -> float -> storage, as the CPU's casts round
    cos[i] = from_float<T>(static_cast<float>(::cos(angle)));
    sin[i] = from_float<T>(static_cast<float>(::sin(angle)));
  }
};

// One thread per (row, head, i < half_dim) pair: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s), or the
// inverse rotation.
template <typename T>
struct Rotate {
  T* x;
  const int32_t* positions;
  const T *cos, *sin;
  int64_t heads, half_dim, max_positions;
  bool inverse;
  DeviceErrorRecord* errors;
  const char* op;
  __device__ void operator()(int64_t i) const {
    const int64_t per_row = heads * half_dim;
    const int64_t row = i / per_row, within = i - row * per_row;
    const int64_t head = within / half_dim, k = within - head * half_dim;
    const int64_t position = positions[row];
    if (position < 0 || position >= max_positions) {
      if (within == 0) {
        report_index_error(errors, IndexRule::in_range, op, "positions", row, position, 0,
                           max_positions);
      }
      return;
    }
    T* first = x + (row * heads + head) * 2 * half_dim;
    T* second = first + half_dim;
    const float c = to_float(cos[position * half_dim + k]);
    const float s = to_float(sin[position * half_dim + k]);
    const float x1 = to_float(first[k]), x2 = to_float(second[k]);
    if (inverse) {
      first[k] = from_float<T>(x1 * c + x2 * s);
      second[k] = from_float<T>(x2 * c - x1 * s);
    } else {
      first[k] = from_float<T>(x1 * c - x2 * s);
      second[k] = from_float<T>(x2 * c + x1 * s);
    }
  }
};

}  // namespace

void rope_build_tables(const OpContext& ctx, Tensor cos, Tensor sin, double theta,
                       const ops::RopeScaling& scaling) {
  constexpr const char* op = "rope_build_tables";
  const int64_t max_positions = cos.dim(0), half_dim = cos.dim(1);
  if (max_positions == 0 || half_dim == 0) return;
  if (cos.dtype != DType::f32 && cos.dtype != DType::bf16) {
    ops::unsupported(op, Device::cuda, cos.dtype);  // before allocating
  }
  const std::vector<double> inv_freq = cpu::rope_inverse_frequencies(2 * half_dim, theta, scaling);
  const size_t bytes = inv_freq.size() * sizeof(double);
  void* device_freq = nullptr;
  FT_CUDA_OP_CHECK(op, cudaMallocAsync(&device_freq, bytes, stream_of(ctx)));
  // From pageable memory: staged before the call returns, so inv_freq may go out of scope.
  FT_CUDA_OP_CHECK(op, cudaMemcpyAsync(device_freq, inv_freq.data(), bytes, cudaMemcpyHostToDevice,
                                       stream_of(ctx)));
  try {
    FT_DISPATCH_CUDA_FLOAT(
        op, cos.dtype,
        launch_elementwise(
            op, ctx, max_positions * half_dim,
            BuildTables<scalar_t>{data<scalar_t>(cos), data<scalar_t>(sin),
                                  static_cast<const double*>(device_freq), half_dim}));
  } catch (...) {
    cudaFreeAsync(device_freq, stream_of(ctx));  // the launch error is the one to report
    throw;
  }
  FT_CUDA_OP_CHECK(op, cudaFreeAsync(device_freq, stream_of(ctx)));
}

void rope_rotate(const OpContext& ctx, const char* op, bool inverse, Tensor x, Tensor positions,
                 Tensor cos, Tensor sin) {
  const int64_t rows = x.dim(0), heads = x.dim(1), half_dim = x.dim(2) / 2;
  DeviceErrorRecord* errors = device_error_record(op);
  FT_DISPATCH_CUDA_FLOAT(
      op, x.dtype,
      launch_elementwise(
          op, ctx, rows * heads * half_dim,
          Rotate<scalar_t>{data<scalar_t>(x), data<int32_t>(positions), data<scalar_t>(cos),
                           data<scalar_t>(sin), heads, half_dim, cos.dim(0), inverse, errors, op}));
}

}  // namespace ft::cuda
