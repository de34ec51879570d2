#include "runtime/data/tokenizer_pipeline.h"

#include <algorithm>
#include <array>

#include "runtime/error.h"

namespace ft::data::pipeline {

using unicode::Regex;

ByteLevelTable::ByteLevelTable() {
  char_to_byte.fill(-1);
  char32_t next_unprintable = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    byte_to_char[b] = printable ? char32_t(b) : next_unprintable++;
    unicode::append_utf8(byte_to_utf8[b], byte_to_char[b]);
    char_to_byte[byte_to_char[b]] = static_cast<int16_t>(b);
  }
}

const ByteLevelTable& byte_level_table() {
  static const ByteLevelTable table;
  return table;
}

std::string single_char(const JsonField& field) {
  std::string text = field.string();
  int length = 0;
  if (text.empty() || unicode::find_invalid_utf8(text) != std::string_view::npos ||
      (unicode::decode_utf8(text, 0, &length), static_cast<size_t>(length) != text.size())) {
    field.fail("expected a single character, found \"{}\"", text);
  }
  return text;
}

void replace_matches(const TextPattern& pattern, std::string_view content, std::string& text,
                     std::string& scratch, std::vector<MatchedSpan>& spans) {
  spans.clear();
  pattern.find_matches(text, spans);
  scratch.clear();
  for (const MatchedSpan& span : spans) {
    if (span.is_match) {
      scratch.append(content);
    } else {
      scratch.append(text, span.start, span.end - span.start);
    }
  }
  text.swap(scratch);
}

PrependScheme prepend_scheme_from_json(const JsonField& field) {
  if (std::optional<JsonField> scheme = field.find("prepend_scheme")) {
    const std::string name = scheme->string();
    if (name == "always") return PrependScheme::kAlways;
    if (name == "first") return PrependScheme::kFirst;
    if (name == "never") return PrependScheme::kNever;
    scheme->fail("unknown prepend_scheme \"{}\" (expected always, first or never)", name);
  }
  return field.boolean_or("add_prefix_space", true) ? PrependScheme::kAlways
                                                    : PrependScheme::kNever;
}

namespace {

// The GPT-2 pre-tokenization regex that tokenizers' ByteLevel uses (Oniguruma syntax).
constexpr std::string_view kByteLevelPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace

// ---------------------------------------------------------------------------------------------
// Patterns

TextPattern TextPattern::from_json(const JsonField& field) {
  field.expect_object();
  if (std::optional<JsonField> text = field.find("String")) return TextPattern(text->string());
  if (std::optional<JsonField> regex = field.find("Regex")) {
    return TextPattern(Regex::from_oniguruma(regex->string(), regex->where()));
  }
  field.fail("expected {{\"String\": ...}} or {{\"Regex\": ...}}, found {}", field.json().dump());
}

void TextPattern::find_matches(std::string_view text, std::vector<MatchedSpan>& out) const {
  const size_t first = out.size();
  size_t previous_end = 0;
  const auto add_match = [&](size_t start, size_t end) {
    if (previous_end != start) out.push_back({previous_end, start, false});
    out.push_back({start, end, true});
    previous_end = end;
  };
  if (regex_) {
    thread_local std::vector<unicode::Span> matches;
    matches.clear();
    if (!text.empty()) regex_->find_all(text, matches);
    for (const unicode::Span& match : matches) add_match(match.start, match.end);
  } else if (!literal_.empty()) {
    for (size_t at = text.find(literal_); at != std::string_view::npos;
         at = text.find(literal_, at + literal_.size())) {
      add_match(at, at + literal_.size());
    }
  }
  if (previous_end != text.size() || out.size() == first) {
    out.push_back({previous_end, text.size(), false});
  }
}

// ---------------------------------------------------------------------------------------------
// Normalizers

namespace {

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  void normalize(std::string& text, std::string& scratch) const override {
    for (const auto& part : parts_) part->normalize(text, scratch);
  }
  std::optional<unicode::NormalForm> unicode_form() const override {
    for (const auto& part : parts_) {
      if (part && part->unicode_form()) return part->unicode_form();
    }
    return std::nullopt;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(unicode::NormalForm form) : form_(form) {}
  void normalize(std::string& text, std::string& scratch) const override {
    unicode::normalize(form_, text, scratch);
    text.swap(scratch);
  }
  std::optional<unicode::NormalForm> unicode_form() const override { return form_; }

 private:
  unicode::NormalForm form_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text, std::string&) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(TextPattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text, std::string& scratch) const override {
    thread_local std::vector<MatchedSpan> spans;
    replace_matches(pattern_, content_, text, scratch, spans);
  }

 private:
  TextPattern pattern_;
  std::string content_;
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text, std::string&) const override {
    size_t begin = 0, end = text.size();
    int length = 0;
    while (left_ && begin < end &&
           unicode::is_white_space(unicode::decode_utf8(text, begin, &length))) {
      begin += length;
    }
    while (right_ && end > begin) {
      size_t last = end - 1;
      while (last > begin && (static_cast<unsigned char>(text[last]) & 0xC0) == 0x80) --last;
      if (!unicode::is_white_space(unicode::decode_utf8(text, last, &length))) break;
      end = last;
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

}  // namespace

std::unique_ptr<Normalizer> normalizer_from_json(const std::optional<JsonField>& field) {
  if (!field) return nullptr;
  const std::string type = (*field)["type"].string();
  if (type == "Sequence") {
    const JsonField list = (*field)["normalizers"];
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (size_t i = 0; i < list.array_size(); ++i)
      parts.push_back(normalizer_from_json(list.at(i)));
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::kNfc);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::kNfd);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::kNfkc);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(unicode::NormalForm::kNfkd);
  if (type == "Prepend") return std::make_unique<PrependNormalizer>((*field)["prepend"].string());
  if (type == "Replace") {
    return std::make_unique<ReplaceNormalizer>(TextPattern::from_json((*field)["pattern"]),
                                               (*field)["content"].string());
  }
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(field->boolean_or("strip_left", true),
                                             field->boolean_or("strip_right", true));
  }
  (*field)["type"].fail(
      "unsupported normalizer type \"{}\" (supported: NFC, NFD, NFKC, NFKD, Prepend, Replace, "
      "Strip, Sequence)",
      type);
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers

namespace {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

SplitBehavior split_behavior_from_json(const JsonField& field) {
  const std::string name = field.string();
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  field.fail(
      "unknown split behavior \"{}\" (expected Removed, Isolated, MergedWithPrevious, "
      "MergedWithNext or Contiguous)",
      name);
}

// NormalizedString::split: turns matched spans into the pieces to keep (is_match = removed).
void apply_behavior(const std::vector<MatchedSpan>& spans, SplitBehavior behavior,
                    std::vector<MatchedSpan>& pieces) {
  pieces.clear();
  switch (behavior) {
    case SplitBehavior::kRemoved:
      pieces = spans;
      return;
    case SplitBehavior::kIsolated:
      for (const MatchedSpan& span : spans) pieces.push_back({span.start, span.end, false});
      return;
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const MatchedSpan& span : spans) {
        if (span.is_match && !previous_match && !pieces.empty()) {
          pieces.back().end = span.end;
        } else {
          pieces.push_back({span.start, span.end, false});
        }
        previous_match = span.is_match;
      }
      return;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;  // walking backwards: "previous" is the span to the right
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !pieces.empty()) {
          pieces.back().start = it->start;
        } else {
          pieces.push_back({it->start, it->end, false});
        }
        previous_match = it->is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      return;
    }
    case SplitBehavior::kContiguous: {
      std::optional<bool> previous_match;
      for (const MatchedSpan& span : spans) {
        if (previous_match == span.is_match && !pieces.empty()) {
          pieces.back().end = span.end;
        } else {
          pieces.push_back({span.start, span.end, false});
        }
        previous_match = span.is_match;
      }
      return;
    }
  }
}

void emit_pieces(std::string_view text, bool at_text_start, const std::vector<MatchedSpan>& pieces,
                 PieceSink next) {
  for (const MatchedSpan& piece : pieces) {
    if (piece.is_match || piece.end == piece.start) continue;
    next(text.substr(piece.start, piece.end - piece.start), at_text_start && piece.start == 0);
  }
}

class SplitStage final : public PreTokenizerStage {
 public:
  SplitStage(TextPattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void split(std::string_view piece, bool at_text_start, StageScratch& scratch,
             PieceSink next) const override {
    scratch.spans.clear();
    pattern_.find_matches(piece, scratch.spans);
    if (invert_) {
      for (MatchedSpan& span : scratch.spans) span.is_match = !span.is_match;
    }
    apply_behavior(scratch.spans, behavior_, scratch.pieces);
    emit_pieces(piece, at_text_start, scratch.pieces, next);
  }

 private:
  TextPattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelStage final : public PreTokenizerStage {
 public:
  ByteLevelStage(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space),
        regex_(use_regex
                   ? std::optional<Regex>(Regex::from_oniguruma(kByteLevelPattern, "ByteLevel"))
                   : std::nullopt) {}

  void split(std::string_view piece, bool at_text_start, StageScratch& scratch,
             PieceSink next) const override {
    std::string_view text = piece;
    if (add_prefix_space_ && !starts_with(piece, " ")) {
      scratch.text.assign(" ");
      scratch.text.append(piece);
      text = scratch.text;
    }
    if (!regex_) {
      emit_mapped(text, at_text_start, scratch, next);
      return;
    }
    // Isolated: the matches and the gaps between them, in order.
    scratch.matches.clear();
    regex_->find_all(text, scratch.matches);
    size_t previous_end = 0;
    for (const unicode::Span& match : scratch.matches) {
      if (match.start > previous_end) {
        emit_mapped(text.substr(previous_end, match.start - previous_end),
                    at_text_start && previous_end == 0, scratch, next);
      }
      emit_mapped(text.substr(match.start, match.end - match.start),
                  at_text_start && match.start == 0, scratch, next);
      previous_end = match.end;
    }
    if (previous_end < text.size()) {
      emit_mapped(text.substr(previous_end), at_text_start && previous_end == 0, scratch, next);
    }
  }

 private:
  static void emit_mapped(std::string_view word, bool at_text_start, StageScratch& scratch,
                          PieceSink next) {
    if (word.empty()) return;
    const ByteLevelTable& table = byte_level_table();
    scratch.mapped.clear();
    for (char c : word) scratch.mapped.append(table.byte_to_utf8[static_cast<unsigned char>(c)]);
    next(scratch.mapped, at_text_start);
  }

  bool add_prefix_space_;
  std::optional<Regex> regex_;
};

class MetaspaceStage final : public PreTokenizerStage {
 public:
  MetaspaceStage(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(replacement),
        pattern_(TextPattern::literal(std::move(replacement))),
        scheme_(scheme),
        split_(split) {}

  void split(std::string_view piece, bool at_text_start, StageScratch& scratch,
             PieceSink next) const override {
    scratch.text.clear();
    const bool prepend =
        !starts_with(piece, " ") && !starts_with(piece, replacement_) &&
        (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && at_text_start));
    if (prepend) scratch.text.append(replacement_);
    for (char c : piece) {
      if (c == ' ') {
        scratch.text.append(replacement_);
      } else {
        scratch.text.push_back(c);
      }
    }
    if (!split_) {
      next(scratch.text, at_text_start);
      return;
    }
    scratch.spans.clear();
    pattern_.find_matches(scratch.text, scratch.spans);
    apply_behavior(scratch.spans, SplitBehavior::kMergedWithNext, scratch.pieces);
    emit_pieces(scratch.text, at_text_start, scratch.pieces, next);
  }

 private:
  std::string replacement_;
  TextPattern pattern_;
  PrependScheme scheme_;
  bool split_;
};

void add_stages(const JsonField& field, std::vector<std::unique_ptr<PreTokenizerStage>>& stages) {
  const std::string type = field["type"].string();
  if (type == "Sequence") {
    const JsonField list = field["pretokenizers"];
    for (size_t i = 0; i < list.array_size(); ++i) add_stages(list.at(i), stages);
  } else if (type == "ByteLevel") {
    stages.push_back(std::make_unique<ByteLevelStage>(field.boolean_or("add_prefix_space", true),
                                                      field.boolean_or("use_regex", true)));
  } else if (type == "Split") {
    stages.push_back(std::make_unique<SplitStage>(TextPattern::from_json(field["pattern"]),
                                                  split_behavior_from_json(field["behavior"]),
                                                  field.boolean_or("invert", false)));
  } else if (type == "Metaspace") {
    stages.push_back(std::make_unique<MetaspaceStage>(single_char(field["replacement"]),
                                                      prepend_scheme_from_json(field),
                                                      field.boolean_or("split", true)));
  } else if (type == "Digits") {
    // Digits: every numeric character alone, or runs of them (char::is_numeric is \p{N}).
    const bool individual = field.boolean_or("individual_digits", false);
    stages.push_back(std::make_unique<SplitStage>(
        TextPattern::regex(Regex::from_pcre2("\\p{N}", field.where())),
        individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous, false));
  } else {
    field["type"].fail(
        "unsupported pre-tokenizer type \"{}\" (supported: ByteLevel, Split, Metaspace, Digits, "
        "Sequence)",
        type);
  }
}

}  // namespace

PreTokenizer PreTokenizer::from_json(const std::optional<JsonField>& field) {
  PreTokenizer pre_tokenizer;
  if (field) add_stages(*field, pre_tokenizer.stages_);
  return pre_tokenizer;
}

bool PreTokenizer::byte_level() const {
  return std::any_of(stages_.begin(), stages_.end(), [](const auto& stage) {
    return dynamic_cast<const ByteLevelStage*>(stage.get()) != nullptr;
  });
}

void PreTokenizer::split(std::string_view text, bool at_text_start,
                         std::vector<StageScratch>& scratch, PieceSink sink) const {
  if (scratch.size() < stages_.size()) scratch.resize(stages_.size());
  run_stage(0, text, at_text_start, scratch, sink);
}

void PreTokenizer::run_stage(size_t index, std::string_view piece, bool at_text_start,
                             std::vector<StageScratch>& scratch, PieceSink sink) const {
  if (index == stages_.size()) {
    sink(piece, at_text_start);
    return;
  }
  stages_[index]->split(piece, at_text_start, scratch[index],
                        [&](std::string_view sub_piece, bool sub_at_start) {
                          run_stage(index + 1, sub_piece, sub_at_start, scratch, sink);
                        });
}

}  // namespace ft::data::pipeline
