// Device selection and raw device memory. The CUDA side lives in kernels/cuda/device.cu; in a
// build without CUDA these report no devices and refuse device allocations.
#pragma once

#include <cstddef>
#include <string>

#include "runtime/tensor.h"

namespace ft {

// Number of CUDA devices usable by this process (0 without CUDA or without a GPU).
int cuda_device_count();
// "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" or a reason why there is none.
std::string cuda_device_description(int index);
// Resolves the config's "auto" | "cpu" | "cuda" to a device; "cuda" without a GPU is an error.
Device select_device(const std::string& requested);

void* device_allocate(size_t bytes);
void device_free(void* pointer);
// Copies between host and device (either direction, or within one).
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
void copy_tensor(const Tensor& dst, const Tensor& src);

}  // namespace ft
