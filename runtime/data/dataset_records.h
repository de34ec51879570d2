// The records of JSONL datasets: one line -> the messages of a chat example or the prompt and
// completion of a prompt/completion example. Errors name `where` ("path:line") and the problem.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/data/dataset.h"

namespace ft::data {

struct PromptCompletion {
  std::string prompt;
  std::string completion;
};

// {"messages": [...]}: roles system/user/assistant, non-empty string contents, at least one
// assistant message, "weight" 0 or 1 on assistant messages only.
std::vector<ChatMessage> parse_chat_record(std::string_view line, const std::string& where);

// {"prompt": "...", "completion": "..."}: both strings, the completion not empty.
PromptCompletion parse_prompt_completion_record(std::string_view line, const std::string& where);

// "chat" or "prompt_completion" from the keys of the first line of a JSONL file that is a JSON
// object (lines before it that are not are left for the loader to report; none at all: "chat").
// Throws ft::Error naming the file and line when that object has neither kind's keys.
std::string detect_jsonl_format(const std::string& path, std::string_view contents);

// Calls visit(line, line_number) for each non-blank line (1-based numbers; a leading UTF-8 BOM
// is skipped).
template <typename Visit>
void for_each_record(std::string_view contents, Visit visit);

bool is_blank(std::string_view line);
void skip_bom(std::string_view& text);

template <typename Visit>
void for_each_record(std::string_view contents, Visit visit) {
  size_t begin = 0;
  int64_t line_number = 0;
  while (begin < contents.size()) {
    size_t end = contents.find('\n', begin);
    if (end == std::string_view::npos) end = contents.size();
    std::string_view line = contents.substr(begin, end - begin);
    begin = end + 1;
    ++line_number;
    if (line_number == 1) skip_bom(line);
    if (is_blank(line)) continue;
    if (!visit(line, line_number)) return;
  }
}

}  // namespace ft::data
