// Vocabulary-parallel embedding and softmax cross-entropy (tensor parallelism): each shard holds
// the vocabulary rows (table) or logit columns [vocab_begin, vocab_begin + local_vocab). The loss
// is computed from per-row shard statistics that the ranks exchange, then combined.
#pragma once

#include <cstdint>

namespace ft::cpu {

// The per-row statistics of one logits shard, in this order (ops.h).
enum ShardStat : int64_t {
  kShardLse = 0,          // log-sum-exp over the shard's columns
  kShardTargetLogit = 1,  // the target's logit if the shard holds it, else 0
  kShardMax = 2,          // the shard's largest logit (NaNs skipped)
  kShardArgmax = 3,       // its global column index, the first on ties
  kShardStatCount = 4,
};

// out (rows, cols) = table (local_vocab, cols)[id - vocab_begin] for ids in the shard, else 0.
// Throws ft::Error naming the first id outside [0, vocab_size) before writing anything.
template <typename scalar_t>
void embedding_forward_shard(scalar_t* out, const int32_t* ids, const scalar_t* table, int64_t rows,
                             int64_t vocab_begin, int64_t local_vocab, int64_t vocab_size,
                             int64_t cols, int threads);

// dtable (local_vocab, cols) += the dout rows whose id is in the shard; repeated ids add up in row
// order. Throws ft::Error naming the first negative id before writing anything.
template <typename scalar_t>
void embedding_backward_shard(scalar_t* dtable, const int32_t* ids, const scalar_t* dout,
                              int64_t rows, int64_t vocab_begin, int64_t local_vocab, int64_t cols,
                              int threads);

// stats (rows, kShardStatCount) of logits (rows, local_vocab), local_vocab >= 1; ignored rows get
// zeros. Throws ft::Error naming the first row whose target is negative and not the ignore index.
template <typename scalar_t>
void cross_entropy_shard_stats(scalar_t* stats, const scalar_t* logits, const int32_t* targets,
                               int64_t rows, int64_t vocab_begin, int64_t local_vocab, int threads);

// losses, lse (rows) from parts (shards, rows, kShardStatCount); correct, when not null, is set to
// the number of non-ignored rows whose global argmax is the target. Throws ft::Error for a negative
// target other than the ignore index or an argmax entry that is not a column index.
template <typename scalar_t>
void cross_entropy_combine_shards(scalar_t* losses, scalar_t* lse, const scalar_t* parts,
                                  const int32_t* targets, int64_t shards, int64_t rows, int threads,
                                  int64_t* correct);

// dlogits (rows, local_vocab) = dloss * (exp(logits - lse) - onehot(target - vocab_begin)), zero
// on ignored rows; dlogits may be logits itself.
template <typename scalar_t>
void cross_entropy_backward_shard(scalar_t* dlogits, const scalar_t* logits, const scalar_t* lse,
                                  const int32_t* targets, double dloss, int64_t rows,
                                  int64_t vocab_begin, int64_t local_vocab, int threads);

}  // namespace ft::cpu
