// Whole-model gradient checks in fp64: a Transformer run on CPU by a test, and every trainable
// parameter's gradient against central differences of the loss on a sample of its elements.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "kernels/context.h"
#include "models/transformer.h"
#include "runtime/buffer.h"
#include "runtime/parameters.h"

namespace ft::testing {

// A model, its parameters and one batch of inputs, run on CPU with 2 threads counting their work.
// A test fills config, params, model, inputs and target_count, then calls bind_model().
struct ModelRun {
  ModelConfig config;
  std::unique_ptr<ParameterStore> params;
  std::unique_ptr<Transformer> model;
  ModelMemory memory;
  OpCounters counters;
  OpContext ctx;
  ModelInputs inputs;
  int64_t target_count = 0;  // targets that are not ignored: the loss is their mean

  // Binds the activations to an arena of the measured size and the workspace the model asks for.
  void bind_model() {
    ctx.num_threads = 2;
    ctx.counters = &counters;
    memory = plan_model_memory(*model, ctx);
  }

  double loss() { return model->forward(ctx, inputs).loss_sum / static_cast<double>(target_count); }

  void compute_gradients() {
    params->zero_grads(ctx);
    loss();
    model->backward(ctx, inputs, 1.0 / static_cast<double>(target_count));
  }
};

// Which elements of each parameter are perturbed, and how close the gradient must be.
struct ParameterGradientCheck {
  // Every stride-th element is checked, stride = max(1, count / per_parameter): all of a
  // parameter of at most per_parameter elements, about per_parameter of a larger one.
  int per_parameter = 0;
  // The first element checked in a parameter of more than per_parameter elements (0 otherwise),
  // given that parameter's stride.
  std::function<int64_t(int64_t stride)> first_sampled = [](int64_t) { return 0; };
  // |numeric - analytic| / max(relative_floor, |numeric|) must stay below tolerance.
  double relative_floor = 1e-3;
  double tolerance = 1e-5;
  double step = 1e-5;  // the central difference's h
};

// Compares the gradients already in `params` (fp64, computed for `loss`) with central
// differences of `loss`, which must read the parameter values afresh on each call. Reports the
// worst element of each parameter, named with `label`. Returns the number of parameters checked.
inline int expect_parameter_gradients(const std::string& label, const ParameterStore& params,
                                      const std::function<double()>& loss,
                                      const ParameterGradientCheck& check) {
  if (check.per_parameter <= 0) {
    ADD_FAILURE() << label << ": ParameterGradientCheck::per_parameter must be positive";
    return 0;
  }
  int checked = 0;
  for (const Parameter& p : params.all()) {
    if (!p.spec.trainable) continue;
    ++checked;
    double* values = p.value.ptr<double>();
    const double* grads = p.grad.ptr<double>();
    const int64_t count = p.value.numel();
    const int64_t stride = std::max<int64_t>(1, count / check.per_parameter);
    double worst = 0.0;
    int64_t worst_index = 0;
    for (int64_t i = count > check.per_parameter ? check.first_sampled(stride) : 0; i < count;
         i += stride) {
      const double saved = values[i], h = check.step;
      values[i] = saved + h;
      const double plus = loss();
      values[i] = saved - h;
      const double minus = loss();
      values[i] = saved;
      const double numeric = (plus - minus) / (2 * h);
      const double error =
          std::abs(numeric - grads[i]) / std::max(check.relative_floor, std::abs(numeric));
      if (error > worst) {
        worst = error;
        worst_index = i;
      }
    }
    EXPECT_LT(worst, check.tolerance) << label << " " << p.spec.name << " element " << worst_index
                                      << ": analytic " << grads[worst_index];
  }
  return checked;
}

}  // namespace ft::testing
