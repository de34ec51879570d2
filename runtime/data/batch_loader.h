// Batching: sequences -> fixed-shape (batch_size, seq_len) batches of inputs, targets and
// positions. Training order is a permutation per epoch that depends only on (n, seed, epoch), so
// it is the same for any number of ranks and resumes exactly from a saved DataCursor.
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
  int64_t target_tokens = 0;  // count of targets != kIgnoreTarget
  int64_t sequences = 0;      // real (non-padding) rows
};

// Where training stands in the data: position indexes the epoch's order.
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
  // input ids of padding. Without shuffle every epoch is in file order.
  BatchLoader(const std::vector<Sequence>& sequences, int seq_len, int32_t pad_id, uint64_t seed,
              bool shuffle);

  // Training: batch_size rows in the epoch's order, continuing into the next epoch (a new
  // permutation) at its end. Reuses batch's vectors: no allocation after the first call with a
  // given batch_size.
  void next(int batch_size, Batch& batch);

  DataCursor cursor() const { return cursor_; }
  void set_cursor(DataCursor cursor);
  int64_t size() const { return static_cast<int64_t>(sequences_.size()); }  // sequences per epoch

  // Evaluation: rows [first, first + batch_size) in file order; rows past the end are padding
  // (every target ignored; batch.sequences counts only real rows).
  void eval_batch(int64_t first, int batch_size, Batch& batch) const;

 private:
  void prepare(int batch_size, Batch& batch) const;
  void fill_row(int row, const Sequence* sequence, Batch& batch) const;  // null: padding row
  const std::vector<int64_t>& order_for(int64_t epoch);

  const std::vector<Sequence>& sequences_;
  int seq_len_;
  int32_t pad_id_;
  uint64_t seed_;
  bool shuffle_;
  DataCursor cursor_;
  std::vector<int64_t> order_;  // the order of epoch order_epoch_ (empty until first needed)
  int64_t order_epoch_ = -1;
};

}  // namespace ft::data
