// Shared helpers of the benchmarks: timing (wall clock on the CPU, CUDA events on a GPU), medians,
// seeded random tensors on either device, and what a GPU run reports beside its times (the GPU's
// name and dense bf16 peak, device memory in use). Benchmarks print figures; nothing here passes
// or fails.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/context.h"
#include "runtime/buffer.h"
#include "runtime/tensor.h"

namespace CLI {
class App;
}

namespace ft::bench {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start);

// The middle value (mean of the two middle values for an even count); 0 when empty.
double median(std::vector<double> values);

// 0 when empty.
double mean(const std::vector<double>& values);

// Runs `body` once untimed (first-touch, BLAS buffers), then `reps` times; the median seconds.
double time_median(int reps, const std::function<void()>& body);

// The same on ctx's device: on CUDA each repetition is bracketed by events recorded on
// ctx.stream (so the GPU's time is measured, not the launch), after one untimed call; on the CPU
// it is time_median above.
double time_median(const OpContext& ctx, int reps, const std::function<void()>& body);

// Waits until ctx's queued device work is done (and raises a bad index a kernel recorded); nothing
// to do on the CPU, whose ops return when done.
void synchronize(const OpContext& ctx);

// Tensors that live as long as the pool, filled uniform in [low, high) from one seeded stream:
// `make` in the pool's dtype, `make_as` in another (f32 statistics beside bf16 activations). On
// CUDA the values are drawn on the host, converted there and uploaded.
class TensorPool {
 public:
  TensorPool(DType dtype, uint64_t seed, Device device = Device::cpu)
      : dtype_(dtype), device_(device), rng_(seed) {}
  Tensor make(Shape shape, double low = -1.0, double high = 1.0) {
    return make_as(dtype_, shape, low, high);
  }
  Tensor make_as(DType dtype, Shape shape, double low = -1.0, double high = 1.0);
  // An output: allocated (zeroed), not filled, which saves the host's drawing on large shapes.
  Tensor output(DType dtype, Shape shape);

 private:
  DType dtype_;
  Device device_;
  std::mt19937_64 rng_;
  std::vector<Buffer> buffers_;
};

// ---- GPU facts (CUDA builds; without CUDA the name is empty and memory 0) ----------------------

// cudaDeviceProp::name of the current device, e.g. "NVIDIA H100 80GB HBM3"; "" without a GPU.
std::string cuda_device_name();

// The dense bf16 tensor-core peak that MFU divides by, from the device name: H100 SXM and H200
// 989 TFLOP/s, H100 PCIe 756 (NVIDIA's datasheets). tflops 0 when the name is not one of them.
struct GpuPeak {
  double tflops = 0;
  std::string source;  // which datasheet row, or why none
};
GpuPeak dense_bf16_peak(const std::string& device_name);

// What a GPU run reports beside its times: the device, MFU's denominator, memory before setup.
struct GpuRun {
  std::string name;
  GpuPeak peak;
  size_t memory_before = 0;  // device memory in use (the CUDA context included)
  // "41.2% (407.5 TFLOP/s of model FLOPs / 989, <source>)", or why there is no figure.
  std::string mfu(double model_tflops) const;
};
// Reads the current device's name, its peak (peak_override when positive) and the memory in use.
GpuRun start_gpu_run(double peak_override);

// Bytes of device memory in use on the current device (cudaMemGetInfo: total - free), every
// process and the CUDA context included; 0 without CUDA. The difference of two readings is what
// was allocated in between.
size_t device_memory_used();

// "4.2.0 (driver 580.x)": the CUDA runtime and driver versions; "" without CUDA.
std::string cuda_versions();

// ---- main ------------------------------------------------------------------------------------

// A benchmark's main after its options are declared on `app`: parses the command line (CLI11's
// exit code for --help or a bad option), then returns run(), or 1 after printing
// "<program>: error: <what>" when it throws.
int parse_and_run(CLI::App& app, int argc, char** argv, std::string_view program,
                  const std::function<int()>& run);

}  // namespace ft::bench
