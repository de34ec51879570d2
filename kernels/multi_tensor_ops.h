// AdamW over many tensors at once. The trainer updates a few hundred parameter tensors per step;
// one adamw_update launch per tensor costs a launch each, and most of those tensors (norms,
// biases, LoRA factors) are too small to fill the GPU. MultiTensorAdamW builds a table of every
// tensor's pointers and size once (kernels/multi_tensor_table.h), uploads it once, and each step
// is one launch over (tensor, chunk) pairs with the step's scalars (lr, bias corrections, clip
// scale) as kernel arguments.
//
// Results are meant to equal, bit for bit, ops::adamw_update called on each tensor with its
// weight_decay (both kernels share kernels/cuda/adamw_cuda.cuh; tests/cuda checks it on a GPU).
// On the CPU the step is exactly those calls.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/context.h"
#include "kernels/multi_tensor_table.h"
#include "kernels/ops.h"
#include "runtime/buffer.h"
#include "runtime/tensor.h"

namespace ft::ops {

// One tensor of the update: params, grads, m, v of one element count (f32, or f64 on the CPU);
// params_copy optional (any float dtype; on CUDA bf16 or f32), written as adamw_update writes it.
struct AdamWTensor {
  std::string name;  // for error messages
  Tensor params, grads, m, v, params_copy;
  bool decay = true;  // false: updated with weight_decay = 0 (norms, biases)
};

class MultiTensorAdamW {
 public:
  // Checks every tensor (an error names it and the argument) and, on CUDA, uploads the table to
  // ctx.device. The tensors' memory must stay where it is for the lifetime of this object.
  MultiTensorAdamW(const OpContext& ctx, std::vector<AdamWTensor> tensors,
                   int64_t chunk_elements = multi_tensor::kChunkElements);
  MultiTensorAdamW(const MultiTensorAdamW&) = delete;
  MultiTensorAdamW& operator=(const MultiTensorAdamW&) = delete;

  // One AdamW step over every tensor: args.weight_decay for tensors with decay, 0 for the others.
  // On CUDA one kernel launch, no host synchronization.
  void step(const OpContext& ctx, const AdamWArgs& args) const;

  size_t tensor_count() const { return tensors_.size(); }
  // Chunks of one launch (CUDA; 0 on the CPU).
  int64_t chunk_count() const { return chunks_; }

 private:
  Device device_;
  std::vector<AdamWTensor> tensors_;
  int64_t chunk_elements_;
  Buffer table_;  // CUDA: the multi_tensor::AdamWEntry of each non-empty tensor
  int64_t entries_ = 0, chunks_ = 0;
};

}  // namespace ft::ops
