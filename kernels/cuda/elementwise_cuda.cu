#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/elementwise_cuda.h"

namespace ft::cuda {
namespace {

template <typename T>
struct Add {
  T* out;
  const T *a, *b;
  __device__ void operator()(int64_t i) const {
    out[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
  }
};

template <typename T>
struct Scale {
  T* x;
  float factor;
  __device__ void operator()(int64_t i) const { x[i] = from_float<T>(to_float(x[i]) * factor); }
};

// Conversions through the widest value: double for f32/f64 sources, float for bf16; a bf16 result
// rounds from float (a double rounds to float first).
__device__ __forceinline__ double widen(float v) {
  return v;
}
__device__ __forceinline__ double widen(double v) {
  return v;
}
__device__ __forceinline__ double widen(bfloat v) {
  return __bfloat162float(v);
}
template <typename D>
__device__ __forceinline__ D narrow(double v);
template <>
__device__ __forceinline__ float narrow<float>(double v) {
  return static_cast<float>(v);
}
template <>
__device__ __forceinline__ double narrow<double>(double v) {
  return v;
}
template <>
__device__ __forceinline__ bfloat narrow<bfloat>(double v) {
  return __float2bfloat16_rn(static_cast<float>(v));
}

template <typename D, typename S>
struct Cast {
  D* dst;
  const S* src;
  __device__ void operator()(int64_t i) const { dst[i] = narrow<D>(widen(src[i])); }
};

template <typename T>
struct CopyColumns {
  T* dst;
  const T* src;
  int64_t width, src_cols, offset;
  __device__ void operator()(int64_t i) const {
    const int64_t row = i / width, j = i - row * width;
    dst[i] = src[row * src_cols + offset + j];
  }
};

template <typename T>
struct AddToColumns {
  T* dst;
  const T* src;
  int64_t width, dst_cols, offset;
  __device__ void operator()(int64_t i) const {
    const int64_t row = i / width, j = i - row * width;
    T* target = dst + row * dst_cols + offset + j;
    *target = from_float<T>(to_float(*target) + to_float(src[i]));
  }
};

template <typename D>
void cast_from(const OpContext& ctx, Tensor dst, Tensor src) {
  constexpr const char* op = "cast";
  const int64_t count = src.numel();
  switch (src.dtype) {
    case DType::f32:
      return launch_elementwise(op, ctx, count, Cast<D, float>{data<D>(dst), data<float>(src)});
    case DType::f64:
      return launch_elementwise(op, ctx, count, Cast<D, double>{data<D>(dst), data<double>(src)});
    case DType::bf16:
      return launch_elementwise(op, ctx, count, Cast<D, bfloat>{data<D>(dst), data<bfloat>(src)});
    default:
      ops::unsupported(op, Device::cuda, src.dtype);
  }
}

}  // namespace

void add(const OpContext& ctx, Tensor out, Tensor a, Tensor b) {
  constexpr const char* op = "add";
  FT_DISPATCH_CUDA_FLOAT(
      op, a.dtype,
      launch_elementwise(op, ctx, a.numel(),
                         Add<scalar_t>{data<scalar_t>(out), data<scalar_t>(a), data<scalar_t>(b)}));
}

void scale(const OpContext& ctx, Tensor x, double factor) {
  constexpr const char* op = "scale";
  FT_DISPATCH_CUDA_FLOAT(
      op, x.dtype,
      launch_elementwise(op, ctx, x.numel(),
                         Scale<scalar_t>{data<scalar_t>(x), static_cast<float>(factor)}));
}

void cast(const OpContext& ctx, Tensor dst, Tensor src) {
  switch (dst.dtype) {
    case DType::f32:
      return cast_from<float>(ctx, dst, src);
    case DType::f64:
      return cast_from<double>(ctx, dst, src);
    case DType::bf16:
      return cast_from<bfloat>(ctx, dst, src);
    default:
      ops::unsupported("cast", Device::cuda, dst.dtype);
  }
}

void zero(const OpContext& ctx, Tensor x) {
  if (x.bytes() == 0) return;
  FT_CUDA_OP_CHECK("zero", cudaMemsetAsync(x.data, 0, x.bytes(), stream_of(ctx)));
}

void copy_columns(const OpContext& ctx, Tensor dst, Tensor src, int64_t offset) {
  constexpr const char* op = "copy_columns";
  const int64_t width = dst.dim(1);
  if (width == 0) return;
  FT_DISPATCH_CUDA_FLOAT(
      op, src.dtype,
      launch_elementwise(op, ctx, dst.numel(),
                         CopyColumns<scalar_t>{data<scalar_t>(dst), data<scalar_t>(src), width,
                                               src.dim(1), offset}));
}

void add_to_columns(const OpContext& ctx, Tensor dst, Tensor src, int64_t offset) {
  constexpr const char* op = "add_to_columns";
  const int64_t width = src.dim(1);
  if (width == 0) return;
  FT_DISPATCH_CUDA_FLOAT(
      op, dst.dtype,
      launch_elementwise(op, ctx, src.numel(),
                         AddToColumns<scalar_t>{data<scalar_t>(dst), data<scalar_t>(src), width,
                                                dst.dim(1), offset}));
}

}  // namespace ft::cuda
