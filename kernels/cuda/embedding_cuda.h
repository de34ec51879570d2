// Embedding lookups and their gradient on the GPU, for the whole vocabulary (vocab_begin 0,
// the table's rows = vocab_size) and for vocabulary-parallel shards. Tensors are checked by the
// ops.h entry points; table/out/dout are f32 or bf16, dtable f32 or the table's dtype.
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "runtime/tensor.h"

namespace ft::cuda {

// out (N, C) = table (V_local, C)[id - vocab_begin] for ids in the shard, 0 for other ids. An id
// outside [0, vocab_size) is recorded as a device error for `op` (its row is written as 0).
void embedding_forward_shard(const OpContext& ctx, const char* op, Tensor out, Tensor ids,
                             Tensor table, int64_t vocab_begin, int64_t vocab_size);
// dtable (V_local, C) += dout rows whose id is in the shard. Deterministic without sorting: one
// thread per column walks the rows in order (the CPU's order, so f32 matches it bit for bit).
// A negative id, or with vocab_size > 0 one at or beyond vocab_size, is recorded as an error.
void embedding_backward_shard(const OpContext& ctx, const char* op, Tensor dtable, Tensor ids,
                              Tensor dout, int64_t vocab_begin, int64_t vocab_size);

}  // namespace ft::cuda
