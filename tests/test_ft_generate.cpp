// ft_generate as users run it: --eval equal to the trainer's own validation, an adapter reached as
// its run's checkpoint, as base + adapter checkpoint and as base + PEFT folder, prompts files of
// both formats, --compare, a PEFT folder on a Hugging Face base (PEFT's golden tokens), and bad
// input named with a non-zero exit and no output left behind.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/config/config.h"
#include "tests/support/python.h"
#include "tests/support/temp_dir.h"
#include "tests/support/training_run.h"

namespace ft {
namespace {

using nlohmann::json;

const std::string kData = std::string(FT_TEST_DATA_DIR) + "/";

json read_json(const std::string& path) {
  std::ifstream file(path);
  if (!file) ADD_FAILURE() << "cannot open " << path;
  return json::parse(file);
}

std::string generate_exe() {
  return (std::filesystem::path(FT_TRAIN_EXE).parent_path() / "ft_generate").string();
}

testing::CommandResult run_generate(const std::string& arguments) {
  testing::CommandResult result = testing::run_command(generate_exe() + " " + arguments);
  result.status = WIFEXITED(result.status) ? WEXITSTATUS(result.status) : -1;
  return result;
}

// A LoRA adapter and a full fine-tune of a small Llama, each trained for two steps, shared by the
// CLI tests of one process.
class FtGenerate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    const std::string model = dir_->write("model/config.json", testing::kSmallLlama);
    auto train = [&](const std::string& name, const std::string& method) {
      config::RunConfig config = config::parse(
          "model: {hf_config: " + model + "}\npeft: {method: " + method +
              "}\ndata: {train_file: " + FT_SOURCE_DIR +
              "/examples/peft/train.jsonl, seq_len: 64}\ntrain: {micro_batch_size: 4, "
              "max_steps: 2}\noptim: {lr: 0.01}\nthreads: 2\nseed: 5\noutput_dir: " +
              dir_->path(name),
          "yaml", name);
      return testing::train(config).last_checkpoint;
    };
    adapter_ = train("lora", "lora");
    full_ = train("full", "full");
    // An adapter on a base that is a file: the full fine-tune's checkpoint.
    config::RunConfig on_full = config::parse(
        "model: {init_from: " + full_ + "}\npeft: {method: prefix_tuning, num_virtual_tokens: 3}" +
            "\ndata: {train_file: " + FT_SOURCE_DIR +
            "/examples/peft/train.jsonl, seq_len: 64}\ntrain: {micro_batch_size: 4, "
            "max_steps: 2}\noptim: {lr: 0.01}\nthreads: 2\nseed: 6\noutput_dir: " +
            dir_->path("on_full"),
        "yaml", "on_full");
    adapter_on_full_ = testing::train(on_full).last_checkpoint;
    // Runs with validation, whose metrics.jsonl --eval must reproduce.
    const std::string data = std::string(FT_SOURCE_DIR) + "/examples/";
    for (const std::string method : {"lora", "prompt_tuning"}) {
      config::RunConfig config = config::parse(
          "model: {hf_config: " + model + "}\npeft: {method: " + method +
              ", num_virtual_tokens: 4}\ndata: {train_file: " + data +
              "peft/train.jsonl, valid_file: " + data +
              "peft/valid.jsonl, seq_len: 64}\ntrain: {micro_batch_size: 3, max_steps: 3, "
              "eval_every: 2, eval_batches: 1}\noptim: {lr: 0.01}\nthreads: 2\nseed: 8\n"
              "output_dir: " +
              dir_->path("valid_" + method),
          "yaml", method);
      validated_.push_back({testing::train(config).last_checkpoint, data + "peft/valid.jsonl",
                            dir_->path("valid_" + method)});
    }
    // The quickstart preset trained from scratch (full), validated on its own file.
    config::RunConfig quickstart = config::parse(
        "model: {preset: quickstart}\ndata: {train_file: " + data +
            "quickstart/train.jsonl, valid_file: " + data +
            "quickstart/valid.jsonl, seq_len: 96}\ntrain: {micro_batch_size: 16, max_steps: 3, "
            "eval_every: 3, eval_batches: 2}\noptim: {lr: 0.003}\nthreads: 2\nseed: 1234\n"
            "output_dir: " +
            dir_->path("quickstart"),
        "yaml", "quickstart");
    validated_.push_back({testing::train(quickstart).last_checkpoint,
                          data + "quickstart/valid.jsonl", dir_->path("quickstart")});
  }
  static void TearDownTestSuite() { delete dir_; }
  struct ValidatedRun {
    std::string checkpoint, valid_file, output_dir;
  };
  static testing::TempDir* dir_;
  static std::string adapter_, full_, adapter_on_full_;
  static std::vector<ValidatedRun> validated_;
};
testing::TempDir* FtGenerate::dir_ = nullptr;
std::string FtGenerate::adapter_, FtGenerate::full_, FtGenerate::adapter_on_full_;
std::vector<FtGenerate::ValidatedRun> FtGenerate::validated_;

// The full_valid_* record of a run's metrics.jsonl.
json full_valid_metrics(const std::string& output_dir) {
  std::ifstream file(output_dir + "/metrics.jsonl");
  json found;
  for (std::string line; std::getline(file, line);) {
    const json record = json::parse(line);
    if (record.contains("full_valid_loss")) found = record;
  }
  if (found.is_null()) ADD_FAILURE() << output_dir << "/metrics.jsonl has no full_valid_loss";
  return found;
}

// --eval on a run's validation file gives the trainer's own end-of-training evaluation of the
// same checkpoint: a LoRA and a prompt-tuning adapter (virtual rows in front of each row) on a
// small Llama, and the quickstart model trained from scratch.
TEST_F(FtGenerate, EvalEqualsTheTrainersFullValidation) {
  ASSERT_EQ(validated_.size(), 3u);
  for (const ValidatedRun& run : validated_) {
    SCOPED_TRACE(run.checkpoint);
    const json expected = full_valid_metrics(run.output_dir);
    ASSERT_FALSE(expected.is_null());
    const std::string figures = run.output_dir + "/eval.json";
    const auto result = run_generate("--checkpoint " + run.checkpoint + " --eval " +
                                     run.valid_file + " --eval-output " + figures + " --threads 2");
    ASSERT_EQ(result.status, 0) << result.output;
    EXPECT_NE(result.output.find("tuned model  loss"), std::string::npos) << result.output;
    const json got = read_json(figures).at("tuned");
    const double loss = expected.at("full_valid_loss").get<double>();
    EXPECT_NEAR(got.at("loss").get<double>(), loss, 1e-6 * loss);
    EXPECT_NEAR(got.at("perplexity").get<double>(), std::exp(loss), 1e-6 * std::exp(loss));
    EXPECT_NEAR(got.at("mean_token_accuracy").get<double>(),
                expected.at("full_valid_mean_token_accuracy").get<double>(), 1e-9);
    EXPECT_EQ(got.at("tokens"), expected.at("full_valid_tokens"));
  }
  // Another batch size changes only the rounding.
  const ValidatedRun& run = validated_.back();
  const std::string figures = run.output_dir + "/eval_batch5.json";
  const auto result = run_generate("--checkpoint " + run.checkpoint + " --eval " + run.valid_file +
                                   " --eval-batch 5 --eval-output " + figures + " --threads 2");
  ASSERT_EQ(result.status, 0) << result.output;
  const double loss = full_valid_metrics(run.output_dir).at("full_valid_loss").get<double>();
  EXPECT_NEAR(read_json(figures).at("tuned").at("loss").get<double>(), loss, 1e-5 * loss);
}

// One adapter reached three ways gives the same tokens: its run's checkpoint (the base from the
// run), its base model with the adapter checkpoint, and its base with the PEFT folder the run
// exported.
TEST_F(FtGenerate, AdapterCheckpointBaseWithAdapterAndPeftFolderAgree) {
  // The tokens of two prompts and the evaluation loss: a fingerprint of the model in use.
  auto answers = [&](const std::string& model_arguments) {
    const std::string out = dir_->path("routes.jsonl"), figures = dir_->path("routes.json");
    const auto result = run_generate(
        model_arguments + " --prompt 'lime blue' --prompt 'cake cup' --max-new-tokens 8 " +
        "--ignore-eos --threads 2 --output " + out + " --eval " + FT_SOURCE_DIR +
        "/examples/peft/valid.jsonl --eval-output " + figures);
    EXPECT_EQ(result.status, 0) << result.output;
    json generated = json::array();
    std::ifstream file(out);
    for (std::string line; std::getline(file, line);)
      generated.push_back(json::parse(line)["tokens"]);
    EXPECT_EQ(generated.size(), 2u) << result.output;
    const json eval = read_json(figures);
    return std::make_pair(generated,
                          eval.contains("tuned") ? eval["tuned"]["loss"] : eval["model"]["loss"]);
  };
  const auto from_run = answers("--checkpoint " + adapter_on_full_);
  ASSERT_EQ(from_run.first.size(), 2u);
  EXPECT_EQ(from_run.first[0].size(), 8u);
  EXPECT_EQ(answers("--model " + full_ + " --adapter " + adapter_on_full_), from_run);
  EXPECT_EQ(answers("--model " + full_ + " --adapter " + dir_->path("on_full") + "/adapter"),
            from_run);
  // The base alone is another model: the adapter is in use.
  EXPECT_NE(answers("--model " + full_).second, from_run.second);
}

// A JSONL prompts file: a conversation goes through the chat template as --prompt does (its final
// assistant message is the reference), a {"prompt": ...} record is encoded as it is (--raw).
TEST_F(FtGenerate, PromptsFileOfConversationsAndPlainPrompts) {
  const std::string prompts = dir_->write(
      "prompts.jsonl",
      R"({"messages": [{"role": "user", "content": "lime blue"}, {"role": "assistant", "content": "blue lime"}]})"
      "\n\n"
      R"({"prompt": "cake cup", "completion": " cup cake"})"
      "\n");
  auto tokens_of = [&](const std::string& arguments, size_t records) {
    const std::string out = dir_->path("prompts_out.jsonl");
    const auto result = run_generate("--checkpoint " + adapter_ + " " + arguments +
                                     " --max-new-tokens 5 --threads 2 --output " + out);
    EXPECT_EQ(result.status, 0) << result.output;
    std::vector<json> lines;
    std::ifstream file(out);
    for (std::string line; std::getline(file, line);) lines.push_back(json::parse(line));
    EXPECT_EQ(lines.size(), records) << result.output;
    return std::make_pair(lines, result.output);
  };
  const auto [file_records, output] = tokens_of("--prompts " + prompts, 2);
  ASSERT_EQ(file_records.size(), 2u);
  for (const char* text :
       {"=== prompt 1/2", "=== prompt 2/2", "--- reference ---\nblue lime", " cup cake"})
    EXPECT_NE(output.find(text), std::string::npos) << text << " in\n" << output;
  EXPECT_EQ(file_records[0].at("reference"), "blue lime");
  const auto chat = tokens_of("--prompt 'lime blue'", 1).first;
  const auto raw = tokens_of("--raw --prompt 'cake cup'", 1).first;
  ASSERT_EQ(chat.size(), 1u);
  ASSERT_EQ(raw.size(), 1u);
  EXPECT_EQ(file_records[0].at("prompt_tokens"), chat[0].at("prompt_tokens"));
  EXPECT_EQ(file_records[0].at("tokens"), chat[0].at("tokens"));
  EXPECT_EQ(file_records[1].at("prompt_tokens"), raw[0].at("prompt_tokens"));
  EXPECT_EQ(file_records[1].at("tokens"), raw[0].at("tokens"));
  // The template adds its turn markup: the conversation's prompt is longer than its text.
  EXPECT_GT(chat[0].at("prompt_tokens").get<int>(), 9 + 4);
  EXPECT_EQ(raw[0].at("prompt_tokens"), 8);
}

TEST_F(FtGenerate, CompareShowsTheBaseAndTheTunedAnswer) {
  ASSERT_TRUE(std::filesystem::exists(generate_exe())) << generate_exe() << " is not built";
  const std::string out = dir_->path("compare.jsonl");
  const auto result = run_generate("--checkpoint " + adapter_ +
                                   " --compare --prompt 'lime blue' --prompt 'cake cup' "
                                   "--max-new-tokens 6 --threads 2 --output " +
                                   out);
  ASSERT_EQ(result.status, 0) << result.output;
  for (const char* text : {"=== prompt 1/2", "=== prompt 2/2", "lime blue", "--- base model (",
                           "--- tuned model (", "base model:  base ", "tuned model: LoRA"})
    EXPECT_NE(result.output.find(text), std::string::npos) << text << " in\n" << result.output;
  std::ifstream lines(out);
  std::string line;
  int records = 0;
  for (; std::getline(lines, line); ++records) {
    const json record = json::parse(line);
    EXPECT_TRUE(record.contains("base") && record.contains("tuned")) << line;
    EXPECT_LE(record["tuned"]["tokens"].size(), 6u);
  }
  EXPECT_EQ(records, 2);
  // A full fine-tune compares with the weights its run started from; evaluation too.
  const auto full = run_generate("--checkpoint " + full_ +
                                 " --compare --prompt hi "
                                 "--max-new-tokens 3 --threads 2 --eval " +
                                 FT_SOURCE_DIR + "/examples/peft/valid.jsonl");
  ASSERT_EQ(full.status, 0) << full.output;
  for (const char* text : {"the weights it started from", "--- base model (", "--- tuned model (",
                           "base model   loss", "tuned model  loss", "perplexity"})
    EXPECT_NE(full.output.find(text), std::string::npos) << text << " in\n" << full.output;
}

TEST_F(FtGenerate, PeftFolderOnHuggingFaceBaseGivesPeftsTokens) {
  const json goldens = read_json(kData + "generation_golden/generations.json");
  const json& c = goldens.at("cases")[3];  // llama prefix tuning
  ASSERT_EQ(c.at("case"), "llama_prefix_tuning");
  std::string ids;
  for (int32_t id : c.at("prompts")[1]) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  const std::string out = dir_->path("peft.jsonl");
  const auto result = run_generate("--model " + kData + c.at("model").get<std::string>() +
                                   " --adapter " + kData + c.at("adapter").get<std::string>() +
                                   " --prompt-ids " + ids + " --max-new-tokens 16 --output " + out);
  ASSERT_EQ(result.status, 0) << result.output;
  std::ifstream file(out);
  std::string line;
  ASSERT_TRUE(std::getline(file, line));
  EXPECT_EQ(json::parse(line).at("tokens"), c.at("continuations")[1]);
}

TEST_F(FtGenerate, BadInputIsNamedAndExitsNonZero) {
  struct Case {
    std::string arguments;
    std::vector<std::string> expected;
  };
  const std::string peft_folder = dir_->path("lora") + "/adapter";
  const std::string bad_eval =
      dir_->write("bad_eval.jsonl",
                  "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": "
                  "\"assistant\", \"content\": \"b\"}]}\n{\"messages\": [\n");
  const std::string bad_prompts =
      dir_->write("bad_prompts.jsonl",
                  "{\"prompt\": \"fine\"}\n{not json\n"
                  "{\"messages\": [{\"role\": \"bot\", \"content\": \"x\"}]}\n{\"text\": \"x\"}\n");
  const std::vector<Case> cases = {
      {"--checkpoint " + dir_->path("missing.h5") + " --prompt hi",
       {"--checkpoint", "missing.h5", "no such file"}},
      {"--model " + full_ + " --adapter " + adapter_ + " --prompt hi",
       {"--adapter", "trained on another base model", "--model"}},
      {"--model " + full_ + " --adapter " + peft_folder + " --prompt hi",
       {"trained on another base model"}},
      {"--model " + adapter_ + " --prompt hi", {"--model", "adapter checkpoint"}},
      {"--model " + full_ + " --compare --prompt hi", {"--compare needs a tuned model"}},
      {"--model " + kData + "peft_golden/gpt2_lora --adapter " + kData +
           "peft_golden/llama_lora/adapter --prompt-ids 1,2",
       {"adapter_config.json", "q_proj"}},
      {"--checkpoint " + adapter_, {"nothing to do"}},
      {"--checkpoint " + adapter_ + " --prompt hi --top-p 1.5", {"top_p"}},
      {"--checkpoint " + adapter_ + " --prompts " + bad_prompts,
       {"bad_prompts.jsonl:2: not a JSON object", "bad_prompts.jsonl:3: message 1 has role 'bot'",
        "bad_prompts.jsonl:4: expected {\"messages\"", "3 bad lines"}},
      {"--checkpoint " + adapter_ + " --prompts " + dir_->path("none.jsonl"),
       {"--prompts", "none.jsonl", "cannot open"}},
      {"--checkpoint " + adapter_ + " --prompt-ids 1,x", {"'x' is not an id from 0 to 258"}},
      {"--checkpoint " + adapter_ + " --prompt-ids 5,259", {"'259' is not an id"}},
      {"--checkpoint " + adapter_ + " --prompt hi --chat-template vicuna",
       {"unknown chat template 'vicuna'"}},
      {"--checkpoint " + adapter_ + " --prompt hi --stop-id 300", {"--stop-id 300"}},
      {"--checkpoint " + adapter_ + " --eval " + dir_->path("missing.jsonl"), {"missing.jsonl"}},
      {"--checkpoint " + adapter_ + " --eval " + bad_eval, {"bad_eval.jsonl:2", "invalid JSON"}},
      {"--checkpoint " + adapter_ + " --prompt hi --eval-output x.json", {"--eval-output"}},
      {"--checkpoint " + adapter_ + " --eval " + FT_SOURCE_DIR +
           "/examples/peft/valid.jsonl --seq-len 500",
       {"--seq-len 500", "128 positions"}},
      {"--checkpoint " + adapter_ + " --prompt hi --max-new-tokens 0", {"--max-new-tokens 0"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.arguments);
    const std::string out = dir_->path("bad_output.jsonl");
    const auto result = run_generate(c.arguments + " --output " + out);
    EXPECT_FALSE(std::filesystem::exists(out)) << "a failed run left " << out;
    EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
    EXPECT_EQ(result.status, 1) << result.output;
    EXPECT_NE(result.output.find("ft_generate: error:"), std::string::npos) << result.output;
    for (const std::string& text : c.expected)
      EXPECT_NE(result.output.find(text), std::string::npos) << text << " in\n" << result.output;
  }
}

}  // namespace
}  // namespace ft
