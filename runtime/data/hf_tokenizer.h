// A Hugging Face tokenizer.json reader for BPE models, token for token equal to the `tokenizers`
// library: byte-level BPE (GPT-2, Llama 3, Qwen2) and metaspace BPE with byte fallback (Llama 2,
// Mistral), added and special tokens. Post-processors (BOS/EOS templates) are not applied: chat
// templates add those.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/data/tokenizer.h"

namespace ft::data {

struct HfTokenizerOptions {
  // The end-of-sequence token by name. Empty: "eos_token" of tokenizer_config.json beside the
  // tokenizer.json when there is one, else the first added token among "</s>", "<|endoftext|>",
  // "<|end_of_text|>", "<eos>", "<|im_end|>", "<|eot_id|>".
  std::string eos_token;
};

class HfTokenizer final : public Tokenizer {
 public:
  // Reads `path` (a tokenizer.json). Throws ft::Error naming the file and the JSON field for a
  // file that cannot be read or parsed, an unsupported model (WordPiece, Unigram, WordLevel),
  // normalizer, pre-tokenizer or decoder type, BPE dropout, or a merge of unknown tokens.
  static std::unique_ptr<HfTokenizer> load(const std::filesystem::path& path,
                                           const HfTokenizerOptions& options = {});
  // The same from JSON text; `source_name` stands for the file in error messages.
  static std::unique_ptr<HfTokenizer> parse(std::string_view json_text,
                                            const std::string& source_name,
                                            const HfTokenizerOptions& options = {});
  ~HfTokenizer() override;

  // Plain text: special-token names are encoded as text (tokenizers with encode_special_tokens
  // set); added tokens that are not special are still split out, as tokenizers does. No BOS/EOS.
  // Throws ft::Error for text that is not valid UTF-8 (naming the byte offset).
  std::vector<int32_t> encode(std::string_view text) const override;
  // encode's ids with each token's bytes in `text`: the bytes its characters come from through
  // the normalizer and pre-tokenizer; an inserted "▁" (Prepend normalizer, Metaspace prepend,
  // ByteLevel add_prefix_space) has none, so a token made of one alone has an empty range at the
  // start of its stretch. Where an unknown token (no byte fallback) stands for several characters
  // the rest of that stretch goes to each remaining token of it.
  EncodedText encode_with_offsets(std::string_view text, bool at_text_start = true) const override;
  // Text in which added tokens, special ones included, are recognised by name (tokenizers'
  // default encode with add_special_tokens=false), honouring lstrip, rstrip, single_word and
  // normalized.
  std::vector<int32_t> encode_with_special_tokens(std::string_view text) const;
  // Special tokens are written by name, as tokenizers' decode(ids, skip_special_tokens=False).
  // Throws ft::Error for an id with no token.
  std::string decode(const std::vector<int32_t>& ids) const override;
  // The largest id of the vocabulary and the added tokens, plus one.
  int32_t vocab_size() const override;
  // Throws ft::Error when no end-of-sequence token was found (see HfTokenizerOptions).
  int32_t eos_id() const override;
  // The id of an added token (special or not) by its content.
  std::optional<int32_t> special_token(std::string_view name) const override;

  // The id of any token (added tokens first, then the model's vocabulary).
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token of an id (for an added token with normalized = true, its normalized content, as
  // in tokenizers); throws ft::Error for an id with no token.
  std::string id_to_token(int32_t id) const;

 private:
  struct Impl;
  explicit HfTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ft::data
