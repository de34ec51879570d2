// Fused softmax cross-entropy over rows of logits (rows, vocab); targets equal to
// ops::kIgnoreIndex carry no loss and no gradient.
#pragma once

#include <cstdint>

namespace ft::cpu {

// losses (rows) = weight * (lse - logit[target]), lse (rows) = log(sum(exp(logits))) saved for
// the backward. weights may be null (all 1). Ignored rows get loss 0 and lse 0 (their softmax is
// never needed, so it is not computed). A target outside [0, vocab) other than the ignore index
// throws ft::Error naming the row, before anything is written. correct, when not null, is set to
// the number of non-ignored rows whose argmax (ties to the lowest index) equals the target.
template <typename scalar_t>
void cross_entropy_forward(scalar_t* losses, scalar_t* lse, const scalar_t* logits,
                           const int32_t* targets, const scalar_t* weights, int64_t rows,
                           int64_t vocab, int threads, int64_t* correct = nullptr);

// dlogits = dloss * weight * (exp(logits - lse) - onehot(target)), rows of ignored targets zero.
// dlogits may be logits itself (computed in place).
template <typename scalar_t>
void cross_entropy_backward(scalar_t* dlogits, const scalar_t* logits, const scalar_t* lse,
                            const int32_t* targets, const scalar_t* weights, double dloss,
                            int64_t rows, int64_t vocab, int threads);

}  // namespace ft::cpu
