// Random, non-trivial model parameters and token batches for tests that compare two computations
// of one model (gradient checks, tensor parallelism, the KV cache).
#pragma once

#include <cstdint>

#include "runtime/data/batch_loader.h"
#include "runtime/parameters.h"
#include "runtime/random.h"

namespace ft::testing {

// Every parameter (fp64 store) at base + spread * (u - 0.5), u uniform in [0, 1), base 1 for
// ones-initialized parameters (norm weights) and 0 otherwise. `keep_frozen_matrices`: frozen
// normal-initialized weights keep their seeded initialization.
inline void randomize_parameters(const ParameterStore& params, double trainable_spread,
                                 double frozen_spread, bool keep_frozen_matrices,
                                 uint64_t seed = 99) {
  Random random(seed);
  for (const Parameter& p : params.all()) {
    if (keep_frozen_matrices && p.spec.init == InitKind::normal && !p.spec.trainable) continue;
    double* values = p.value.ptr<double>();
    const double base = p.spec.init == InitKind::ones ? 1.0 : 0.0;
    const double spread = p.spec.trainable ? trainable_spread : frozen_spread;
    for (int64_t i = 0; i < p.value.numel(); ++i)
      values[i] = base + spread * (random.uniform() - 0.5);
  }
}

// batch_size x seq_len random tokens and targets (every fourth target ignored), positions
// 0..seq_len-1 per row; *target_count receives the targets not ignored.
inline data::Batch random_token_batch(int64_t vocab, int64_t batch_size, int64_t seq_len,
                                      int64_t* target_count, uint64_t seed = 123) {
  Random random(seed);
  data::Batch batch;
  batch.batch_size = static_cast<int>(batch_size);
  batch.seq_len = static_cast<int>(seq_len);
  *target_count = 0;
  for (int64_t i = 0; i < batch_size * seq_len; ++i) {
    batch.input_ids.push_back(static_cast<int32_t>(random.below(vocab)));
    batch.positions.push_back(static_cast<int32_t>(i % seq_len));
    const bool ignored = i % 4 == 3;
    batch.targets.push_back(ignored ? data::kIgnoreTarget
                                    : static_cast<int32_t>(random.below(vocab)));
    *target_count += !ignored;
  }
  return batch;
}

}  // namespace ft::testing
