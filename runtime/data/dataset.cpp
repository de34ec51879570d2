#include "runtime/data/dataset.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/data/batch_loader.h"
#include "runtime/data/chat_template.h"
#include "runtime/data/dataset_records.h"
#include "runtime/data/unicode_text.h"
#include "runtime/error.h"

namespace ft::data {

namespace {

// A JSONL file's error lists this many bad lines in full and counts the rest.
constexpr int64_t kBadLinesListed = 20;

std::string read_file(const std::string& path) {
  // A directory or a device (/dev/zero) would fail late or never end; a missing file falls
  // through to the open error below.
  std::error_code error;
  const std::filesystem::file_status status = std::filesystem::status(path, error);
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status)) {
    fail("{}: not a regular file", path);
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) fail("cannot open dataset file '{}': {}", path, std::strerror(errno));
  std::ostringstream contents;
  contents << file.rdbuf();
  if (file.bad()) fail("cannot read dataset file '{}'", path);
  return contents.str();
}

bool has_jsonl_extension(const std::string& path) {
  std::string extension = std::filesystem::path(path).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return extension == ".jsonl";
}

// Collects per-example token counts and what happened to over-long examples.
class ReportBuilder {
 public:
  explicit ReportBuilder(DatasetReport& report) : report_(report) {}

  void add_example(int64_t tokens) {
    if (report_.examples == 0 || tokens < report_.min_tokens) report_.min_tokens = tokens;
    report_.max_tokens = std::max(report_.max_tokens, tokens);
    total_tokens_ += tokens;
    ++report_.examples;
  }
  void add_sequence(const Sequence& sequence) {
    ++report_.sequences;
    int64_t trained = 0;
    for (uint8_t m : sequence.loss_mask) trained += m;
    report_.trained_tokens += trained;
    if (trained == 0) ++report_.untrained_sequences;
  }
  void finish() {
    if (report_.examples > 0) {
      report_.mean_tokens = static_cast<double>(total_tokens_) / report_.examples;
    }
  }

 private:
  DatasetReport& report_;
  int64_t total_tokens_ = 0;
};

// Applies the too_long policy; returns false when the sequence is to be dropped.
bool fit_to_length(Sequence& sequence, int seq_len, bool truncate, DatasetReport& report) {
  const size_t max_tokens = static_cast<size_t>(seq_len) + 1;
  sequence.example_tokens = static_cast<int64_t>(sequence.tokens.size());
  if (sequence.tokens.size() <= max_tokens) return true;
  if (!truncate) {
    ++report.dropped;
    return false;
  }
  sequence.tokens.resize(max_tokens);
  sequence.loss_mask.resize(max_tokens);
  sequence.truncated = true;
  ++report.truncated;
  return true;
}

void train_on_everything(Sequence& sequence) {
  std::fill(sequence.loss_mask.begin(), sequence.loss_mask.end(), 1);
  if (!sequence.loss_mask.empty()) sequence.loss_mask[0] = 0;  // nothing predicts token 0
}

Sequence render_chat_example(const std::vector<ChatMessage>& messages, const DataOptions& options,
                             const Tokenizer& tokenizer, const std::string& where) {
  if (options.train_on == "all") {
    for (size_t i = 0; i < messages.size(); ++i) {
      if (messages[i].role == "assistant" && !messages[i].trained) {
        fail(
            "{}: message {} has weight 0, but data.train_on = all trains every token; remove the "
            "weight or use data.train_on = assistant",
            where, i + 1);
      }
    }
  }
  Sequence sequence;
  ChatTemplateOptions template_options;
  template_options.chatml_default_system = options.chatml_default_system;
  try {
    sequence = tokenize_chat(options.chat_template, messages, tokenizer, template_options);
  } catch (const Error& error) {  // a conversation the template refuses, a missing token
    fail("{}: {}", where, error.what());
  }
  if (options.train_on == "all") train_on_everything(sequence);
  return sequence;
}

// One encode call for prompt + completion: merges across the seam and a Metaspace "▁" come out
// as in Hugging Face's tokenizer(prompt + completion). Tokens overlapping the completion's bytes
// are trained (a token straddling the seam too).
Sequence render_prompt_completion(const PromptCompletion& example, const DataOptions& options,
                                  const Tokenizer& tokenizer, const std::string& where) {
  EncodedText encoded;
  try {
    encoded = tokenizer.encode_with_offsets(example.prompt + example.completion);
  } catch (const Error& error) {
    fail("{}: {}", where, error.what());
  }
  Sequence sequence;
  sequence.tokens = std::move(encoded.ids);
  const size_t completion_start = example.prompt.size();
  for (const auto& [begin, end] : encoded.offsets) {
    const bool completion = begin == end ? begin >= completion_start : end > completion_start;
    sequence.loss_mask.push_back(options.train_on == "all" || completion ? 1 : 0);
  }
  sequence.tokens.push_back(tokenizer.eos_id());
  sequence.loss_mask.push_back(1);
  sequence.loss_mask[0] = 0;
  return sequence;
}

// The problems of a JSONL file, one per bad line, gathered so that one run reports them all (as
// OpenAI's data checks do) instead of stopping at the first.
class BadLines {
 public:
  explicit BadLines(const std::string& path) : path_(path) {}

  void add(const std::string& problem) {
    if (static_cast<int64_t>(listed_.size()) < kBadLinesListed) listed_.push_back(problem);
    ++count_;
  }
  // Throws one ft::Error listing the first kBadLinesListed problems and the count, if any.
  void throw_if_any(int64_t lines) const {
    if (count_ == 0) return;
    std::string message;
    for (const std::string& problem : listed_) message += problem + "\n";
    const int64_t unlisted = count_ - static_cast<int64_t>(listed_.size());
    if (unlisted > 0) {
      message += fmt::format("... and {} more problem{}\n", unlisted, unlisted == 1 ? "" : "s");
    }
    message += fmt::format("{}: {} bad line{} out of {}; nothing was trained", path_, count_,
                           count_ == 1 ? "" : "s", lines);
    throw Error(message);
  }

 private:
  std::string path_;
  std::vector<std::string> listed_;
  int64_t count_ = 0;
};

std::vector<Sequence> load_jsonl(const std::string& path, const std::string& contents,
                                 const std::string& format, const DataOptions& options,
                                 const Tokenizer& tokenizer, DatasetReport& report) {
  ReportBuilder builder(report);
  BadLines bad_lines(path);
  int64_t lines = 0;
  std::vector<Sequence> sequences;
  const bool truncate = options.too_long == "truncate";
  for_each_record(contents, [&](std::string_view line, int64_t line_number) {
    ++lines;
    const std::string where = fmt::format("{}:{}", path, line_number);
    Sequence sequence;
    try {
      sequence =
          format == "chat"
              ? render_chat_example(parse_chat_record(line, where), options, tokenizer, where)
              : render_prompt_completion(parse_prompt_completion_record(line, where), options,
                                         tokenizer, where);
    } catch (const Error& error) {  // "path:line: problem"; the next lines are still checked
      bad_lines.add(error.what());
      return true;
    }
    builder.add_example(static_cast<int64_t>(sequence.tokens.size()));
    if (fit_to_length(sequence, options.seq_len, truncate, report)) {
      builder.add_sequence(sequence);
      sequences.push_back(std::move(sequence));
    }
    return true;
  });
  bad_lines.throw_if_any(lines);
  builder.finish();
  return sequences;
}

// The file is one stream: encode(contents) + eos, cut into windows of seq_len + 1 tokens that
// advance by seq_len, so every token but the first is a target exactly once.
std::vector<Sequence> load_text(const std::string& path, std::string_view contents,
                                const Tokenizer& tokenizer, int seq_len, DatasetReport& report) {
  skip_bom(contents);
  std::vector<int32_t> stream;
  try {
    stream = tokenizer.encode(contents);
  } catch (const Error& error) {  // e.g. invalid UTF-8 for a Hugging Face tokenizer
    const size_t bad = unicode::find_invalid_utf8(contents);
    if (bad == std::string_view::npos) fail("{}: {}", path, error.what());
    const size_t line = 1 + std::count(contents.begin(), contents.begin() + bad, '\n');
    fail("{}:{}: {}", path, line, error.what());
  }
  stream.push_back(tokenizer.eos_id());
  ReportBuilder builder(report);
  builder.add_example(static_cast<int64_t>(stream.size()));

  std::vector<Sequence> sequences;
  const size_t window = static_cast<size_t>(seq_len) + 1;
  for (size_t start = 0; start + 1 < stream.size(); start += seq_len) {
    const size_t end = std::min(start + window, stream.size());
    Sequence sequence;
    sequence.tokens.assign(stream.begin() + start, stream.begin() + end);
    sequence.loss_mask.assign(sequence.tokens.size(), 1);
    sequence.loss_mask[0] = 0;
    builder.add_sequence(sequence);
    sequences.push_back(std::move(sequence));
    if (end == stream.size()) break;
  }
  builder.finish();
  return sequences;
}

void check_options(const std::string& path, const DataOptions& options) {
  if (options.seq_len < 1) {
    fail("dataset '{}': data.seq_len is {} (expected at least 1)", path, options.seq_len);
  }
  if (options.too_long != "truncate" && options.too_long != "drop") {
    fail("dataset '{}': data.too_long is '{}' (expected truncate or drop)", path, options.too_long);
  }
  if (options.train_on != "assistant" && options.train_on != "all") {
    fail("dataset '{}': data.train_on is '{}' (expected assistant or all)", path, options.train_on);
  }
  try {
    check_chat_template_name(options.chat_template);
  } catch (const Error& error) {
    fail("dataset '{}': data.chat_template: {}", path, error.what());
  }
}

// The counts of a part of a split from its own sequences: each sequence is one example with its
// length before truncation. The dropped examples were in no part: `keep_dropped` keeps them.
void recount(const std::vector<Sequence>& sequences, DatasetReport& report, bool keep_dropped) {
  const DatasetReport before = report;
  report = DatasetReport{};
  report.path = before.path;
  report.format = before.format;
  report.dropped = keep_dropped ? before.dropped : 0;
  report.warnings = before.warnings;
  ReportBuilder builder(report);
  for (const Sequence& sequence : sequences) {
    builder.add_example(sequence.example_tokens > 0 ? sequence.example_tokens
                                                    : static_cast<int64_t>(sequence.tokens.size()));
    builder.add_sequence(sequence);
    report.truncated += sequence.truncated ? 1 : 0;
  }
  builder.finish();
}

// A .json file that auto reads as text but starts like JSON records.
bool looks_like_json(const std::string& path, std::string_view contents) {
  std::string extension = std::filesystem::path(path).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (extension != ".json") return false;
  skip_bom(contents);
  const size_t first = contents.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && (contents[first] == '{' || contents[first] == '[');
}

}  // namespace

Sequence render_chatml(const std::vector<ChatMessage>& messages, const Tokenizer& tokenizer) {
  ChatTemplateOptions options;
  options.chatml_default_system = false;
  return tokenize_chat("chatml", messages, tokenizer, options);
}

std::string resolve_format(const std::string& format, const std::string& path,
                           std::string_view contents) {
  if (format == "chat" || format == "prompt_completion" || format == "text") return format;
  if (format != "auto") {
    fail("dataset '{}': data.format is '{}' (expected auto, chat, prompt_completion or text)", path,
         format);
  }
  return has_jsonl_extension(path) ? detect_jsonl_format(path, contents) : "text";
}

std::vector<Sequence> load_dataset(const std::string& path, const DataOptions& options,
                                   const Tokenizer& tokenizer, DatasetReport* report) {
  check_options(path, options);
  if (options.format != "auto" && options.format != "chat" &&
      options.format != "prompt_completion" && options.format != "text") {
    resolve_format(options.format, path, "");  // throws naming the value
  }
  const std::string contents = read_file(path);
  const std::string resolved = resolve_format(options.format, path, contents);
  DatasetReport local_report;
  local_report.path = path;
  local_report.format = resolved;
  std::vector<Sequence> sequences =
      resolved == "text" ? load_text(path, contents, tokenizer, options.seq_len, local_report)
                         : load_jsonl(path, contents, resolved, options, tokenizer, local_report);
  if (sequences.empty()) {
    fail("dataset '{}' ({}) has no sequences: {} examples, {} dropped as longer than {} tokens",
         path, resolved, local_report.examples, local_report.dropped, options.seq_len + 1);
  }
  if (local_report.trained_tokens == 0) {
    fail(
        "dataset '{}' ({}) has no trained tokens: every answer has weight 0 or was cut away by "
        "truncation to {} tokens ({} sequences)",
        path, resolved, options.seq_len + 1, local_report.sequences);
  }
  if (resolved == "text" && options.format == "auto" && looks_like_json(path, contents)) {
    local_report.warnings.push_back(
        "a .json file is read as plain text (auto reads records from .jsonl files only): rename "
        "it to .jsonl with one JSON record per line, or set data.format");
  }
  if (resolved != "text" && local_report.examples < kFewExamples) {
    local_report.warnings.push_back(fmt::format("only {} examples: at least {} are recommended",
                                                local_report.examples, kFewExamples));
  }
  if (report != nullptr) *report = std::move(local_report);
  return sequences;
}

std::vector<Sequence> load_sequences(const std::string& path, const std::string& format,
                                     const Tokenizer& tokenizer, int seq_len,
                                     const std::string& too_long, DatasetReport* report) {
  DataOptions options;
  options.format = format;
  options.chatml_default_system = false;
  options.seq_len = seq_len;
  options.too_long = too_long;
  return load_dataset(path, options, tokenizer, report);
}

void split_validation(std::vector<Sequence>& train, double fraction, uint64_t seed,
                      std::vector<Sequence>& valid, DatasetReport& train_report,
                      DatasetReport& valid_report) {
  if (!(fraction > 0.0 && fraction < 1.0)) {
    fail("data.valid_split = {}: expected a fraction between 0 and 1 (exclusive)", fraction);
  }
  const int64_t n = static_cast<int64_t>(train.size());
  const int64_t held_out = static_cast<int64_t>(std::llround(fraction * static_cast<double>(n)));
  if (held_out < 1 || held_out >= n) {
    fail(
        "data.valid_split = {}: holds out {} of the {} training sequences of {}; both the "
        "training and the validation part need at least one",
        fraction, held_out, n, train_report.path);
  }
  // Its own stream (epoch -1 in spirit): the split never equals an epoch's order.
  const std::vector<int64_t> order = epoch_order(n, seed ^ 0x5eed5eed1177ull, 0);
  std::vector<uint8_t> is_valid(train.size(), 0);
  for (int64_t i = 0; i < held_out; ++i) is_valid[order[i]] = 1;
  std::vector<Sequence> kept;
  valid.clear();
  for (size_t i = 0; i < train.size(); ++i) {
    (is_valid[i] ? valid : kept).push_back(std::move(train[i]));
  }
  train = std::move(kept);
  valid_report = DatasetReport{};
  valid_report.format = train_report.format;
  valid_report.path = fmt::format("{} (valid_split {}: {} sequences held out)", train_report.path,
                                  fraction, held_out);
  recount(train, train_report, /*keep_dropped=*/true);
  recount(valid, valid_report, /*keep_dropped=*/false);
}

std::string format_report(const DatasetReport& report) {
  std::string text = fmt::format(
      "{} ({}): {} examples -> {} sequences, {} trained tokens\n"
      "  tokens per example: min {} / mean {:.1f} / max {}; {} truncated, {} dropped",
      report.path, report.format, report.examples, report.sequences, report.trained_tokens,
      report.min_tokens, report.mean_tokens, report.max_tokens, report.truncated, report.dropped);
  if (report.untrained_sequences > 0) {
    text += fmt::format(
        "; {} sequences have no trained tokens (truncated before the answer, or weight 0)",
        report.untrained_sequences);
  }
  for (const std::string& warning : report.warnings) text += "\n  warning: " + warning;
  return text;
}

std::string format_token_plan(const DatasetReport& report, double epochs) {
  return fmt::format("{} trained tokens per epoch x {:.4g} epochs = {:.0f} tokens to train",
                     report.trained_tokens, epochs,
                     static_cast<double>(report.trained_tokens) * epochs);
}

}  // namespace ft::data
