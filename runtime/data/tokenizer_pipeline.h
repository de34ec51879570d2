// The text stages of a Hugging Face tokenizer.json around the BPE model: normalizers,
// pre-tokenizers and decoders, each behaving as its namesake in the `tokenizers` library.
// Internal to HfTokenizer.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime/data/tokenizer_json.h"
#include "runtime/data/unicode_text.h"

namespace ft::data::pipeline {

// A non-owning reference to a callable (the callable must outlive the call it is passed to).
template <typename Signature>
class FunctionRef;
template <typename R, typename... Args>
class FunctionRef<R(Args...)> {
 public:
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef>>>
  FunctionRef(F&& f)  // NOLINT(google-explicit-constructor): a drop-in for a lambda argument
      : object_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* object, Args... args) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(object))(std::forward<Args>(args)...);
        }) {}
  R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

 private:
  void* object_;
  R (*call_)(void*, Args...);
};

// A split pattern ({"String": ...} or {"Regex": ...}) and tokenizers' Pattern::find_matches.
struct MatchedSpan {
  size_t start = 0;
  size_t end = 0;
  bool is_match = false;
};

class TextPattern {
 public:
  static TextPattern from_json(const JsonField& field);
  static TextPattern literal(std::string text) { return TextPattern(std::move(text)); }
  static TextPattern regex(unicode::Regex regex) { return TextPattern(std::move(regex)); }
  // Spans that cover all of `text` in order, flagged as matches of the pattern or the gaps
  // between them (an empty text gives one empty gap).
  void find_matches(std::string_view text, std::vector<MatchedSpan>& out) const;

 private:
  explicit TextPattern(std::string literal) : literal_(std::move(literal)) {}
  explicit TextPattern(unicode::Regex regex) : regex_(std::move(regex)) {}
  std::string literal_;
  std::optional<unicode::Regex> regex_;
};

// ---- Shared by pre-tokenizers and decoders.

// GPT-2's byte-to-unicode table: printable Latin-1 bytes stand for themselves, the other bytes
// for U+0100 onwards, so that every byte string becomes printable text without spaces.
struct ByteLevelTable {
  ByteLevelTable();
  std::array<char32_t, 256> byte_to_char{};
  std::array<std::string, 256> byte_to_utf8;
  std::array<int16_t, 324> char_to_byte{};  // -1 where the code point stands for no byte
};
const ByteLevelTable& byte_level_table();

enum class PrependScheme { kAlways, kFirst, kNever };
// prepend_scheme, or the legacy add_prefix_space (true: always, false: never); always by default.
PrependScheme prepend_scheme_from_json(const JsonField& field);
// A JSON string that must hold exactly one character (Metaspace replacement, Strip content).
std::string single_char(const JsonField& field);
// Replaces every match of `pattern` in `text` by `content` (`scratch`, `spans`: buffers).
void replace_matches(const TextPattern& pattern, std::string_view content, std::string& text,
                     std::string& scratch, std::vector<MatchedSpan>& spans);
inline bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// ---- Normalizers: NFC, NFD, NFKC, NFKD, Prepend, Replace, Strip, Sequence.
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites `text`; `scratch` is a buffer it may use.
  virtual void normalize(std::string& text, std::string& scratch) const = 0;
  // The Unicode normal form this normalizer (or the first of a sequence) applies, if any.
  virtual std::optional<unicode::NormalForm> unicode_form() const { return std::nullopt; }
};
// nullptr for a null normalizer. Throws ft::Error naming the field for an unsupported type.
std::unique_ptr<Normalizer> normalizer_from_json(const std::optional<JsonField>& field);

// ---- Pre-tokenizers: ByteLevel, Split, Metaspace, Digits, Sequence (flattened into stages).
// A piece of text and whether it starts at the start of the input (Metaspace "first" needs it).
using PieceSink = FunctionRef<void(std::string_view piece, bool at_text_start)>;

struct StageScratch {
  std::string text;
  std::string mapped;
  std::vector<MatchedSpan> spans;
  std::vector<MatchedSpan> pieces;
  std::vector<unicode::Span> matches;
};

class PreTokenizerStage {
 public:
  virtual ~PreTokenizerStage() = default;
  // Splits `piece` and passes every non-empty sub-piece to `next`, in order.
  virtual void split(std::string_view piece, bool at_text_start, StageScratch& scratch,
                     PieceSink next) const = 0;
};

class PreTokenizer {
 public:
  // A null field gives a pre-tokenizer that passes its input through whole.
  static PreTokenizer from_json(const std::optional<JsonField>& field);
  // Calls `sink` for every word of `text`, in order. `scratch` holds one entry per stage.
  void split(std::string_view text, bool at_text_start, std::vector<StageScratch>& scratch,
             PieceSink sink) const;
  size_t stage_count() const { return stages_.size(); }
  // Some stage is ByteLevel: words are GPT-2 byte-to-unicode text.
  bool byte_level() const;

 private:
  void run_stage(size_t index, std::string_view piece, bool at_text_start,
                 std::vector<StageScratch>& scratch, PieceSink sink) const;
  std::vector<std::unique_ptr<PreTokenizerStage>> stages_;
};

// ---- Decoders: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence.
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};
// nullptr for a null decoder (tokens are then joined with spaces).
std::unique_ptr<Decoder> decoder_from_json(const std::optional<JsonField>& field);

}  // namespace ft::data::pipeline
