#include "runtime/train/optimizer.h"

#include <cmath>

#include "kernels/ops.h"

namespace ft {

ops::AdamWArgs adamw_step_args(const AdamWConfig& config, double lr, int64_t step,
                               double grad_scale) {
  ops::AdamWArgs args;
  args.lr = lr;
  args.beta1 = config.beta1;
  args.beta2 = config.beta2;
  args.eps = config.eps;
  args.step = step;
  args.grad_scale = grad_scale;
  return args;
}

double clip_scale(const AdamWConfig& config, double norm) {
  if (config.grad_clip > 0.0 && norm > config.grad_clip && std::isfinite(norm))
    return config.grad_clip / norm;
  return 1.0;
}

double AdamW::clip_gradients(const OpContext& ctx) {
  grad_scale_ = 1.0;
  if (params_.trainable_count() == 0) return 0.0;
  const double norm = std::sqrt(ops::sum_squares(ctx, params_.trainable_grads()));
  grad_scale_ = clip_scale(config_, norm);
  return norm;
}

void AdamW::update(const OpContext& ctx, double lr, int64_t step) {
  ops::AdamWArgs args = adamw_step_args(config_, lr, step, grad_scale_);
  grad_scale_ = 1.0;
  for (const Parameter& param : params_.all()) {
    if (!param.spec.trainable) continue;
    args.weight_decay = param.spec.decay ? config_.weight_decay : 0.0;
    ops::adamw_update(ctx, param.value, param.grad, param.adam_m, param.adam_v, args);
  }
}

}  // namespace ft
