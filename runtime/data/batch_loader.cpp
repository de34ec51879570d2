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
                         uint64_t seed, bool shuffle, bool pack)
    : sequences_(sequences),
      seq_len_(seq_len),
      pad_id_(pad_id),
      seed_(seed),
      shuffle_(shuffle),
      pack_(pack) {
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
  // Packing skips one-token sequences (they predict nothing); with only those, no row would fill.
  if (pack && std::none_of(sequences.begin(), sequences.end(),
                           [](const Sequence& s) { return packed_length(s) > 0; })) {
    fail("BatchLoader: packing needs a sequence of at least 2 tokens; all {} have one",
         sequences.size());
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

void BatchLoader::prepare(int batch_size, Batch& batch, bool packed) const {
  if (batch_size < 1) fail("BatchLoader: batch_size is {} (expected at least 1)", batch_size);
  const size_t count = static_cast<size_t>(batch_size) * static_cast<size_t>(seq_len_);
  batch.batch_size = batch_size;
  batch.seq_len = seq_len_;
  batch.input_ids.resize(count);
  batch.targets.resize(count);
  batch.positions.resize(count);
  batch.segment_ids.resize(packed ? count : 0);
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

void BatchLoader::fill_packed_row(int row, Batch& batch) {
  const size_t offset = static_cast<size_t>(row) * static_cast<size_t>(seq_len_);
  int64_t fill = 0;
  int32_t segment = 0;
  while (fill < seq_len_) {
    const Sequence& sequence = sequences_[order_for(cursor_.epoch)[cursor_.position]];
    const int64_t length = packed_length(sequence);
    if (fill + length > seq_len_) break;  // the row ends at a sequence boundary
    for (int64_t t = 0; t < length; ++t) {
      const size_t at = offset + static_cast<size_t>(fill + t);
      batch.input_ids[at] = sequence.tokens[t];
      batch.positions[at] = static_cast<int32_t>(t);
      batch.segment_ids[at] = segment;
      const bool trained = sequence.loss_mask[t + 1] != 0;
      batch.targets[at] = trained ? sequence.tokens[t + 1] : kIgnoreTarget;
      batch.target_tokens += trained ? 1 : 0;
    }
    if (length > 0) {
      fill += length;
      ++segment;
      ++batch.sequences;
    }
    if (++cursor_.position == size()) cursor_ = {cursor_.epoch + 1, 0};
  }
  for (int64_t t = fill; t < seq_len_; ++t) {
    const size_t at = offset + static_cast<size_t>(t);
    batch.input_ids[at] = pad_id_;
    batch.positions[at] = static_cast<int32_t>(t - fill);
    batch.segment_ids[at] = kPaddingSegment;
    batch.targets[at] = kIgnoreTarget;
  }
}

void BatchLoader::next(int batch_size, Batch& batch) {
  if (sequences_.empty()) fail("BatchLoader: no sequences to train on");
  prepare(batch_size, batch, pack_);
  for (int row = 0; row < batch_size; ++row) {
    if (pack_) {
      fill_packed_row(row, batch);
      continue;
    }
    const std::vector<int64_t>& order = order_for(cursor_.epoch);
    fill_row(row, &sequences_[order[cursor_.position]], batch);
    if (++cursor_.position == size()) cursor_ = {cursor_.epoch + 1, 0};
  }
}

int64_t BatchLoader::rows_for_epochs(int64_t epochs) const {
  if (!pack_) return epochs * size();
  int64_t rows = 0, fill = 0;
  std::vector<int64_t> order(sequences_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  for (int64_t epoch = 0; epoch < epochs; ++epoch) {
    if (shuffle_) order = epoch_order(size(), seed_, epoch);
    for (int64_t index : order) {  // the same greedy rule as fill_packed_row
      const int64_t length = packed_length(sequences_[index]);
      if (fill + length > seq_len_) {
        ++rows;
        fill = 0;
      }
      fill += length;
    }
  }
  return rows + (fill > 0 ? 1 : 0);
}

void BatchLoader::eval_batch(int64_t first, int batch_size, Batch& batch) const {
  if (first < 0) fail("BatchLoader::eval_batch: first row is {} (expected >= 0)", first);
  prepare(batch_size, batch, /*packed=*/false);
  for (int row = 0; row < batch_size; ++row) {
    const int64_t index = first + row;
    fill_row(row, index < size() ? &sequences_[index] : nullptr, batch);
  }
}

void BatchLoader::eval_batch(const std::vector<int64_t>& rows, int64_t first, int batch_size,
                             Batch& batch) const {
  if (first < 0) fail("BatchLoader::eval_batch: first row is {} (expected >= 0)", first);
  prepare(batch_size, batch, /*packed=*/false);
  for (int row = 0; row < batch_size; ++row) {
    const int64_t at = first + row;
    if (at < static_cast<int64_t>(rows.size()) && (rows[at] < 0 || rows[at] >= size())) {
      fail("BatchLoader::eval_batch: row {} is outside the {} sequences", rows[at], size());
    }
    fill_row(row, at < static_cast<int64_t>(rows.size()) ? &sequences_[rows[at]] : nullptr, batch);
  }
}

}  // namespace ft::data
