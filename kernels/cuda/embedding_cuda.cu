#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/embedding_cuda.h"

namespace ft::cuda {
namespace {

template <typename T>
struct EmbeddingForward {
  T* out;
  const int32_t* ids;
  const T* table;
  int64_t cols, vocab_begin, local_vocab, vocab_size;
  DeviceErrorRecord* errors;
  const char* op;

  __device__ void operator()(int64_t i) const {
    const int64_t row = i / cols, col = i - row * cols;
    const int64_t id = ids[row];
    if (id < 0 || id >= vocab_size) {
      if (col == 0)
        report_index_error(errors, IndexRule::in_range, op, "ids", row, id, 0, vocab_size);
      out[i] = from_float<T>(0.0f);
    } else if (id >= vocab_begin && id < vocab_begin + local_vocab) {
      out[i] = table[(id - vocab_begin) * cols + col];
    } else {
      out[i] = from_float<T>(0.0f);  // another shard's row
    }
  }
};

// One thread per column; rows in order, so repeated ids never race and sum in the CPU's order.
template <typename T, typename G>
__global__ void embedding_backward_kernel(G* dtable, const int32_t* ids, const T* dout,
                                          int64_t rows, int64_t cols, int64_t vocab_begin,
                                          int64_t local_vocab, int64_t vocab_size,
                                          DeviceErrorRecord* errors, const char* op) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= cols) return;
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t id = ids[row];
    if (id < 0 || (vocab_size > 0 && id >= vocab_size)) {
      if (col == 0) {
        if (vocab_size > 0) {
          report_index_error(errors, IndexRule::in_range, op, "ids", row, id, 0, vocab_size);
        } else {
          report_index_error(errors, IndexRule::non_negative, op, "ids", row, id, 0, 0);
        }
      }
      continue;
    }
    if (id < vocab_begin || id >= vocab_begin + local_vocab) continue;
    G* target = dtable + (id - vocab_begin) * cols + col;
    *target = from_float<G>(to_float(*target) + to_float(dout[row * cols + col]));
  }
}

}  // namespace

void embedding_forward_shard(const OpContext& ctx, const char* op, Tensor out, Tensor ids,
                             Tensor table, int64_t vocab_begin, int64_t vocab_size) {
  const int64_t rows = ids.dim(0), local_vocab = table.dim(0), cols = table.dim(1);
  DeviceErrorRecord* errors = device_error_record(op);
  FT_DISPATCH_CUDA_FLOAT(
      op, table.dtype,
      launch_elementwise(
          op, ctx, rows * cols,
          EmbeddingForward<scalar_t>{data<scalar_t>(out), data<int32_t>(ids), data<scalar_t>(table),
                                     cols, vocab_begin, local_vocab, vocab_size, errors, op}));
}

void embedding_backward_shard(const OpContext& ctx, const char* op, Tensor dtable, Tensor ids,
                              Tensor dout, int64_t vocab_begin, int64_t vocab_size) {
  const int64_t rows = ids.dim(0), local_vocab = dtable.dim(0), cols = dtable.dim(1);
  if (rows == 0 || cols == 0) return;
  DeviceErrorRecord* errors = device_error_record(op);
  const unsigned blocks = static_cast<unsigned>((cols + kThreads - 1) / kThreads);
  FT_DISPATCH_CUDA_FLOAT(
      op, dout.dtype,
      FT_DISPATCH_CUDA_GRAD(
          op, dtable.dtype,
          launch_kernel(op, ctx, embedding_backward_kernel<scalar_t, grad_t>, blocks, kThreads, 0,
                        data<grad_t>(dtable), data<int32_t>(ids), data<scalar_t>(dout), rows, cols,
                        vocab_begin, local_vocab, vocab_size, errors, op)));
}

}  // namespace ft::cuda
