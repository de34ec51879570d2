// Generation: the KV-cache model against a full Transformer forward at every step (fp64, each
// family and every adapter method), sampling (greedy, temperature, top-k, top-p, seeds), the
// generation loop's stops, parity with transformers + PEFT greedy continuations
// (tests/data/generation_golden, written by tools/make_generation_goldens.py). ft_generate
// itself: tests/test_ft_generate.cpp.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/generation/generator.h"
#include "models/generation/kv_cache_model.h"
#include "models/generation/model_loading.h"
#include "models/generation/sampler.h"
#include "models/transformer.h"
#include "runtime/config/config.h"
#include "runtime/random.h"
#include "runtime/train/input_layout.h"
#include "tests/support/gradcheck.h"
#include "tests/support/peft_cases.h"
#include "tests/support/python.h"
#include "tests/support/random_model.h"
#include "tests/support/temp_dir.h"
#include "tests/support/training_run.h"

namespace ft {
namespace {

using nlohmann::json;

// ---- a tiny model with an adapter, every parameter at a random non-trivial value -------------

config::PeftConfig peft_config(const std::string& method) {
  return testing::small_peft_config(method);
}

struct TinyModel {
  ModelConfig config;
  PeftSpec spec;
  std::unique_ptr<ParameterStore> params;

  TinyModel(const std::string& preset, const config::PeftConfig& peft) {
    config = model_config_preset(preset);
    spec = resolve_peft_spec(peft, config, 16);
    params =
        std::make_unique<ParameterStore>(run_param_specs(config, spec), DType::f64, Device::cpu);
    params->initialize(7);
    testing::randomize_parameters(*params, 0.4, 0.4, /*keep_frozen_matrices=*/true);
  }

  // The last row's logits of the training model's forward over the whole sequence.
  std::vector<double> full_forward(const std::vector<int32_t>& tokens) const {
    const int n = static_cast<int>(tokens.size());
    data::Batch batch;
    batch.batch_size = 1;
    batch.seq_len = n;
    batch.input_ids = tokens;
    batch.targets.assign(n, data::kIgnoreTarget);
    for (int t = 0; t < n; ++t) batch.positions.push_back(t);
    lay_out_batch(spec, batch);
    Transformer model(config, *params, spec, 1, batch.seq_len);
    OpContext ctx;
    ctx.num_threads = 2;
    ModelMemory memory = plan_model_memory(model, ctx);
    model.forward(ctx, model_inputs(batch));
    const Tensor last = model.logits().slice(batch.seq_len - 1, batch.seq_len);
    return std::vector<double>(last.ptr<double>(), last.ptr<double>() + config.vocab_size);
  }
};

std::vector<double> to_doubles(const Tensor& t) {
  std::vector<double> values(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i)
    values[i] = t.dtype == DType::f32 ? t.ptr<float>()[i] : t.ptr<double>()[i];
  return values;
}

double max_relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]) / (1.0 + std::abs(b[i])));
  return worst;
}

std::vector<int32_t> random_tokens(int64_t count, int64_t vocab, uint64_t seed) {
  Random random(seed);
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < count; ++i) ids.push_back(static_cast<int32_t>(random.below(vocab)));
  return ids;
}

struct CacheCase {
  std::string name, preset;
  config::PeftConfig peft;
};

std::vector<CacheCase> cache_cases() {
  std::vector<CacheCase> cases;
  for (const char* preset : {"tiny-llama", "tiny-mistral", "tiny-qwen2", "tiny-gpt2"})
    cases.push_back({std::string(preset) + "_base", preset, peft_config("full")});
  for (const char* preset : {"tiny-llama", "tiny-gpt2"}) {
    for (const char* method : {"prompt_tuning", "p_tuning", "prefix_tuning", "lora"})
      cases.push_back({std::string(preset) + "_" + method, preset, peft_config(method)});
    config::PeftConfig projected = peft_config("prefix_tuning");
    projected.set_prefix_projection(true);
    cases.push_back({std::string(preset) + "_prefix_projection", preset, projected});
    config::PeftConfig all_linear = peft_config("lora");
    all_linear.set_target_modules("all-linear");
    all_linear.set_use_rslora(true);
    cases.push_back({std::string(preset) + "_lora_all_linear", preset, all_linear});
  }
  for (CacheCase& c : cases) std::replace(c.name.begin(), c.name.end(), '-', '_');
  return cases;
}

class KvCache : public ::testing::TestWithParam<CacheCase> {};

// Prefill and every decoding step against a full forward over the sequence so far; a second
// cache runs the prompt in chunks of 4 and must agree too.
TEST_P(KvCache, EveryStepEqualsTheFullForward) {
  const CacheCase& c = GetParam();
  const TinyModel tiny(c.preset, c.peft);
  KvCacheOptions whole, chunked;
  whole.num_threads = chunked.num_threads = 2;
  whole.capacity = chunked.capacity = 20;
  chunked.max_chunk = 4;
  KvCacheModel model(tiny.config, *tiny.params, tiny.spec, whole);
  KvCacheModel chunks(tiny.config, *tiny.params, tiny.spec, chunked);
  std::vector<int32_t> sequence = random_tokens(7, tiny.config.vocab_size, 5);
  std::vector<double> logits = to_doubles(model.forward(sequence));
  std::vector<double> chunk_logits = to_doubles(chunks.forward(sequence));
  for (int step = 0; step < 9; ++step) {
    SCOPED_TRACE("sequence length " + std::to_string(sequence.size()));
    const std::vector<double> expected = tiny.full_forward(sequence);
    EXPECT_LT(max_relative_difference(logits, expected), 1e-10);
    EXPECT_LT(max_relative_difference(chunk_logits, expected), 1e-10);
    const int32_t next = argmax(logits);
    sequence.push_back(next);
    logits = to_doubles(model.forward(std::span<const int32_t>(&next, 1)));
    chunk_logits = to_doubles(chunks.forward(std::span<const int32_t>(&next, 1)));
  }
  EXPECT_EQ(model.length(), static_cast<int64_t>(sequence.size()));
  // A new sequence after reset() starts from the prefix alone.
  model.reset();
  const std::vector<int32_t> other = random_tokens(3, tiny.config.vocab_size, 8);
  EXPECT_LT(max_relative_difference(to_doubles(model.forward(other)), tiny.full_forward(other)),
            1e-10);
}

INSTANTIATE_TEST_SUITE_P(Models, KvCache, ::testing::ValuesIn(cache_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(KvCacheLimits, TokensBeyondTheCapacityAreRefused) {
  const TinyModel tiny("tiny-llama", peft_config("prefix_tuning"));
  KvCacheOptions options;
  options.capacity = 5;
  KvCacheModel model(tiny.config, *tiny.params, tiny.spec, options);
  model.forward(random_tokens(4, tiny.config.vocab_size, 1));
  const std::string message =
      testing::error_message([&] { model.forward(random_tokens(2, tiny.config.vocab_size, 2)); });
  EXPECT_NE(message.find("holds 5 tokens and 4 are in use"), std::string::npos) << message;
  // The model's 64 positions less the 3 prefix rows.
  options.capacity = 62;
  EXPECT_NE(testing::error_message([&] {
              KvCacheModel(tiny.config, *tiny.params, tiny.spec, options);
            }).find("at most 61 tokens"),
            std::string::npos);
}

// ---- sampling -------------------------------------------------------------------------------

TEST(Sampling, TopKOfOneIsGreedy) {
  Random random(3);
  SamplingOptions top1;
  top1.greedy = false;
  top1.top_k = 1;
  top1.temperature = 0.7;
  top1.seed = 11;
  Sampler sampler(top1, 50);
  for (int draw = 0; draw < 200; ++draw) {
    std::vector<double> logits(50);
    for (double& l : logits) l = 3 * random.normal();
    logits[draw % 50] = logits[(draw + 7) % 50];  // ties go to the lower id, as argmax's
    const Tensor t(logits.data(), DType::f64, Shape{50});
    EXPECT_EQ(sampler.next(t), argmax(logits));
  }
}

TEST(Sampling, SameSeedSameTokensOtherSeedOtherTokens) {
  std::vector<float> logits(40);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(std::sin(i));
  const Tensor t(logits.data(), DType::f32, Shape{40});
  auto draws = [&](uint64_t seed) {
    SamplingOptions options;
    options.greedy = false;
    options.seed = seed;
    Sampler sampler(options, 40);
    std::vector<int32_t> ids;
    for (int i = 0; i < 64; ++i) ids.push_back(sampler.next(t));
    return ids;
  };
  EXPECT_EQ(draws(5), draws(5));
  EXPECT_NE(draws(5), draws(6));
}

TEST(Sampling, TopPKeepsTheSmallestSetReachingP) {
  const std::vector<double> probabilities = {0.15, 0.5, 0.05, 0.3};
  std::vector<double> logits;
  for (double p : probabilities) logits.push_back(std::log(p) + 2.0);
  SamplingOptions options;
  options.greedy = false;
  std::vector<TokenProbability> kept;
  auto ids = [&](double top_p) {
    options.top_p = top_p;
    sampling_distribution(logits, options, kept);
    std::vector<int32_t> result;
    for (const TokenProbability& t : kept) result.push_back(t.id);
    return result;
  };
  EXPECT_EQ(ids(0.45), (std::vector<int32_t>{1}));
  EXPECT_EQ(ids(0.75), (std::vector<int32_t>{1, 3}));
  EXPECT_NEAR(kept[0].probability, 0.5 / 0.8, 1e-12);
  EXPECT_NEAR(kept[1].probability, 0.3 / 0.8, 1e-12);
  EXPECT_EQ(ids(0.9), (std::vector<int32_t>{1, 3, 0}));
  EXPECT_EQ(ids(1.0), (std::vector<int32_t>{1, 3, 0, 2}));
  // top-k is applied before top-p.
  options.top_k = 1;
  EXPECT_EQ(ids(0.9), (std::vector<int32_t>{1}));
}

TEST(Sampling, TemperatureScalesTheLogitsAndDrawsFollowTheDistribution) {
  const std::vector<double> logits = {1.0, 2.0, 0.5, -1.0};
  SamplingOptions options;
  options.greedy = false;
  options.temperature = 2.0;
  std::vector<TokenProbability> kept;
  sampling_distribution(logits, options, kept);
  double total = 0.0;
  for (double l : logits) total += std::exp(l / 2.0);
  std::map<int32_t, double> expected;
  for (size_t i = 0; i < logits.size(); ++i) expected[i] = std::exp(logits[i] / 2.0) / total;
  ASSERT_EQ(kept.size(), 4u);
  for (const TokenProbability& t : kept) EXPECT_NEAR(t.probability, expected[t.id], 1e-12);
  // Seeded draws: frequencies near the probabilities.
  options.seed = 42;
  Sampler sampler(options, 4);
  std::vector<double> values(logits);
  std::map<int32_t, int> counts;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) ++counts[sampler.next(Tensor(values.data(), DType::f64, {4}))];
  for (const auto& [id, p] : expected) EXPECT_NEAR(counts[id] / double(draws), p, 0.015) << id;
}

TEST(Sampling, BadOptionsNameTheOption) {
  SamplingOptions options;
  options.greedy = false;
  options.temperature = -1;
  EXPECT_NE(testing::error_message([&] { check_sampling_options(options); }).find("temperature"),
            std::string::npos);
  options.temperature = 1;
  options.top_p = 0;
  EXPECT_NE(testing::error_message([&] { check_sampling_options(options); }).find("top_p"),
            std::string::npos);
  options.top_p = 1;
  options.top_k = -2;
  EXPECT_NE(testing::error_message([&] { check_sampling_options(options); }).find("top_k"),
            std::string::npos);
}

// ---- the generation loop ------------------------------------------------------------------

TEST(Generate, StopsAtStopIdsStopStringsLengthAndTheContext) {
  const TinyModel tiny("tiny-llama", peft_config("full"));
  KvCacheOptions cache;
  cache.capacity = 40;
  KvCacheModel model(tiny.config, *tiny.params, tiny.spec, cache);
  const data::ByteTokenizer bytes;  // ids below 61 decode to those bytes
  const std::vector<int32_t> prompt = random_tokens(6, tiny.config.vocab_size, 21);
  GenerationOptions options;
  options.max_new_tokens = 12;
  const Generation free = generate(model, prompt, options, &bytes);
  ASSERT_EQ(free.tokens.size(), 12u);
  EXPECT_EQ(free.finish_reason, "length");
  EXPECT_EQ(free.text, bytes.decode(free.tokens));
  EXPECT_EQ(free.prompt_tokens, 6);

  options.stop_ids = {free.tokens[5]};
  const Generation stopped = generate(model, prompt, options, &bytes);
  const auto first = std::find(free.tokens.begin(), free.tokens.end(), free.tokens[5]);
  EXPECT_EQ(stopped.tokens, std::vector<int32_t>(free.tokens.begin(), first));
  EXPECT_EQ(stopped.finish_reason, "stop");

  options.stop_ids.clear();
  const std::string stop = free.text.substr(4, 2);
  options.stop_strings = {stop};
  const Generation cut = generate(model, prompt, options, &bytes);
  EXPECT_EQ(cut.text, free.text.substr(0, free.text.find(stop)));
  EXPECT_EQ(cut.finish_reason, "stop");

  options.stop_strings.clear();
  KvCacheOptions small = cache;
  small.capacity = 9;  // the prompt and 3 generated tokens fit; the 4th is chosen, not cached
  KvCacheModel short_model(tiny.config, *tiny.params, tiny.spec, small);
  const Generation full_context = generate(short_model, prompt, options, &bytes);
  EXPECT_EQ(full_context.tokens,
            std::vector<int32_t>(free.tokens.begin(), free.tokens.begin() + 4));
  EXPECT_EQ(full_context.finish_reason, "context");
}

// ---- parity with transformers + PEFT --------------------------------------------------------

const std::string kData = std::string(FT_TEST_DATA_DIR) + "/";

json read_json(const std::string& path) {
  std::ifstream file(path);
  if (!file) ADD_FAILURE() << "cannot open " << path;
  return json::parse(file);
}

// Every case of generations.json (bases and adapters of both families), loaded as ft_generate
// loads --model and --adapter, continued greedily by 16 tokens: the same tokens as PEFT.
TEST(GenerationParity, GreedyContinuationsEqualPeftGenerate) {
  const json goldens = read_json(kData + "generation_golden/generations.json");
  ASSERT_GE(goldens.at("cases").size(), 14u);
  for (const DType dtype : {DType::f32, DType::f64}) {
    for (const json& c : goldens.at("cases")) {
      SCOPED_TRACE(c.at("case").get<std::string>() + " " + dtype_name(dtype));
      ModelSource source;
      source.model = kData + c.at("model").get<std::string>();
      if (!c.at("adapter").is_null()) source.adapter = kData + c.at("adapter").get<std::string>();
      source.dtype = dtype;
      const LoadedModel loaded = load_model(source);
      EXPECT_EQ(loaded.peft.is_peft(), !c.at("adapter").is_null());
      KvCacheOptions cache;
      cache.num_threads = 2;
      KvCacheModel model(loaded.model, *loaded.params, loaded.peft, cache);
      GenerationOptions options;
      options.max_new_tokens = goldens.at("new_tokens").get<int64_t>();
      for (size_t i = 0; i < c.at("prompts").size(); ++i) {
        const auto prompt = c.at("prompts")[i].get<std::vector<int32_t>>();
        const auto expected = c.at("continuations")[i].get<std::vector<int32_t>>();
        EXPECT_EQ(generate(model, prompt, options, nullptr).tokens, expected) << "prompt " << i;
      }
    }
  }
}

}  // namespace
}  // namespace ft
