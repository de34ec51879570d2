// Choosing the next token from the logits: greedy (argmax) or sampling after temperature, top-k
// and top-p (nucleus) filtering, applied in that order as transformers' logits warpers do.
// Sampling draws from ft::Random seeded by the user's seed, so a seed gives the same tokens on
// every machine.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/random.h"
#include "runtime/tensor.h"

namespace ft {

struct SamplingOptions {
  bool greedy = true;        // argmax (ties: the lowest id); false: sample
  double temperature = 1.0;  // > 0; logits are divided by it before the softmax
  int64_t top_k = 0;         // keep the k most likely tokens (0: all)
  double top_p = 1.0;        // keep the smallest set of most likely tokens whose mass reaches p
  uint64_t seed = 0;
};

// Throws ft::Error naming the option for a temperature <= 0, a negative top_k or a top_p outside
// (0, 1].
void check_sampling_options(const SamplingOptions& options);

struct TokenProbability {
  int32_t id = 0;
  double probability = 0.0;
};

// The distribution sampling draws from: the kept tokens, most likely first (ties: the lower id
// first), their probabilities renormalized to sum to 1. NaN logits are never kept. `out` is
// overwritten; its capacity is reused.
void sampling_distribution(std::span<const double> logits, const SamplingOptions& options,
                           std::vector<TokenProbability>& out);

// The id of the largest logit (the first on ties; NaN never wins unless every logit is NaN).
int32_t argmax(std::span<const double> logits);

class Sampler {
 public:
  Sampler(const SamplingOptions& options, int64_t vocab_size);
  // The next token for logits (vocab_size) in f32 or f64.
  int32_t next(const Tensor& logits);
  const SamplingOptions& options() const { return options_; }

 private:
  SamplingOptions options_;
  Random random_;
  std::vector<double> logits_;
  std::vector<TokenProbability> kept_;
};

}  // namespace ft
