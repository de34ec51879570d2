#include <array>

#include "runtime/data/tokenizer.h"
#include "runtime/error.h"

namespace ft::data {

namespace {

// Names of the special ids, in id order starting at ByteTokenizer::kEndOfText.
constexpr std::array<std::string_view, 3> kSpecialNames = {"<|endoftext|>", "<|im_start|>",
                                                           "<|im_end|>"};

}  // namespace

EncodedText Tokenizer::encode_with_offsets(std::string_view text, bool) const {
  EncodedText encoded;
  encoded.ids = encode(text);
  if (encoded.ids.size() != text.size()) {
    fail(
        "Tokenizer::encode_with_offsets: the default takes token i for byte i, but encode gave {} "
        "tokens for {} bytes (the tokenizer must override encode_with_offsets)",
        encoded.ids.size(), text.size());
  }
  encoded.offsets.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) encoded.offsets.emplace_back(i, i + 1);
  return encoded;
}

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  for (char c : text) ids.push_back(static_cast<unsigned char>(c));
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  text.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id >= 0 && id < kEndOfText) {
      text.push_back(static_cast<char>(static_cast<unsigned char>(id)));
    } else if (id >= kEndOfText && id < kVocabSize) {
      text.append(kSpecialNames[id - kEndOfText]);
    } else {
      fail("ByteTokenizer::decode: token {} has id {} (expected 0..{})", i, id, kVocabSize - 1);
    }
  }
  return text;
}

std::optional<int32_t> ByteTokenizer::special_token(std::string_view name) const {
  for (size_t i = 0; i < kSpecialNames.size(); ++i) {
    if (kSpecialNames[i] == name) return kEndOfText + static_cast<int32_t>(i);
  }
  return std::nullopt;
}

}  // namespace ft::data
