#include "runtime/data/dataset.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/error.h"

namespace ft::data {

namespace {

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

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

void skip_bom(std::string_view& text) {
  if (text.substr(0, kUtf8Bom.size()) == kUtf8Bom) text.remove_prefix(kUtf8Bom.size());
}

bool is_blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
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

// The parsed messages of one chat line; errors name "path:line".
std::vector<ChatMessage> parse_chat_line(std::string_view line, const std::string& where) {
  nlohmann::json example;
  try {
    example = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& error) {  // parse_error, or out_of_range for 1e400
    fail("{}: invalid JSON: {}", where, error.what());
  }
  if (!example.is_object()) fail("{}: expected a JSON object, got {}", where, example.type_name());
  const auto messages_it = example.find("messages");
  if (messages_it == example.end()) fail("{}: missing \"messages\"", where);
  if (!messages_it->is_array()) {
    fail("{}: \"messages\" is {} (expected an array)", where, messages_it->type_name());
  }

  std::vector<ChatMessage> messages;
  bool has_assistant = false;
  int number = 0;
  for (const nlohmann::json& entry : *messages_it) {
    ++number;
    if (!entry.is_object()) fail("{}: message {} is not an object", where, number);
    const auto role_it = entry.find("role");
    if (role_it == entry.end() || !role_it->is_string()) {
      fail("{}: message {} has no \"role\" string", where, number);
    }
    ChatMessage message;
    message.role = role_it->get<std::string>();
    if (message.role != "system" && message.role != "user" && message.role != "assistant") {
      fail("{}: message {} has unknown role '{}' (expected system, user or assistant)", where,
           number, message.role);
    }
    const auto content_it = entry.find("content");
    if (content_it == entry.end() || !content_it->is_string()) {
      fail("{}: message {} has no \"content\" string", where, number);
    }
    message.content = content_it->get<std::string>();

    const bool is_assistant = message.role == "assistant";
    has_assistant = has_assistant || is_assistant;
    message.trained = is_assistant;
    const auto weight_it = entry.find("weight");
    if (weight_it != entry.end()) {
      if (!is_assistant) {
        fail("{}: message {} ({}) has a \"weight\"; only assistant messages take one", where,
             number, message.role);
      }
      const bool is_zero = weight_it->is_number() && weight_it->get<double>() == 0.0;
      const bool is_one = weight_it->is_number() && weight_it->get<double>() == 1.0;
      if (!is_zero && !is_one) {
        fail("{}: message {} has weight {} (expected 0 or 1)", where, number, weight_it->dump());
      }
      message.trained = is_one;
    }
    messages.push_back(std::move(message));
  }
  if (!has_assistant) fail("{}: example has no assistant message", where);
  return messages;
}

// Applies the too_long policy; returns false when the sequence is to be dropped.
bool fit_to_length(Sequence& sequence, int seq_len, bool truncate, DatasetReport& report) {
  const size_t max_tokens = static_cast<size_t>(seq_len) + 1;
  if (sequence.tokens.size() <= max_tokens) return true;
  if (!truncate) {
    ++report.dropped;
    return false;
  }
  sequence.tokens.resize(max_tokens);
  sequence.loss_mask.resize(max_tokens);
  ++report.truncated;
  return true;
}

std::vector<Sequence> load_chat(const std::string& path, const std::string& contents,
                                const Tokenizer& tokenizer, int seq_len, bool truncate,
                                DatasetReport& report) {
  ReportBuilder builder(report);
  std::vector<Sequence> sequences;
  size_t begin = 0;
  int64_t line_number = 0;
  while (begin < contents.size()) {
    size_t end = contents.find('\n', begin);
    if (end == std::string::npos) end = contents.size();
    std::string_view line(contents.data() + begin, end - begin);
    begin = end + 1;
    ++line_number;
    if (line_number == 1) skip_bom(line);
    if (is_blank(line)) continue;

    const std::string where = fmt::format("{}:{}", path, line_number);
    Sequence sequence = render_chatml(parse_chat_line(line, where), tokenizer);
    builder.add_example(static_cast<int64_t>(sequence.tokens.size()));
    if (!fit_to_length(sequence, seq_len, truncate, report)) continue;
    builder.add_sequence(sequence);
    sequences.push_back(std::move(sequence));
  }
  builder.finish();
  return sequences;
}

// The file is one stream: encode(contents) + eos, cut into windows of seq_len + 1 tokens that
// advance by seq_len, so every token but the first is a target exactly once.
std::vector<Sequence> load_text(std::string_view contents, const Tokenizer& tokenizer, int seq_len,
                                DatasetReport& report) {
  skip_bom(contents);
  std::vector<int32_t> stream = tokenizer.encode(contents);
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

}  // namespace

Sequence render_chatml(const std::vector<ChatMessage>& messages, const Tokenizer& tokenizer) {
  const std::optional<int32_t> im_start = tokenizer.special_token("<|im_start|>");
  const std::optional<int32_t> im_end = tokenizer.special_token("<|im_end|>");
  if (!im_start || !im_end) {
    fail(
        "ChatML rendering needs the special tokens <|im_start|> and <|im_end|>; the tokenizer "
        "lacks {}",
        !im_start ? "<|im_start|>" : "<|im_end|>");
  }
  const std::vector<int32_t> newline = tokenizer.encode("\n");
  Sequence sequence;
  auto append = [&sequence](const std::vector<int32_t>& ids, uint8_t mask) {
    sequence.tokens.insert(sequence.tokens.end(), ids.begin(), ids.end());
    sequence.loss_mask.insert(sequence.loss_mask.end(), ids.size(), mask);
  };
  for (const ChatMessage& message : messages) {
    const uint8_t mask = message.trained ? 1 : 0;
    append({*im_start}, 0);
    append(tokenizer.encode(message.role + "\n"), 0);
    append(tokenizer.encode(message.content), mask);
    append({*im_end}, mask);
    append(newline, 0);
  }
  if (!sequence.loss_mask.empty()) sequence.loss_mask[0] = 0;  // nothing predicts token 0
  return sequence;
}

std::string resolve_format(const std::string& format, const std::string& path) {
  if (format == "chat" || format == "text") return format;
  if (format != "auto") {
    fail("dataset '{}': format is '{}' (expected auto, chat or text)", path, format);
  }
  std::string extension = std::filesystem::path(path).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return extension == ".jsonl" ? "chat" : "text";
}

std::vector<Sequence> load_sequences(const std::string& path, const std::string& format,
                                     const Tokenizer& tokenizer, int seq_len,
                                     const std::string& too_long, DatasetReport* report) {
  if (seq_len < 1) fail("dataset '{}': seq_len is {} (expected at least 1)", path, seq_len);
  if (too_long != "truncate" && too_long != "drop") {
    fail("dataset '{}': too_long is '{}' (expected truncate or drop)", path, too_long);
  }
  const std::string resolved = resolve_format(format, path);

  const std::string contents = read_file(path);
  DatasetReport local_report;
  local_report.path = path;
  local_report.format = resolved;
  std::vector<Sequence> sequences =
      resolved == "chat"
          ? load_chat(path, contents, tokenizer, seq_len, too_long == "truncate", local_report)
          : load_text(contents, tokenizer, seq_len, local_report);
  if (sequences.empty()) {
    fail("dataset '{}' ({}) has no sequences: {} examples, {} dropped as longer than {} tokens",
         path, resolved, local_report.examples, local_report.dropped, seq_len + 1);
  }
  if (local_report.trained_tokens == 0) {
    fail(
        "dataset '{}' ({}) has no trained tokens: every assistant answer has weight 0 or was cut "
        "away by truncation to {} tokens ({} sequences)",
        path, resolved, seq_len + 1, local_report.sequences);
  }
  if (report != nullptr) *report = std::move(local_report);
  return sequences;
}

std::string format_report(const DatasetReport& report) {
  std::string text = fmt::format(
      "{} ({}): {} examples -> {} sequences, {} trained tokens\n"
      "  tokens per example: min {} / mean {:.1f} / max {}; {} truncated, {} dropped",
      report.path, report.format, report.examples, report.sequences, report.trained_tokens,
      report.min_tokens, report.mean_tokens, report.max_tokens, report.truncated, report.dropped);
  if (report.untrained_sequences > 0) {
    text += fmt::format(
        "; {} sequences have no trained tokens (truncated before the assistant's "
        "answer, or weight 0)",
        report.untrained_sequences);
  }
  return text;
}

}  // namespace ft::data
