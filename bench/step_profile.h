// The per-op profile of a training step: each op the step runs, timed alone on the step's shapes,
// beside what the bare BLAS needs for the linears' GEMMs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gemm_ceiling.h"
#include "kernels/context.h"
#include "models/model_config.h"
#include "models/transformer.h"
#include "runtime/tensor.h"

namespace ft::bench {

// What the profile borrows from the step it mirrors (the context, the seeded batch, the shapes).
struct ProfiledStep {
  const ModelConfig& config;
  const OpContext& ctx;
  const ModelInputs& inputs;
  int64_t batch = 0, seq = 0;
  int64_t trainable_parameters = 0;
};

struct OpRow {
  std::string phase, op;
  int64_t calls = 0;
  double seconds = 0;          // median per call
  double ceiling_seconds = 0;  // the BLAS alone on the op's GEMM (linears only)
};

// Times every op the step runs, alone, on the step's shapes, in the order and with the call
// counts of models/transformer.cpp (keep the two in step when the model changes). Operands are
// seeded from `seed`; each op runs once untimed, then `reps` times. The operands live on
// step.ctx's device in `dtype`, the step's activation dtype (bf16 on a GPU, with f32 statistics
// and parameter gradients as the step has them); a GPU times each call with CUDA events. Without
// a ceiling (a GPU run) the BLAS column stays empty.
std::vector<OpRow> profile_ops(const ProfiledStep& step, const Ceiling& ceiling, DType dtype,
                               uint64_t seed, int reps);

// The rows as a table, with shares of the measured `step_seconds`.
void print_profile(const std::vector<OpRow>& rows, double step_seconds);

}  // namespace ft::bench
