// Byte-tokenizer ids for data tests that spell expected token sequences by hand.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "runtime/data/tokenizer.h"

namespace ft::testing {

inline std::vector<int32_t> ids(std::string_view text) {
  return data::ByteTokenizer().encode(text);
}

inline std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> all;
  for (const auto& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

}  // namespace ft::testing
