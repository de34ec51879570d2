#include "kernels/cpu/adapter_cpu.h"
#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/dropout_cuda.h"

namespace ft::cuda {
namespace {

template <typename T>
struct Dropout {
  T* out;
  const T* x;
  uint64_t stream, threshold;
  float keep_scale;
  int64_t width, col_offset, full_cols;  // full_cols 0: the mask index is the element index
  __device__ void operator()(int64_t i) const {
    uint64_t index = static_cast<uint64_t>(i);
    if (full_cols > 0) {
      const int64_t row = i / width;
      index = static_cast<uint64_t>(row * full_cols + col_offset + (i - row * width));
    }
    // cpu::dropout_draw is constexpr: the very function the CPU runs (--expt-relaxed-constexpr).
    const bool keep = cpu::dropout_draw(stream, index) >= threshold;
    out[i] = keep ? from_float<T>(to_float(x[i]) * keep_scale) : from_float<T>(0.0f);
  }
};

}  // namespace

void dropout(const OpContext& ctx, const char* op, Tensor out, Tensor x, double p, uint64_t seed,
             int64_t col_offset, int64_t full_cols) {
  const int64_t width = full_cols > 0 ? x.dim(1) : 0;
  // As the CPU: the scale rounded to float once, one multiply per kept element.
  const auto keep_scale = static_cast<float>(1.0 / (1.0 - p));
  FT_DISPATCH_CUDA_FLOAT(
      op, x.dtype,
      launch_elementwise(
          op, ctx, x.numel(),
          Dropout<scalar_t>{data<scalar_t>(out), data<scalar_t>(x), cpu::dropout_stream(seed),
                            cpu::dropout_threshold(p), keep_scale, width, col_offset, full_cols}));
}

}  // namespace ft::cuda
