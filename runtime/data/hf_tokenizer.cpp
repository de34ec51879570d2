#include "runtime/data/hf_tokenizer.h"

#include <array>
#include <fstream>
#include <sstream>

#include "runtime/data/bpe_model.h"
#include "runtime/data/token_alignment.h"
#include "runtime/data/tokenizer_json.h"
#include "runtime/data/tokenizer_pipeline.h"
#include "runtime/data/unicode_text.h"
#include "runtime/error.h"

namespace ft::data {

namespace {

struct AddedToken {
  std::string content;
  // What decode writes: tokenizers maps the id of a normalized token to its normalized content.
  std::string decoded_content;
  int32_t id = 0;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// Finds added tokens as tokenizers' Aho-Corasick automaton (leftmost-longest, non-overlapping)
// does: at the first position where some token starts, the longest token starting there.
class AddedTokenMatcher {
 public:
  void add(std::string_view pattern, int32_t token_index) {
    if (pattern.empty()) return;
    if (nodes_.empty()) nodes_.push_back(-1);
    int32_t node = 0;
    for (char c : pattern) {
      const uint64_t edge = edge_key(node, c);
      if (const int32_t* child = edges_.find(edge)) {
        node = *child;
      } else {
        const auto created = static_cast<int32_t>(nodes_.size());
        nodes_.push_back(-1);
        edges_.insert_or_assign(edge, created);
        node = created;
      }
    }
    nodes_[node] = token_index;
    can_start_[static_cast<unsigned char>(pattern[0])] = true;
  }
  bool empty() const { return nodes_.empty(); }

  // Calls on_match(start, end, token_index) for each match, left to right.
  template <typename OnMatch>
  void for_each_match(std::string_view text, OnMatch&& on_match) const {
    if (nodes_.empty()) return;
    size_t position = 0;
    while (position < text.size()) {
      if (!can_start_[static_cast<unsigned char>(text[position])]) {
        ++position;
        continue;
      }
      int32_t node = 0, best_token = -1;
      size_t best_end = 0;
      for (size_t i = position; i < text.size(); ++i) {
        const int32_t* child = edges_.find(edge_key(node, text[i]));
        if (child == nullptr) break;
        node = *child;
        if (nodes_[node] >= 0) {
          best_token = nodes_[node];
          best_end = i + 1;
        }
      }
      if (best_token < 0) {
        ++position;
        continue;
      }
      on_match(position, best_end, best_token);
      position = best_end;
    }
  }

 private:
  static uint64_t edge_key(int32_t node, char c) {
    return (uint64_t(uint32_t(node)) << 8) | static_cast<unsigned char>(c);
  }
  std::vector<int32_t> nodes_;  // token index ending at each node, or -1
  FlatU64Map<int32_t> edges_;   // (node, byte) -> child node
  std::array<bool, 256> can_start_{};
};

bool ends_with_word_char(std::string_view text) {
  if (text.empty()) return false;
  size_t last = text.size() - 1;
  while (last > 0 && (static_cast<unsigned char>(text[last]) & 0xC0) == 0x80) --last;
  int length = 0;
  return unicode::is_word_char(unicode::decode_utf8(text, last, &length));
}

bool starts_with_word_char(std::string_view text) {
  int length = 0;
  return !text.empty() && unicode::is_word_char(unicode::decode_utf8(text, 0, &length));
}

// Start of the run of whitespace that ends `text`.
size_t trailing_space_start(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    size_t last = end - 1;
    while (last > 0 && (static_cast<unsigned char>(text[last]) & 0xC0) == 0x80) --last;
    int length = 0;
    if (!unicode::is_white_space(unicode::decode_utf8(text, last, &length))) break;
    end = last;
  }
  return end;
}

size_t leading_space_length(std::string_view text) {
  size_t end = 0;
  int length = 0;
  while (end < text.size() && unicode::is_white_space(unicode::decode_utf8(text, end, &length))) {
    end += length;
  }
  return end;
}

std::string read_file(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    fail("{}: no such tokenizer file (expected a tokenizer.json)", path.string());
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) fail("{}: cannot open the tokenizer file", path.string());
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

// The eos_token of tokenizer_config.json beside the tokenizer file, or "".
std::string eos_from_tokenizer_config(const std::filesystem::path& tokenizer_path) {
  const std::filesystem::path config_path = tokenizer_path.parent_path() / "tokenizer_config.json";
  std::error_code error;
  if (!std::filesystem::is_regular_file(config_path, error)) return "";
  const nlohmann::json config =
      nlohmann::json::parse(read_file(config_path), nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) fail("{}: not valid JSON", config_path.string());
  if (!config.is_object() || !config.contains("eos_token")) return "";
  const nlohmann::json& eos = config["eos_token"];
  if (eos.is_string()) return eos.get<std::string>();
  if (eos.is_object() && eos.contains("content") && eos["content"].is_string()) {
    return eos["content"].get<std::string>();
  }
  if (eos.is_null()) return "";
  fail("{}: field 'eos_token': expected a string or {{\"content\": ...}}, found {}",
       config_path.string(), eos.dump());
}

}  // namespace

struct HfTokenizer::Impl {
  std::string file;
  std::unique_ptr<pipeline::Normalizer> normalizer;
  pipeline::PreTokenizer pre_tokenizer;
  std::unique_ptr<pipeline::Decoder> decoder;
  std::unique_ptr<BpeModel> model;
  std::vector<AddedToken> added;  // in file order
  StringMap<int32_t> added_by_content;
  std::unordered_map<int32_t, size_t> added_by_id;  // id -> index in `added`
  AddedTokenMatcher raw_matcher;         // tokens with normalized = false, matched on the input
  AddedTokenMatcher normalized_matcher;  // tokens with normalized = true, on normalized text
  bool raw_has_plain = false, normalized_has_plain = false;  // a non-special token in each
  std::optional<int32_t> eos;
  int32_t vocab_size = 0;

  struct Scratch {
    std::string normalized, normalize_buffer;
    std::vector<pipeline::StageScratch> stages;
    BpeScratch bpe;
  };

  // Appends the ids of `text` to `ids` and, when `offsets` is set, their byte offsets.
  void encode(std::string_view text, bool parse_special, bool at_text_start,
              std::vector<int32_t>& ids, std::vector<std::pair<size_t, size_t>>* offsets) const;
  // The text a vocabulary token stands for in the pre-tokenized word ("▁" kept as it is, byte
  // fallback and byte-level characters as bytes); nullopt for the unknown token.
  std::optional<std::string> token_surface(int32_t id) const;
  // Offsets of the tokens of one piece between raw added tokens (see TokenGroup).
  void align_offsets(std::string_view piece, size_t piece_offset, const std::vector<int32_t>& ids,
                     const std::vector<TokenGroup>& groups,
                     std::vector<std::pair<size_t, size_t>>& offsets) const;
  // Splits `text` on the matcher's tokens as tokenizers' AddedVocabulary::find_matches does and
  // calls on_piece(piece, offset, token_id) in order; token_id is -1 for text between tokens.
  template <typename OnPiece>
  void split_on_added(std::string_view text, const AddedTokenMatcher& matcher, bool has_plain,
                      bool parse_special, OnPiece&& on_piece) const;
};

template <typename OnPiece>
void HfTokenizer::Impl::split_on_added(std::string_view text, const AddedTokenMatcher& matcher,
                                       bool has_plain, bool parse_special,
                                       OnPiece&& on_piece) const {
  if (matcher.empty() || (!parse_special && !has_plain)) {
    if (!text.empty()) on_piece(text, size_t{0}, int32_t{-1});
    return;
  }
  size_t piece_start = 0;
  matcher.for_each_match(text, [&](size_t start, size_t stop, int32_t index) {
    const AddedToken& token = added[index];
    if (token.special && !parse_special) return;  // its span is still consumed, as in tokenizers
    if (token.single_word && ((start > 0 && ends_with_word_char(text.substr(0, start))) ||
                              (stop < text.size() && starts_with_word_char(text.substr(stop))))) {
      return;
    }
    if (token.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), piece_start);
    if (token.rstrip) stop += leading_space_length(text.substr(stop));
    start = std::max(start, piece_start);
    if (piece_start < start)
      on_piece(text.substr(piece_start, start - piece_start), piece_start, -1);
    on_piece(text.substr(start, stop - start), start, token.id);
    piece_start = stop;
  });
  if (piece_start < text.size()) on_piece(text.substr(piece_start), piece_start, -1);
}

void HfTokenizer::Impl::encode(std::string_view text, bool parse_special, bool at_text_start,
                               std::vector<int32_t>& ids,
                               std::vector<std::pair<size_t, size_t>>* offsets) const {
  if (const size_t bad = unicode::find_invalid_utf8(text); bad != std::string_view::npos) {
    fail("tokenizer {}: the text is not valid UTF-8 (byte {} of {})", file, bad, text.size());
  }
  ids.reserve(ids.size() + text.size() / 3 + 4);
  Scratch scratch;
  std::vector<TokenGroup> groups;
  const auto tokenize_piece = [&](std::string_view piece, bool piece_at_text_start) {
    pre_tokenizer.split(
        piece, piece_at_text_start, scratch.stages,
        [&](std::string_view word, bool) { model->tokenize(word, ids, scratch.bpe); });
  };
  split_on_added(text, raw_matcher, raw_has_plain, parse_special,
                 [&](std::string_view piece, size_t offset, int32_t token_id) {
                   if (token_id >= 0) {
                     ids.push_back(token_id);
                     if (offsets) offsets->emplace_back(offset, offset + piece.size());
                     return;
                   }
                   std::string_view normalized = piece;
                   if (normalizer) {
                     scratch.normalized.assign(piece);
                     normalizer->normalize(scratch.normalized, scratch.normalize_buffer);
                     normalized = scratch.normalized;
                   }
                   groups.clear();
                   split_on_added(
                       normalized, normalized_matcher, normalized_has_plain, parse_special,
                       [&](std::string_view sub_piece, size_t sub_offset, int32_t sub_token_id) {
                         const size_t first = ids.size();
                         if (sub_token_id >= 0) {
                           ids.push_back(sub_token_id);
                         } else {
                           tokenize_piece(sub_piece,
                                          at_text_start && offset == 0 && sub_offset == 0);
                         }
                         groups.push_back({first, ids.size(), sub_token_id >= 0});
                       });
                   if (offsets) align_offsets(piece, offset, ids, groups, *offsets);
                 });
}

std::optional<std::string> HfTokenizer::Impl::token_surface(int32_t id) const {
  if (const auto it = added_by_id.find(id); it != added_by_id.end()) {
    return added[it->second].decoded_content;
  }
  if (model->unk_id() == id) return std::nullopt;
  const std::string* token = model->id_to_token(id);
  if (token == nullptr) return std::nullopt;
  std::string_view text = *token;
  const std::string& prefix = model->continuing_subword_prefix();
  const std::string& suffix = model->end_of_word_suffix();
  if (!prefix.empty() && pipeline::starts_with(text, prefix)) text.remove_prefix(prefix.size());
  if (!suffix.empty() && text.size() >= suffix.size() &&
      text.substr(text.size() - suffix.size()) == suffix) {
    text.remove_suffix(suffix.size());
  }
  if (model->byte_fallback() && text.size() == 6 && pipeline::starts_with(text, "<0x") &&
      text[5] == '>') {
    return std::string(1,
                       static_cast<char>(std::stoi(std::string(text.substr(3, 2)), nullptr, 16)));
  }
  if (!pre_tokenizer.byte_level()) return std::string(text);
  const pipeline::ByteLevelTable& table = pipeline::byte_level_table();
  std::string bytes;
  for (size_t at = 0; at < text.size();) {
    int length = 0;
    const char32_t c = unicode::decode_utf8(text, at, &length);
    if (c < table.char_to_byte.size() && table.char_to_byte[c] >= 0) {
      bytes.push_back(static_cast<char>(table.char_to_byte[c]));
    } else {
      bytes.append(text.substr(at, length));
    }
    at += length;
  }
  return bytes;
}

void HfTokenizer::Impl::align_offsets(std::string_view piece, size_t piece_offset,
                                      const std::vector<int32_t>& ids,
                                      const std::vector<TokenGroup>& groups,
                                      std::vector<std::pair<size_t, size_t>>& offsets) const {
  if (groups.empty()) return;
  std::vector<std::optional<std::string>> surfaces(ids.size());
  for (size_t t = groups.front().begin; t < groups.back().end; ++t) {
    surfaces[t] = token_surface(ids[t]);
  }
  align_token_offsets(piece, piece_offset, normalizer ? normalizer->unicode_form() : std::nullopt,
                      surfaces, groups, offsets);
}

// ---------------------------------------------------------------------------------------------
// Loading

HfTokenizer::HfTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HfTokenizer::~HfTokenizer() = default;

std::unique_ptr<HfTokenizer> HfTokenizer::load(const std::filesystem::path& path,
                                               const HfTokenizerOptions& options) {
  HfTokenizerOptions resolved = options;
  if (resolved.eos_token.empty()) resolved.eos_token = eos_from_tokenizer_config(path);
  return parse(read_file(path), path.string(), resolved);
}

std::unique_ptr<HfTokenizer> HfTokenizer::parse(std::string_view json_text,
                                                const std::string& source_name,
                                                const HfTokenizerOptions& options) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::parse_error& error) {
    fail("{}: not valid JSON: {}", source_name, error.what());
  }
  const JsonField root(json, "", std::make_shared<const std::string>(source_name));
  root.expect_object();
  auto impl = std::make_unique<Impl>();
  impl->file = source_name;

  const JsonField model = root["model"];
  model.expect_object();
  const std::string type = model.has("type") ? model["type"].string() : "BPE";
  if (type != "BPE") {
    model["type"].fail("unsupported model type \"{}\": ft reads BPE tokenizers only", type);
  }
  impl->model = BpeModel::from_json(model);
  impl->normalizer = pipeline::normalizer_from_json(root.find("normalizer"));
  impl->pre_tokenizer = pipeline::PreTokenizer::from_json(root.find("pre_tokenizer"));
  impl->decoder = pipeline::decoder_from_json(root.find("decoder"));
  int32_t max_id = impl->model->max_id();

  if (std::optional<JsonField> added_list = root.find("added_tokens")) {
    for (size_t i = 0; i < added_list->array_size(); ++i) {
      const JsonField entry = added_list->at(i);
      AddedToken token;
      token.content = entry["content"].string();
      const int64_t id = entry["id"].integer();
      if (id < 0 || id >= INT32_MAX) entry["id"].fail("expected an id in [0, 2^31 - 1)");
      token.id = static_cast<int32_t>(id);
      token.single_word = entry.boolean_or("single_word", false);
      token.lstrip = entry.boolean_or("lstrip", false);
      token.rstrip = entry.boolean_or("rstrip", false);
      token.special = entry.boolean_or("special", false);
      token.normalized = entry.boolean_or("normalized", !token.special);
      if (token.content.empty()) entry["content"].fail("an added token cannot be empty");
      if (unicode::find_invalid_utf8(token.content) != std::string_view::npos) {
        entry["content"].fail("not valid UTF-8");
      }
      max_id = std::max(max_id, token.id);
      const size_t index = impl->added.size();
      impl->added_by_content[token.content] = token.id;
      impl->added_by_id[token.id] = index;
      token.decoded_content = token.content;
      if (token.normalized) {
        std::string buffer;
        if (impl->normalizer) impl->normalizer->normalize(token.decoded_content, buffer);
        impl->normalized_matcher.add(token.decoded_content, static_cast<int32_t>(index));
        impl->normalized_has_plain |= !token.special;
      } else {
        impl->raw_matcher.add(token.content, static_cast<int32_t>(index));
        impl->raw_has_plain |= !token.special;
      }
      impl->added.push_back(std::move(token));
    }
  }
  impl->vocab_size = max_id + 1;

  const auto lookup = [&](std::string_view name) -> std::optional<int32_t> {
    if (const auto it = impl->added_by_content.find(name); it != impl->added_by_content.end()) {
      return it->second;
    }
    return impl->model->token_to_id(name);
  };
  if (!options.eos_token.empty()) {
    impl->eos = lookup(options.eos_token);
    if (!impl->eos) {
      fail("{}: the end-of-sequence token \"{}\" is not in the vocabulary or added_tokens",
           source_name, options.eos_token);
    }
  } else {
    for (std::string_view name :
         {"</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "<|im_end|>", "<|eot_id|>"}) {
      if (const auto it = impl->added_by_content.find(name); it != impl->added_by_content.end()) {
        impl->eos = it->second;
        break;
      }
    }
  }
  return std::unique_ptr<HfTokenizer>(new HfTokenizer(std::move(impl)));
}

// ---------------------------------------------------------------------------------------------
// The Tokenizer interface

std::vector<int32_t> HfTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  impl_->encode(text, /*parse_special=*/false, /*at_text_start=*/true, ids, nullptr);
  return ids;
}

EncodedText HfTokenizer::encode_with_offsets(std::string_view text, bool at_text_start) const {
  EncodedText encoded;
  impl_->encode(text, /*parse_special=*/false, at_text_start, encoded.ids, &encoded.offsets);
  return encoded;
}

std::vector<int32_t> HfTokenizer::encode_with_special_tokens(std::string_view text) const {
  std::vector<int32_t> ids;
  impl_->encode(text, /*parse_special=*/true, /*at_text_start=*/true, ids, nullptr);
  return ids;
}

std::string HfTokenizer::id_to_token(int32_t id) const {
  if (const auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) {
    return impl_->added[it->second].decoded_content;
  }
  if (const std::string* token = impl_->model->id_to_token(id)) return *token;
  fail("tokenizer {}: id {} has no token (vocab_size {})", impl_->file, id, impl_->vocab_size);
}

std::optional<int32_t> HfTokenizer::token_to_id(std::string_view token) const {
  if (const auto it = impl_->added_by_content.find(token); it != impl_->added_by_content.end()) {
    return it->second;
  }
  return impl_->model->token_to_id(token);
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) tokens.push_back(id_to_token(id));
  std::string text;
  if (impl_->decoder) {
    impl_->decoder->decode_chain(tokens);
    for (const std::string& token : tokens) text += token;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) text += ' ';
      text += tokens[i];
    }
  }
  return text;
}

int32_t HfTokenizer::vocab_size() const {
  return impl_->vocab_size;
}

int32_t HfTokenizer::eos_id() const {
  if (!impl_->eos) {
    fail(
        "tokenizer {}: no end-of-sequence token found (none of </s>, <|endoftext|>, "
        "<|end_of_text|>, <eos>, <|im_end|>, <|eot_id|> is an added token and no "
        "tokenizer_config.json names one): set HfTokenizerOptions::eos_token",
        impl_->file);
  }
  return *impl_->eos;
}

std::optional<int32_t> HfTokenizer::special_token(std::string_view name) const {
  const auto it = impl_->added_by_content.find(name);
  if (it == impl_->added_by_content.end()) return std::nullopt;
  return it->second;
}

}  // namespace ft::data
