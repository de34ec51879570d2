// Byte offsets of Hugging Face tokens: which bytes of the encoded text each token of one piece
// (the text between raw added tokens) stands for, found by spelling the tokens' text against the
// piece. Internal to HfTokenizer.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/data/unicode_text.h"

namespace ft::data {

// The ids [begin, end) that one normalized sub-piece gave: an added token, or the model's tokens
// of a text stretch (whose first "▁" or space may be one the pipeline inserted).
struct TokenGroup {
  size_t begin = 0, end = 0;
  bool added_token = false;
};

// Appends the offsets (in the whole text: `piece_offset` + bytes of `piece`) of the tokens of
// `groups`. surfaces[t]: what token t spells (bytes; "▁" kept as it is), nullopt for the unknown
// token (one character). `form`: the normalizer's Unicode normal form, if any. Bytes match bytes,
// "▁" matches "▁" or a space, and a group's first "▁" or space may be inserted (matching nothing);
// the reading that spells the whole piece wins. Where none does (an unknown token standing for
// several characters, stripped whitespace), the rest of the piece goes to each remaining token.
void align_token_offsets(std::string_view piece, size_t piece_offset,
                         std::optional<unicode::NormalForm> form,
                         const std::vector<std::optional<std::string>>& surfaces,
                         const std::vector<TokenGroup>& groups,
                         std::vector<std::pair<size_t, size_t>>& offsets);

}  // namespace ft::data
