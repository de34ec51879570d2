// GPU frozen-weight matmul (kernels/cuda/frozen_linear_cuda.cu) against the CPU reference in f32
// on the same bf16-rounded inputs and the same quantized bytes: every epilogue x weight dtype
// (bf16, i8, f8e4m3) x shape (N 1, 37, 300; In x Out from 64 to 1024, including shapes only the
// simple kernel takes), without and with every optional part; the input gradient, alone and with
// SwiGLU's second pair; the simple kernel for misaligned views and a LoRA rank that is not a
// multiple of 8; quantize_weight_per_channel bit-equal to the CPU. Tolerance: relative L2 1e-2
// (kBf16Tolerance). The GPU tests skip without a GPU; the argument checks run everywhere.
#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/frozen_linear_ops.h"
#include "kernels/ops.h"
#include "runtime/device.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using namespace ft::testing;
using ops::FrozenEpilogue;
using ops::FrozenLinearArgs;

struct FrozenShape {
  int64_t rows, in_features, out_features;
};
std::ostream& operator<<(std::ostream& out, const FrozenShape& s) {
  return out << "n" << s.rows << "_in" << s.in_features << "_out" << s.out_features;
}

std::vector<FrozenShape> shapes() {
  // 72 and 200 are multiples of 8 but not 16 (byte weights take the simple kernel along In); 61
  // and 100 are not multiples of 8 (everything takes it).
  const std::pair<int64_t, int64_t> sizes[] = {
      {64, 64}, {72, 200}, {200, 72}, {1024, 1024}, {61, 100}};
  std::vector<FrozenShape> all;
  for (const int64_t rows : {1, 37, 300})
    for (const auto& [in, out] : sizes) all.push_back({rows, in, out});
  return all;
}

DeviceTensor upload_bytes(const std::vector<uint8_t>& bytes, Shape shape, DType dtype) {
  DeviceTensor result = device_zeros(dtype, shape);
  if (!bytes.empty()) {
    copy_bytes(result.tensor.data, Device::cuda, bytes.data(), Device::cpu, bytes.size());
  }
  return result;
}
std::vector<uint8_t> download_bytes(const Tensor& t) {
  std::vector<uint8_t> bytes(t.bytes());
  if (!bytes.empty()) copy_bytes(bytes.data(), Device::cpu, t.data, Device::cuda, bytes.size());
  return bytes;
}

// A weight on both sides: f32 values (bf16-rounded) for the CPU, or quantized bytes and scales
// (made on the CPU) that both sides read.
struct BothWeight {
  std::vector<float> values;
  std::vector<uint8_t> bytes;
  std::vector<float> scale;
  Tensor cpu, cpu_scale;
  DeviceTensor gpu, gpu_scale;
};
BothWeight make_weight(DType dtype, int64_t rows, int64_t cols, uint64_t seed) {
  BothWeight w;
  w.values = round_to_bf16(random_floats(rows * cols, seed, 0.5));
  if (dtype == DType::bf16) {
    w.cpu = view(w.values, {rows, cols});
    w.gpu = upload(w.values, {rows, cols}, DType::bf16);
    return w;
  }
  w.bytes.resize(rows * cols);
  w.scale.resize(rows);
  w.cpu = Tensor(w.bytes.data(), dtype, {rows, cols});
  w.cpu_scale = view(w.scale, {rows});
  ops::quantize_weight_per_channel(cpu_context(), w.cpu, w.cpu_scale, view(w.values, {rows, cols}));
  w.gpu = upload_bytes(w.bytes, {rows, cols}, dtype);
  w.gpu_scale = upload(w.scale, {rows}, DType::f32);
  return w;
}

// One forward case run on both sides.
struct ForwardRun {
  std::vector<float> out, pre;          // the CPU's
  std::vector<float> gpu_out, gpu_pre;  // the GPU's
};

struct ForwardInputs {
  FrozenShape s;
  FrozenEpilogue epilogue;
  BothWeight weight, up;
  int64_t rank;
  std::vector<float> x, bias, residual, lora_xa, lora_b;

  ForwardInputs(FrozenShape s, FrozenEpilogue epilogue, DType dtype, int64_t rank = 8)
      : s(s),
        epilogue(epilogue),
        weight(make_weight(dtype, s.out_features, s.in_features, 1)),
        up(make_weight(dtype, s.out_features, s.in_features, 2)),
        rank(rank),
        x(round_to_bf16(random_floats(s.rows * s.in_features, 3))),
        bias(round_to_bf16(random_floats(s.out_features, 4))),
        residual(round_to_bf16(random_floats(s.rows * s.out_features, 5))),
        lora_xa(round_to_bf16(random_floats(s.rows * rank, 6))),
        lora_b(round_to_bf16(random_floats(s.out_features * rank, 7))) {}

  int64_t pre_count() const {
    return (epilogue == FrozenEpilogue::swiglu ? 2 : 1) * s.rows * s.out_features;
  }
  Shape pre_shape() const {
    return epilogue == FrozenEpilogue::swiglu ? Shape{2, s.rows, s.out_features}
                                              : Shape{s.rows, s.out_features};
  }

  // full: bias, residual, LoRA (none and gelu) and the saved pre-activation (gelu and swiglu).
  ForwardRun run(bool full, const Tensor& gpu_x_override = Tensor()) {
    const int64_t n = s.rows, in = s.in_features, out = s.out_features;
    const bool swiglu = epilogue == FrozenEpilogue::swiglu;
    const bool with_lora = full && !swiglu, with_pre = full && epilogue != FrozenEpilogue::none;
    ForwardRun result{std::vector<float>(n * out), std::vector<float>(pre_count()), {}, {}};
    FrozenLinearArgs cpu_args;
    cpu_args.epilogue = epilogue;
    cpu_args.weight_scale = weight.cpu_scale;
    if (swiglu) {
      cpu_args.up_weight = up.cpu;
      cpu_args.up_scale = up.cpu_scale;
    }
    if (full && !swiglu) cpu_args.bias = view(bias, {out});
    if (full) cpu_args.residual = view(residual, {n, out});
    if (with_lora) {
      cpu_args.lora_xa = view(lora_xa, {n, rank});
      cpu_args.lora_b = view(lora_b, {out, rank});
      cpu_args.lora_scale = 0.5;
    }
    if (with_pre) cpu_args.pre_activation = view(result.pre, pre_shape());
    ops::frozen_linear_forward(cpu_context(), view(result.out, {n, out}), view(x, {n, in}),
                               weight.cpu, cpu_args);

    DeviceTensor gpu_x = upload(x, {n, in}, DType::bf16),
                 gpu_bias = upload(bias, {out}, DType::bf16),
                 gpu_residual = upload(residual, {n, out}, DType::bf16),
                 gpu_xa = upload(lora_xa, {n, rank}, DType::bf16),
                 gpu_b = upload(lora_b, {out, rank}, DType::bf16),
                 gpu_out = upload(random_floats(n * out, 8), {n, out}, DType::bf16),  // overwritten
        gpu_pre = device_zeros(DType::bf16, pre_shape());
    FrozenLinearArgs gpu_args = cpu_args;
    gpu_args.weight_scale = weight.gpu_scale;
    if (swiglu) {
      gpu_args.up_weight = up.gpu;
      gpu_args.up_scale = up.gpu_scale;
    }
    if (cpu_args.bias.data) gpu_args.bias = gpu_bias;
    if (cpu_args.residual.data) gpu_args.residual = gpu_residual;
    if (with_lora) {
      gpu_args.lora_xa = gpu_xa;
      gpu_args.lora_b = gpu_b;
    }
    if (with_pre) gpu_args.pre_activation = gpu_pre;
    ops::frozen_linear_forward(cuda_context(), gpu_out,
                               gpu_x_override.data ? gpu_x_override : gpu_x.tensor, weight.gpu,
                               gpu_args);
    result.gpu_out = download(gpu_out);
    if (with_pre) result.gpu_pre = download(gpu_pre);
    return result;
  }
};

void expect_close(const ForwardRun& run, const std::string& what) {
  EXPECT_LT(relative_error(run.gpu_out, run.out), kBf16Tolerance) << what << ": out";
  if (!run.gpu_pre.empty()) {
    EXPECT_LT(relative_error(run.gpu_pre, run.pre), kBf16Tolerance) << what << ": pre_activation";
  }
}

class CudaFrozenLinear
    : public ::testing::TestWithParam<std::tuple<FrozenShape, FrozenEpilogue, DType>> {};

TEST_P(CudaFrozenLinear, ForwardMatchesTheCpuWithoutAndWithEveryPart) {
  FT_SKIP_WITHOUT_CUDA();
  const auto [s, epilogue, dtype] = GetParam();
  ForwardInputs inputs(s, epilogue, dtype);
  expect_close(inputs.run(false), "plain");
  expect_close(inputs.run(true), "bias, residual, LoRA, pre-activation");
}

TEST_P(CudaFrozenLinear, InputGradientMatchesTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  const auto [s, epilogue, dtype] = GetParam();
  const int64_t n = s.rows, in = s.in_features, out = s.out_features;
  const BothWeight weight = make_weight(dtype, out, in, 11), up = make_weight(dtype, out, in, 12);
  std::vector<float> dout = round_to_bf16(random_floats(n * out, 13)),
                     up_dout = round_to_bf16(random_floats(n * out, 14));
  const DeviceTensor gpu_dout = upload(dout, {n, out}, DType::bf16),
                     gpu_up_dout = upload(up_dout, {n, out}, DType::bf16);
  // SwiGLU's case takes the second pair; the others the single product.
  const bool pair = epilogue == FrozenEpilogue::swiglu;
  std::vector<float> expected(n * in);
  ops::frozen_linear_backward_input(cpu_context(), view(expected, {n, in}), view(dout, {n, out}),
                                    weight.cpu, weight.cpu_scale,
                                    pair ? view(up_dout, {n, out}) : Tensor(),
                                    pair ? up.cpu : Tensor(), pair ? up.cpu_scale : Tensor());
  DeviceTensor dx = upload(random_floats(n * in, 15), {n, in}, DType::bf16);  // overwritten
  ops::frozen_linear_backward_input(cuda_context(), dx, gpu_dout, weight.gpu, weight.gpu_scale,
                                    pair ? gpu_up_dout.tensor : Tensor(),
                                    pair ? up.gpu.tensor : Tensor(),
                                    pair ? up.gpu_scale.tensor : Tensor());
  EXPECT_LT(relative_error(download(dx), expected), kBf16Tolerance);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CudaFrozenLinear,
    ::testing::Combine(::testing::ValuesIn(shapes()),
                       ::testing::Values(FrozenEpilogue::none, FrozenEpilogue::gelu,
                                         FrozenEpilogue::swiglu),
                       ::testing::Values(DType::bf16, DType::i8, DType::f8e4m3)),
    [](const ::testing::TestParamInfo<std::tuple<FrozenShape, FrozenEpilogue, DType>>& info) {
      const FrozenEpilogue e = std::get<1>(info.param);
      std::ostringstream name;
      name << std::get<0>(info.param) << "_"
           << (e == FrozenEpilogue::none   ? "none"
               : e == FrozenEpilogue::gelu ? "gelu"
                                           : "swiglu")
           << "_" << dtype_name(std::get<2>(info.param));
      return name.str();
    });

// The simple kernel on shapes the tensor-core path would take: a LoRA rank of 5, x at an odd
// element offset; and the residual added in place.
TEST(CudaFrozenLinearPaths, SimpleKernelAndInPlaceResidualMatchTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  const FrozenShape s{37, 128, 256};
  for (const DType dtype : {DType::bf16, DType::i8, DType::f8e4m3}) {
    SCOPED_TRACE(dtype_name(dtype));
    ForwardInputs odd_rank(s, FrozenEpilogue::gelu, dtype, /*rank=*/5);
    expect_close(odd_rank.run(true), "rank 5");

    ForwardInputs shifted(s, FrozenEpilogue::none, dtype);
    std::vector<float> padded(1 + shifted.x.size(), 0.25f);
    std::copy(shifted.x.begin(), shifted.x.end(), padded.begin() + 1);
    const DeviceTensor buffer = upload(padded, {static_cast<int64_t>(padded.size())}, DType::bf16);
    const Tensor x = buffer.tensor.slice(1, padded.size()).reshape({s.rows, s.in_features});
    expect_close(shifted.run(true, x), "x at an odd offset");

    ForwardInputs in_place(s, FrozenEpilogue::gelu, dtype);
    DeviceTensor out = upload(in_place.residual, {s.rows, s.out_features}, DType::bf16);
    const DeviceTensor gpu_x = upload(in_place.x, {s.rows, s.in_features}, DType::bf16);
    FrozenLinearArgs args;
    args.epilogue = FrozenEpilogue::gelu;
    args.weight_scale = in_place.weight.gpu_scale;
    args.residual = out;
    ops::frozen_linear_forward(cuda_context(), out, gpu_x, in_place.weight.gpu, args);
    std::vector<float> expected(s.rows * s.out_features);
    FrozenLinearArgs cpu_args;
    cpu_args.epilogue = FrozenEpilogue::gelu;
    cpu_args.weight_scale = in_place.weight.cpu_scale;
    cpu_args.residual = view(in_place.residual, {s.rows, s.out_features});
    ops::frozen_linear_forward(cpu_context(), view(expected, {s.rows, s.out_features}),
                               view(in_place.x, {s.rows, s.in_features}), in_place.weight.cpu,
                               cpu_args);
    EXPECT_LT(relative_error(download(out), expected), kBf16Tolerance) << "in place";
  }
}

// ---- quantization ------------------------------------------------------------------------------

TEST(CudaQuantizeWeight, BytesAndScalesEqualTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  const std::pair<int64_t, int64_t> sizes[] = {{37, 200}, {5, 1024}, {3, 1}, {300, 72}};
  for (const auto& [rows, cols] : sizes) {
    std::vector<float> w = random_floats(rows * cols, 21);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) w[r * cols + c] *= static_cast<float>(1 + r % 5) * 0.3f;
    if (rows > 1)
      for (int64_t c = 0; c < cols; ++c) w[cols + c] = 0.0f;  // a zero row
    for (const DType source : {DType::f32, DType::bf16}) {
      std::vector<float> values = source == DType::bf16 ? round_to_bf16(w) : w;
      for (const DType dtype : {DType::i8, DType::f8e4m3}) {
        SCOPED_TRACE(::testing::Message() << rows << "x" << cols << " from " << dtype_name(source)
                                          << " to " << dtype_name(dtype));
        std::vector<uint8_t> bytes(rows * cols);
        std::vector<float> scale(rows);
        ops::quantize_weight_per_channel(cpu_context(), Tensor(bytes.data(), dtype, {rows, cols}),
                                         view(scale, {rows}), view(values, {rows, cols}));
        const DeviceTensor gpu_weight = upload(values, {rows, cols}, source);
        DeviceTensor gpu_bytes = device_zeros(dtype, {rows, cols}),
                     gpu_scale = device_zeros(DType::f32, {rows});
        ops::quantize_weight_per_channel(cuda_context(), gpu_bytes, gpu_scale, gpu_weight);
        EXPECT_EQ(download_bytes(gpu_bytes), bytes);
        EXPECT_EQ(download(gpu_scale), scale);
      }
    }
  }
}

// ---- argument checks of the CUDA path (no device call is reached: they run without a GPU) ----

Tensor fake_device(DType dtype, Shape shape) {
  return Tensor(reinterpret_cast<void*>(uintptr_t{4096}), dtype, shape, Device::cuda);
}

TEST(CudaFrozenLinearArguments, OnlyBf16ActivationsRunOnCuda) {
  for (const DType dtype : {DType::f32, DType::f64}) {
    expect_error_naming(
        [&] {
          ops::frozen_linear_forward(cuda_context(), fake_device(dtype, {4, 3}),
                                     fake_device(dtype, {4, 8}), fake_device(dtype, {3, 8}), {});
        },
        {"frozen_linear_forward", "cuda", dtype_name(dtype)});
    expect_error_naming(
        [&] {
          ops::frozen_linear_backward_input(cuda_context(), fake_device(dtype, {4, 8}),
                                            fake_device(dtype, {4, 3}), fake_device(dtype, {3, 8}),
                                            Tensor());
        },
        {"frozen_linear_backward_input", "cuda", dtype_name(dtype)});
  }
  expect_error_naming(
      [&] {
        ops::frozen_linear_forward(
            cuda_context(), fake_device(DType::bf16, {4, 3}), fake_device(DType::bf16, {4, 8}),
            Tensor(reinterpret_cast<void*>(uintptr_t{4096}), DType::i8, {3, 8}, Device::cpu), {});
      },
      {"weight", "cpu", "cuda"});
}

}  // namespace
}  // namespace ft
