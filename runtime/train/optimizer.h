// AdamW over the trainable parameters of a ParameterStore, with global gradient-norm clipping.
// Weight decay applies to the parameters whose spec says so (matrices and embeddings). One process
// on the CPU, for tests and benchmarks; the trainer's optimizer (any device and layout) is
// parallel/data_parallel.h.
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "kernels/ops.h"
#include "runtime/parameters.h"

namespace ft {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double grad_clip = 1.0;  // 0: no clipping
};

// The update's arguments shared by every parameter (weight decay is set per parameter).
ops::AdamWArgs adamw_step_args(const AdamWConfig& config, double lr, int64_t step,
                               double grad_scale);
// The factor that scales gradients of global norm `norm` down to config.grad_clip (1 when under
// it, when clipping is off, or when the norm is not finite).
double clip_scale(const AdamWConfig& config, double norm);

class AdamW {
 public:
  AdamW(const ParameterStore& params, AdamWConfig config) : params_(params), config_(config) {}
  // Returns the global gradient norm and, when it exceeds config.grad_clip, has the next update
  // use the gradients scaled down to that norm. The scaling is fused into the update: the
  // gradient buffers themselves keep their unclipped values.
  double clip_gradients(const OpContext& ctx);
  // One update at learning rate lr; `step` counts from 1. Applies (and then forgets) the scale
  // the last clip_gradients chose.
  void update(const OpContext& ctx, double lr, int64_t step);

 private:
  const ParameterStore& params_;
  AdamWConfig config_;
  double grad_scale_ = 1.0;  // set by clip_gradients for the next update
};

}  // namespace ft
