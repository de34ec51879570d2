#include "models/peft/lora_merge.h"

#include <vector>

namespace ft {
namespace {

// The weight a target's B A adds to: GPT-2's c_attn is one matrix, the others one each.
std::string base_weight_name(const LoraTarget& target) {
  return target.module + ".weight";
}

template <typename T>
void add_product(T* weight, const T* b, const T* a, int64_t out, int64_t in, int64_t rank,
                 double scale) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < out; ++row) {
    std::vector<double> sum(in, 0.0);
    for (int64_t k = 0; k < rank; ++k) {
      const double factor = static_cast<double>(b[row * rank + k]);
      for (int64_t col = 0; col < in; ++col) sum[col] += factor * a[k * in + col];
    }
    for (int64_t col = 0; col < in; ++col)
      weight[row * in + col] = static_cast<T>(weight[row * in + col] + scale * sum[col]);
  }
}

}  // namespace

void merge_lora(const PeftSpec& spec, const ParameterStore& params) {
  FT_CHECK(spec.method == PeftMethod::lora, "only LoRA merges into the base ({} does not)",
           peft_method_name(spec.method));
  for (const LoraTarget& target : spec.lora_targets) {
    const Tensor weight = params.at(base_weight_name(target)).value;
    const Tensor a = params.at(target.a_name()).value, b = params.at(target.b_name()).value;
    FT_CHECK(weight.device == Device::cpu, "LoRA merge runs on host tensors");
    FT_CHECK(weight.shape == (Shape{target.out_features, target.in_features}),
             "{} has shape {}, the LoRA module expects ({}, {})", base_weight_name(target),
             weight.shape.str(), target.out_features, target.in_features);
    if (weight.dtype == DType::f32) {
      add_product(weight.ptr<float>(), b.ptr<float>(), a.ptr<float>(), target.out_features,
                  target.in_features, spec.lora_r, spec.lora_scale());
    } else {
      add_product(weight.ptr<double>(), b.ptr<double>(), a.ptr<double>(), target.out_features,
                  target.in_features, spec.lora_r, spec.lora_scale());
    }
  }
}

}  // namespace ft
