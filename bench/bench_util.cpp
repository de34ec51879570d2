#include "bench_util.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <exception>
#include <iostream>
#include <numeric>

#include "kernels/ops.h"
#include "runtime/device.h"
#include "runtime/error.h"

#ifdef FT_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace ft::bench {

#ifdef FT_WITH_CUDA
namespace {

void cuda_check(cudaError_t status, const char* call) {
  if (status != cudaSuccess) fail("bench: {} failed: {}", call, cudaGetErrorString(status));
}

}  // namespace
#endif

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

double mean(const std::vector<double>& values) {
  if (values.empty()) return 0.0;
  return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

double time_median(int reps, const std::function<void()>& body) {
  body();
  std::vector<double> samples;
  for (int i = 0; i < reps; ++i) {
    const auto start = Clock::now();
    body();
    samples.push_back(seconds_since(start));
  }
  return median(samples);
}

void synchronize(const OpContext& ctx) {
  if (ctx.device != Device::cpu) ops::check_device_errors(ctx);
}

double time_median(const OpContext& ctx, int reps, const std::function<void()>& body) {
  if (ctx.device == Device::cpu) return time_median(reps, body);
#ifdef FT_WITH_CUDA
  auto stream = static_cast<cudaStream_t>(ctx.stream);
  body();
  synchronize(ctx);
  std::vector<cudaEvent_t> events(2 * static_cast<size_t>(std::max(reps, 0)));
  for (cudaEvent_t& event : events) cuda_check(cudaEventCreate(&event), "cudaEventCreate");
  for (int i = 0; i < reps; ++i) {
    cuda_check(cudaEventRecord(events[2 * i], stream), "cudaEventRecord");
    body();
    cuda_check(cudaEventRecord(events[2 * i + 1], stream), "cudaEventRecord");
  }
  synchronize(ctx);
  std::vector<double> samples;
  for (int i = 0; i < reps; ++i) {
    float ms = 0;
    cuda_check(cudaEventElapsedTime(&ms, events[2 * i], events[2 * i + 1]), "cudaEventElapsedTime");
    samples.push_back(ms * 1e-3);
  }
  for (cudaEvent_t event : events) cudaEventDestroy(event);
  return median(samples);
#else
  fail("bench: timing on {} needs a CUDA build", device_name(ctx.device));
#endif
}

Tensor TensorPool::make_as(DType dtype, Shape shape, double low, double high) {
  const size_t count = static_cast<size_t>(shape.numel());
  buffers_.emplace_back(device_, count * dtype_size(dtype));
  Tensor t = buffers_.back().view(dtype, shape);
  std::uniform_real_distribution<double> uniform(low, high);
  if (device_ == Device::cpu && dtype == DType::f32) {
    for (size_t i = 0; i < count; ++i) t.ptr<float>()[i] = static_cast<float>(uniform(rng_));
    return t;
  }
  if (device_ == Device::cpu && dtype == DType::f64) {
    for (size_t i = 0; i < count; ++i) t.ptr<double>()[i] = uniform(rng_);
    return t;
  }
  // Other dtypes, or another device: draw in f64, convert on the host, then upload.
  std::vector<double> values(count);
  for (double& value : values) value = uniform(rng_);
  const Tensor drawn(values.data(), DType::f64, shape);
  Buffer staged(Device::cpu, count * dtype_size(dtype));
  const Tensor converted = staged.view(dtype, shape);
  ops::cast(OpContext{}, converted, drawn);
  copy_tensor(t, converted);
  return t;
}

Tensor TensorPool::output(DType dtype, Shape shape) {
  buffers_.emplace_back(device_, static_cast<size_t>(shape.numel()) * dtype_size(dtype));
  return buffers_.back().view(dtype, shape);
}

std::string cuda_device_name() {
#ifdef FT_WITH_CUDA
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();
    return "";
  }
  int device = 0;
  cuda_check(cudaGetDevice(&device), "cudaGetDevice");
  cudaDeviceProp props{};
  cuda_check(cudaGetDeviceProperties(&props, device), "cudaGetDeviceProperties");
  return props.name;
#else
  return "";
#endif
}

GpuPeak dense_bf16_peak(const std::string& name) {
  const auto has = [&](const char* part) { return name.find(part) != std::string::npos; };
  if (has("H200")) return {989.0, "H200 dense bf16 (datasheet, as H100 SXM)"};
  if (has("H100") && has("PCIe")) return {756.0, "H100 PCIe dense bf16 (datasheet)"};
  if (has("H100") && !has("NVL")) return {989.0, "H100 SXM dense bf16 (datasheet)"};
  return {0.0, name.empty() ? "no GPU" : fmt::format("no peak known for '{}'", name)};
}

std::string GpuRun::mfu(double model_tflops) const {
  if (peak.tflops <= 0)
    return fmt::format("not computed: {} ({:.1f} TFLOP/s of model FLOPs; give --peak-tflops)",
                       peak.source, model_tflops);
  return fmt::format("{:.1f}% ({:.1f} TFLOP/s of model FLOPs / {:.0f}, {})",
                     model_tflops / peak.tflops * 100.0, model_tflops, peak.tflops, peak.source);
}

GpuRun start_gpu_run(double peak_override) {
  GpuRun run;
  run.name = cuda_device_name();
  run.peak =
      peak_override > 0 ? GpuPeak{peak_override, "--peak-tflops"} : dense_bf16_peak(run.name);
  run.memory_before = device_memory_used();
  return run;
}

size_t device_memory_used() {
#ifdef FT_WITH_CUDA
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return total_bytes - free_bytes;
#else
  return 0;
#endif
}

std::string cuda_versions() {
#ifdef FT_WITH_CUDA
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  return fmt::format("CUDA runtime {}.{}, driver API {}.{}", runtime / 1000, runtime % 1000 / 10,
                     driver / 1000, driver % 1000 / 10);
#else
  return "";
#endif
}

int parse_and_run(CLI::App& app, int argc, char** argv, std::string_view program,
                  const std::function<int()>& run) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }
  try {
    return run();
  } catch (const std::exception& error) {
    std::cerr << program << ": error: " << error.what() << std::endl;
    return 1;
  }
}

}  // namespace ft::bench
