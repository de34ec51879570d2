#include "kernels/cuda/activation_cuda.h"
#include "kernels/cuda/common_cuda.cuh"

namespace ft::cuda {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

__device__ __forceinline__ float sigmoid(float x) {
  return 1.0f / (1.0f + expf(-x));
}
// The tanh of the GELU approximation: tanh(sqrt(2 / pi) (v + 0.044715 v^3)).
__device__ __forceinline__ float gelu_tanh(float v) {
  return tanhf(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
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
    const float t = gelu_tanh(v);
    out[i] = from_float<T>(0.5f * v * (1.0f + t));
  }
};

template <typename T>
struct GeluBackward {
  T* dx;
  const T *dout, *x;
  __device__ void operator()(int64_t i) const {
    const float v = to_float(x[i]);
    const float t = gelu_tanh(v);
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
  launch_tensor_map<SwigluForward>("swiglu_forward", ctx, gate.dtype, gate.numel(), out, gate, up);
}

void swiglu_backward(const OpContext& ctx, Tensor dgate, Tensor dup, Tensor dout, Tensor gate,
                     Tensor up) {
  launch_tensor_map<SwigluBackward>("swiglu_backward", ctx, gate.dtype, gate.numel(), dgate, dup,
                                    dout, gate, up);
}

void gelu_forward(const OpContext& ctx, Tensor out, Tensor x) {
  launch_tensor_map<GeluForward>("gelu_forward", ctx, x.dtype, x.numel(), out, x);
}

void gelu_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor x) {
  launch_tensor_map<GeluBackward>("gelu_backward", ctx, x.dtype, x.numel(), dx, dout, x);
}

void relu_forward(const OpContext& ctx, Tensor out, Tensor x) {
  launch_tensor_map<ReluForward>("relu_forward", ctx, x.dtype, x.numel(), out, x);
}

void relu_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor x) {
  launch_tensor_map<ReluBackward>("relu_backward", ctx, x.dtype, x.numel(), dx, dout, x);
}

void tanh_forward(const OpContext& ctx, Tensor out, Tensor x) {
  launch_tensor_map<TanhForward>("tanh_forward", ctx, x.dtype, x.numel(), out, x);
}

void tanh_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor out) {
  launch_tensor_map<TanhBackward>("tanh_backward", ctx, out.dtype, out.numel(), dx, dout, out);
}

}  // namespace ft::cuda
