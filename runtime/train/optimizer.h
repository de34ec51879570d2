// AdamW over the trainable parameters of a ParameterStore, with global gradient-norm clipping.
// Weight decay applies to the parameters whose spec says so (matrices and embeddings).
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "runtime/parameters.h"

namespace ft {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double grad_clip = 1.0;  // 0: no clipping
};

class AdamW {
 public:
  AdamW(const ParameterStore& params, AdamWConfig config) : params_(params), config_(config) {}
  // Clips the gradients in place to config.grad_clip and returns the norm before clipping.
  double clip_gradients(const OpContext& ctx) const;
  // One update at learning rate lr; `step` counts from 1.
  void update(const OpContext& ctx, double lr, int64_t step) const;

 private:
  const ParameterStore& params_;
  AdamWConfig config_;
};

}  // namespace ft
