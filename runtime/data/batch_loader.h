// Batching: sequences -> fixed-shape (batch_size, seq_len) batches of inputs, targets and
// positions, one sequence per row with padding, or packed: several sequences per row, each its
// own segment (segment_ids) with positions restarting at 0. Training order is a permutation per
// epoch that depends only on (n, seed, epoch), so it is the same for any number of ranks and
// resumes exactly from a saved DataCursor.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/data/dataset.h"

namespace ft::data {

// The target of a position that is not trained (prompt, masked turn, padding).
constexpr int32_t kIgnoreTarget = -100;

struct Batch {  // every vector is row-major (batch_size, seq_len)
  int batch_size = 0;
  int seq_len = 0;
  std::vector<int32_t> input_ids;
  std::vector<int32_t> targets;  // kIgnoreTarget where not trained or padding
  std::vector<int32_t> positions;
  // Packed batches only (empty otherwise): the row's sequences are segments 0, 1, ...; padding is
  // kPaddingSegment. A position attends only to positions of its own segment.
  std::vector<int32_t> segment_ids;
  int64_t target_tokens = 0;  // count of targets != kIgnoreTarget
  int64_t sequences = 0;      // real sequences in the batch (padding rows and padding excluded)
};

constexpr int32_t kPaddingSegment = -1;

// Where training stands in the data: position indexes the epoch's order (of sequences, also when
// packing: rows end at sequence boundaries, so a cursor resumes exactly).
struct DataCursor {
  int64_t epoch = 0;
  int64_t position = 0;
};

// The permutation of [0, n) for (seed, epoch): Fisher-Yates driven by ft::Random (splitmix64),
// not std::shuffle, so the order is the same with every standard library.
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch);

class BatchLoader {
 public:
  // `sequences` must outlive the loader; each must hold 1..seq_len + 1 tokens. pad_id fills the
  // input ids of padding. Without shuffle every epoch is in file order. With `pack`, training
  // rows hold as many whole sequences as fit (a sequence of n tokens takes n - 1 positions: its
  // last token is only a target); evaluation batches stay one sequence per row.
  BatchLoader(const std::vector<Sequence>& sequences, int seq_len, int32_t pad_id, uint64_t seed,
              bool shuffle, bool pack = false);

  // Training: batch_size rows in the epoch's order, continuing into the next epoch (a new
  // permutation) at its end. Reuses batch's vectors: no allocation after the first call with a
  // given batch_size.
  void next(int batch_size, Batch& batch);

  // Rows that `epochs` passes over the data take from a fresh start: epochs * size() without
  // packing; with packing, counted by packing each epoch's order.
  int64_t rows_for_epochs(int64_t epochs) const;
  bool packing() const { return pack_; }

  DataCursor cursor() const { return cursor_; }
  void set_cursor(DataCursor cursor);
  int64_t size() const { return static_cast<int64_t>(sequences_.size()); }  // sequences per epoch

  // Evaluation: rows [first, first + batch_size) in file order; rows past the end are padding
  // (every target ignored; batch.sequences counts only real rows).
  void eval_batch(int64_t first, int batch_size, Batch& batch) const;
  // The same over the rows listed in `rows` (e.g. a fixed sample of the validation set): rows
  // rows[first], rows[first + 1], ...
  void eval_batch(const std::vector<int64_t>& rows, int64_t first, int batch_size,
                  Batch& batch) const;

 private:
  void prepare(int batch_size, Batch& batch, bool packed) const;
  void fill_row(int row, const Sequence* sequence, Batch& batch) const;  // null: padding row
  void fill_packed_row(int row, Batch& batch);
  // Positions a sequence takes in a packed row.
  static int64_t packed_length(const Sequence& sequence) {
    return static_cast<int64_t>(sequence.tokens.size()) - 1;
  }
  const std::vector<int64_t>& order_for(int64_t epoch);

  const std::vector<Sequence>& sequences_;
  int seq_len_;
  int32_t pad_id_;
  uint64_t seed_;
  bool shuffle_;
  bool pack_;
  DataCursor cursor_;
  std::vector<int64_t> order_;  // the order of epoch order_epoch_ (empty until first needed)
  int64_t order_epoch_ = -1;
};

}  // namespace ft::data
