// The frozen-weight matmul on the GPU (kernels/frozen_linear_ops.h): bf16 activations, a bf16, i8
// or f8e4m3 weight, fp32 accumulation on tensor cores (mma.sync m16n8k16) with the epilogue fused,
// and a simple kernel for shapes or alignments the tensor-core path does not take. Arguments are
// checked by the ops entry points (kernels/frozen_linear_ops.cpp); counters are counted there.
#pragma once

#include "kernels/context.h"
#include "kernels/frozen_linear_ops.h"
#include "runtime/tensor.h"

namespace ft::cuda {

void frozen_linear_forward(const OpContext& ctx, Tensor out, Tensor x, Tensor weight,
                           const ops::FrozenLinearArgs& args);
// up_dout empty: no second pair.
void frozen_linear_backward_input(const OpContext& ctx, Tensor dx, Tensor dout, Tensor weight,
                                  Tensor weight_scale, Tensor up_dout, Tensor up_weight,
                                  Tensor up_scale);
void quantize_weight_per_channel(const OpContext& ctx, Tensor quantized, Tensor scale,
                                 Tensor weight);

}  // namespace ft::cuda
