#include "kernels/cuda/activation_cuda.h"
#include "kernels/cuda/common_cuda.cuh"

namespace ft::cuda {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

__device__ __forceinline__ float sigmoid(float x) {
  return 1.0f / (1.0f + expf(-x));
}

template <typename T>
struct SwigluForward {
  T* out;
  const T *gate, *up;
  __device__ void operator()(int64_t i) const {
    const float g = to_float(gate[i]);
    out[i] = from_float<T>(g * sigmoid(g) * to_float(up[i]));
  }
};

template <typename T>
struct SwigluBackward {
  T *dgate, *dup;
  const T *dout, *gate, *up;
  __device__ void operator()(int64_t i) const {
    const float g = to_float(gate[i]), u = to_float(up[i]), d = to_float(dout[i]);
    const float s = sigmoid(g);
    dgate[i] = from_float<T>(d * u * (s * (1.0f + g * (1.0f - s))));  // d silu / dg
    dup[i] = from_float<T>(d * g * s);
  }
};

template <typename T>
struct GeluForward {
  T* out;
  const T* x;
  __device__ void operator()(int64_t i) const {
    const float v = to_float(x[i]);
    const float t = tanhf(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
    out[i] = from_float<T>(0.5f * v * (1.0f + t));
  }
};

template <typename T>
struct GeluBackward {
  T* dx;
  const T *dout, *x;
  __device__ void operator()(int64_t i) const {
    const float v = to_float(x[i]);
    const float t = tanhf(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
    const float du_dx = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * v * v);
    const float derivative = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du_dx;
    dx[i] = from_float<T>(to_float(dout[i]) * derivative);
  }
};

template <typename T>
struct ReluForward {
  T* out;
  const T* x;
  __device__ void operator()(int64_t i) const {
    const float v = to_float(x[i]);
    out[i] = v < 0.0f ? from_float<T>(0.0f) : x[i];  // not max(v, 0): a NaN must reach the loss
  }
};

template <typename T>
struct ReluBackward {
  T* dx;
  const T *dout, *x;
  __device__ void operator()(int64_t i) const {
    dx[i] = to_float(x[i]) > 0.0f ? dout[i] : from_float<T>(0.0f);
  }
};

template <typename T>
struct TanhForward {
  T* out;
  const T* x;
  __device__ void operator()(int64_t i) const { out[i] = from_float<T>(tanhf(to_float(x[i]))); }
};

template <typename T>
struct TanhBackward {
  T* dx;
  const T *dout, *out;
  __device__ void operator()(int64_t i) const {
    const float t = to_float(out[i]);
    dx[i] = from_float<T>(to_float(dout[i]) * (1.0f - t * t));
  }
};

}  // namespace

void swiglu_forward(const OpContext& ctx, Tensor out, Tensor gate, Tensor up) {
  constexpr const char* op = "swiglu_forward";
  FT_DISPATCH_CUDA_FLOAT(
      op, gate.dtype,
      launch_elementwise(
          op, ctx, gate.numel(),
          SwigluForward<scalar_t>{data<scalar_t>(out), data<scalar_t>(gate), data<scalar_t>(up)}));
}

void swiglu_backward(const OpContext& ctx, Tensor dgate, Tensor dup, Tensor dout, Tensor gate,
                     Tensor up) {
  constexpr const char* op = "swiglu_backward";
  FT_DISPATCH_CUDA_FLOAT(
      op, gate.dtype,
      launch_elementwise(
          op, ctx, gate.numel(),
          SwigluBackward<scalar_t>{data<scalar_t>(dgate), data<scalar_t>(dup), data<scalar_t>(dout),
                                   data<scalar_t>(gate), data<scalar_t>(up)}));
}

void gelu_forward(const OpContext& ctx, Tensor out, Tensor x) {
  constexpr const char* op = "gelu_forward";
  FT_DISPATCH_CUDA_FLOAT(
      op, x.dtype,
      launch_elementwise(op, ctx, x.numel(),
                         GeluForward<scalar_t>{data<scalar_t>(out), data<scalar_t>(x)}));
}

void gelu_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor x) {
  constexpr const char* op = "gelu_backward";
  FT_DISPATCH_CUDA_FLOAT(
      op, x.dtype,
      launch_elementwise(
          op, ctx, x.numel(),
          GeluBackward<scalar_t>{data<scalar_t>(dx), data<scalar_t>(dout), data<scalar_t>(x)}));
}

void relu_forward(const OpContext& ctx, Tensor out, Tensor x) {
  constexpr const char* op = "relu_forward";
  FT_DISPATCH_CUDA_FLOAT(
      op, x.dtype,
      launch_elementwise(op, ctx, x.numel(),
                         ReluForward<scalar_t>{data<scalar_t>(out), data<scalar_t>(x)}));
}

void relu_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor x) {
  constexpr const char* op = "relu_backward";
  FT_DISPATCH_CUDA_FLOAT(
      op, x.dtype,
      launch_elementwise(
          op, ctx, x.numel(),
          ReluBackward<scalar_t>{data<scalar_t>(dx), data<scalar_t>(dout), data<scalar_t>(x)}));
}

void tanh_forward(const OpContext& ctx, Tensor out, Tensor x) {
  constexpr const char* op = "tanh_forward";
  FT_DISPATCH_CUDA_FLOAT(
      op, x.dtype,
      launch_elementwise(op, ctx, x.numel(),
                         TanhForward<scalar_t>{data<scalar_t>(out), data<scalar_t>(x)}));
}

void tanh_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor out) {
  constexpr const char* op = "tanh_backward";
  FT_DISPATCH_CUDA_FLOAT(
      op, out.dtype,
      launch_elementwise(
          op, ctx, out.numel(),
          TanhBackward<scalar_t>{data<scalar_t>(dx), data<scalar_t>(dout), data<scalar_t>(out)}));
}

}  // namespace ft::cuda
