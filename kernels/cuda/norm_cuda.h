// RMSNorm and LayerNorm on the GPU: one block per row for the row statistics (fp32 sums), a
// deterministic column reduction for the weight and bias gradients. x, out, dout, dx, weight, bias
// are f32 or bf16; mean and rstd are f32; dweight and dbias f32 or x's dtype. Arguments are
// checked by the ops.h entry points.
#pragma once

#include "kernels/context.h"
#include "runtime/tensor.h"

namespace ft::cuda {

void rmsnorm_forward(const OpContext& ctx, Tensor out, Tensor rstd, Tensor x, Tensor weight,
                     double eps);
void rmsnorm_backward(const OpContext& ctx, Tensor dx, Tensor dweight, Tensor dout, Tensor x,
                      Tensor weight, Tensor rstd);
void layernorm_forward(const OpContext& ctx, Tensor out, Tensor mean, Tensor rstd, Tensor x,
                       Tensor weight, Tensor bias, double eps);
void layernorm_backward(const OpContext& ctx, Tensor dx, Tensor dweight, Tensor dbias, Tensor dout,
                        Tensor x, Tensor weight, Tensor mean, Tensor rstd);

}  // namespace ft::cuda
