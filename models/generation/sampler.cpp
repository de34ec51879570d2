#include "models/generation/sampler.h"

#include <algorithm>
#include <cmath>

#include "runtime/error.h"

namespace ft {

void check_sampling_options(const SamplingOptions& options) {
  if (options.greedy) return;
  if (!(options.temperature > 0) || !std::isfinite(options.temperature))
    fail("temperature = {}: expected a positive number (or greedy decoding)", options.temperature);
  if (options.top_k < 0)
    fail("top_k = {}: expected 0 (all tokens) or a positive count", options.top_k);
  if (!(options.top_p > 0 && options.top_p <= 1))
    fail("top_p = {}: expected a probability mass in (0, 1]", options.top_p);
}

int32_t argmax(std::span<const double> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best] || (std::isnan(logits[best]) && !std::isnan(logits[i])))
      best = static_cast<int32_t>(i);
  return best;
}

void sampling_distribution(std::span<const double> logits, const SamplingOptions& options,
                           std::vector<TokenProbability>& out) {
  check_sampling_options(options);
  out.clear();
  if (options.greedy) {
    out.push_back({argmax(logits), 1.0});
    return;
  }
  // Candidates carry their scaled logit in `probability` until the softmax.
  for (size_t i = 0; i < logits.size(); ++i)
    if (!std::isnan(logits[i]))
      out.push_back({static_cast<int32_t>(i), logits[i] / options.temperature});
  if (out.empty()) {
    out.push_back({0, 1.0});
    return;
  }
  auto more_likely = [](const TokenProbability& a, const TokenProbability& b) {
    return a.probability > b.probability || (a.probability == b.probability && a.id < b.id);
  };
  const size_t k = options.top_k > 0 ? std::min<size_t>(options.top_k, out.size()) : out.size();
  std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(k), out.end(),
                    more_likely);
  out.resize(k);
  const double top = out.front().probability;
  double total = 0.0;
  for (TokenProbability& t : out) total += (t.probability = std::exp(t.probability - top));
  // Nucleus: the most likely tokens until their mass reaches top_p (at least one).
  size_t kept = out.size();
  if (options.top_p < 1) {
    double mass = 0.0;
    for (size_t i = 0; i < out.size(); ++i) {
      mass += out[i].probability / total;
      if (mass >= options.top_p) {
        kept = i + 1;
        break;
      }
    }
  }
  out.resize(kept);
  double kept_total = 0.0;
  for (const TokenProbability& t : out) kept_total += t.probability;
  for (TokenProbability& t : out) t.probability /= kept_total;
}

Sampler::Sampler(const SamplingOptions& options, int64_t vocab_size)
    : options_(options), random_(options.seed) {
  check_sampling_options(options);
  logits_.resize(vocab_size);
  kept_.reserve(vocab_size);
}

int32_t Sampler::next(const Tensor& logits) {
  FT_CHECK(logits.numel() == static_cast<int64_t>(logits_.size()),
           "the sampler expects {} logits, got {}", logits_.size(), logits.numel());
  for (int64_t i = 0; i < logits.numel(); ++i)
    logits_[i] = logits.dtype == DType::f32 ? logits.ptr<float>()[i] : logits.ptr<double>()[i];
  if (options_.greedy) return argmax(logits_);
  sampling_distribution(logits_, options_, kept_);
  // Inverse CDF over the kept tokens, most likely first.
  const double u = random_.uniform();
  double mass = 0.0;
  for (const TokenProbability& t : kept_) {
    mass += t.probability;
    if (u < mass) return t.id;
  }
  return kept_.back().id;  // u within rounding of 1
}

}  // namespace ft
