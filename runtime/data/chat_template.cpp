#include "runtime/data/chat_template.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "runtime/error.h"

namespace ft::data {

namespace {

// Qwen2-Instruct's template writes this system message when the first message is not one.
constexpr std::string_view kQwen2DefaultSystem = "You are a helpful assistant.";

// Appends pieces, merging a text piece into the previous one when both are text with the same
// `trained` flag, and dropping empty text.
class PieceWriter {
 public:
  void text(std::string_view text, bool trained = false) {
    if (text.empty()) return;
    if (!pieces_.empty() && !pieces_.back().special_token_text && !pieces_.back().markup &&
        pieces_.back().trained == trained) {
      pieces_.back().text += text;
      return;
    }
    pieces_.push_back({std::string(text), false, trained});
  }
  void special(std::string_view token, bool trained = false) {
    pieces_.push_back({std::string(token), true, trained});
  }
  void markup(std::string_view token) {
    pieces_.push_back({std::string(token), false, false, true});
  }
  std::vector<ChatPiece> take() { return std::move(pieces_); }

 private:
  std::vector<ChatPiece> pieces_;
};

// The code point at text[at] and its length in bytes; -1 and length 1 for an invalid sequence.
std::pair<int32_t, size_t> decode_utf8(std::string_view text, size_t at) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t lead = byte(at);
  if (lead < 0x80) return {lead, 1};
  size_t length = 0;
  int32_t code_point = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    code_point = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    code_point = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    code_point = lead & 0x07;
  } else {
    return {-1, 1};
  }
  if (at + length > text.size()) return {-1, 1};
  for (size_t i = 1; i < length; ++i) {
    if ((byte(at + i) & 0xC0) != 0x80) return {-1, 1};
    code_point = (code_point << 6) | (byte(at + i) & 0x3F);
  }
  // Overlong forms (e.g. C0 A0 for a space) and values past U+10FFFF are not UTF-8.
  constexpr int32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code_point < kSmallest[length] || code_point > 0x10FFFF) return {-1, 1};
  return {code_point, length};
}

// Python's str.isspace(): bidirectional class WS, B or S, or general category Zs.
bool is_python_space(int32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

void check_messages(std::string_view name, const std::vector<ChatMessage>& messages) {
  if (messages.empty()) fail("chat template '{}': the conversation has no messages", name);
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].trained && messages[i].role != "assistant") {
      fail("chat template '{}': message {} ({}) is marked trained; only assistant messages are",
           name, i + 1, messages[i].role);
    }
  }
}

// llama2 and mistral: after an optional first system message, user and assistant alternate,
// starting with user. Returns the index of the first non-system message.
size_t check_alternating_roles(std::string_view name, const std::vector<ChatMessage>& messages) {
  const size_t first = messages[0].role == "system" ? 1 : 0;
  for (size_t i = first; i < messages.size(); ++i) {
    const std::string_view expected = (i - first) % 2 == 0 ? "user" : "assistant";
    if (messages[i].role == expected) continue;
    if (messages[i].role == "system") {
      fail("chat template '{}': message {} is a system message; only the first message may be one",
           name, i + 1);
    }
    fail(
        "chat template '{}': message {} is '{}' where '{}' was expected (after an optional first "
        "system message, roles must alternate user/assistant/user/assistant/...)",
        name, i + 1, messages[i].role, expected);
  }
  return first;
}

std::vector<ChatPiece> render_chatml(const std::vector<ChatMessage>& messages,
                                     const ChatTemplateOptions& options) {
  PieceWriter out;
  auto turn = [&out](std::string_view role, std::string_view content, bool trained) {
    out.special("<|im_start|>");
    out.text(fmt::format("{}\n", role));
    out.text(content, trained);
    out.special("<|im_end|>", trained);
    out.text("\n");
  };
  if (options.chatml_default_system && messages[0].role != "system") {
    turn("system", kQwen2DefaultSystem, false);
  }
  for (const ChatMessage& message : messages) turn(message.role, message.content, message.trained);
  if (options.add_generation_prompt) {
    out.special("<|im_start|>");
    out.text("assistant\n");
  }
  return out.take();
}

std::vector<ChatPiece> render_llama3(const std::vector<ChatMessage>& messages,
                                     const ChatTemplateOptions& options) {
  PieceWriter out;
  auto header = [&out](std::string_view role) {
    out.special("<|start_header_id|>");
    out.text(role);
    out.special("<|end_header_id|>");
    out.text("\n\n");
  };
  out.special(options.bos_token.empty() ? "<|begin_of_text|>" : options.bos_token);
  for (const ChatMessage& message : messages) {
    header(message.role);
    out.text(strip_unicode_whitespace(message.content), message.trained);
    out.special("<|eot_id|>", message.trained);
  }
  if (options.add_generation_prompt) header("assistant");
  return out.take();
}

std::vector<ChatPiece> render_llama2(const std::vector<ChatMessage>& messages,
                                     const ChatTemplateOptions& options) {
  const size_t first = check_alternating_roles("llama2", messages);
  const std::string bos = options.bos_token.empty() ? "<s>" : options.bos_token;
  const std::string eos = options.eos_token.empty() ? "</s>" : options.eos_token;
  PieceWriter out;
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    // The system message goes inside the first turn, and the template strips the whole content.
    const std::string content =
        i == first && first == 1
            ? fmt::format("<<SYS>>\n{}\n<</SYS>>\n\n{}", messages[0].content, message.content)
            : message.content;
    const std::string_view stripped = strip_unicode_whitespace(content);
    if (message.role == "user") {
      out.special(bos);
      out.markup("[INST]");
      out.text(fmt::format(" {} ", stripped));
      out.markup("[/INST]");
    } else {
      out.text(fmt::format(" {} ", stripped), message.trained);
      out.special(eos, message.trained);
    }
  }
  return out.take();
}

std::vector<ChatPiece> render_mistral(const std::vector<ChatMessage>& messages,
                                      const ChatTemplateOptions& options) {
  const size_t first = check_alternating_roles("mistral", messages);
  PieceWriter out;
  out.special(options.bos_token.empty() ? "<s>" : options.bos_token);
  const std::string eos = options.eos_token.empty() ? "</s>" : options.eos_token;
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    if (message.role == "user") {
      // The system message and a blank line go in front of the first user message.
      const std::string system =
          i == first && first == 1 ? messages[0].content + "\n\n" : std::string();
      out.text(" ");
      out.markup("[INST]");
      out.text(fmt::format(" {}{} ", system, message.content));
      out.markup("[/INST]");
    } else {
      out.text(" " + message.content, message.trained);
      out.special(eos, message.trained);
    }
  }
  return out.take();
}

std::vector<ChatPiece> render_plain(const std::vector<ChatMessage>& messages,
                                    const ChatTemplateOptions& options) {
  if (options.eos_token.empty()) {
    fail(
        "chat template 'plain' needs the EOS token's text (eos_token); tokenize_chat takes the "
        "tokenizer's");
  }
  PieceWriter out;
  for (const ChatMessage& message : messages) {
    out.text(message.content, message.trained);
    if (message.role == "assistant") out.special(options.eos_token, message.trained);
  }
  return out.take();
}

}  // namespace

const std::vector<std::string>& chat_template_names() {
  static const std::vector<std::string> names = {"chatml", "llama3", "llama2", "mistral", "plain"};
  return names;
}

void check_chat_template_name(std::string_view name) {
  const std::vector<std::string>& names = chat_template_names();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    fail("unknown chat template '{}' (expected one of {})", name, fmt::join(names, ", "));
  }
}

std::vector<ChatPiece> render_chat(std::string_view name, const std::vector<ChatMessage>& messages,
                                   const ChatTemplateOptions& options) {
  check_chat_template_name(name);
  check_messages(name, messages);
  if (name == "chatml") return render_chatml(messages, options);
  if (name == "llama3") return render_llama3(messages, options);
  if (name == "llama2") return render_llama2(messages, options);
  if (name == "mistral") return render_mistral(messages, options);
  return render_plain(messages, options);
}

std::string chat_text(const std::vector<ChatPiece>& pieces) {
  std::string text;
  for (const ChatPiece& piece : pieces) text += piece.text;
  return text;
}

Sequence tokenize_chat_pieces(const std::vector<ChatPiece>& pieces, const Tokenizer& tokenizer,
                              std::string_view template_name) {
  Sequence sequence;
  // The text since the last token, and the byte ranges of it that trained pieces wrote.
  std::string stretch;
  std::vector<std::pair<size_t, size_t>> trained_ranges;
  const auto is_trained = [&trained_ranges](size_t begin, size_t end) {
    for (const auto& [trained_begin, trained_end] : trained_ranges) {
      if (begin == end ? begin >= trained_begin && begin < trained_end
                       : begin < trained_end && end > trained_begin) {
        return true;
      }
    }
    return false;
  };
  const auto flush_stretch = [&] {
    if (stretch.empty()) return;
    const EncodedText encoded =
        tokenizer.encode_with_offsets(stretch, /*at_text_start=*/sequence.tokens.empty());
    for (size_t t = 0; t < encoded.ids.size(); ++t) {
      sequence.tokens.push_back(encoded.ids[t]);
      const auto [begin, end] = encoded.offsets[t];
      sequence.loss_mask.push_back(is_trained(begin, end) ? 1 : 0);
    }
    stretch.clear();
    trained_ranges.clear();
  };
  for (const ChatPiece& piece : pieces) {
    const std::optional<int32_t> id = piece.special_token_text || piece.markup
                                          ? tokenizer.special_token(piece.text)
                                          : std::nullopt;
    if (piece.special_token_text && !id) {
      fail("chat template '{}' needs the special token '{}', which the tokenizer does not have",
           template_name, piece.text);
    }
    if (id) {
      flush_stretch();
      sequence.tokens.push_back(*id);
      sequence.loss_mask.push_back(piece.trained ? 1 : 0);
      continue;
    }
    if (piece.trained)
      trained_ranges.emplace_back(stretch.size(), stretch.size() + piece.text.size());
    stretch += piece.text;
  }
  flush_stretch();
  if (!sequence.loss_mask.empty()) sequence.loss_mask[0] = 0;  // nothing predicts token 0
  return sequence;
}

Sequence tokenize_chat(std::string_view name, const std::vector<ChatMessage>& messages,
                       const Tokenizer& tokenizer, const ChatTemplateOptions& options) {
  ChatTemplateOptions resolved = options;
  if (name == "plain" && resolved.eos_token.empty()) {
    const int32_t eos_id = tokenizer.eos_id();
    resolved.eos_token = tokenizer.decode({eos_id});
    if (tokenizer.special_token(resolved.eos_token) != eos_id) {
      fail(
          "chat template 'plain': the tokenizer's EOS (id {}) decodes to '{}', which is not its "
          "special token; set eos_token",
          eos_id, resolved.eos_token);
    }
  }
  return tokenize_chat_pieces(render_chat(name, messages, resolved), tokenizer, name);
}

std::string_view strip_unicode_whitespace(std::string_view text) {
  size_t begin = 0;
  while (begin < text.size()) {
    const auto [code_point, length] = decode_utf8(text, begin);
    if (!is_python_space(code_point)) break;
    begin += length;
  }
  size_t end = text.size();
  while (end > begin) {
    // The last code point starts at the last byte that is not a continuation byte (at most 3
    // back); it only counts when it decodes to exactly the bytes up to `end`.
    size_t start = end - 1;
    while (start > begin && end - start < 4 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) {
      --start;
    }
    const auto [code_point, length] = decode_utf8(text, start);
    if (start + length != end || !is_python_space(code_point)) break;
    end = start;
  }
  return text.substr(begin, end - begin);
}

}  // namespace ft::data
