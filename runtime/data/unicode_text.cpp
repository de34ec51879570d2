#include "runtime/data/unicode_text.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <array>
#include <climits>

#include "runtime/error.h"

namespace ft::data::unicode {

char32_t decode_utf8(std::string_view text, size_t pos, int* length) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[pos + i]); };
  const unsigned char lead = byte(0);
  const int n = utf8_sequence_length(lead);
  *length = n;
  switch (n) {
    case 1:
      return lead;
    case 2:
      return (char32_t(lead & 0x1F) << 6) | (byte(1) & 0x3F);
    case 3:
      return (char32_t(lead & 0x0F) << 12) | (char32_t(byte(1) & 0x3F) << 6) | (byte(2) & 0x3F);
    default:
      return (char32_t(lead & 0x07) << 18) | (char32_t(byte(1) & 0x3F) << 12) |
             (char32_t(byte(2) & 0x3F) << 6) | (byte(3) & 0x3F);
  }
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

// Length of the well-formed sequence at bytes[i], or 0 with *consumed set to the length of the
// maximal ill-formed subpart there (the bytes that one U+FFFD replaces).
size_t valid_sequence_at(std::string_view bytes, size_t i, size_t* consumed) {
  const auto at = [&](size_t k) { return static_cast<unsigned char>(bytes[k]); };
  const unsigned char lead = at(i);
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    *consumed = 1;
    return 0;
  }
  for (size_t k = 1; k < length; ++k) {
    const bool in_range =
        i + k < bytes.size() && (k == 1 ? (at(i + k) >= low && at(i + k) <= high)
                                        : (at(i + k) >= 0x80 && at(i + k) <= 0xBF));
    if (!in_range) {
      *consumed = k;
      return 0;
    }
  }
  return length;
}

}  // namespace

size_t find_invalid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t consumed = 0;
    const size_t length = valid_sequence_at(text, i, &consumed);
    if (length == 0) return i;
    i += length;
  }
  return std::string_view::npos;
}

void append_utf8_lossy(std::string& out, std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    size_t consumed = 0;
    const size_t length = valid_sequence_at(bytes, i, &consumed);
    if (length > 0) {
      out.append(bytes.substr(i, length));
      i += length;
    } else {
      out.append("\xEF\xBF\xBD");
      i += consumed;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Regexes

struct Regex::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Compiled() { pcre2_code_free(code); }
};

namespace {

// Per-thread match state: one ovector pair (only the whole match is read) and a JIT stack
// large enough for long runs of one class (a 10,000-space run, a long base64 string).
struct MatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  MatchState() { pcre2_jit_stack_assign(context, nullptr, jit_stack); }
  ~MatchState() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_data_free(data);
  }
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

std::string pcre2_message(int code) {
  std::array<PCRE2_UCHAR, 256> buffer{};
  pcre2_get_error_message(code, buffer.data(), buffer.size());
  return reinterpret_cast<const char*>(buffer.data());
}

// Oniguruma (Ruby syntax) escapes whose PCRE2 meaning differs, written with Unicode properties.
// Onig's \s is White_Space (PCRE2's also takes U+180E), its \w is L, M, N and Pc (PCRE2's lacks
// marks and most Pc), its \h is a hex digit (PCRE2's is horizontal space).
std::string translate_oniguruma(std::string_view pattern) {
  constexpr std::string_view kWord = "\\p{L}\\p{M}\\p{N}\\p{Pc}";
  std::string out;
  out.reserve(pattern.size() + 32);
  int class_depth = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[++i];
      const bool in_class = class_depth > 0;
      switch (next) {
        case 's':
          out += "\\p{White_Space}";
          break;
        case 'S':
          out += "\\P{White_Space}";
          break;
        case 'w':
          out += in_class ? std::string(kWord) : "[" + std::string(kWord) + "]";
          break;
        case 'W':
          out += in_class ? std::string("\\W") : "[^" + std::string(kWord) + "]";
          break;
        case 'h':
          out += in_class ? "0-9a-fA-F" : "[0-9a-fA-F]";
          break;
        case 'H':
          out += in_class ? "\\H" : "[^0-9a-fA-F]";
          break;
        default:
          out += '\\';
          out += next;
      }
      continue;
    }
    if (c == '[') {
      ++class_depth;
      out += c;
      // A ']' (or '^]') right after the opening bracket is a literal member.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == ']' && class_depth > 0) --class_depth;
    out += c;
  }
  return out;
}

std::string escape_literal(std::string_view text) {
  std::string out;
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    const bool plain =
        byte >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!plain) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

Regex Regex::from_pcre2(std::string_view pattern, std::string_view context) {
  pcre2_compile_context* compile_context = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(compile_context, PCRE2_NEWLINE_LF);
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &error, &error_offset,
                                   compile_context);
  pcre2_compile_context_free(compile_context);
  if (code == nullptr) {
    fail("{}: regex \"{}\" does not compile: {} (at offset {})", context, pattern,
         pcre2_message(error), error_offset);
  }
  auto compiled = std::make_shared<Compiled>();
  compiled->code = code;
  compiled->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return Regex(std::move(compiled));
}

Regex Regex::from_oniguruma(std::string_view pattern, std::string_view context) {
  return from_pcre2(translate_oniguruma(pattern), context);
}

Regex Regex::literal(std::string_view text, std::string_view context) {
  return from_pcre2(escape_literal(text), context);
}

void Regex::find_all(std::string_view text, std::vector<Span>& matches) const {
  MatchState& state = match_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t search_from = 0;
  size_t last_match_end = SIZE_MAX;
  while (search_from <= text.size()) {
    const int rc = compiled_->jit ? pcre2_jit_match(compiled_->code, subject, text.size(),
                                                    search_from, 0, state.data, state.context)
                                  : pcre2_match(compiled_->code, subject, text.size(), search_from,
                                                PCRE2_NO_UTF_CHECK, state.data, state.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) fail("regex matching failed: {}", pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data);
    const size_t start = ovector[0], end = ovector[1];
    if (start == end && end == last_match_end) {
      // An empty match right after the previous one: step over one character and retry.
      search_from += search_from < text.size()
                         ? utf8_sequence_length(static_cast<unsigned char>(text[search_from]))
                         : 1;
      continue;
    }
    matches.push_back({start, end});
    search_from = end;
    last_match_end = end;
  }
}

namespace {

bool property_matches(const Regex& whole_char, char32_t cp) {
  std::string text;
  append_utf8(text, cp);
  std::vector<Span> matches;
  whole_char.find_all(text, matches);
  return !matches.empty();
}

}  // namespace

bool is_white_space(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= '\t' && cp <= '\r');
  static const Regex white_space = Regex::from_pcre2("\\A\\p{White_Space}\\z", "White_Space");
  return property_matches(white_space, cp);
}

bool is_word_char(char32_t cp) {
  if (cp < 0x80) {
    return cp == '_' || (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') ||
           (cp >= 'A' && cp <= 'Z');
  }
  static const Regex word = Regex::from_pcre2(
      "\\A[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]\\z", "word character");
  return property_matches(word, cp);
}

// ---------------------------------------------------------------------------------------------
// Normalization

void normalize(NormalForm form, std::string_view text, std::string& out) {
  bool ascii = true;
  for (char c : text) ascii &= static_cast<unsigned char>(c) < 0x80;
  if (ascii) {  // ASCII is the same in every normal form
    out.assign(text);
    return;
  }
  FT_CHECK(text.size() < INT32_MAX / 4, "normalize: text of {} bytes is too long", text.size());
  UErrorCode status = U_ZERO_ERROR;
  const UNormalizer2* normalizer = nullptr;
  switch (form) {
    case NormalForm::kNfc:
      normalizer = unorm2_getNFCInstance(&status);
      break;
    case NormalForm::kNfd:
      normalizer = unorm2_getNFDInstance(&status);
      break;
    case NormalForm::kNfkc:
      normalizer = unorm2_getNFKCInstance(&status);
      break;
    case NormalForm::kNfkd:
      normalizer = unorm2_getNFKDInstance(&status);
      break;
  }
  FT_CHECK(U_SUCCESS(status), "ICU normalizer unavailable: {}", u_errorName(status));

  std::vector<UChar> utf16(text.size() + 1);
  int32_t utf16_length = 0;
  u_strFromUTF8(utf16.data(), static_cast<int32_t>(utf16.size()), &utf16_length, text.data(),
                static_cast<int32_t>(text.size()), &status);
  FT_CHECK(U_SUCCESS(status), "UTF-8 to UTF-16 failed: {}", u_errorName(status));

  // Compatibility forms can grow a lot (one ligature code point becomes several letters).
  std::vector<UChar> normalized(static_cast<size_t>(utf16_length) * 4 + 16);
  int32_t normalized_length =
      unorm2_normalize(normalizer, utf16.data(), utf16_length, normalized.data(),
                       static_cast<int32_t>(normalized.size()), &status);
  if (status == U_BUFFER_OVERFLOW_ERROR) {
    status = U_ZERO_ERROR;
    normalized.resize(static_cast<size_t>(normalized_length) + 1);
    normalized_length = unorm2_normalize(normalizer, utf16.data(), utf16_length, normalized.data(),
                                         static_cast<int32_t>(normalized.size()), &status);
  }
  FT_CHECK(U_SUCCESS(status), "ICU normalization failed: {}", u_errorName(status));

  out.resize(static_cast<size_t>(normalized_length) * 3 + 1);
  int32_t utf8_length = 0;
  u_strToUTF8(out.data(), static_cast<int32_t>(out.size()), &utf8_length, normalized.data(),
              normalized_length, &status);
  FT_CHECK(U_SUCCESS(status), "UTF-16 to UTF-8 failed: {}", u_errorName(status));
  out.resize(static_cast<size_t>(utf8_length));
}

}  // namespace ft::data::unicode
