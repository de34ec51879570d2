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

ParameterStore::ParameterStore(std::vector<ParamSpec> specs, DType dtype, Device device)
    : dtype_(dtype), device_(device) {
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
  size_t element = dtype_size(dtype);
  trainable_ = Buffer(device, trainable_count_ * element);
  frozen_ = Buffer(device, frozen_count_ * element);
  grads_ = Buffer(device, trainable_count_ * element);
  m_ = Buffer(device, trainable_count_ * element);
  v_ = Buffer(device, trainable_count_ * element);
  for (Parameter& param : params_) {
    size_t offset = param.offset * element;
    if (param.spec.trainable) {
      param.value = trainable_.view(dtype, param.spec.shape, offset);
      param.grad = grads_.view(dtype, param.spec.shape, offset);
      param.adam_m = m_.view(dtype, param.spec.shape, offset);
      param.adam_v = v_.view(dtype, param.spec.shape, offset);
    } else {
      param.value = frozen_.view(dtype, param.spec.shape, offset);
    }
  }
}

const Parameter& ParameterStore::at(const std::string& name) const {
  auto found = index_.find(name);
  if (found == index_.end()) fail("no parameter named {}", name);
  return params_[found->second];
}

Tensor ParameterStore::flat(const Buffer& buffer) const {
  return buffer.view(dtype_, Shape{static_cast<int64_t>(buffer.bytes() / dtype_size(dtype_))});
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
}

void ParameterStore::zero_grads(const OpContext& ctx) const {
  if (trainable_count_ > 0) ops::zero(ctx, trainable_grads());
}

}  // namespace ft
