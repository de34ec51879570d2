#include "runtime/train/input_layout.h"

#include <vector>

namespace ft {

void lay_out_batch(const PeftSpec& peft, data::Batch& batch) {
  const int64_t offset = peft.position_offset();
  if (offset == 0) return;
  const int64_t rows = peft.virtual_rows(), L = batch.seq_len, T = L + rows;
  const int64_t B = batch.batch_size;
  if (rows == 0) {
    for (int32_t& position : batch.positions) position += static_cast<int32_t>(offset);
    return;
  }
  std::vector<int32_t> ids(B * T, 0), targets(B * T, data::kIgnoreTarget), positions(B * T);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < rows; ++t) positions[b * T + t] = static_cast<int32_t>(t);
    for (int64_t t = 0; t < L; ++t) {
      ids[b * T + rows + t] = batch.input_ids[b * L + t];
      targets[b * T + rows + t] = batch.targets[b * L + t];
      positions[b * T + rows + t] = batch.positions[b * L + t] + static_cast<int32_t>(offset);
    }
  }
  batch.input_ids = std::move(ids);
  batch.targets = std::move(targets);
  batch.positions = std::move(positions);
  batch.seq_len = static_cast<int>(T);
}

}  // namespace ft
