#include "models/generation/prompt_input.h"

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "runtime/data/chat_template.h"
#include "runtime/error.h"

namespace ft {
namespace {

using nlohmann::json;

constexpr size_t kProblemsShown = 20;

std::vector<int32_t> encode_chat(const std::vector<data::ChatMessage>& messages,
                                 const PromptEncoding& encoding, const data::Tokenizer& tokenizer) {
  data::ChatTemplateOptions options;
  options.add_generation_prompt = true;
  options.chatml_default_system = encoding.chatml_default_system;
  const std::string name = encoding.chat_template.empty() ? "plain" : encoding.chat_template;
  return data::tokenize_chat(name, messages, tokenizer, options).tokens;
}

// One JSONL record -> a prompt; throws ft::Error with the problem (the caller adds the line).
PromptInput parse_record(const std::string& line, const PromptEncoding& encoding,
                         const data::Tokenizer& tokenizer) {
  const json record = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (record.is_discarded() || !record.is_object()) fail("not a JSON object");
  PromptInput prompt;
  if (record.contains("messages")) {
    const json& list = record["messages"];
    if (!list.is_array() || list.empty()) fail("\"messages\" must be a non-empty list");
    std::vector<data::ChatMessage> messages;
    for (size_t i = 0; i < list.size(); ++i) {
      const json& m = list[i];
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string() ||
          !m.contains("content") || !m["content"].is_string())
        fail("message {} needs a string \"role\" and a string \"content\"", i + 1);
      const std::string role = m["role"].get<std::string>();
      if (role != "system" && role != "user" && role != "assistant")
        fail("message {} has role '{}' (expected system, user or assistant)", i + 1, role);
      messages.push_back({role, m["content"].get<std::string>(), false});
    }
    if (messages.back().role == "assistant") {
      prompt.reference = messages.back().content;
      messages.pop_back();
    }
    if (messages.empty())
      fail("the conversation has nothing before its assistant answer to prompt with");
    prompt.text = messages.back().content;
    prompt.ids = encode_chat(messages, encoding, tokenizer);
  } else if (record.contains("prompt")) {
    if (!record["prompt"].is_string()) fail("\"prompt\" must be a string");
    prompt.text = record["prompt"].get<std::string>();
    if (record.contains("completion") && record["completion"].is_string())
      prompt.reference = record["completion"].get<std::string>();
    prompt.ids = tokenizer.encode(prompt.text);
  } else {
    fail("expected {{\"messages\": [...]}} or {{\"prompt\": ...}}");
  }
  if (prompt.ids.empty()) fail("the prompt encodes to no tokens");
  return prompt;
}

}  // namespace

PromptInput encode_text_prompt(const std::string& text, const PromptEncoding& encoding,
                               const data::Tokenizer& tokenizer) {
  PromptInput prompt;
  prompt.text = text;
  if (encoding.chat_template.empty()) {
    prompt.ids = tokenizer.encode(text);
  } else {
    std::vector<data::ChatMessage> messages;
    if (!encoding.system.empty()) messages.push_back({"system", encoding.system, false});
    messages.push_back({"user", text, false});
    prompt.ids = encode_chat(messages, encoding, tokenizer);
  }
  if (prompt.ids.empty()) fail("the prompt '{}' encodes to no tokens", text);
  return prompt;
}

std::vector<PromptInput> read_prompt_file(const std::string& path, const PromptEncoding& encoding,
                                          const data::Tokenizer& tokenizer) {
  std::ifstream file(path, std::ios::binary);
  if (!file) fail("--prompts {}: cannot open it", path);
  std::vector<PromptInput> prompts;
  std::vector<std::string> problems;
  size_t bad = 0;
  std::string line;
  for (int64_t number = 1; std::getline(file, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      prompts.push_back(parse_record(line, encoding, tokenizer));
    } catch (const Error& error) {
      if (++bad <= kProblemsShown)
        problems.push_back(fmt::format("{}:{}: {}", path, number, error.what()));
    }
  }
  if (bad > 0) {
    std::string message = fmt::format("{}", fmt::join(problems, "\n"));
    if (bad > kProblemsShown)
      message += fmt::format("\n... and {} more bad lines", bad - kProblemsShown);
    fail("{}\n{}: {} bad lines", message, path, bad);
  }
  if (prompts.empty()) fail("--prompts {}: no prompts in the file", path);
  return prompts;
}

std::vector<int32_t> parse_token_ids(const std::string& text, int64_t vocab_size) {
  std::vector<int32_t> ids;
  std::stringstream stream(text);
  std::string entry;
  while (std::getline(stream, entry, ',')) {
    size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(entry, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || entry.find_first_not_of(" \t", used) != std::string::npos || id < 0 ||
        id >= vocab_size)
      fail("token ids '{}': '{}' is not an id from 0 to {}", text, entry, vocab_size - 1);
    ids.push_back(static_cast<int32_t>(id));
  }
  if (ids.empty()) fail("token ids '{}': expected a comma-separated list such as 1,2,3", text);
  return ids;
}

std::vector<int32_t> default_stop_ids(const data::Tokenizer& tokenizer,
                                      const std::string& chat_template) {
  std::vector<int32_t> ids;
  try {
    ids.push_back(tokenizer.eos_id());
  } catch (const Error&) {
    // A tokenizer without EOS: generation ends by length or the user's stops.
  }
  const char* end_of_turn = chat_template == "chatml"   ? "<|im_end|>"
                            : chat_template == "llama3" ? "<|eot_id|>"
                                                        : nullptr;
  if (end_of_turn != nullptr)
    if (std::optional<int32_t> id = tokenizer.special_token(end_of_turn))
      if (std::find(ids.begin(), ids.end(), *id) == ids.end()) ids.push_back(*id);
  return ids;
}

}  // namespace ft
