// The AdamW step on the GPU over fp32 master parameters, gradients and moments, optionally writing
// the updated parameters' bf16 (or f32) copy in the same pass. Arguments are checked by the ops.h
// entry point.
#pragma once

#include "kernels/context.h"
#include "kernels/ops.h"
#include "runtime/tensor.h"

namespace ft::cuda {

// params, grads, m, v f32; params_copy empty or bf16/f32 of the same shape.
void adamw_update(const OpContext& ctx, Tensor params, Tensor grads, Tensor m, Tensor v,
                  const ops::AdamWArgs& args, Tensor params_copy);

}  // namespace ft::cuda
