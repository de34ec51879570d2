#include "runtime/data/bpe_model.h"

#include <climits>
#include <mutex>
#include <queue>

#include "runtime/data/unicode_text.h"
#include "runtime/error.h"

namespace ft::data {

// ---------------------------------------------------------------------------------------------
// FlatU64Map

template <typename Value>
void FlatU64Map<Value>::reserve(size_t count) {
  size_t capacity = 16;
  while (capacity < count * 2) capacity *= 2;
  if (capacity > slots_.size()) rehash(capacity);
}

template <typename Value>
void FlatU64Map<Value>::rehash(size_t capacity) {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(capacity, Slot{});
  mask_ = capacity - 1;
  shift_ = 64 - __builtin_ctzll(capacity);
  size_ = 0;
  for (const Slot& slot : old) {
    if (slot.key != kEmpty) insert_or_assign(slot.key, slot.value);
  }
}

template <typename Value>
void FlatU64Map<Value>::insert_or_assign(uint64_t key, Value value) {
  if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.empty() ? 16 : slots_.size() * 2);
  for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
    Slot& slot = slots_[i];
    if (slot.key == key) {
      slot.value = value;
      return;
    }
    if (slot.key == kEmpty) {
      slot.key = key;
      slot.value = value;
      ++size_;
      return;
    }
  }
}

template class FlatU64Map<MergeRule>;
template class FlatU64Map<int32_t>;

// ---------------------------------------------------------------------------------------------
// Word cache: the ids of recently seen words. Like tokenizers' cache it never blocks: a call
// that finds the lock taken by another thread just computes the word.

struct BpeModel::WordCache {
  static constexpr size_t kMaxWords = 1 << 16;
  static constexpr size_t kMaxWordBytes = 256;

  std::mutex mutex;
  StringMap<std::pair<uint32_t, uint32_t>> index;  // word -> (offset, count) in ids
  std::vector<int32_t> ids;

  bool lookup(std::string_view word, std::vector<int32_t>& out) {
    std::unique_lock lock(mutex, std::try_to_lock);
    if (!lock) return false;
    const auto it = index.find(word);
    if (it == index.end()) return false;
    out.insert(out.end(), ids.begin() + it->second.first,
               ids.begin() + it->second.first + it->second.second);
    return true;
  }

  void insert(std::string_view word, const int32_t* word_ids, size_t count) {
    if (word.size() > kMaxWordBytes) return;
    std::unique_lock lock(mutex, std::try_to_lock);
    if (!lock) return;
    if (index.size() >= kMaxWords) return;  // full: keep the words seen first, as tokenizers
    const auto offset = static_cast<uint32_t>(ids.size());
    ids.insert(ids.end(), word_ids, word_ids + count);
    index.emplace(std::string(word), std::make_pair(offset, static_cast<uint32_t>(count)));
  }
};

BpeModel::BpeModel() : cache_(std::make_unique<WordCache>()) {}
BpeModel::~BpeModel() = default;

// ---------------------------------------------------------------------------------------------
// Loading

namespace {

// A merge, as "left right" (the older form) or ["left", "right"].
std::pair<std::string, std::string> merge_pair(const JsonField& merge) {
  if (merge.json().is_string()) {
    const std::string text = merge.string();
    const size_t space = text.find(' ');
    if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
      merge.fail("expected \"left right\" (two tokens and one space), found \"{}\"", text);
    }
    return {text.substr(0, space), text.substr(space + 1)};
  }
  if (!merge.json().is_array() || merge.json().size() != 2) {
    merge.fail("expected \"left right\" or [\"left\", \"right\"], found {}", merge.json().dump());
  }
  return {merge.at(0).string(), merge.at(1).string()};
}

constexpr std::string_view kMetaspace = "\u2581";

bool follows_metaspace(std::string_view text, size_t at) {
  return at >= kMetaspace.size() &&
         text.substr(at - kMetaspace.size(), kMetaspace.size()) == kMetaspace;
}

// Whether `text` has a "▁" right after a character other than "▁".
bool joins_metaspace(std::string_view text) {
  for (size_t at = text.find(kMetaspace, 1); at != std::string_view::npos;
       at = text.find(kMetaspace, at + 1)) {
    if (!follows_metaspace(text, at)) return true;
  }
  return false;
}

std::string optional_string(const JsonField& model, std::string_view key) {
  std::optional<JsonField> field = model.find(key);
  return field ? field->string() : std::string();
}

}  // namespace

std::unique_ptr<BpeModel> BpeModel::from_json(const JsonField& model) {
  model.expect_object();
  std::unique_ptr<BpeModel> bpe(new BpeModel());
  bpe->file_ = model.file();
  if (std::optional<JsonField> dropout = model.find("dropout")) {
    if (dropout->number() != 0.0) {
      dropout->fail(
          "BPE dropout {} samples a different tokenization on every call; ft needs one "
          "tokenization per text (set it to null)",
          dropout->number());
    }
  }
  bpe->fuse_unk_ = model.boolean_or("fuse_unk", false);
  bpe->byte_fallback_ = model.boolean_or("byte_fallback", false);
  bpe->ignore_merges_ = model.boolean_or("ignore_merges", false);
  bpe->continuing_subword_prefix_ = optional_string(model, "continuing_subword_prefix");
  bpe->end_of_word_suffix_ = optional_string(model, "end_of_word_suffix");
  bpe->unk_token_ = optional_string(model, "unk_token");

  const JsonField vocab = model["vocab"];
  vocab.expect_object();
  bpe->vocab_.reserve(vocab.json().size());
  for (const auto& [token, id_json] : vocab.json().items()) {
    if (!id_json.is_number_integer() || id_json.get<int64_t>() < 0 ||
        id_json.get<int64_t>() >= INT32_MAX) {
      vocab.fail("token \"{}\" has id {} (expected an integer in [0, 2^31 - 1))", token,
                 id_json.dump());
    }
    const int64_t id = id_json.get<int64_t>();
    bpe->vocab_.emplace(token, static_cast<int32_t>(id));
    if (static_cast<size_t>(id) >= bpe->tokens_by_id_.size()) {
      bpe->tokens_by_id_.resize(id + 1);
      bpe->has_id_.resize(id + 1, false);
    }
    if (!bpe->has_id_[id]) {
      bpe->tokens_by_id_[id] = token;
      bpe->has_id_[id] = true;
    }
  }
  if (!bpe->unk_token_.empty()) {
    if (const auto it = bpe->vocab_.find(bpe->unk_token_); it != bpe->vocab_.end()) {
      bpe->unk_id_ = it->second;
    }
  }

  const bool plain_symbols =
      bpe->continuing_subword_prefix_.empty() && bpe->end_of_word_suffix_.empty();
  for (const auto& [token, id] : bpe->vocab_) {
    int length = 0;
    if (plain_symbols && !token.empty() &&
        static_cast<size_t>(unicode::utf8_sequence_length(token[0])) == token.size() &&
        unicode::find_invalid_utf8(token) == std::string_view::npos) {
      bpe->single_char_ids_.insert_or_assign(unicode::decode_utf8(token, 0, &length), id);
    }
  }
  bpe->all_bytes_present_ = true;
  for (int b = 0; b < 256; ++b) {
    const auto it = bpe->vocab_.find(fmt::format("<0x{:02X}>", b));
    bpe->byte_ids_[b] = it == bpe->vocab_.end() ? -1 : it->second;
    bpe->all_bytes_present_ &= bpe->byte_ids_[b] >= 0;
  }

  bpe->split_at_metaspace_ = plain_symbols && bpe->vocab_.count(kMetaspace) > 0;
  const JsonField merges = model["merges"];
  const size_t merge_count = merges.array_size();
  bpe->merges_.reserve(merge_count);
  const size_t prefix_length = bpe->continuing_subword_prefix_.size();
  for (size_t i = 0; i < merge_count; ++i) {
    const JsonField merge = merges.at(i);
    const auto [left, right] = merge_pair(merge);
    const auto id_of = [&](const std::string& token) {
      const auto it = bpe->vocab_.find(token);
      if (it == bpe->vocab_.end()) merge.fail("token \"{}\" is not in model.vocab", token);
      return it->second;
    };
    if (right.size() < prefix_length) {
      merge.fail("\"{}\" does not start with continuing_subword_prefix \"{}\"", right,
                 bpe->continuing_subword_prefix_);
    }
    const int32_t left_id = id_of(left);
    const int32_t right_id = id_of(right);
    const std::string merged = left + right.substr(prefix_length);
    const int32_t merged_id = id_of(merged);
    if (joins_metaspace(merged)) bpe->split_at_metaspace_ = false;
    if (i >= static_cast<size_t>(INT32_MAX)) merge.fail("too many merges");
    // A repeated pair keeps its last rank, as tokenizers' map does.
    bpe->merges_.insert_or_assign((uint64_t(uint32_t(left_id)) << 32) | uint32_t(right_id),
                                  MergeRule{static_cast<int32_t>(i), merged_id});
  }
  return bpe;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_by_id_.size() || !has_id_[id]) return nullptr;
  return &tokens_by_id_[id];
}

// ---------------------------------------------------------------------------------------------
// Tokenizing one word

int32_t BpeModel::symbol_id(std::string_view word, size_t start, size_t length,
                            BpeScratch& scratch) const {
  const bool plain = continuing_subword_prefix_.empty() && end_of_word_suffix_.empty();
  if (plain) {
    int decoded_length = 0;
    const int32_t* id = single_char_ids_.find(unicode::decode_utf8(word, start, &decoded_length));
    return id ? *id : -1;
  }
  scratch.text.clear();
  if (start > 0) scratch.text += continuing_subword_prefix_;
  scratch.text.append(word.substr(start, length));
  if (start + length == word.size()) scratch.text += end_of_word_suffix_;
  const auto it = vocab_.find(scratch.text);
  return it == vocab_.end() ? -1 : it->second;
}

void BpeModel::split_into_symbols(std::string_view word, BpeScratch& scratch) const {
  std::vector<int32_t>& symbols = scratch.symbols;
  symbols.clear();
  bool unk_pending = false;  // an unknown character waiting to be written (and maybe fused)
  for (size_t start = 0; start < word.size();) {
    const size_t length = unicode::utf8_sequence_length(static_cast<unsigned char>(word[start]));
    const int32_t id = symbol_id(word, start, length, scratch);
    if (id >= 0) {
      if (unk_pending) symbols.push_back(*unk_id_);
      unk_pending = false;
      symbols.push_back(id);
    } else {
      // The bytes of the symbol's text (prefix and suffix included, as tokenizers does).
      const std::string_view text =
          (continuing_subword_prefix_.empty() && end_of_word_suffix_.empty())
              ? word.substr(start, length)
              : std::string_view(scratch.text);
      bool bytes_known = byte_fallback_;
      for (size_t i = 0; bytes_known && !all_bytes_present_ && i < text.size(); ++i) {
        bytes_known = byte_ids_[static_cast<unsigned char>(text[i])] >= 0;
      }
      if (bytes_known) {
        // tokenizers writes these before an unknown character still pending.
        for (char c : text) symbols.push_back(byte_ids_[static_cast<unsigned char>(c)]);
      } else if (!unk_token_.empty()) {
        if (!unk_id_) {
          fail("{}: field 'model.unk_token': \"{}\" is not in model.vocab (needed for \"{}\")",
               file_, unk_token_, word.substr(start, length));
        }
        if (unk_pending && !fuse_unk_) symbols.push_back(*unk_id_);
        unk_pending = true;
      }
      // Without byte fallback or an unknown token the character is dropped, as in tokenizers.
    }
    start += length;
  }
  if (unk_pending) symbols.push_back(*unk_id_);
}

// Short words: repeatedly merge the lowest-ranked adjacent pair (leftmost on ties).
void BpeModel::merge_short(BpeScratch& scratch) const {
  std::vector<int32_t>& symbols = scratch.symbols;
  std::vector<MergeRule>& rules = scratch.pair_rules;  // rules[i]: pair (symbols[i], [i + 1])
  const auto rule_at = [&](size_t i) {
    const MergeRule* found = rule(symbols[i], symbols[i + 1]);
    return found ? *found : MergeRule{INT32_MAX, -1};
  };
  rules.resize(symbols.size() - 1);
  for (size_t i = 0; i + 1 < symbols.size(); ++i) rules[i] = rule_at(i);
  while (!rules.empty()) {
    size_t best = 0;
    for (size_t i = 1; i < rules.size(); ++i) {
      if (rules[i].rank < rules[best].rank) best = i;
    }
    if (rules[best].rank == INT32_MAX) break;
    symbols[best] = rules[best].merged_id;
    symbols.erase(symbols.begin() + best + 1);
    rules.erase(rules.begin() + best);
    if (best < rules.size()) rules[best] = rule_at(best);
    if (best > 0) rules[best - 1] = rule_at(best - 1);
  }
}

// Long words: tokenizers' algorithm, a priority queue of (rank, position) over a linked list,
// stale entries skipped when popped.
void BpeModel::merge_long(BpeScratch& scratch) const {
  std::vector<int32_t>& symbols = scratch.symbols;
  const auto n = static_cast<int32_t>(symbols.size());
  std::vector<int32_t>& prev = scratch.prev;
  std::vector<int32_t>& next = scratch.next;
  prev.resize(n);
  next.resize(n);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank, position, merged_id;
    bool operator>(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : position > other.position;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  for (int32_t i = 0; i + 1 < n; ++i) {
    if (const MergeRule* found = rule(symbols[i], symbols[i + 1])) {
      queue.push({found->rank, i, found->merged_id});
    }
  }
  std::vector<bool> removed(n, false);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    if (removed[top.position] || next[top.position] < 0) continue;
    const int32_t right = next[top.position];
    const MergeRule* current = rule(symbols[top.position], symbols[right]);
    if (current == nullptr || current->merged_id != top.merged_id) continue;  // stale entry
    symbols[top.position] = top.merged_id;
    removed[right] = true;
    next[top.position] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.position;
    if (prev[top.position] >= 0) {
      const int32_t left = prev[top.position];
      if (const MergeRule* found = rule(symbols[left], symbols[top.position])) {
        queue.push({found->rank, left, found->merged_id});
      }
    }
    if (next[top.position] >= 0) {
      if (const MergeRule* found = rule(symbols[top.position], symbols[next[top.position]])) {
        queue.push({found->rank, top.position, found->merged_id});
      }
    }
  }
  int32_t kept = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (!removed[i]) symbols[kept++] = symbols[i];
  }
  symbols.resize(kept);
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& ids,
                        BpeScratch& scratch) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto it = vocab_.find(word); it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  if (!split_at_metaspace_) {
    tokenize_merging(word, ids, scratch);
    return;
  }
  size_t segment_start = 0;
  for (size_t at = word.find(kMetaspace, 1); at != std::string_view::npos;
       at = word.find(kMetaspace, at + kMetaspace.size())) {
    if (follows_metaspace(word, at)) continue;
    tokenize_merging(word.substr(segment_start, at - segment_start), ids, scratch);
    segment_start = at;
  }
  tokenize_merging(word.substr(segment_start), ids, scratch);
}

void BpeModel::tokenize_merging(std::string_view word, std::vector<int32_t>& ids,
                                BpeScratch& scratch) const {
  if (cache_->lookup(word, ids)) return;
  split_into_symbols(word, scratch);
  if (scratch.symbols.size() > 1) {
    // Quadratic scanning beats the queue on the short words that make up most text.
    constexpr size_t kShortWordSymbols = 16;
    if (scratch.symbols.size() <= kShortWordSymbols) {
      merge_short(scratch);
    } else {
      merge_long(scratch);
    }
  }
  ids.insert(ids.end(), scratch.symbols.begin(), scratch.symbols.end());
  cache_->insert(word, scratch.symbols.data(), scratch.symbols.size());
}

}  // namespace ft::data
