// What a CUDA OpContext points at: the stream the ops run on and the cuBLASLt handle with its
// workspace. CudaOpResources owns them; whoever creates a CUDA OpContext keeps one alive as long
// as the context is used. Free of CUDA headers so C++ code can include it (CUDA builds only).
#pragma once

#include <cstddef>

#include "kernels/context.h"

namespace ft::cuda {

// What OpContext::blas points at on the CUDA backend.
struct BlasResources {
  void* handle = nullptr;     // cublasLtHandle_t
  void* workspace = nullptr;  // device memory for cuBLASLt's split-K and similar algorithms
  size_t workspace_bytes = 0;
};

class CudaOpResources {
 public:
  // cuBLASLt's workspace: 32 MiB is NVIDIA's recommendation for Hopper (4 MiB suffices before).
  static constexpr size_t kBlasWorkspaceBytes = size_t{32} << 20;

  // Creates, on the current CUDA device, a stream that synchronizes with the legacy default
  // stream (so plain cudaMemcpy, as copy_tensor does, orders after the ops), a cuBLASLt handle
  // and the cuBLASLt workspace. Fails naming the CUDA call when there is no device.
  CudaOpResources();
  ~CudaOpResources();
  CudaOpResources(const CudaOpResources&) = delete;
  CudaOpResources& operator=(const CudaOpResources&) = delete;

  void* stream() const { return stream_; }
  const BlasResources* blas() const { return &blas_; }
  // A context on Device::cuda using this stream and handle (no op workspace, no counters).
  OpContext context() const;
  // Waits for everything queued on the stream; fails naming the CUDA error a kernel raised.
  void synchronize() const;

 private:
  void* stream_ = nullptr;  // cudaStream_t
  BlasResources blas_;
};

}  // namespace ft::cuda
