// quantize_weight_per_channel on the GPU (kernels/frozen_linear_ops.h): one block per row, the
// rounding of kernels/weight_quantization.h, so the bytes equal the CPU's.
#include <cstdint>
#include <string_view>

#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/frozen_linear_cuda.h"
#include "kernels/weight_quantization.h"

namespace ft::cuda {
namespace {

enum class Format { int8, e4m3 };

// One block (kThreads) per row: the row's absmax (a max: exact in any order), then every element
// by kernels/weight_quantization.h, as the CPU does.
template <typename Source, Format format>
__global__ void quantize_rows_kernel(uint8_t* quantized, float* scales, const Source* weight,
                                     int64_t rows, int64_t cols) {
  __shared__ float partial[32];
  __shared__ float row_scale;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const Source* row = weight + r * cols;
    float absmax = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      absmax = fmaxf(absmax, fabsf(to_float(row[c])));
    }
    absmax = warp_max(absmax);
    __syncthreads();  // the previous row's readers of partial and row_scale are done
    if (lane == 0) partial[warp] = absmax;
    __syncthreads();
    if (warp == 0) {
      float total = warp_max(lane < warps ? partial[lane] : 0.0f);
      if (lane == 0) {
        const float s =
            format == Format::int8 ? quant::int8_scale(total) : quant::e4m3_scale(total);
        row_scale = s;
        scales[r] = s;
      }
    }
    __syncthreads();
    const float s = row_scale;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const float w = to_float(row[c]);
      quantized[r * cols + c] = format == Format::int8
                                    ? static_cast<uint8_t>(quant::quantize_int8(w, s))
                                    : quant::quantize_e4m3(w, s);
    }
  }
}

template <typename Source, Format format>
void launch_quantize(std::string_view op, const OpContext& ctx, Tensor quantized, Tensor scale,
                     Tensor weight) {
  const int64_t rows = weight.dim(0), cols = weight.dim(1);
  launch_kernel(op, ctx, quantize_rows_kernel<Source, format>, row_blocks(rows), kThreads, 0,
                static_cast<uint8_t*>(quantized.data), data<float>(scale), data<Source>(weight),
                rows, cols);
}

}  // namespace

void quantize_weight_per_channel(const OpContext& ctx, Tensor quantized, Tensor scale,
                                 Tensor weight) {
  constexpr std::string_view op = "quantize_weight_per_channel";
  if (weight.dim(0) == 0) return;
  const bool int8 = quantized.dtype == DType::i8;
  if (weight.dtype == DType::f32) {
    return int8 ? launch_quantize<float, Format::int8>(op, ctx, quantized, scale, weight)
                : launch_quantize<float, Format::e4m3>(op, ctx, quantized, scale, weight);
  }
  if (weight.dtype != DType::bf16) ops::unsupported(op, Device::cuda, weight.dtype);
  return int8 ? launch_quantize<bfloat, Format::int8>(op, ctx, quantized, scale, weight)
              : launch_quantize<bfloat, Format::e4m3>(op, ctx, quantized, scale, weight);
}

}  // namespace ft::cuda
