// Inverted dropout on the GPU with the CPU's counter-based mask (kernels/cpu/adapter_cpu.h): the
// same (seed, element index) keeps the same elements on both backends, bit for bit. x and out
// are f32 or bf16 and may alias. Arguments are checked by the ops.h entry points.
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "runtime/tensor.h"

namespace ft::cuda {

// out = x / (1 - p) where the mask keeps the element, else 0 (also the backward, dx from dout).
// full_cols > 0: x (N, w) is columns [col_offset, col_offset + w) of an (N, full_cols) tensor
// and gets that tensor's mask.
void dropout(const OpContext& ctx, const char* op, Tensor out, Tensor x, double p, uint64_t seed,
             int64_t col_offset, int64_t full_cols);

}  // namespace ft::cuda
