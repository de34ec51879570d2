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

// Conversions through the widest value (widen): a bf16 result rounds from float (a double rounds
// to float first).
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

// The (R, w) block at column `offset` of an (R, W) matrix, one thread per block element: copied
// out of the matrix (kAdd false: block = matrix[:, offset : offset + w]) or added into it (kAdd
// true: matrix[:, offset : offset + w] += block).
template <typename T, bool kAdd>
struct ColumnBlock {
  T* dst;
  const T* src;
  int64_t width, matrix_cols, offset;
  __device__ void operator()(int64_t i) const {
    const int64_t row = i / width, j = i - row * width;
    const int64_t in_matrix = row * matrix_cols + offset + j;
    if constexpr (kAdd) {
      dst[in_matrix] = from_float<T>(to_float(dst[in_matrix]) + to_float(src[i]));
    } else {
      dst[i] = src[in_matrix];
    }
  }
};

template <bool kAdd>
void column_block(const OpContext& ctx, const char* op, Tensor dst, Tensor src, int64_t offset) {
  const Tensor& block = kAdd ? src : dst;   // (R, w)
  const Tensor& matrix = kAdd ? dst : src;  // (R, W)
  const int64_t width = block.dim(1);
  if (width == 0) return;
  FT_DISPATCH_CUDA_FLOAT(
      op, matrix.dtype,
      launch_elementwise(op, ctx, block.numel(),
                         ColumnBlock<scalar_t, kAdd>{data<scalar_t>(dst), data<scalar_t>(src),
                                                     width, matrix.dim(1), offset}));
}

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
  launch_tensor_map<Add>("add", ctx, a.dtype, a.numel(), out, a, b);
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
  column_block</*kAdd=*/false>(ctx, "copy_columns", dst, src, offset);
}

void add_to_columns(const OpContext& ctx, Tensor dst, Tensor src, int64_t offset) {
  column_block</*kAdd=*/true>(ctx, "add_to_columns", dst, src, offset);
}

}  // namespace ft::cuda
