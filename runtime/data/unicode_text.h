// UTF-8 helpers, regexes and Unicode normalization for the Hugging Face tokenizer. Regexes run on
// PCRE2 (UTF + UCP, JIT); normalization on ICU. Nothing here hand-writes a Unicode class.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ft::data::unicode {

// Length in bytes of the UTF-8 sequence that starts with `lead` (1 for a stray byte).
inline int utf8_sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

// The code point at text[pos] of valid UTF-8; *length receives its size in bytes.
char32_t decode_utf8(std::string_view text, size_t pos, int* length);
void append_utf8(std::string& out, char32_t code_point);
// Offset of the first byte that is not part of valid UTF-8, or std::string_view::npos.
size_t find_invalid_utf8(std::string_view text);
// Appends `bytes`, replacing each maximal ill-formed subsequence by U+FFFD, as Rust's
// String::from_utf8_lossy does (the Unicode "substitution of maximal subparts" practice).
void append_utf8_lossy(std::string& out, std::string_view bytes);

// Unicode White_Space (Rust's char::is_whitespace).
bool is_white_space(char32_t code_point);
// Regex \w as Rust's regex crate defines it: Alphabetic, marks, Nd, Pc and Join_Control.
bool is_word_char(char32_t code_point);

struct Span {
  size_t start = 0;
  size_t end = 0;
};

// A compiled regex. Matching is thread-safe (match data is per thread).
class Regex {
 public:
  // A pattern as tokenizer.json writes it: Oniguruma's Ruby syntax, which `tokenizers` compiles.
  // The escapes whose meaning differs in PCRE2 (\s \S \w \W \h \H) are translated and ^ $ match
  // at line breaks as in Ruby. `context` prefixes error messages (it names the file and field).
  static Regex from_oniguruma(std::string_view pattern, std::string_view context);
  // A pattern in PCRE2's own syntax (used for built-in patterns).
  static Regex from_pcre2(std::string_view pattern, std::string_view context);
  // A literal string.
  static Regex literal(std::string_view text, std::string_view context);

  // Appends the matches in `text` (valid UTF-8) as the onig crate's find_iter yields them: left
  // to right, non-overlapping, an empty match right after the previous match skipped.
  void find_all(std::string_view text, std::vector<Span>& matches) const;

 private:
  struct Compiled;
  explicit Regex(std::shared_ptr<const Compiled> compiled) : compiled_(std::move(compiled)) {}
  std::shared_ptr<const Compiled> compiled_;
};

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };

// Writes the normal form of `text` (valid UTF-8) to `out`.
void normalize(NormalForm form, std::string_view text, std::string& out);

}  // namespace ft::data::unicode
