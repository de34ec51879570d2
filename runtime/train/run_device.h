// Where a run computes: the device and precision the config asks for (device, dtype), the op
// context on it, and the transfers between the host, where checkpoints, Hugging Face weights and
// PEFT adapters are read and written, and the device the step runs on.
//
// On CUDA (dtype auto): bf16 weights and activations with fp32 accumulation and statistics; fp32
// master weights, gradients and AdamW moments for the trainable parameters only; frozen (PEFT
// base) weights in bf16 only (ParameterStore's mixed precision).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kernels/context.h"
#include "models/transformer.h"
#include "runtime/buffer.h"
#include "runtime/parameters.h"

namespace ft {

namespace cuda {
class CudaOpResources;
}

struct RunPrecision {
  DType master = DType::f32;     // trainable values, gradients, moments; what checkpoints hold
  DType compute = DType::f32;    // weights and activations the model computes with
  std::string describe() const;  // "fp32", "bf16 with fp32 master weights"
};

// The config's dtype (auto | fp32 | fp64) on `device`: auto is fp32 on the CPU and bf16 with
// fp32 masters on CUDA; fp64 is CPU-only. Errors name the field.
RunPrecision resolve_precision(const std::string& dtype, Device device);

// The op context of a run: on CUDA it owns the stream and the cuBLASLt handle (and fails, naming
// the CUDA call, when there is no GPU); on the CPU a plain context.
class RunDevice {
 public:
  explicit RunDevice(Device device);
  ~RunDevice();
  RunDevice(const RunDevice&) = delete;
  RunDevice& operator=(const RunDevice&) = delete;
  // device, stream and cuBLASLt handle set; threads, workspace and counters are the caller's.
  OpContext context() const;

 private:
  Device device_;
  std::shared_ptr<cuda::CudaOpResources> cuda_;  // shared_ptr: incomplete in CPU builds
};

// Copies `src`'s parameters into `dst`'s (same names and shapes, any devices and dtypes; dtype
// conversions happen on the host): the trainable values when `trainable`, their AdamW moments
// when `moments` (both stores must hold them), the frozen values when `frozen`. Then rewrites
// dst's bf16 working copies from the masters (dst_ctx: a context on dst's device). Not for the
// training step: it allocates host staging.
struct ParameterCopy {
  bool trainable = true;
  bool moments = false;
  bool frozen = true;
};
void copy_parameters(const ParameterStore& dst, const ParameterStore& src,
                     const ParameterCopy& what, const OpContext& dst_ctx, int num_threads = 1);

// The model inputs of one micro-batch on the device, in buffers allocated once (batch rows of
// seq_len model rows): upload() copies the host batch's ids, positions, targets and segment ids
// into them. On the CPU it returns the host views unchanged.
class DeviceInputs {
 public:
  DeviceInputs(Device device, int64_t batch, int64_t seq_len);
  ModelInputs upload(const ModelInputs& host);
  size_t bytes() const { return buffer_.bytes(); }

 private:
  Device device_;
  int64_t batch_ = 0, seq_len_ = 0;
  Buffer buffer_;
};

}  // namespace ft
