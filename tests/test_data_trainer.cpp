// The data options through the trainer: packing (and its refusal with virtual-token methods), the
// validation split, the full validation at the end, and a tokenizer.json in place of the byte
// tokenizer.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/config/config.h"
#include "runtime/error.h"
#include "runtime/train/trainer.h"
#include "tests/support/temp_dir.h"
#include "tests/support/training_run.h"

namespace ft {
namespace {

using testing::kSmallLlama;
using testing::TempDir;
using testing::train;

config::RunConfig small_run(const TempDir& dir, int max_steps) {
  config::RunConfig config;
  config.mutable_model()->set_hf_config(dir.write("model/config.json", kSmallLlama));
  config.mutable_data()->set_train_file(std::string(FT_SOURCE_DIR) +
                                        "/examples/quickstart/train.jsonl");
  config.mutable_data()->set_seq_len(96);
  config.mutable_train()->set_micro_batch_size(4);
  config.mutable_train()->set_max_steps(max_steps);
  config.mutable_train()->set_log_every(1000);
  config.mutable_checkpoint()->set_save_final(false);
  config.set_output_dir(dir.path("run"));
  config.set_threads(2);
  config.set_seed(5);
  return config;
}

std::string trainer_error(const config::RunConfig& config) {
  try {
    TrainerOptions options;
    options.config = config;
    std::ostringstream log;
    options.log = &log;
    Trainer trainer(std::move(options));
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(DataTrainer, PackingTrainsMoreExamplesPerStep) {
  TempDir dir;
  config::RunConfig config = small_run(dir, 0);
  config.mutable_data()->set_seq_len(128);  // quickstart examples are 30-92 tokens
  config.mutable_train()->set_epochs(1);
  TrainerOptions options;
  std::ostringstream stream;
  options.log = &stream;
  options.config = config;
  const int64_t padded_steps = Trainer(options).total_steps();
  config.mutable_data()->set_packing(true);
  options.config = config;
  const int64_t packed_steps = Trainer(options).total_steps();
  EXPECT_LT(packed_steps * 4, padded_steps * 3) << packed_steps << " vs " << padded_steps;

  config.mutable_train()->set_max_steps(3);
  std::string log;
  const TrainSummary packed = train(config, "", &log);
  ASSERT_EQ(packed.step_losses.size(), 3u);
  EXPECT_TRUE(std::isfinite(packed.step_losses.back()));
  EXPECT_NE(log.find("packed into"), std::string::npos) << log;
  config.mutable_data()->set_packing(false);
  config.set_output_dir(dir.path("padded"));
  const TrainSummary padded = train(config);
  EXPECT_GT(packed.trained_tokens * 3, padded.trained_tokens * 4)
      << packed.trained_tokens << " vs " << padded.trained_tokens;
}

TEST(DataTrainer, PackingIsRefusedWithVirtualTokenMethods) {
  TempDir dir;
  for (const char* method : {"prompt_tuning", "p_tuning", "prefix_tuning"}) {
    config::RunConfig config = small_run(dir, 2);
    config.mutable_data()->set_packing(true);
    config.mutable_peft()->set_method(method);
    config.mutable_peft()->set_num_virtual_tokens(4);
    const std::string error = trainer_error(config);
    EXPECT_NE(error.find("data.packing = true with peft.method = " + std::string(method)),
              std::string::npos)
        << error;
  }
  config::RunConfig lora = small_run(dir, 2);
  lora.mutable_data()->set_packing(true);
  lora.mutable_peft()->set_method("lora");
  EXPECT_EQ(trainer_error(lora), "");
}

TEST(DataTrainer, ValidSplitAndFullValidationAtTheEnd) {
  TempDir dir;
  config::RunConfig config = small_run(dir, 2);
  config.mutable_data()->set_valid_split(0.05);  // 150 of 3000
  config.mutable_train()->set_eval_batches(2);   // 8 sampled rows during training
  config.mutable_train()->set_eval_at_start(false);
  std::string log;
  TrainSummary summary = train(config, "", &log);
  ASSERT_TRUE(summary.final_eval.has_value());
  ASSERT_TRUE(summary.full_eval.has_value());
  EXPECT_GT(summary.full_eval->tokens, 5 * summary.final_eval->tokens);
  EXPECT_NE(log.find("valid_split 0.05: 150 sequences held out"), std::string::npos) << log;
  EXPECT_NE(log.find("ft: full validation set: loss"), std::string::npos) << log;
  EXPECT_NE(log.find("tokens to train"), std::string::npos) << log;

  std::ifstream jsonl(dir.path("run/metrics.jsonl"));
  std::string line;
  nlohmann::json full;
  while (std::getline(jsonl, line)) {
    nlohmann::json row = nlohmann::json::parse(line);
    if (row.contains("full_valid_loss")) full = row;
  }
  ASSERT_FALSE(full.is_null());
  EXPECT_EQ(full["step"], 2);
  EXPECT_DOUBLE_EQ(full["full_valid_loss"].get<double>(), summary.full_eval->loss);
  EXPECT_DOUBLE_EQ(full["full_valid_mean_token_accuracy"].get<double>(),
                   summary.full_eval->accuracy);

  config::RunConfig both = small_run(dir, 2);
  both.mutable_data()->set_valid_split(0.1);
  both.mutable_data()->set_valid_file(both.data().train_file());
  EXPECT_NE(trainer_error(both).find("choose one source of validation data"), std::string::npos);
}

// A character-level tokenizer.json: printable ASCII and "\n" as single tokens, no merges, the
// ChatML specials and <|endoftext|> as added tokens; `extra_id` adds one more token at that id.
std::string char_tokenizer_json(int extra_id = -1) {
  nlohmann::json vocab = nlohmann::json::object();
  int id = 0;
  vocab["\n"] = id++;
  for (char c = ' '; c <= '~'; ++c) vocab[std::string(1, c)] = id++;
  nlohmann::json added = nlohmann::json::array();
  for (const char* special : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
    added.push_back({{"id", id},
                     {"content", special},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
    vocab[special] = id++;
  }
  if (extra_id >= 0) vocab["<extra>"] = extra_id;
  nlohmann::json document = {{"added_tokens", added},
                             {"normalizer", nullptr},
                             {"pre_tokenizer", nullptr},
                             {"decoder", nullptr},
                             {"model",
                              {{"type", "BPE"},
                               {"dropout", nullptr},
                               {"vocab", vocab},
                               {"merges", nlohmann::json::array()}}}};
  return document.dump();
}

TEST(DataTrainer, TokenizerJsonReplacesTheByteTokenizer) {
  TempDir dir;
  config::RunConfig config = small_run(dir, 2);
  config.mutable_data()->set_tokenizer(dir.write("tok/tokenizer.json", char_tokenizer_json()));
  std::string log;
  TrainSummary summary = train(config, "", &log);
  EXPECT_EQ(summary.step_losses.size(), 2u);
  EXPECT_NE(log.find("ft: tokenizer: " + config.data().tokenizer() +
                     " (99 ids); chat template "
                     "chatml; loss on assistant tokens"),
            std::string::npos)
      << log;

  // The model's 259 ids must cover the tokenizer's.
  config.mutable_data()->set_tokenizer(dir.write("big/tokenizer.json", char_tokenizer_json(300)));
  EXPECT_NE(trainer_error(config).find("vocab_size 259 is smaller than the tokenizer's 301 ids"),
            std::string::npos)
      << trainer_error(config);
  config.mutable_data()->set_tokenizer(dir.write("bad/tokenizer.json", "{"));
  EXPECT_NE(trainer_error(config).find("data.tokenizer = " + dir.path("bad/tokenizer.json")),
            std::string::npos);
}

// data.chatml_default_system: off by default (no system message is added), on: Qwen2's default
// system turn in front of each conversation without one, 38 more tokens with this tokenizer.
TEST(DataTrainer, ChatmlDefaultSystemMessageIsAConfigChoice) {
  TempDir dir;
  config::RunConfig config = small_run(dir, 0);
  std::string examples;
  for (int i = 0; i < 10; ++i) {
    examples += R"({"messages": [{"role": "user", "content": "hi"}, )"
                R"({"role": "assistant", "content": "yo"}]})"
                "\n";
  }
  config.mutable_data()->set_train_file(dir.write("chat.jsonl", examples));
  config.mutable_data()->set_tokenizer(dir.write("tok/tokenizer.json", char_tokenizer_json()));
  config.mutable_train()->set_max_steps(1);
  const auto report_line = [&config] {
    std::string text;
    train(config, "", &text);
    const size_t at = text.find("tokens per example:");
    return at == std::string::npos ? text : text.substr(at, text.find(';', at) - at);
  };
  // <|im_start|> user\nhi <|im_end|> \n <|im_start|> assistant\nyo <|im_end|> \n
  EXPECT_EQ(report_line(), "tokens per example: min 25 / mean 25.0 / max 25");
  config.mutable_data()->set_chatml_default_system(true);
  config.set_output_dir(dir.path("run_with_system"));
  // + <|im_start|> system\nYou are a helpful assistant. <|im_end|> \n
  EXPECT_EQ(report_line(), "tokens per example: min 63 / mean 63.0 / max 63");
}

}  // namespace
}  // namespace ft
