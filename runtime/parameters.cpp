#include "runtime/parameters.h"

#include <vector>

#include "kernels/ops.h"
#include "runtime/device.h"
#include "runtime/random.h"

namespace ft {
namespace {

// FNV-1a: a stable hash of the name (std::hash is not specified to be stable).
uint64_t name_hash(const std::string& name) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : name) hash = (hash ^ c) * 0x100000001b3ull;
  return hash;
}

}  // namespace

ParameterStore::ParameterStore(std::vector<ParamSpec> specs, DType dtype, Device device,
                               ParameterStoreOptions options, std::optional<DType> compute_dtype)
    : dtype_(dtype), compute_dtype_(compute_dtype.value_or(dtype)), device_(device) {
  params_.reserve(specs.size());
  for (ParamSpec& spec : specs) {
    FT_CHECK(!index_.count(spec.name), "parameter {} is declared twice", spec.name);
    Parameter param;
    param.spec = std::move(spec);
    int64_t& count = param.spec.trainable ? trainable_count_ : frozen_count_;
    param.offset = count;
    count += param.spec.shape.numel();
    index_[param.spec.name] = params_.size();
    params_.push_back(std::move(param));
  }
  FT_CHECK(options.trainable_multiple >= 1, "trainable_multiple must be at least 1");
  padded_trainable_count_ = (trainable_count_ + options.trainable_multiple - 1) /
                            options.trainable_multiple * options.trainable_multiple;
  const size_t element = dtype_size(dtype), compute_element = dtype_size(compute_dtype_);
  const size_t trainable_bytes = padded_trainable_count_ * element;
  trainable_ = Buffer(device, trainable_bytes);
  if (mixed_precision())
    trainable_compute_ = Buffer(device, padded_trainable_count_ * compute_element);
  frozen_ = Buffer(device, frozen_count_ * compute_element);
  if (options.gradients) grads_ = Buffer(device, trainable_bytes);
  if (options.moments) {
    m_ = Buffer(device, trainable_bytes);
    v_ = Buffer(device, trainable_bytes);
  }
  auto view = [&](const Buffer& buffer, const Parameter& param) {
    return buffer.bytes() == 0 ? Tensor()
                               : buffer.view(dtype, param.spec.shape, param.offset * element);
  };
  for (Parameter& param : params_) {
    if (param.spec.trainable) {
      param.value = trainable_.view(dtype, param.spec.shape, param.offset * element);
      param.compute = mixed_precision() ? trainable_compute_.view(compute_dtype_, param.spec.shape,
                                                                  param.offset * compute_element)
                                        : param.value;
      param.grad = view(grads_, param);
      param.adam_m = view(m_, param);
      param.adam_v = view(v_, param);
    } else {
      param.value = frozen_.view(compute_dtype_, param.spec.shape, param.offset * compute_element);
      param.compute = param.value;
    }
  }
}

const Parameter& ParameterStore::at(const std::string& name) const {
  auto found = index_.find(name);
  if (found == index_.end()) fail("no parameter named {}", name);
  return params_[found->second];
}

Tensor ParameterStore::flat(const Buffer& buffer) const {
  const bool compute = &buffer == &frozen_ || &buffer == &trainable_compute_;
  const DType dtype = compute ? compute_dtype_ : dtype_;
  if (buffer.bytes() == 0) return Tensor(nullptr, dtype, Shape{0}, device_);
  const int64_t count = &buffer == &frozen_ ? frozen_count_ : trainable_count_;
  return buffer.view(dtype, Shape{count});
}

Tensor ParameterStore::trainable_compute_values() const {
  return mixed_precision() ? flat(trainable_compute_) : trainable_values();
}

void ParameterStore::refresh_compute_copy(const OpContext& ctx) const {
  FT_CHECK(ctx.device == device_, "refresh_compute_copy: parameters on {}, context on {}",
           device_name(device_), device_name(ctx.device));
  if (mixed_precision() && trainable_count_ > 0)
    ops::cast(ctx, trainable_compute_values(), trainable_values());
}

Tensor ParameterStore::padded(const Buffer& buffer) const {
  if (buffer.bytes() == 0) return Tensor(nullptr, dtype_, Shape{0}, device_);
  return buffer.view(dtype_, Shape{padded_trainable_count_});
}

void ParameterStore::initialize(uint64_t seed) {
  std::vector<double> host;
  for (size_t index = 0; index < params_.size(); ++index) {
    const Parameter& param = params_[index];
    host.assign(param.spec.shape.numel(), 0.0);
    switch (param.spec.init) {
      case InitKind::ones:
        host.assign(host.size(), 1.0);
        break;
      case InitKind::zeros:
        break;
      case InitKind::normal: {
        Random random(seed, name_hash(param.spec.name));
        for (double& value : host) value = param.spec.init_std * random.normal();
        break;
      }
      case InitKind::uniform: {
        Random random(seed, name_hash(param.spec.name));
        for (double& value : host) value = param.spec.init_bound * (2.0 * random.uniform() - 1.0);
        break;
      }
    }
    Tensor source(host.data(), DType::f64, param.spec.shape);
    if (device_ == Device::cpu) {
      OpContext ctx;
      ops::cast(ctx, param.value, source);
    } else {
      fail("parameter initialization on {} is not available", device_name(device_));
    }
  }
  OpContext ctx;
  refresh_compute_copy(ctx);
}

void ParameterStore::zero_grads(const OpContext& ctx) const {
  if (trainable_count_ > 0 && grads_.bytes() > 0) ops::zero(ctx, trainable_grads());
}

}  // namespace ft
