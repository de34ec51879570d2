#include "runtime/data/tokenizer_pipeline.h"

#include "runtime/error.h"

namespace ft::data::pipeline {

namespace {

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts)
      : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& part : parts_) part->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

// Maps every character back to its byte (a token with a character outside the table is kept as
// it is) and reads the bytes as UTF-8, invalid sequences becoming U+FFFD.
class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    const ByteLevelTable& table = byte_level_table();
    std::string bytes;
    for (const std::string& token : tokens) {
      const size_t token_start = bytes.size();
      bool mapped = true;
      for (size_t i = 0; i < token.size() && mapped;) {
        int length = 0;
        const char32_t cp = unicode::decode_utf8(token, i, &length);
        mapped = cp < table.char_to_byte.size() && table.char_to_byte[cp] >= 0;
        if (mapped) bytes.push_back(static_cast<char>(table.char_to_byte[cp]));
        i += length;
      }
      if (!mapped) {
        bytes.resize(token_start);
        bytes.append(token);
      }
    }
    std::string text;
    unicode::append_utf8_lossy(text, bytes);
    tokens.assign(1, std::move(text));
  }
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, PrependScheme scheme)
      : replacement_(std::move(replacement)), scheme_(scheme) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      // On the first token the replacement stands for the prepended space: it is dropped.
      const std::string_view space = (i == 0 && scheme_ != PrependScheme::kNever) ? "" : " ";
      std::string decoded;
      const std::string& token = tokens[i];
      for (size_t at = 0; at < token.size();) {
        if (token.compare(at, replacement_.size(), replacement_) == 0) {
          decoded.append(space);
          at += replacement_.size();
        } else {
          decoded.push_back(token[at++]);
        }
      }
      tokens[i] = std::move(decoded);
    }
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(TextPattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string scratch;
    std::vector<MatchedSpan> spans;
    for (std::string& token : tokens) replace_matches(pattern_, content_, token, scratch, spans);
  }

 private:
  TextPattern pattern_;
  std::string content_;
};

// Runs of <0xNN> tokens become the text their bytes spell, or one U+FFFD per byte when the run
// is not valid UTF-8.
class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> decoded;
    std::string bytes;
    size_t byte_count = 0;
    const auto flush = [&] {
      if (byte_count == 0) return;
      if (unicode::find_invalid_utf8(bytes) == std::string_view::npos) {
        decoded.push_back(bytes);
      } else {
        for (size_t i = 0; i < byte_count; ++i) decoded.emplace_back("\xEF\xBF\xBD");
      }
      bytes.clear();
      byte_count = 0;
    };
    for (std::string& token : tokens) {
      if (std::optional<unsigned char> byte = fallback_byte(token)) {
        bytes.push_back(static_cast<char>(*byte));
        ++byte_count;
      } else {
        flush();
        decoded.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(decoded);
  }

 private:
  static std::optional<unsigned char> fallback_byte(const std::string& token) {
    if (token.size() != 6 || !starts_with(token, "<0x") || token[5] != '>') return std::nullopt;
    const auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int high = hex(token[3]), low = hex(token[4]);
    if (high < 0 || low < 0) return std::nullopt;
    return static_cast<unsigned char>(high * 16 + low);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string fused;
    for (const std::string& token : tokens) fused += token;
    tokens.assign(1, std::move(fused));
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from each token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      size_t begin = 0, end = token.size();
      for (size_t i = 0; i < start_ && token.compare(begin, content_.size(), content_) == 0; ++i) {
        begin += content_.size();
      }
      for (size_t i = 0; i < stop_ && end >= begin + content_.size() &&
                         token.compare(end - content_.size(), content_.size(), content_) == 0;
           ++i) {
        end -= content_.size();
      }
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

size_t count_field(const JsonField& field) {
  const int64_t value = field.integer();
  if (value < 0) field.fail("expected a count >= 0, found {}", value);
  return static_cast<size_t>(value);
}

}  // namespace

std::unique_ptr<Decoder> decoder_from_json(const std::optional<JsonField>& field) {
  if (!field) return nullptr;
  const std::string type = (*field)["type"].string();
  if (type == "Sequence") {
    const JsonField list = (*field)["decoders"];
    std::vector<std::unique_ptr<Decoder>> parts;
    for (size_t i = 0; i < list.array_size(); ++i) parts.push_back(decoder_from_json(list.at(i)));
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    return std::make_unique<MetaspaceDecoder>(single_char((*field)["replacement"]),
                                              prepend_scheme_from_json(*field));
  }
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(TextPattern::from_json((*field)["pattern"]),
                                            (*field)["content"].string());
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(single_char((*field)["content"]),
                                          count_field((*field)["start"]),
                                          count_field((*field)["stop"]));
  }
  (*field)["type"].fail(
      "unsupported decoder type \"{}\" (supported: ByteLevel, Metaspace, Replace, ByteFallback, "
      "Fuse, Strip, Sequence)",
      type);
}

}  // namespace ft::data::pipeline
