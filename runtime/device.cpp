#include "runtime/device.h"

#include <cstring>

namespace ft {

Device select_device(const std::string& requested) {
  if (requested == "cpu") return Device::cpu;
  if (requested == "auto") return cuda_device_count() > 0 ? Device::cuda : Device::cpu;
  if (requested == "cuda") {
    if (cuda_device_count() == 0)
      fail("device: cuda was requested but {}; use device: cpu or auto",
           cuda_device_description(0));
    return Device::cuda;
  }
  fail("device: expected auto, cpu or cuda, got '{}'", requested);
}

void copy_tensor(const Tensor& dst, const Tensor& src) {
  FT_CHECK(dst.dtype == src.dtype && dst.numel() == src.numel(), "copy_tensor: {} <- {}",
           dst.describe(), src.describe());
  copy_bytes(dst.data, dst.device, src.data, src.device, src.bytes());
}

#ifndef FT_WITH_CUDA
int cuda_device_count() {
  return 0;
}
std::string cuda_device_description(int) {
  return "this build of ft has no CUDA support";
}
void* device_allocate(size_t) {
  fail("device memory requested in a build without CUDA");
}
void device_free(void*) {}
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  FT_CHECK(dst_device == Device::cpu && src_device == Device::cpu,
           "device copy requested in a build without CUDA");
  std::memmove(dst, src, bytes);
}
#endif

}  // namespace ft
