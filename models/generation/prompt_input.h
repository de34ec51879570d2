// Prompts for generation as users give them: a text (rendered as one user turn of the chat
// template, or encoded as it is), a JSONL file of chat conversations ({"messages": [...]} without
// the final assistant turn) or prompts ({"prompt": ...}), or token ids. The template ends the
// prompt with the header that starts the assistant's answer (add_generation_prompt).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/data/tokenizer.h"

namespace ft {

struct PromptInput {
  std::string text;          // what the user wrote: the text, the last message, the prompt
  std::vector<int32_t> ids;  // the model's input
  std::string reference;     // the file's own answer (a final assistant message, a completion)
};

struct PromptEncoding {
  std::string chat_template;  // a built-in template; "" encodes texts as they are
  std::string system;         // a system message in front of text prompts ("" : none)
  bool chatml_default_system = false;
};

PromptInput encode_text_prompt(const std::string& text, const PromptEncoding& encoding,
                               const data::Tokenizer& tokenizer);

// Each non-blank line: {"messages": [{"role": .., "content": ..}, ...]} (a final assistant
// message becomes the reference, the conversation before it the prompt, rendered with the
// template) or {"prompt": .., "completion"?: ..} (the prompt encoded as it is, as training's
// prompt/completion data is). Throws ft::Error naming the file and line of each bad record.
std::vector<PromptInput> read_prompt_file(const std::string& path, const PromptEncoding& encoding,
                                          const data::Tokenizer& tokenizer);

// "12,7,300" -> ids, each in [0, vocab_size); an error names the bad entry.
std::vector<int32_t> parse_token_ids(const std::string& text, int64_t vocab_size);

// Where generation stops by default: the tokenizer's EOS and the template's end-of-turn token
// (<|im_end|> for chatml, <|eot_id|> for llama3) when the tokenizer has them.
std::vector<int32_t> default_stop_ids(const data::Tokenizer& tokenizer,
                                      const std::string& chat_template);

}  // namespace ft
