#include "kernels/cpu/frozen_linear_cpu.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/cpu/cpu_common.h"
#include "kernels/weight_quantization.h"

namespace ft::cpu {
namespace {

// Row-major C (m, n) = alpha A op(B) + beta C with A (m, k) and op(B) (k, n): B stored (n, k) when
// transpose_b, else (k, n).
void gemm(bool transpose_b, int64_t m, int64_t n, int64_t k, double alpha, const float* a,
          const float* b, double beta, float* c) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans, m, n, k,
              static_cast<float>(alpha), a, k, b, transpose_b ? k : n, static_cast<float>(beta), c,
              n);
}
void gemm(bool transpose_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
          const double* b, double beta, double* c) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans, m, n, k, alpha,
              a, k, b, transpose_b ? k : n, beta, c, n);
}

// z (rows, out) = x w^T, 0 when in_features is 0 (BLAS may not touch C then).
template <typename scalar_t>
void product(scalar_t* z, const scalar_t* x, const scalar_t* w, int64_t rows, int64_t in,
             int64_t out) {
  if (in == 0) {
    std::fill_n(z, rows * out, scalar_t{0});
    return;
  }
  gemm(true, rows, out, in, 1.0, x, w, 0.0, z);
}

float stored_value(int8_t q) {
  return static_cast<float>(q);
}
float stored_value(f8e4m3 q) {
  return quant::e4m3_to_float(q.bits);
}
float source_value(float w) {
  return w;
}
float source_value(bf16 w) {
  return bf16_to_float(w);
}

// Work per element of the elementwise loops: one exp or tanh.
constexpr int64_t kEpilogueCost = 16;

template <typename scalar_t>
scalar_t gelu(scalar_t v) {
  constexpr auto kSqrt2OverPi = static_cast<scalar_t>(0.7978845608028654);
  constexpr auto kCubic = static_cast<scalar_t>(0.044715);
  return scalar_t{0.5} * v * (scalar_t{1} + std::tanh(kSqrt2OverPi * (v + kCubic * v * v * v)));
}
template <typename scalar_t>
scalar_t silu(scalar_t v) {
  return v / (scalar_t{1} + std::exp(-v));
}

}  // namespace

template <typename scalar_t, typename Stored>
void dequantize_rows(scalar_t* w, const Stored* q, const float* scale, int64_t rows, int64_t cols,
                     int threads) {
  parallel_ranges(rows, threads, cols, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const scalar_t row_scale = static_cast<scalar_t>(scale[r]);
      for (int64_t c = 0; c < cols; ++c) {
        w[r * cols + c] = row_scale * static_cast<scalar_t>(stored_value(q[r * cols + c]));
      }
    }
  });
}

template <typename Stored, typename Source>
void quantize_rows(Stored* q, float* scale, const Source* w, int64_t rows, int64_t cols,
                   int threads) {
  parallel_ranges(rows, threads, cols, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const Source* row = w + r * cols;
      float absmax = 0.0f;  // fmax skips NaN, as the GPU's fmaxf does
      for (int64_t c = 0; c < cols; ++c)
        absmax = std::fmax(absmax, std::fabs(source_value(row[c])));
      if constexpr (std::is_same_v<Stored, int8_t>) {
        scale[r] = quant::int8_scale(absmax);
        for (int64_t c = 0; c < cols; ++c)
          q[r * cols + c] = quant::quantize_int8(source_value(row[c]), scale[r]);
      } else {
        scale[r] = quant::e4m3_scale(absmax);
        for (int64_t c = 0; c < cols; ++c)
          q[r * cols + c] = f8e4m3{quant::quantize_e4m3(source_value(row[c]), scale[r])};
      }
    }
  });
}

template <typename scalar_t>
void frozen_linear_forward(const FrozenForward<scalar_t>& f, int threads) {
  const int64_t rows = f.rows, out_features = f.out_features, count = rows * out_features;
  if (count == 0) return;
  const bool swiglu = f.epilogue == ops::FrozenEpilogue::swiglu;
  // The pre-activations go to scratch first: out may be the residual.
  std::vector<scalar_t> gate(count), up(swiglu ? count : 0);
  product(gate.data(), f.x, f.weight, rows, f.in_features, out_features);
  if (swiglu) product(up.data(), f.x, f.up_weight, rows, f.in_features, out_features);
  if (f.lora_xa && f.lora_scale != 0.0) {
    gemm(true, rows, out_features, f.rank, f.lora_scale, f.lora_xa, f.lora_b, 1.0, gate.data());
  }
  parallel_ranges(rows, threads, out_features * kEpilogueCost, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin * out_features; i < end * out_features; ++i) {
      scalar_t z = gate[i];
      if (f.bias) z += f.bias[i % out_features];
      scalar_t y = z;
      if (f.epilogue == ops::FrozenEpilogue::gelu) {
        if (f.pre_activation) f.pre_activation[i] = z;
        y = gelu(z);
      } else if (swiglu) {
        if (f.pre_activation) {
          f.pre_activation[i] = z;
          f.pre_activation[count + i] = up[i];
        }
        y = silu(z) * up[i];
      }
      f.out[i] = f.residual ? f.residual[i] + y : y;
    }
  });
}

template <typename scalar_t>
void frozen_linear_backward_input(scalar_t* dx, const scalar_t* dout, const scalar_t* weight,
                                  const scalar_t* up_dout, const scalar_t* up_weight, int64_t rows,
                                  int64_t in_features, int64_t out_features) {
  if (rows == 0 || in_features == 0) return;
  if (out_features == 0) {
    std::fill_n(dx, rows * in_features, scalar_t{0});
    return;
  }
  gemm(false, rows, in_features, out_features, 1.0, dout, weight, 0.0, dx);
  if (up_dout) gemm(false, rows, in_features, out_features, 1.0, up_dout, up_weight, 1.0, dx);
}

#define FT_INSTANTIATE(scalar_t)                                                                   \
  template void dequantize_rows<scalar_t, int8_t>(scalar_t*, const int8_t*, const float*, int64_t, \
                                                  int64_t, int);                                   \
  template void dequantize_rows<scalar_t, f8e4m3>(scalar_t*, const f8e4m3*, const float*, int64_t, \
                                                  int64_t, int);                                   \
  template void frozen_linear_forward<scalar_t>(const FrozenForward<scalar_t>&, int);              \
  template void frozen_linear_backward_input<scalar_t>(                                            \
      scalar_t*, const scalar_t*, const scalar_t*, const scalar_t*, const scalar_t*, int64_t,      \
      int64_t, int64_t);
FT_INSTANTIATE(float)
FT_INSTANTIATE(double)
#undef FT_INSTANTIATE

template void quantize_rows<int8_t, float>(int8_t*, float*, const float*, int64_t, int64_t, int);
template void quantize_rows<int8_t, bf16>(int8_t*, float*, const bf16*, int64_t, int64_t, int);
template void quantize_rows<f8e4m3, float>(f8e4m3*, float*, const float*, int64_t, int64_t, int);
template void quantize_rows<f8e4m3, bf16>(f8e4m3*, float*, const bf16*, int64_t, int64_t, int);

}  // namespace ft::cpu
