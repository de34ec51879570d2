// The BPE model of a Hugging Face tokenizer.json ("model": {"type": "BPE", ...}): vocabulary,
// ranked merges, byte fallback, unknown-token handling and ignore_merges, merging exactly as the
// `tokenizers` library does (lowest rank first, leftmost among equal ranks). Internal to
// HfTokenizer.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/data/tokenizer_json.h"

namespace ft::data {

// Transparent hashing so that maps keyed by std::string are searched with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};
template <typename Value>
using StringMap = std::unordered_map<std::string, Value, StringHash, std::equal_to<>>;

// Open-addressing hash map from a 64-bit key (never ~0) to a small value: the merge table (key:
// the two ids) and the single-character table (key: the code point).
template <typename Value>
class FlatU64Map {
 public:
  void reserve(size_t count);
  void insert_or_assign(uint64_t key, Value value);
  const Value* find(uint64_t key) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.key == key) return &slot.value;
      if (slot.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Slot {
    uint64_t key = kEmpty;
    Value value{};
  };
  size_t slot_of(uint64_t key) const {
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void rehash(size_t capacity);

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 64;
  size_t size_ = 0;
};

struct MergeRule {
  int32_t rank = 0;
  int32_t merged_id = 0;
};

// Reusable buffers for BpeModel::tokenize, one per encode call.
struct BpeScratch {
  std::vector<int32_t> symbols;
  std::vector<MergeRule> pair_rules;
  std::vector<int32_t> prev, next;
  std::string text;
};

class BpeModel {
 public:
  // Throws ft::Error naming the file and field for anything tokenizers would refuse, and for
  // dropout (ft needs one tokenization per text).
  static std::unique_ptr<BpeModel> from_json(const JsonField& model);
  ~BpeModel();

  // Appends the ids of one non-empty pre-tokenized word. Thread-safe.
  void tokenize(std::string_view word, std::vector<int32_t>& ids, BpeScratch& scratch) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // nullptr when no vocabulary entry has this id.
  const std::string* id_to_token(int32_t id) const;
  bool byte_fallback() const { return byte_fallback_; }
  std::optional<int32_t> unk_id() const { return unk_id_; }
  const std::string& continuing_subword_prefix() const { return continuing_subword_prefix_; }
  const std::string& end_of_word_suffix() const { return end_of_word_suffix_; }
  // The largest id in the vocabulary (-1 when empty).
  int32_t max_id() const { return static_cast<int32_t>(tokens_by_id_.size()) - 1; }

 private:
  struct WordCache;
  BpeModel();

  // The id of the character word[start, start + length) as a symbol (continuing-subword prefix
  // and end-of-word suffix applied), or -1.
  int32_t symbol_id(std::string_view word, size_t start, size_t length, BpeScratch& scratch) const;
  void split_into_symbols(std::string_view word, BpeScratch& scratch) const;
  void merge_short(BpeScratch& scratch) const;
  void merge_long(BpeScratch& scratch) const;
  // Merges one word (or one independent segment of it) through the cache.
  void tokenize_merging(std::string_view word, std::vector<int32_t>& ids,
                        BpeScratch& scratch) const;
  const MergeRule* rule(int32_t left, int32_t right) const {
    return merges_.find((uint64_t(uint32_t(left)) << 32) | uint32_t(right));
  }

  StringMap<int32_t> vocab_;
  std::vector<std::string> tokens_by_id_;
  std::vector<bool> has_id_;
  FlatU64Map<MergeRule> merges_;
  FlatU64Map<int32_t> single_char_ids_;  // used when there is no prefix or suffix to apply
  std::array<int32_t, 256> byte_ids_{};  // <0xNN> tokens, -1 where missing
  bool all_bytes_present_ = false;
  std::optional<int32_t> unk_id_;
  std::string unk_token_;  // named in model.unk_token (may be missing from the vocabulary)
  std::string file_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  // Metaspace words (Llama 2 has no pre-tokenizer: a whole text is one word) split before every
  // "▁" that follows another character when no merge ever joins a character to a following
  // "▁": the merges cannot cross those points, so the pieces merge alone (and hit the cache).
  bool split_at_metaspace_ = false;
  std::unique_ptr<WordCache> cache_;
};

}  // namespace ft::data
