// linear on the GPU: the three products through cuBLASLt (fp32 accumulation, no TF32), the bias
// broadcast and its gradient by small kernels. x, weight, bias, out, dout, dx are f32 or bf16 (one
// dtype); dweight and dbias are f32 or that dtype. ctx.blas must point at cuda::BlasResources
// (kernels/cuda/op_resources_cuda.h). Arguments are checked by the ops.h entry points; counters
// are counted there.
#pragma once

#include "kernels/context.h"
#include "runtime/tensor.h"

namespace ft::cuda {

void linear_forward(const OpContext& ctx, Tensor out, Tensor x, Tensor weight, Tensor bias);
// Each of dx, dweight, dbias is skipped when empty.
void linear_backward(const OpContext& ctx, Tensor dx, Tensor dweight, Tensor dbias, Tensor dout,
                     Tensor x, Tensor weight);

}  // namespace ft::cuda
