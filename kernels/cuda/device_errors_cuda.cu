// The device error record: one per device, allocated on first use (cudaMalloc, zeroed), read back
// by check_device_errors after the stream has finished.
#include <mutex>
#include <string>

#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/device_errors_cuda.h"
#include "kernels/ops.h"

namespace ft::cuda {
namespace {

constexpr int kMaxDevices = 64;
std::mutex g_records_mutex;
DeviceErrorRecord* g_records[kMaxDevices] = {};

std::string describe_rule(const DeviceErrorRecord& record) {
  switch (record.rule) {
    case IndexRule::in_range:
      return fmt::format("is outside [{}, {})", record.lo, record.hi);
    case IndexRule::in_range_or_ignored:
      return fmt::format("is outside [{}, {}) and is not the ignore index {}", record.lo, record.hi,
                         ops::kIgnoreIndex);
    case IndexRule::non_negative:
      return "is negative";
    case IndexRule::non_negative_or_ignored:
      return fmt::format("is negative and is not the ignore index {}", ops::kIgnoreIndex);
    case IndexRule::column_index:
      return fmt::format(
          "is not a column index (a whole number in [0, {})): parts must be "
          "cross_entropy_shard_stats outputs",
          record.hi);
  }
  return "is invalid";
}

}  // namespace

DeviceErrorRecord* device_error_record(std::string_view op) {
  int device = 0;
  FT_CUDA_OP_CHECK(op, cudaGetDevice(&device));
  if (device < 0 || device >= kMaxDevices) fail("op {}: CUDA device {} out of range", op, device);
  std::lock_guard<std::mutex> lock(g_records_mutex);
  if (!g_records[device]) {
    void* memory = nullptr;
    FT_CUDA_OP_CHECK(op, cudaMalloc(&memory, sizeof(DeviceErrorRecord)));
    FT_CUDA_OP_CHECK(op, cudaMemset(memory, 0, sizeof(DeviceErrorRecord)));
    g_records[device] = static_cast<DeviceErrorRecord*>(memory);
  }
  return g_records[device];
}

void check_device_errors(const OpContext& ctx) {
  constexpr const char* op = "check_device_errors";
  DeviceErrorRecord* record = device_error_record(op);
  DeviceErrorRecord host{};
  FT_CUDA_OP_CHECK(
      op, cudaMemcpyAsync(&host, record, sizeof host, cudaMemcpyDeviceToHost, stream_of(ctx)));
  FT_CUDA_OP_CHECK(op, cudaStreamSynchronize(stream_of(ctx)));
  if (host.flag == 0) return;
  FT_CUDA_OP_CHECK(op, cudaMemset(record, 0, sizeof(DeviceErrorRecord)));
  // Index arguments are integers; a column index entry of the stats is a float and prints as one.
  const std::string value = host.rule == IndexRule::column_index
                                ? fmt::format("{}", host.value)
                                : fmt::format("{}", static_cast<int64_t>(host.value));
  fail("op {}: {}[{}] = {} {} (found on the GPU)", host.op, host.arg, host.index, value,
       describe_rule(host));
}

}  // namespace ft::cuda
