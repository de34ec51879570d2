// Residual add + RMSNorm / LayerNorm (kernels/fused_norm_ops.h) on the GPU: one block per row
// (fp32 statistics, as kernels/cuda/norm_cuda.cu), the row's values held in registers between the
// passes, then norm_cuda.cu's deterministic column sums for the weight and bias gradients.
// x-like tensors f32 or bf16; mean and rstd f32; dweight and dbias f32 or the activations' dtype.
// Arguments (and aliasing) are checked by the ops entry points.
#pragma once

#include "kernels/context.h"
#include "runtime/tensor.h"

namespace ft::cuda {

void residual_rmsnorm_forward(const OpContext& ctx, Tensor residual_out, Tensor out, Tensor rstd,
                              Tensor residual_in, Tensor delta, Tensor weight, double eps);
void residual_layernorm_forward(const OpContext& ctx, Tensor residual_out, Tensor out, Tensor mean,
                                Tensor rstd, Tensor residual_in, Tensor delta, Tensor weight,
                                Tensor bias, double eps);
void residual_rmsnorm_backward(const OpContext& ctx, Tensor dresidual, Tensor dweight, Tensor dout,
                               Tensor dresidual_above, Tensor x, Tensor weight, Tensor rstd);
void residual_layernorm_backward(const OpContext& ctx, Tensor dresidual, Tensor dweight,
                                 Tensor dbias, Tensor dout, Tensor dresidual_above, Tensor x,
                                 Tensor weight, Tensor mean, Tensor rstd);

}  // namespace ft::cuda
