// Token embedding lookup and its gradient scatter.
#pragma once

#include <cstdint>

namespace ft::cpu {

// out (rows, cols) = table (vocab, cols)[ids (rows)]. Throws ft::Error naming the first id
// outside [0, vocab) before writing anything.
template <typename scalar_t>
void embedding_forward(scalar_t* out, const int32_t* ids, const scalar_t* table, int64_t rows,
                       int64_t vocab, int64_t cols, int threads);

// dtable (vocab, cols) += dout (rows, cols) scattered by ids; repeated ids add up.
template <typename scalar_t>
void embedding_backward(scalar_t* dtable, const int32_t* ids, const scalar_t* dout, int64_t rows,
                        int64_t vocab, int64_t cols, int threads);

}  // namespace ft::cpu
