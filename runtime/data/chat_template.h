// Built-in chat templates: a conversation -> the text a model family's own Hugging Face chat
// template renders, cut into pieces that say which text is a special token and which is trained,
// and those pieces -> token ids with a loss mask.
//
//   chatml   Qwen2-Instruct's template (<|im_start|>role\n...<|im_end|>\n); with
//            chatml_default_system, a conversation that does not start with a system message
//            gets "You are a helpful assistant." as Qwen2's template writes.
//   llama3   Meta-Llama-3-Instruct (<|begin_of_text|> once, header ids, contents trimmed,
//            <|eot_id|>).
//   llama2   Llama-2-chat (<s>[INST] ... [/INST] answer </s> per turn; the system message in
//            <<SYS>> inside the first turn; contents stripped).
//   mistral  Mistral-7B-Instruct-v0.1 / Mixtral-8x7B-Instruct-v0.1 (<s> once, " [INST] ...
//            [/INST]", " answer</s>" with no space before </s>; system message + "\n\n" in front
//            of the first user message; contents as they are).
//   plain    ft's own: the contents as they are, each assistant message followed by EOS.
// The concatenated piece texts equal transformers' apply_chat_template(tokenize=False) for the
// model's template (tools/chat_template_parity.py checks it). Conversations the model's template
// refuses (llama2/mistral: roles not alternating user/assistant after an optional first system
// message) throw ft::Error; so does an empty conversation.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/data/dataset.h"
#include "runtime/data/tokenizer.h"

namespace ft::data {

// One run of rendered text.
struct ChatPiece {
  std::string text;
  // The text is one special token (e.g. "<|im_start|>", "<s>"), encoded as that token's id.
  bool special_token_text = false;
  // Part of a trained assistant message: its content, the end-of-turn token that closes it
  // (<|im_end|>, <|eot_id|>, </s>) and the spacing the template puts inside the answer.
  bool trained = false;
  // Template markup ("[INST]", "[/INST]") that is one token where the tokenizer has it as an
  // added token (as Hugging Face's tokenizer splits added tokens out of the rendered text), and
  // text otherwise. Message contents are never markup: names of tokens in them stay text.
  bool markup = false;
};

struct ChatTemplateOptions {
  // Append the header that starts an assistant answer (chatml, llama3). llama2, mistral and plain
  // have none: their prompt already ends where the answer starts.
  bool add_generation_prompt = false;
  // The special-token texts the template writes for Hugging Face's bos_token / eos_token. Empty:
  // the family's own (llama3 "<|begin_of_text|>", llama2/mistral "<s>" and "</s>"). plain has no
  // default EOS: tokenize_chat takes it from the tokenizer.
  std::string bos_token;
  std::string eos_token;
  // chatml: a conversation without a first system message gets Qwen2-Instruct's default one.
  bool chatml_default_system = true;
};

// "chatml", "llama3", "llama2", "mistral", "plain".
const std::vector<std::string>& chat_template_names();

// Throws ft::Error naming the template and the known ones when `name` is not a built-in template.
void check_chat_template_name(std::string_view name);

// Renders `messages` with the template `name`. Only assistant messages may be trained. Throws
// ft::Error naming the template and the message (1-based) for a conversation the template refuses.
std::vector<ChatPiece> render_chat(std::string_view name, const std::vector<ChatMessage>& messages,
                                   const ChatTemplateOptions& options = {});

// The pieces' texts concatenated: the string apply_chat_template(tokenize=False) returns.
std::string chat_text(const std::vector<ChatPiece>& pieces);

// Token ids and loss mask of rendered pieces, as Hugging Face's apply_chat_template(tokenize=True)
// encodes the rendered text. A special piece becomes tokenizer.special_token(text) (ft::Error
// naming the template and the token when the tokenizer lacks it); a markup piece too where the
// tokenizer has it, else it is text. Each stretch of text between tokens is ONE
// tokenizer.encode_with_offsets call (special-token names inside message text stay text), so
// merges across a trained/untrained boundary and a Metaspace "▁" come out as in the whole-text
// encode; only the stretch at the very start counts as the start of the text. loss_mask[t] is 1
// for a token whose bytes overlap a trained piece (a token straddling the boundary is trained:
// the loss covers every token that spells part of the answer, as TRL's assistant-only masks from
// offsets do); a token with no bytes (an inserted "▁") is trained when the byte it stands in front
// of is. loss_mask[0] is 0 (nothing predicts the first token). BOS is exactly where the template
// writes it: nothing is added.
Sequence tokenize_chat_pieces(const std::vector<ChatPiece>& pieces, const Tokenizer& tokenizer,
                              std::string_view template_name);

// render_chat + tokenize_chat_pieces. For plain without options.eos_token, the EOS text is the
// tokenizer's own (decode of eos_id, which must map back to eos_id as a special token).
Sequence tokenize_chat(std::string_view name, const std::vector<ChatMessage>& messages,
                       const Tokenizer& tokenizer, const ChatTemplateOptions& options = {});

// Python's str.strip() (Jinja's trim) on UTF-8: removes the code points str.isspace() accepts
// from both ends. Invalid UTF-8 bytes count as non-space.
std::string_view strip_unicode_whitespace(std::string_view text);

}  // namespace ft::data
