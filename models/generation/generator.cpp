#include "models/generation/generator.h"

#include <algorithm>
#include <chrono>

namespace ft {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Where the first stop string begins in `text`, or npos.
size_t first_stop(const std::string& text, const std::vector<std::string>& stops) {
  size_t first = std::string::npos;
  for (const std::string& stop : stops)
    if (!stop.empty()) first = std::min(first, text.find(stop));
  return first;
}

}  // namespace

Generation generate(KvCacheModel& model, std::span<const int32_t> prompt,
                    const GenerationOptions& options, const data::Tokenizer* tokenizer) {
  FT_CHECK(!prompt.empty(), "generation needs a prompt of at least one token");
  FT_CHECK(options.stop_strings.empty() || tokenizer != nullptr,
           "stop strings need a tokenizer to decode the output");
  if (static_cast<int64_t>(prompt.size()) > model.capacity())
    fail("the prompt has {} tokens; the model's context holds {}", prompt.size(), model.capacity());
  Generation result;
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  result.finish_reason = "length";
  model.reset();
  if (options.max_new_tokens <= 0) return result;
  Sampler sampler(options.sampling, model.config().vocab_size);
  const auto prefill_start = Clock::now();
  int32_t token = sampler.next(model.forward(prompt));
  result.prefill_seconds = seconds_since(prefill_start);

  const auto decode_start = Clock::now();
  bool text_done = false;
  while (true) {
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), token) !=
        options.stop_ids.end()) {
      result.finish_reason = "stop";
      break;
    }
    result.tokens.push_back(token);
    if (!options.stop_strings.empty()) {
      std::string text = tokenizer->decode(result.tokens);
      const size_t stop = first_stop(text, options.stop_strings);
      if (stop != std::string::npos) {
        result.text = text.substr(0, stop);
        result.finish_reason = "stop";
        text_done = true;
        break;
      }
    }
    if (static_cast<int64_t>(result.tokens.size()) >= options.max_new_tokens) break;
    if (model.length() >= model.capacity()) {
      result.finish_reason = "context";
      break;
    }
    token = sampler.next(model.forward(std::span<const int32_t>(&token, 1)));
  }
  result.decode_seconds = seconds_since(decode_start);
  if (tokenizer != nullptr && !text_done) result.text = tokenizer->decode(result.tokens);
  return result;
}

}  // namespace ft
