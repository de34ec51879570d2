#include "runtime/data/batch_loader.h"

#include <algorithm>

#include "runtime/error.h"
#include "runtime/random.h"

namespace ft::data {

std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch) {
  FT_CHECK(n >= 0 && epoch >= 0, "epoch_order: n {} and epoch {} must be non-negative", n, epoch);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  // The two-argument constructor mixes epoch before combining it with seed, so (seed, epoch) and
  // (epoch, seed) differ and seed == epoch is not one fixed permutation.
  Random generator(seed, static_cast<uint64_t>(epoch));
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(generator.below(static_cast<uint64_t>(i) + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

BatchLoader::BatchLoader(const std::vector<Sequence>& sequences, int seq_len, int32_t pad_id,
                         uint64_t seed, bool shuffle)
    : sequences_(sequences), seq_len_(seq_len), pad_id_(pad_id), seed_(seed), shuffle_(shuffle) {
  if (seq_len < 1) fail("BatchLoader: seq_len is {} (expected at least 1)", seq_len);
  for (size_t i = 0; i < sequences.size(); ++i) {
    const Sequence& sequence = sequences[i];
    if (sequence.tokens.empty() || sequence.tokens.size() > static_cast<size_t>(seq_len) + 1) {
      fail("BatchLoader: sequence {} has {} tokens (expected 1..{})", i, sequence.tokens.size(),
           seq_len + 1);
    }
    if (sequence.loss_mask.size() != sequence.tokens.size()) {
      fail("BatchLoader: sequence {} has {} tokens but a loss mask of {}", i,
           sequence.tokens.size(), sequence.loss_mask.size());
    }
  }
}

void BatchLoader::set_cursor(DataCursor cursor) {
  if (cursor.epoch < 0 || cursor.position < 0 || cursor.position > size()) {
    fail("BatchLoader: data cursor (epoch {}, position {}) is outside the dataset of {} sequences",
         cursor.epoch, cursor.position, size());
  }
  if (cursor.position == size()) cursor = {cursor.epoch + 1, 0};  // the end of an epoch
  cursor_ = cursor;
}

const std::vector<int64_t>& BatchLoader::order_for(int64_t epoch) {
  if (order_epoch_ != epoch) {
    if (shuffle_) {
      order_ = epoch_order(size(), seed_, epoch);
    } else if (order_.empty()) {  // file order is the same for every epoch
      order_.resize(sequences_.size());
      for (size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<int64_t>(i);
    }
    order_epoch_ = epoch;
  }
  return order_;
}

void BatchLoader::prepare(int batch_size, Batch& batch) const {
  if (batch_size < 1) fail("BatchLoader: batch_size is {} (expected at least 1)", batch_size);
  const size_t count = static_cast<size_t>(batch_size) * static_cast<size_t>(seq_len_);
  batch.batch_size = batch_size;
  batch.seq_len = seq_len_;
  batch.input_ids.resize(count);
  batch.targets.resize(count);
  batch.positions.resize(count);
  batch.target_tokens = 0;
  batch.sequences = 0;
}

void BatchLoader::fill_row(int row, const Sequence* sequence, Batch& batch) const {
  const size_t offset = static_cast<size_t>(row) * static_cast<size_t>(seq_len_);
  const int length = sequence != nullptr ? static_cast<int>(sequence->tokens.size()) : 0;
  int64_t targets = 0;
  for (int t = 0; t < seq_len_; ++t) {
    batch.input_ids[offset + t] = t < length ? sequence->tokens[t] : pad_id_;
    batch.positions[offset + t] = t;
    const bool trained = t + 1 < length && sequence->loss_mask[t + 1] != 0;
    batch.targets[offset + t] = trained ? sequence->tokens[t + 1] : kIgnoreTarget;
    targets += trained ? 1 : 0;
  }
  batch.target_tokens += targets;
  batch.sequences += sequence != nullptr ? 1 : 0;
}

void BatchLoader::next(int batch_size, Batch& batch) {
  if (sequences_.empty()) fail("BatchLoader: no sequences to train on");
  prepare(batch_size, batch);
  for (int row = 0; row < batch_size; ++row) {
    const std::vector<int64_t>& order = order_for(cursor_.epoch);
    fill_row(row, &sequences_[order[cursor_.position]], batch);
    if (++cursor_.position == size()) cursor_ = {cursor_.epoch + 1, 0};
  }
}

void BatchLoader::eval_batch(int64_t first, int batch_size, Batch& batch) const {
  if (first < 0) fail("BatchLoader::eval_batch: first row is {} (expected >= 0)", first);
  prepare(batch_size, batch);
  for (int row = 0; row < batch_size; ++row) {
    const int64_t index = first + row;
    fill_row(row, index < size() ? &sequences_[index] : nullptr, batch);
  }
}

}  // namespace ft::data
