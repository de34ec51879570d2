// Rotary position embedding on the GPU, Hugging Face's rotate_half layout (element i of a head
// pairs with i + head_dim / 2). x and the tables are f32 or bf16; checked by the ops.h entry
// points.
#pragma once

#include "kernels/context.h"
#include "kernels/ops.h"
#include "runtime/tensor.h"

namespace ft::cuda {

// cos, sin (max_positions, half_dim) of pos * inv_freq[i], the angle and its cos/sin in fp64 (the
// inverse frequencies are the CPU's, kernels/cpu/rope_cpu.h). A start-up op: it allocates and
// frees a small device array for the frequencies.
void rope_build_tables(const OpContext& ctx, Tensor cos, Tensor sin, double theta,
                       const ops::RopeScaling& scaling);
// In place on x (N, H, D): the rotation (inverse = false) or its transpose. A position outside
// the tables is recorded as a device error and leaves its row unchanged.
void rope_rotate(const OpContext& ctx, const char* op, bool inverse, Tensor x, Tensor positions,
                 Tensor cos, Tensor sin);

}  // namespace ft::cuda
