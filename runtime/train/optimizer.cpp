#include "runtime/train/optimizer.h"

#include <cmath>

#include "kernels/ops.h"

namespace ft {

double AdamW::clip_gradients(const OpContext& ctx) {
  grad_scale_ = 1.0;
  if (params_.trainable_count() == 0) return 0.0;
  const double norm = std::sqrt(ops::sum_squares(ctx, params_.trainable_grads()));
  if (config_.grad_clip > 0.0 && norm > config_.grad_clip && std::isfinite(norm)) {
    grad_scale_ = config_.grad_clip / norm;
  }
  return norm;
}

void AdamW::update(const OpContext& ctx, double lr, int64_t step) {
  ops::AdamWArgs args;
  args.lr = lr;
  args.beta1 = config_.beta1;
  args.beta2 = config_.beta2;
  args.eps = config_.eps;
  args.step = step;
  args.grad_scale = grad_scale_;
  grad_scale_ = 1.0;
  for (const Parameter& param : params_.all()) {
    if (!param.spec.trainable) continue;
    args.weight_decay = param.spec.decay ? config_.weight_decay : 0.0;
    // Mixed precision: the update also rewrites the bf16 working copy the model reads.
    const Tensor working_copy = param.compute.data != param.value.data ? param.compute : Tensor();
    ops::adamw_update(ctx, param.value, param.grad, param.adam_m, param.adam_v, args, working_copy);
  }
}

}  // namespace ft
