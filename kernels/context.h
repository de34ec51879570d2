// What every op receives besides its tensors: where to run, how many threads, scratch memory,
// and counters the tests and the start-up report read.
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/tensor.h"

namespace ft {

// Scratch memory an op may use for the duration of one call (planned at start-up).
struct Workspace {
  void* data = nullptr;
  size_t bytes = 0;
};

// Work counters: a frozen weight must cost no weight-gradient product, and tests assert it.
struct OpCounters {
  int64_t weight_grad_products = 0;  // GEMMs computing dW (linear_backward with dweight)
  int64_t input_grad_products = 0;   // GEMMs computing dX
  int64_t forward_products = 0;      // forward GEMMs
};

// On the CUDA backend, create the context with cuda::CudaOpResources
// (kernels/cuda/op_resources_cuda.h), which owns the stream and the cuBLASLt handle and fills
// device, stream and blas. There, workspace is device memory.
struct OpContext {
  Device device = Device::cpu;
  int num_threads = 1;
  Workspace workspace;
  OpCounters* counters = nullptr;  // optional
  void* stream = nullptr;          // cudaStream_t on the CUDA backend (null: the default stream)
  void* blas = nullptr;            // CUDA: a cuda::BlasResources* (cuBLASLt handle and its
                                   // workspace), required by linear_forward / linear_backward
};

}  // namespace ft
