#include <cublasLt.h>
#include <cuda_runtime.h>

#include "kernels/cuda/op_resources_cuda.h"
#include "runtime/error.h"

namespace ft::cuda {
namespace {

void check_cuda(cudaError_t status, const char* call) {
  if (status != cudaSuccess) {
    fail("CudaOpResources: CUDA error {} ({}) in {}", cudaGetErrorName(status),
         cudaGetErrorString(status), call);
  }
}

}  // namespace

CudaOpResources::CudaOpResources() {
  cudaStream_t stream = nullptr;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamDefault), "cudaStreamCreateWithFlags");
  stream_ = stream;
  cublasLtHandle_t handle = nullptr;
  const cublasStatus_t status = cublasLtCreate(&handle);
  if (status != CUBLAS_STATUS_SUCCESS) {
    cudaStreamDestroy(stream);
    fail("CudaOpResources: cublasLtCreate failed: {} ({})", cublasLtGetStatusName(status),
         cublasLtGetStatusString(status));
  }
  blas_.handle = handle;
  const cudaError_t allocated = cudaMalloc(&blas_.workspace, kBlasWorkspaceBytes);
  if (allocated != cudaSuccess) {
    cublasLtDestroy(handle);
    cudaStreamDestroy(stream);
    check_cuda(allocated, "cudaMalloc (cuBLASLt workspace)");
  }
  blas_.workspace_bytes = kBlasWorkspaceBytes;
}

CudaOpResources::~CudaOpResources() {
  // Work still queued may use the workspace: wait before freeing (errors are the ops' to report).
  cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
  cudaFree(blas_.workspace);
  cublasLtDestroy(static_cast<cublasLtHandle_t>(blas_.handle));
  cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

OpContext CudaOpResources::context() const {
  OpContext ctx;
  ctx.device = Device::cuda;
  ctx.stream = stream_;
  ctx.blas = const_cast<BlasResources*>(&blas_);
  return ctx;
}

void CudaOpResources::synchronize() const {
  check_cuda(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)), "cudaStreamSynchronize");
}

}  // namespace ft::cuda
