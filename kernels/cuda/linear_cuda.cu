#include <cublasLt.h>

#include <cstdint>
#include <string_view>

#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/linear_cuda.h"
#include "kernels/cuda/op_resources_cuda.h"

// Row-major products as cuBLASLt's column-major ones: a row-major (R, C) matrix is a column-major
// (C, R) one, so out (N, Out) = x W^T is out^T (Out, N) = W^T x^T with W read transposed.
namespace ft::cuda {
namespace {

void check_blas(std::string_view op, cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    fail("op {}: cuBLASLt error {} ({}) in {}", op, cublasLtGetStatusName(status),
         cublasLtGetStatusString(status), call);
  }
}
#define FT_BLAS_CHECK(op, call) check_blas(op, (call), #call)

cudaDataType_t blas_type(DType dtype) {
  return dtype == DType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
}

// The largest power of two (at most 256) dividing the address: the alignment cuBLASLt's
// heuristic must assume for the operand.
uint32_t alignment_of(const void* pointer) {
  const auto address = reinterpret_cast<uintptr_t>(pointer);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

// Owners of the cuBLASLt descriptors of one product.
struct MatmulDesc {
  cublasLtMatmulDesc_t desc = nullptr;
  ~MatmulDesc() {
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};
struct Layout {
  cublasLtMatrixLayout_t layout = nullptr;
  ~Layout() {
    if (layout) cublasLtMatrixLayoutDestroy(layout);
  }
};
struct Preference {
  cublasLtMatmulPreference_t preference = nullptr;
  ~Preference() {
    if (preference) cublasLtMatmulPreferenceDestroy(preference);
  }
};

// A column-major operand: `rows` x `cols` stored with leading dimension ld (>= rows).
struct Operand {
  const void* data;
  DType dtype;
  int64_t rows, cols, ld;
};

void make_layout(std::string_view op, Layout& layout, const Operand& operand) {
  FT_BLAS_CHECK(op, cublasLtMatrixLayoutCreate(&layout.layout, blas_type(operand.dtype),
                                               static_cast<uint64_t>(operand.rows),
                                               static_cast<uint64_t>(operand.cols), operand.ld));
}

// cuBLASLt runs f32 and bf16 products here (f64 would need another compute type).
void check_dtype_supported(std::string_view op, DType dtype) {
  if (dtype != DType::f32 && dtype != DType::bf16) ops::unsupported(op, Device::cuda, dtype);
}

const BlasResources& blas_of(std::string_view op, const OpContext& ctx) {
  if (ctx.blas == nullptr) {
    fail(
        "op {}: ctx.blas is null; a CUDA OpContext needs the cuBLASLt handle of a "
        "cuda::CudaOpResources (kernels/cuda/op_resources_cuda.h)",
        op);
  }
  return *static_cast<const BlasResources*>(ctx.blas);
}

// c (m, n) = op(a) op(b) + beta c, column-major, fp32 accumulation and scaling. op(a) is (m, k),
// op(b) is (k, n); a and b are given as stored (transposed ones with rows and cols swapped).
void matmul(std::string_view op, const OpContext& ctx, bool transpose_a, bool transpose_b,
            const Operand& a, const Operand& b, float beta, void* c, DType c_dtype, int64_t m,
            int64_t n, int64_t ldc) {
  const BlasResources& blas = blas_of(op, ctx);
  const auto handle = static_cast<cublasLtHandle_t>(blas.handle);
  MatmulDesc desc;
  FT_BLAS_CHECK(op, cublasLtMatmulDescCreate(&desc.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_a = transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  FT_BLAS_CHECK(op, cublasLtMatmulDescSetAttribute(desc.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a,
                                                   sizeof op_a));
  FT_BLAS_CHECK(op, cublasLtMatmulDescSetAttribute(desc.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b,
                                                   sizeof op_b));
  Layout layout_a, layout_b, layout_c;
  make_layout(op, layout_a, a);
  make_layout(op, layout_b, b);
  make_layout(op, layout_c, Operand{c, c_dtype, m, n, ldc});

  Preference preference;
  FT_BLAS_CHECK(op, cublasLtMatmulPreferenceCreate(&preference.preference));
  const uint64_t workspace_bytes = blas.workspace_bytes;
  FT_BLAS_CHECK(op, cublasLtMatmulPreferenceSetAttribute(preference.preference,
                                                         CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                         &workspace_bytes, sizeof workspace_bytes));
  const uint32_t alignments[4] = {alignment_of(a.data), alignment_of(b.data), alignment_of(c),
                                  alignment_of(c)};
  const cublasLtMatmulPreferenceAttributes_t alignment_attributes[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; ++i) {
    FT_BLAS_CHECK(
        op, cublasLtMatmulPreferenceSetAttribute(preference.preference, alignment_attributes[i],
                                                 &alignments[i], sizeof alignments[i]));
  }
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  FT_BLAS_CHECK(op, cublasLtMatmulAlgoGetHeuristic(
                        handle, desc.desc, layout_a.layout, layout_b.layout, layout_c.layout,
                        layout_c.layout, preference.preference, 1, &heuristic, &found));
  if (found == 0) {
    fail("op {}: cuBLASLt has no algorithm for the product ({} x {} x {}, {} x {} -> {})", op, m, n,
         transpose_a ? a.rows : a.cols, dtype_name(a.dtype), dtype_name(b.dtype),
         dtype_name(c_dtype));
  }
  const float alpha = 1.0f;
  FT_BLAS_CHECK(
      op, cublasLtMatmul(handle, desc.desc, &alpha, a.data, layout_a.layout, b.data,
                         layout_b.layout, &beta, c, layout_c.layout, c, layout_c.layout,
                         &heuristic.algo, blas.workspace, blas.workspace_bytes, stream_of(ctx)));
}

// out (rows, cols) = bias broadcast over the rows, or 0 without a bias.
template <typename T>
struct FillRows {
  T* out;
  const T* bias;  // null: zeros
  int64_t cols;
  __device__ void operator()(int64_t i) const {
    out[i] = bias ? bias[i % cols] : from_float<T>(0.0f);
  }
};

// dbias (cols) += column sums of dout (rows, cols), the rows taken in 8 lanes.
constexpr int kBiasRowLanes = 8;

}  // namespace

void linear_forward(const OpContext& ctx, Tensor out, Tensor x, Tensor weight, Tensor bias) {
  constexpr std::string_view op = "linear_forward";
  check_dtype_supported(op, x.dtype);
  const int64_t rows = x.dim(0), in_features = x.dim(1), out_features = weight.dim(0);
  if (rows == 0 || out_features == 0) return;
  FT_DISPATCH_CUDA_FLOAT(op, x.dtype, {
    if (!bias.empty() || in_features == 0) {
      launch_elementwise(
          op, ctx, rows * out_features,
          FillRows<scalar_t>{data<scalar_t>(out), data_or_null<scalar_t>(bias), out_features});
    }
  });
  if (in_features == 0) return;
  // out^T (Out, N) = W^T (stored (In, Out)) x^T (stored (In, N)) [+ out^T holding the bias].
  matmul(op, ctx, /*transpose_a=*/true, /*transpose_b=*/false,
         Operand{weight.data, x.dtype, in_features, out_features, in_features},
         Operand{x.data, x.dtype, in_features, rows, in_features}, bias.empty() ? 0.0f : 1.0f,
         out.data, x.dtype, out_features, rows, out_features);
}

void linear_backward(const OpContext& ctx, Tensor dx, Tensor dweight, Tensor dbias, Tensor dout,
                     Tensor x, Tensor weight) {
  constexpr std::string_view op = "linear_backward";
  check_dtype_supported(op, x.dtype);
  const int64_t rows = x.dim(0), in_features = x.dim(1), out_features = weight.dim(0);
  if (!dx.empty() && rows > 0 && in_features > 0) {
    if (out_features == 0) {
      FT_CUDA_OP_CHECK(op, cudaMemsetAsync(dx.data, 0, dx.bytes(), stream_of(ctx)));
    } else {
      // dx^T (In, N) = W (stored (In, Out)) dout^T (stored (Out, N)).
      matmul(op, ctx, false, false,
             Operand{weight.data, x.dtype, in_features, out_features, in_features},
             Operand{dout.data, x.dtype, out_features, rows, out_features}, 0.0f, dx.data, x.dtype,
             in_features, rows, in_features);
    }
  }
  if (!dweight.empty() && rows > 0 && in_features > 0 && out_features > 0) {
    // dW^T (In, Out) += x^T (stored (In, N)) dout (stored (Out, N), read transposed).
    matmul(op, ctx, false, true, Operand{x.data, x.dtype, in_features, rows, in_features},
           Operand{dout.data, x.dtype, out_features, rows, out_features}, 1.0f, dweight.data,
           dweight.dtype, in_features, out_features, in_features);
  }
  if (!dbias.empty() && rows > 0 && out_features > 0) {
    FT_DISPATCH_CUDA_FLOAT(op, x.dtype, {
      const OutputGradientTerm<scalar_t> term{data<scalar_t>(dout), out_features};
      FT_DISPATCH_CUDA_GRAD(
          op, dbias.dtype,
          launch_column_sum<kBiasRowLanes>(op, ctx, data<grad_t>(dbias), rows, out_features, term));
    });
  }
}

}  // namespace ft::cuda
