// Elementwise activations on the GPU: SwiGLU, GELU (tanh form), ReLU and tanh, forward and
// backward, in f32 or bf16 storage with fp32 math. The formulas are
// kernels/cpu/activation_cpu.cpp's and adapter_cpu.cpp's. Arguments are checked by the ops.h entry
// points; outputs may alias inputs.
#pragma once

#include "kernels/context.h"
#include "runtime/tensor.h"

namespace ft::cuda {

void swiglu_forward(const OpContext& ctx, Tensor out, Tensor gate, Tensor up);
void swiglu_backward(const OpContext& ctx, Tensor dgate, Tensor dup, Tensor dout, Tensor gate,
                     Tensor up);
void gelu_forward(const OpContext& ctx, Tensor out, Tensor x);
void gelu_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor x);
void relu_forward(const OpContext& ctx, Tensor out, Tensor x);
void relu_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor x);
void tanh_forward(const OpContext& ctx, Tensor out, Tensor x);
// dx = dout * (1 - out^2), from the saved forward output.
void tanh_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor out);

}  // namespace ft::cuda
