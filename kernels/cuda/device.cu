// CUDA device discovery, memory and copies. Every CUDA call is checked and reported with the
// call's text, file and line.
#include <cuda_runtime.h>

#include <string>

#include "runtime/device.h"

#define FT_CUDA_CHECK(call)                                                                   \
  do {                                                                                        \
    cudaError_t status_ = (call);                                                             \
    if (status_ != cudaSuccess)                                                               \
      ::ft::fail("CUDA error {} in {} ({}:{})", cudaGetErrorString(status_), #call, __FILE__, \
                 __LINE__);                                                                   \
  } while (0)

namespace ft {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

std::string cuda_device_description(int index) {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return std::string("no usable CUDA device (") + cudaGetErrorString(status) + ")";
  }
  if (index >= count) return "no CUDA device " + std::to_string(index);
  cudaDeviceProp prop{};
  FT_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return fmt::format("{} (sm_{}{}, {:.1f} GiB)", prop.name, prop.major, prop.minor,
                     prop.totalGlobalMem / double(1 << 30));
}

void* device_allocate(size_t bytes) {
  void* pointer = nullptr;
  FT_CUDA_CHECK(cudaMalloc(&pointer, bytes));
  FT_CUDA_CHECK(cudaMemset(pointer, 0, bytes));
  return pointer;
}

void device_free(void* pointer) {
  cudaFree(pointer);
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (dst_device == Device::cpu && src_device == Device::cpu) {
    std::memmove(dst, src, bytes);
    return;
  }
  FT_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
}

}  // namespace ft
