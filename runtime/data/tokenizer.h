// Tokenizers: text <-> token ids. The interface is what the data path and the generator need;
// ByteTokenizer is the tokenizer of tiny models and tests (a Hugging Face tokenizer.json reader
// implements the same interface).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ft::data {

// Token ids and, per token, the bytes [begin, end) of the encoded text it stands for. A token
// that a tokenizer inserts (a Metaspace or prefix-space "▁") has an empty range where it stands.
struct EncodedText {
  std::vector<int32_t> ids;
  std::vector<std::pair<size_t, size_t>> offsets;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Plain text: special-token names inside `text` are encoded as ordinary text, never parsed.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // encode(text) with each token's byte offsets in `text`. `at_text_start` false: `text` follows
  // other text or a special token of the same sequence (a Metaspace pre-tokenizer with
  // prepend_scheme "first" then adds no "▁", as in the `tokenizers` library's whole-text encode).
  // The default is for tokenizers with one token per byte (token i is byte i); it throws
  // ft::Error when encode gives another count.
  virtual EncodedText encode_with_offsets(std::string_view text, bool at_text_start = true) const;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t eos_id() const = 0;
  // The id of a special token by its name (e.g. "<|im_start|>"), or nullopt when it has none.
  virtual std::optional<int32_t> special_token(std::string_view name) const = 0;
};

// Bytes 0..255 are ids 0..255; then "<|endoftext|>" = 256 (eos), "<|im_start|>" = 257,
// "<|im_end|>" = 258. decode writes specials by name and bytes as they are (invalid UTF-8 kept).
class ByteTokenizer : public Tokenizer {
 public:
  static constexpr int32_t kEndOfText = 256;
  static constexpr int32_t kImStart = 257;
  static constexpr int32_t kImEnd = 258;
  static constexpr int32_t kVocabSize = 259;

  std::vector<int32_t> encode(std::string_view text) const override;
  // Throws ft::Error for an id outside [0, vocab_size).
  std::string decode(const std::vector<int32_t>& ids) const override;
  int32_t vocab_size() const override { return kVocabSize; }
  int32_t eos_id() const override { return kEndOfText; }
  std::optional<int32_t> special_token(std::string_view name) const override;
};

}  // namespace ft::data
