#include "runtime/data/dataset_records.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace ft::data {

namespace {

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

nlohmann::json parse_object(std::string_view line, const std::string& where) {
  nlohmann::json record;
  try {
    record = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& error) {  // parse_error, or out_of_range for 1e400
    fail("{}: invalid JSON: {}", where, error.what());
  }
  if (!record.is_object()) fail("{}: expected a JSON object, got {}", where, record.type_name());
  return record;
}

}  // namespace

bool is_blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

void skip_bom(std::string_view& text) {
  if (text.substr(0, kUtf8Bom.size()) == kUtf8Bom) text.remove_prefix(kUtf8Bom.size());
}

std::vector<ChatMessage> parse_chat_record(std::string_view line, const std::string& where) {
  const nlohmann::json example = parse_object(line, where);
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
    if (is_blank(message.content)) {
      fail("{}: message {} ({}) has empty content", where, number, message.role);
    }

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

PromptCompletion parse_prompt_completion_record(std::string_view line, const std::string& where) {
  const nlohmann::json example = parse_object(line, where);
  PromptCompletion result;
  for (auto [key, value] :
       {std::pair{"prompt", &result.prompt}, std::pair{"completion", &result.completion}}) {
    const auto it = example.find(key);
    if (it == example.end()) fail("{}: missing \"{}\"", where, key);
    if (!it->is_string()) fail("{}: \"{}\" is {} (expected a string)", where, key, it->type_name());
    *value = it->get<std::string>();
  }
  if (is_blank(result.completion)) fail("{}: empty \"completion\"", where);
  return result;
}

std::string detect_jsonl_format(const std::string& path, std::string_view contents) {
  std::string format;
  for_each_record(contents, [&](std::string_view line, int64_t line_number) {
    const std::string where = fmt::format("{}:{}", path, line_number);
    nlohmann::json record;
    try {
      record = parse_object(line, where);
    } catch (const Error&) {
      return true;  // not a JSON object: the loader reports this line with the others
    }
    if (record.contains("messages")) {
      format = "chat";
    } else if (record.contains("prompt") && record.contains("completion")) {
      format = "prompt_completion";
    } else {
      fail(
          "{}: the first record has neither \"messages\" (chat) nor \"prompt\" and "
          "\"completion\" (prompt_completion); set data.format to say how to read the file",
          where);
    }
    return false;  // the first JSON object decides
  });
  // No JSON object at all: read as chat, which reports every line (or no sequences when empty).
  return format.empty() ? "chat" : format;
}

}  // namespace ft::data
