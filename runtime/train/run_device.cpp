#include "runtime/train/run_device.h"

#include "kernels/ops.h"
#include "runtime/device.h"

#ifdef FT_WITH_CUDA
#include "kernels/cuda/op_resources_cuda.h"
#endif

namespace ft {
namespace {

// dst = src converted to dst's dtype, across devices; conversions run on the host.
void copy_converting(const Tensor& dst, const Tensor& src, const OpContext& host,
                     const std::string& name) {
  FT_CHECK(dst.shape == src.shape, "parameter {}: copying {} into {}", name, src.describe(),
           dst.describe());
  if (dst.numel() == 0) return;
  if (dst.dtype == src.dtype) return copy_tensor(dst, src);
  if (src.device == Device::cpu) {
    Buffer staged(Device::cpu, dst.bytes());
    const Tensor converted = staged.view(dst.dtype, dst.shape);
    ops::cast(host, converted, src);
    return copy_tensor(dst, converted);
  }
  FT_CHECK(dst.device == Device::cpu,
           "parameter {}: converting {} into {} needs one side on the host", name, src.describe(),
           dst.describe());
  Buffer staged(Device::cpu, src.bytes());
  const Tensor fetched = staged.view(src.dtype, src.shape);
  copy_tensor(fetched, src);
  ops::cast(host, dst, fetched);
}

}  // namespace

std::string RunPrecision::describe() const {
  const char* names[] = {"fp32", "fp64", "bf16", "i32"};
  if (master == compute) return names[static_cast<int>(compute)];
  return fmt::format("{} with {} master weights", names[static_cast<int>(compute)],
                     names[static_cast<int>(master)]);
}

RunPrecision resolve_precision(const std::string& dtype, Device device) {
  if (dtype == "fp64") {
    if (device != Device::cpu)
      fail(
          "dtype: fp64 is not available on device {} (the CUDA kernels compute in bf16 or fp32); "
          "use dtype: auto (bf16 with fp32 master weights) or fp32",
          device_name(device));
    return {DType::f64, DType::f64};
  }
  if (dtype == "fp32") return {DType::f32, DType::f32};
  if (dtype == "auto")
    return device == Device::cuda ? RunPrecision{DType::f32, DType::bf16}
                                  : RunPrecision{DType::f32, DType::f32};
  fail("dtype: expected auto, fp32 or fp64, got '{}'", dtype);
}

RunDevice::RunDevice(Device device) : device_(device) {
  if (device != Device::cuda) return;
#ifdef FT_WITH_CUDA
  cuda_ = std::make_shared<cuda::CudaOpResources>();
#else
  fail("device: cuda: this build of ft has no CUDA support");
#endif
}

RunDevice::~RunDevice() = default;

OpContext RunDevice::context() const {
#ifdef FT_WITH_CUDA
  if (cuda_) return cuda_->context();
#endif
  OpContext ctx;
  ctx.device = device_;
  return ctx;
}

void copy_parameters(const ParameterStore& dst, const ParameterStore& src,
                     const ParameterCopy& what, const OpContext& dst_ctx, int num_threads) {
  OpContext host;
  host.num_threads = num_threads;
  for (const Parameter& to : dst.all()) {
    const std::string& name = to.spec.name;
    const Parameter& from = src.at(name);
    FT_CHECK(from.spec.trainable == to.spec.trainable,
             "parameter {} is trainable in one store and frozen in the other", name);
    if (!to.spec.trainable) {
      if (what.frozen) copy_converting(to.value, from.value, host, name);
      continue;
    }
    if (what.trainable) copy_converting(to.value, from.value, host, name);
    if (what.moments) {
      FT_CHECK(!to.adam_m.empty() && !from.adam_m.empty(),
               "parameter {}: copying moments between stores that do not both hold them", name);
      copy_converting(to.adam_m, from.adam_m, host, name);
      copy_converting(to.adam_v, from.adam_v, host, name);
    }
  }
  if (what.trainable) dst.refresh_compute_copy(dst_ctx);
}

DeviceInputs::DeviceInputs(Device device, int64_t batch, int64_t seq_len)
    : device_(device), batch_(batch), seq_len_(seq_len) {
  // ids, positions, targets, segment ids: batch * seq_len i32 each.
  if (device != Device::cpu) buffer_ = Buffer(device, 4 * batch * seq_len * sizeof(int32_t));
}

ModelInputs DeviceInputs::upload(const ModelInputs& host) {
  if (device_ == Device::cpu) return host;
  const int64_t n = batch_ * seq_len_;
  FT_CHECK(host.input_ids.numel() == n && host.positions.numel() == n && host.targets.numel() == n,
           "micro-batch of {} tokens, the device buffers hold {} x {}", host.input_ids.numel(),
           batch_, seq_len_);
  const size_t slot = n * sizeof(int32_t);
  auto put = [&](const Tensor& from, int index, Shape shape) {
    Tensor to = buffer_.view(DType::i32, shape, index * slot);
    copy_tensor(to, from);
    return to;
  };
  ModelInputs device;
  device.input_ids = put(host.input_ids, 0, {n});
  device.positions = put(host.positions, 1, {n});
  device.targets = put(host.targets, 2, {n});
  if (!host.segment_ids.empty()) device.segment_ids = put(host.segment_ids, 3, {batch_, seq_len_});
  device.dropout_seed = host.dropout_seed;
  return device;
}

}  // namespace ft
