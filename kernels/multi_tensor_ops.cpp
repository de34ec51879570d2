#include "kernels/multi_tensor_ops.h"

#include <fmt/format.h>

#include <utility>

#include "kernels/arg_checks.h"
#include "kernels/dispatch.h"
#include "runtime/device.h"
#include "runtime/error.h"

#ifdef FT_WITH_CUDA
#include "kernels/cuda/multi_tensor_adamw_cuda.h"
#endif

namespace ft::ops {
namespace {

constexpr const char* kOp = "multi_tensor_adamw";

// "tensors[3] (model.norm.weight).grads": which tensor and which of its arguments.
std::string argument(size_t index, const AdamWTensor& tensor, const char* part) {
  return tensor.name.empty() ? fmt::format("tensors[{}].{}", index, part)
                             : fmt::format("tensors[{}] ({}).{}", index, tensor.name, part);
}

void check_tensor(const ArgChecks& check, size_t index, const AdamWTensor& t) {
  const std::string params = argument(index, t, "params");
  if (t.params.empty() && t.params.shape.numel() > 0) {
    fail("op {}: argument {} is empty", check.op, params);
  }
  check.tensor(params, t.params, t.params.shape, t.params.dtype);
  check.same(argument(index, t, "grads"), t.grads, t.params);
  check.same(argument(index, t, "m"), t.m, t.params);
  check.same(argument(index, t, "v"), t.v, t.params);
  if (!t.params_copy.empty()) {
    const std::string copy = argument(index, t, "params_copy");
    if (t.params_copy.dtype == DType::i32) {
      fail("op {}: argument {} has dtype i32, expected a float dtype", check.op, copy);
    }
    check.tensor(copy, t.params_copy, t.params.shape, t.params_copy.dtype);
  }
  if (check.ctx.device == Device::cuda) {
    if (t.params.dtype != DType::f32) unsupported(check.op, Device::cuda, t.params.dtype);
    if (!t.params_copy.empty() && t.params_copy.dtype != DType::bf16 &&
        t.params_copy.dtype != DType::f32) {
      unsupported(check.op, Device::cuda, t.params_copy.dtype);
    }
  }
}

multi_tensor::CopyKind copy_kind(const Tensor& copy) {
  if (copy.empty()) return multi_tensor::CopyKind::none;
  return copy.dtype == DType::bf16 ? multi_tensor::CopyKind::bf16 : multi_tensor::CopyKind::f32;
}

}  // namespace

MultiTensorAdamW::MultiTensorAdamW(const OpContext& ctx, std::vector<AdamWTensor> tensors,
                                   int64_t chunk_elements)
    : device_(ctx.device), tensors_(std::move(tensors)), chunk_elements_(chunk_elements) {
  const ArgChecks check{kOp, ctx};
  if (chunk_elements_ < 1) fail("op {}: chunk_elements is {}, expected >= 1", kOp, chunk_elements);
  for (size_t index = 0; index < tensors_.size(); ++index)
    check_tensor(check, index, tensors_[index]);
  if (device_ != Device::cuda) return;
  std::vector<multi_tensor::AdamWEntry> entries;
  for (const AdamWTensor& t : tensors_) {
    if (t.params.numel() == 0) continue;  // nothing to update; the search needs count > 0
    entries.push_back({t.params.ptr<float>(), t.grads.ptr<float>(), t.m.ptr<float>(),
                       t.v.ptr<float>(), t.params_copy.data, t.params.numel(), 0,
                       copy_kind(t.params_copy), t.decay ? 1 : 0});
  }
  chunks_ = multi_tensor::number_chunks(entries, chunk_elements_);
  entries_ = static_cast<int64_t>(entries.size());
  if (entries.empty()) return;
  const size_t bytes = entries.size() * sizeof(multi_tensor::AdamWEntry);
  table_ = Buffer(Device::cuda, bytes);
  copy_bytes(table_.data(), Device::cuda, entries.data(), Device::cpu, bytes);
}

void MultiTensorAdamW::step(const OpContext& ctx, const AdamWArgs& args) const {
  if (ctx.device != device_) {
    fail("op {}: the table was built for {}, the step runs on {}", kOp, device_name(device_),
         device_name(ctx.device));
  }
  if (args.step < 1) fail("op {}: step is {}, expected >= 1 (1-based)", kOp, args.step);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    if (chunks_ == 0) return;
    return cuda::multi_tensor_adamw(ctx,
                                    static_cast<const multi_tensor::AdamWEntry*>(table_.data()),
                                    entries_, chunks_, chunk_elements_, args);
  }
#endif
  // The CPU (and any device without a multi-tensor kernel): one adamw_update per tensor.
  AdamWArgs tensor_args = args;
  for (const AdamWTensor& t : tensors_) {
    tensor_args.weight_decay = t.decay ? args.weight_decay : 0.0;
    adamw_update(ctx, t.params, t.grads, t.m, t.v, tensor_args, t.params_copy);
  }
}

}  // namespace ft::ops
