#include "kernels/cuda/adamw_cuda.cuh"
#include "kernels/cuda/common_cuda.cuh"
#include "kernels/cuda/multi_tensor_adamw_cuda.h"

namespace ft::cuda {
namespace {

// Blocks take chunks in turn (grid-stride over the chunks); a block's threads stride over its
// chunk's elements. Every element is adamw_cuda.cuh's update, as in the per-tensor kernel.
// no_decay: the decay factor of a tensor without weight decay, as the per-tensor op computes it
// for weight_decay = 0.
__global__ void multi_tensor_adamw_kernel(const multi_tensor::AdamWEntry* entries,
                                          int64_t entry_count, int64_t chunk_count,
                                          int64_t chunk_elements, AdamWScalars scalars,
                                          float no_decay) {
  for (int64_t chunk = blockIdx.x; chunk < chunk_count; chunk += gridDim.x) {
    const multi_tensor::AdamWEntry entry =
        entries[multi_tensor::entry_of_chunk(entries, entry_count, chunk)];
    const multi_tensor::ChunkRange range = multi_tensor::chunk_range(entry, chunk, chunk_elements);
    const float decay = entry.decay ? scalars.decay : no_decay;
    for (int64_t i = range.begin + threadIdx.x; i < range.end; i += blockDim.x) {
      const float p = adamw_element(entry.params, entry.grads, entry.m, entry.v, i, scalars, decay);
      if (entry.copy_kind == multi_tensor::CopyKind::bf16) {
        static_cast<bfloat*>(entry.copy)[i] = from_float<bfloat>(p);
      } else if (entry.copy_kind == multi_tensor::CopyKind::f32) {
        static_cast<float*>(entry.copy)[i] = p;
      }
    }
  }
}

}  // namespace

void multi_tensor_adamw(const OpContext& ctx, const multi_tensor::AdamWEntry* entries,
                        int64_t entry_count, int64_t chunk_count, int64_t chunk_elements,
                        const ops::AdamWArgs& args) {
  if (chunk_count == 0) return;
  ops::AdamWArgs without_decay = args;
  without_decay.weight_decay = 0.0;
  const unsigned blocks = static_cast<unsigned>(chunk_count < 65536 ? chunk_count : 65536);
  launch_kernel("multi_tensor_adamw", ctx, multi_tensor_adamw_kernel, blocks, kThreads, 0, entries,
                entry_count, chunk_count, chunk_elements, adamw_scalars(args),
                adamw_scalars(without_decay).decay);
}

}  // namespace ft::cuda
