// Dataset formats and checks: prompt/completion JSONL, format detection, chat templates and
// train_on, record errors, the few-examples warning, the token plan and the validation split.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "runtime/data/dataset.h"
#include "runtime/data/tokenizer.h"
#include "runtime/error.h"
#include "tests/support/byte_tokens.h"
#include "tests/support/temp_dir.h"

namespace ft::data {
namespace {

using ft::testing::TempDir;

using ft::testing::concat;
using ft::testing::ids;

DataOptions byte_options() {
  DataOptions options;
  options.chatml_default_system = false;
  options.seq_len = 256;
  return options;
}

// The error load_dataset throws, or "" when it loads.
std::string load_error(const std::string& path, const DataOptions& options = byte_options()) {
  try {
    load_dataset(path, options, ByteTokenizer(), nullptr);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

std::string repeat_lines(const std::string& line, int count) {
  std::string text;
  for (int i = 0; i < count; ++i) text += line + "\n";
  return text;
}

const std::string kChatLine =
    R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})";

TEST(PromptCompletion, LossOnTheCompletionAndEos) {
  const TempDir dir;
  const std::string path = dir.write("pc.jsonl", R"({"prompt": "2+2=", "completion": "4"})"
                                                 "\n"
                                                 R"({"prompt": "", "completion": "ab"})");
  DatasetReport report;
  const auto sequences = load_dataset(path, byte_options(), ByteTokenizer(), &report);
  EXPECT_EQ(report.format, "prompt_completion");
  ASSERT_EQ(sequences.size(), 2u);
  EXPECT_EQ(sequences[0].tokens, concat({ids("2+2="), ids("4"), {ByteTokenizer::kEndOfText}}));
  EXPECT_EQ(sequences[0].loss_mask, (std::vector<uint8_t>{0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(sequences[1].tokens, concat({ids("ab"), {ByteTokenizer::kEndOfText}}));
  EXPECT_EQ(sequences[1].loss_mask, (std::vector<uint8_t>{0, 1, 1}));  // token 0 is never a target
  EXPECT_EQ(report.trained_tokens, 4);

  DataOptions all = byte_options();
  all.train_on = "all";
  const auto everything = load_dataset(path, all, ByteTokenizer(), nullptr);
  EXPECT_EQ(everything[0].loss_mask, (std::vector<uint8_t>{0, 1, 1, 1, 1, 1}));
}

TEST(PromptCompletion, ErrorsNameFileLineAndProblem) {
  const TempDir dir;
  const std::string good = R"({"prompt": "a", "completion": "b"})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"prompt": "a"})", "missing \"completion\""},
      {R"({"completion": "a"})", "missing \"prompt\""},
      {R"({"prompt": 1, "completion": "b"})", "\"prompt\" is number (expected a string)"},
      {R"({"prompt": "a", "completion": "  "})", "empty \"completion\""},
      {R"({"prompt": "a", )", "invalid JSON: "},
  };
  for (const auto& [line, problem] : cases) {
    const std::string path = dir.write("pc.jsonl", good + "\n" + line + "\n");
    const std::string error = load_error(path);
    EXPECT_NE(error.find(path + ":2: " + problem), std::string::npos)
        << "line: " << line << "\nerror: " << error;
  }
}

TEST(DataFormat, AutoReadsTheFirstRecord) {
  const TempDir dir;
  const std::string pc = R"({"prompt": "a", "completion": "b"})";
  EXPECT_EQ(resolve_format("auto", "x.jsonl", "\n" + pc + "\n" + kChatLine), "prompt_completion");
  EXPECT_EQ(resolve_format("auto", "x.jsonl", "\xEF\xBB\xBF" + kChatLine + "\n" + pc), "chat");
  EXPECT_EQ(resolve_format("auto", "x.txt", pc), "text");
  EXPECT_EQ(resolve_format("prompt_completion", "x.txt", kChatLine), "prompt_completion");

  // A first record of neither kind names the file, the line and the way out.
  const std::string path = dir.write("other.jsonl",
                                     "\n"
                                     R"({"text": "hello"})"
                                     "\n");
  const std::string error = load_error(path);
  EXPECT_NE(error.find(path + ":2: the first record has neither"), std::string::npos) << error;
  EXPECT_NE(error.find("data.format"), std::string::npos) << error;

  // The first record decides: a later record of the other kind is an error on its line.
  const std::string mixed = dir.write("mixed.jsonl", kChatLine + "\n" + pc + "\n");
  EXPECT_NE(load_error(mixed).find(mixed + ":2: missing \"messages\""), std::string::npos);
  DataOptions forced = byte_options();
  forced.format = "prompt_completion";
  EXPECT_NE(load_error(mixed, forced).find(mixed + ":1: missing \"prompt\""), std::string::npos);
}

TEST(ChatFormat, EmptyContentIsAnError) {
  const TempDir dir;
  for (const std::string& content : {"", " \n\t"}) {
    const std::string line = R"({"messages": [{"role": "user", "content": ")" + content +
                             R"("}, {"role": "assistant", "content": "x"}]})";
    std::string escaped = line;
    for (size_t at = 0; (at = escaped.find_first_of("\n\t", at)) != std::string::npos;)
      escaped.replace(at, 1, escaped[at] == '\n' ? "\\n" : "\\t");
    const std::string path = dir.write("empty.jsonl", kChatLine + "\n" + escaped + "\n");
    const std::string error = load_error(path);
    EXPECT_NE(error.find(path + ":2: message 1 (user) has empty content"), std::string::npos)
        << error;
  }
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t begin = 0;
  for (size_t end; (end = text.find('\n', begin)) != std::string::npos; begin = end + 1) {
    lines.push_back(text.substr(begin, end - begin));
  }
  lines.push_back(text.substr(begin));
  return lines;
}

TEST(RecordErrors, EveryBadLineIsReportedInOneError) {
  const TempDir dir;
  const std::string bad_json = R"({"messages": [)";
  const std::string unknown_role =
      R"({"messages": [{"role": "bot", "content": "a"}, {"role": "assistant", "content": "b"}]})";
  const std::string empty_content =
      R"({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "b"}]})";
  // Lines 2, 4 and 7 are bad; line 6 is blank and counts as no example.
  const std::string path = dir.write(
      "examples.jsonl", kChatLine + "\n" + bad_json + "\n" + kChatLine + "\n" + unknown_role +
                            "\n" + kChatLine + "\n\n" + empty_content + "\n" + kChatLine + "\n");
  const std::vector<std::string> lines = split_lines(load_error(path));
  ASSERT_EQ(lines.size(), 4u) << ::testing::PrintToString(lines);
  EXPECT_EQ(lines[0].rfind(path + ":2: invalid JSON: ", 0), 0u) << lines[0];
  EXPECT_EQ(lines[1],
            path + ":4: message 1 has unknown role 'bot' (expected system, user or assistant)");
  EXPECT_EQ(lines[2], path + ":7: message 1 (user) has empty content");
  EXPECT_EQ(lines[3], path + ": 3 bad lines out of 7; nothing was trained");

  // auto skips a first line that is not JSON to find the format; the loader reports the line.
  const std::string pc = R"({"prompt": "a", "completion": "b"})";
  const std::string pc_path =
      dir.write("pc.jsonl", "not json\n" + pc + "\n" + R"({"prompt": "a"})" + "\n");
  const std::vector<std::string> pc_lines = split_lines(load_error(pc_path));
  ASSERT_EQ(pc_lines.size(), 3u) << ::testing::PrintToString(pc_lines);
  EXPECT_EQ(pc_lines[0].rfind(pc_path + ":1: invalid JSON: ", 0), 0u) << pc_lines[0];
  EXPECT_EQ(pc_lines[1], pc_path + ":3: missing \"completion\"");
  EXPECT_EQ(pc_lines[2], pc_path + ": 2 bad lines out of 3; nothing was trained");
}

TEST(RecordErrors, ListsTheFirstTwentyAndCountsTheRest) {
  const TempDir dir;
  const std::string no_answer = R"({"messages": [{"role": "user", "content": "q"}]})";
  const std::string path = dir.write("many.jsonl", kChatLine + "\n" + repeat_lines(no_answer, 25));
  const std::vector<std::string> lines = split_lines(load_error(path));
  ASSERT_EQ(lines.size(), 22u) << ::testing::PrintToString(lines);
  for (int i = 0; i < 20; ++i) {  // bad lines 2..21 in order
    EXPECT_EQ(lines[i], fmt::format("{}:{}: example has no assistant message", path, i + 2));
  }
  EXPECT_EQ(lines[20], "... and 5 more problems");
  EXPECT_EQ(lines[21], path + ": 25 bad lines out of 26; nothing was trained");
}

TEST(ChatTemplates, PlainAndChatmlWithDefaultSystem) {
  const TempDir dir;
  const std::string path = dir.write("chat.jsonl", kChatLine + "\n");
  DataOptions plain = byte_options();
  plain.chat_template = "plain";
  const auto rendered = load_dataset(path, plain, ByteTokenizer(), nullptr);
  ASSERT_EQ(rendered.size(), 1u);
  // The contents as they are, EOS after the answer; the answer and its EOS are trained.
  EXPECT_EQ(rendered[0].tokens, concat({ids("hi"), ids("yo"), {ByteTokenizer::kEndOfText}}));
  EXPECT_EQ(rendered[0].loss_mask, (std::vector<uint8_t>{0, 0, 1, 1, 1}));

  DataOptions qwen = byte_options();
  qwen.chatml_default_system = true;  // Qwen2-Instruct's template adds a system message
  const auto with_system = load_dataset(path, qwen, ByteTokenizer(), nullptr);
  const std::vector<int32_t> system = concat({{ByteTokenizer::kImStart},
                                              ids("system\nYou are a helpful assistant."),
                                              {ByteTokenizer::kImEnd},
                                              ids("\n")});
  const auto without_system = load_dataset(path, byte_options(), ByteTokenizer(), nullptr);
  EXPECT_EQ(with_system[0].tokens, concat({system, without_system[0].tokens}));
  std::vector<uint8_t> mask(system.size(), 0);
  mask.insert(mask.end(), without_system[0].loss_mask.begin(), without_system[0].loss_mask.end());
  EXPECT_EQ(with_system[0].loss_mask, mask);
}

TEST(ChatTemplates, RefusalsNameFileAndLine) {
  const TempDir dir;
  // The byte tokenizer has no <|begin_of_text|>.
  const std::string path = dir.write("chat.jsonl", kChatLine + "\n");
  DataOptions llama3 = byte_options();
  llama3.chat_template = "llama3";
  std::string error = load_error(path, llama3);
  EXPECT_NE(error.find(path + ":1: "), std::string::npos) << error;
  EXPECT_NE(error.find("<|begin_of_text|>"), std::string::npos) << error;

  // llama2 needs user/assistant turns alternating.
  const std::string twice =
      dir.write("twice.jsonl",
                kChatLine + "\n" +
                    R"({"messages": [{"role": "user", "content": "a"}, )"
                    R"({"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]})"
                    "\n");
  DataOptions llama2 = byte_options();
  llama2.chat_template = "llama2";
  llama2.format = "chat";
  error = load_error(twice, llama2);
  EXPECT_NE(error.find(twice + ":1: "), std::string::npos) << error;  // no <s> either
  DataOptions unknown = byte_options();
  unknown.chat_template = "vicuna";
  EXPECT_NE(load_error(path, unknown).find("data.chat_template"), std::string::npos);
  DataOptions bad_train_on = byte_options();
  bad_train_on.train_on = "prompt";
  EXPECT_NE(load_error(path, bad_train_on).find("data.train_on is 'prompt'"), std::string::npos);
}

TEST(ChatFormat, TrainOnAllTrainsEveryTokenAndRefusesWeightZero) {
  const TempDir dir;
  const std::string path = dir.write("chat.jsonl", kChatLine + "\n");
  DataOptions all = byte_options();
  all.train_on = "all";
  const auto sequences = load_dataset(path, all, ByteTokenizer(), nullptr);
  std::vector<uint8_t> expected(sequences[0].tokens.size(), 1);
  expected[0] = 0;
  EXPECT_EQ(sequences[0].loss_mask, expected);

  const std::string weighted =
      dir.write("weighted.jsonl",
                kChatLine + "\n" +
                    R"({"messages": [{"role": "user", "content": "a"}, )"
                    R"({"role": "assistant", "content": "b", "weight": 0}, )"
                    R"({"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]})");
  const std::string error = load_error(weighted, all);
  EXPECT_NE(error.find(weighted + ":2: message 2 has weight 0"), std::string::npos) << error;
  EXPECT_NE(error.find("data.train_on"), std::string::npos) << error;
}

TEST(DataReport, WarnsBelowTenExamplesAndPlansTokens) {
  const TempDir dir;
  DatasetReport few, enough;
  load_dataset(dir.write("few.jsonl", repeat_lines(kChatLine, 3)), byte_options(), ByteTokenizer(),
               &few);
  ASSERT_EQ(few.warnings.size(), 1u);
  EXPECT_EQ(few.warnings[0], "only 3 examples: at least 10 are recommended");
  EXPECT_NE(format_report(few).find("\n  warning: only 3 examples"), std::string::npos);
  load_dataset(dir.write("enough.jsonl", repeat_lines(kChatLine, 10)), byte_options(),
               ByteTokenizer(), &enough);
  EXPECT_TRUE(enough.warnings.empty());
  EXPECT_EQ(format_report(enough).find("warning"), std::string::npos);

  // "yo" + <|im_end|> per example.
  EXPECT_EQ(enough.trained_tokens, 30);
  EXPECT_EQ(format_token_plan(enough, 3),
            "30 trained tokens per epoch x 3 epochs = 90 tokens to train");
  EXPECT_EQ(format_token_plan(enough, 0.5),
            "30 trained tokens per epoch x 0.5 epochs = 15 tokens to train");
}

std::vector<Sequence> numbered(int count) {
  std::vector<Sequence> sequences;
  for (int i = 0; i < count; ++i) sequences.push_back({{i, 1000 + i, 2000}, {0, 1, i % 2 == 0}});
  return sequences;
}

TEST(ValidSplit, DeterministicBySeedAndDisjoint) {
  auto split = [](uint64_t seed, double fraction, DatasetReport* train_report = nullptr,
                  DatasetReport* valid_report = nullptr) {
    std::vector<Sequence> train = numbered(40), valid;
    DatasetReport train_r, valid_r;
    train_r.path = "train.jsonl";
    train_r.format = "chat";
    split_validation(train, fraction, seed, valid, train_r, valid_r);
    if (train_report) *train_report = train_r;
    if (valid_report) *valid_report = valid_r;
    return std::pair{train, valid};
  };
  DatasetReport train_report, valid_report;
  const auto [train, valid] = split(7, 0.1, &train_report, &valid_report);
  ASSERT_EQ(valid.size(), 4u);
  ASSERT_EQ(train.size(), 36u);
  std::set<int32_t> seen;
  for (const auto& part : {train, valid})
    for (const Sequence& sequence : part) EXPECT_TRUE(seen.insert(sequence.tokens[0]).second);
  EXPECT_EQ(seen.size(), 40u);
  // The training part keeps file order.
  EXPECT_TRUE(std::is_sorted(train.begin(), train.end(), [](const Sequence& a, const Sequence& b) {
    return a.tokens[0] < b.tokens[0];
  }));
  EXPECT_EQ(train_report.sequences, 36);
  EXPECT_EQ(valid_report.sequences, 4);
  int64_t trained = 0;
  for (const Sequence& sequence : valid) trained += 1 + sequence.loss_mask[2];
  EXPECT_EQ(valid_report.trained_tokens, trained);
  EXPECT_EQ(train_report.trained_tokens + valid_report.trained_tokens, 40 + 20);
  EXPECT_NE(valid_report.path.find("valid_split 0.1"), std::string::npos) << valid_report.path;

  // Same seed, same split; another seed, another split (40 choose 4 makes a tie unlikely: pinned).
  auto held_out = [](const std::vector<Sequence>& part) {
    std::vector<int32_t> first;
    for (const Sequence& sequence : part) first.push_back(sequence.tokens[0]);
    return first;
  };
  EXPECT_EQ(held_out(split(7, 0.1).second), held_out(valid));
  EXPECT_NE(held_out(split(8, 0.1).second), held_out(valid));
  EXPECT_EQ(split(7, 0.25).second.size(), 10u);

  for (double bad : {0.0, 1.0, -0.5, 0.01, 0.99}) {  // 0.01 and 0.99 leave a part empty
    std::vector<Sequence> sequences = numbered(40), out;
    DatasetReport a, b;
    try {
      split_validation(sequences, bad, 7, out, a, b);
      ADD_FAILURE() << "valid_split " << bad << " was accepted";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("data.valid_split"), std::string::npos);
    }
  }
}

// After a split each part counts its own examples: lengths before truncation and how many of
// them were truncated; the dropped ones stay with the training part (they are in neither).
TEST(ValidSplit, ReportsCountTheirOwnTruncatedExamples) {
  const TempDir dir;
  // Assistant-only examples render as content + 13 tokens; seq_len 20 keeps 21.
  std::string lines;
  for (int i = 0; i < 20; ++i) {
    const int content = i % 4 == 0 ? 30 : (i == 5 ? 60 : 4);  // 5 truncated (43 tokens), 1 (73)
    lines += R"({"messages": [{"role": "assistant", "content": ")" + std::string(content, 'x') +
             "\"}]}\n";
  }
  DataOptions options = byte_options();
  options.seq_len = 20;
  DatasetReport train_report;
  std::vector<Sequence> train =
      load_dataset(dir.write("t.jsonl", lines), options, ByteTokenizer(), &train_report);
  ASSERT_EQ(train_report.truncated, 6);
  ASSERT_EQ(train_report.max_tokens, 73);
  std::vector<Sequence> valid;
  DatasetReport valid_report;
  split_validation(train, 0.25, 3, valid, train_report, valid_report);
  int64_t truncated_in_valid = 0, longest_in_valid = 0;
  for (const Sequence& sequence : valid) {
    truncated_in_valid += sequence.truncated;
    longest_in_valid = std::max(longest_in_valid, sequence.example_tokens);
  }
  ASSERT_GT(truncated_in_valid, 0);  // seed 3 holds out some truncated examples
  EXPECT_EQ(valid_report.truncated, truncated_in_valid);
  EXPECT_EQ(train_report.truncated, 6 - truncated_in_valid);
  EXPECT_EQ(valid_report.max_tokens, longest_in_valid);
  EXPECT_GT(longest_in_valid, 21);  // the length before truncation, not the sequence's
  EXPECT_EQ(std::max(train_report.max_tokens, valid_report.max_tokens), 73);
  EXPECT_EQ(train_report.examples + valid_report.examples, 20);
  EXPECT_DOUBLE_EQ(train_report.mean_tokens * train_report.examples +
                       valid_report.mean_tokens * valid_report.examples,
                   5 * 43 + 73 + 14 * 17);
  EXPECT_EQ(valid_report.dropped, 0);
}

// With data.too_long = drop, the dropped examples stay on the training report.
TEST(ValidSplit, DroppedExamplesStayOnTheTrainingReport) {
  const TempDir dir;
  std::string lines;
  for (int i = 0; i < 10; ++i) {
    const int content = i < 2 ? 30 : 4;
    lines += R"({"messages": [{"role": "assistant", "content": ")" + std::string(content, 'x') +
             "\"}]}\n";
  }
  DataOptions options = byte_options();
  options.seq_len = 20;
  options.too_long = "drop";
  DatasetReport train_report, valid_report;
  std::vector<Sequence> train =
      load_dataset(dir.write("d.jsonl", lines), options, ByteTokenizer(), &train_report);
  std::vector<Sequence> valid;
  split_validation(train, 0.25, 3, valid, train_report, valid_report);
  EXPECT_EQ(train_report.dropped, 2);
  EXPECT_EQ(valid_report.dropped, 0);
  EXPECT_EQ(train_report.truncated + valid_report.truncated, 0);
}

// A tokenizer that refuses some text (as HfTokenizer refuses invalid UTF-8): the error names the
// data file and the line of the first invalid byte.
class Utf8OnlyTokenizer : public ByteTokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text) const override {
    if (unicode_invalid(text)) fail("tokenizer test.json: the text is not valid UTF-8");
    return ByteTokenizer::encode(text);
  }
  // Byte 0xFF, and (to reach a JSON record, which must be valid UTF-8) "ÿ".
  static bool unicode_invalid(std::string_view text) {
    return text.find('\xFF') != std::string_view::npos ||
           text.find("\xC3\xBF") != std::string_view::npos;
  }
};

TEST(TextFormat, EncodeErrorsNameTheFileAndLine) {
  const TempDir dir;
  const std::string path = dir.write("notes.txt", "line one\nline two\nbad \xFF here\n");
  DataOptions options = byte_options();
  std::string error;
  try {
    load_dataset(path, options, Utf8OnlyTokenizer(), nullptr);
  } catch (const Error& e) {
    error = e.what();
  }
  EXPECT_NE(error.find(path + ":3: tokenizer test.json: the text is not valid UTF-8"),
            std::string::npos)
      << error;
  const std::string pc = dir.write("pc.jsonl", R"({"prompt": "a", "completion": "b"})"
                                               "\n"
                                               R"({"prompt": "a", "completion": "\u00ff"})"
                                               "\n");
  error.clear();
  try {
    load_dataset(pc, options, Utf8OnlyTokenizer(), nullptr);
  } catch (const Error& e) {
    error = e.what();
  }
  EXPECT_NE(error.find(pc + ":2: tokenizer test.json"), std::string::npos) << error;
}

TEST(DataFormat, JsonFileReadAsTextGetsAWarning) {
  const TempDir dir;
  DataOptions options = byte_options();
  DatasetReport report;
  load_dataset(dir.write("records.json", "\xEF\xBB\xBF  \n" + kChatLine + "\n"), options,
               ByteTokenizer(), &report);
  EXPECT_EQ(report.format, "text");
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_NE(report.warnings[0].find("a .json file is read as plain text"), std::string::npos);
  EXPECT_NE(format_report(report).find("warning: a .json file"), std::string::npos);
  // Not for plain prose in a .json file, nor when the format is set.
  load_dataset(dir.write("prose.json", "just words\n"), options, ByteTokenizer(), &report);
  EXPECT_TRUE(report.warnings.empty());
  options.format = "text";
  load_dataset(dir.write("set.json", kChatLine + "\n"), options, ByteTokenizer(), &report);
  EXPECT_TRUE(report.warnings.empty());
}

}  // namespace
}  // namespace ft::data
