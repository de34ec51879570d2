#include "runtime/train/input_layout.h"

#include <utility>
#include <vector>

namespace ft {

ModelInputs model_inputs(data::Batch& batch) {
  const int64_t n = static_cast<int64_t>(batch.batch_size) * batch.seq_len;
  ModelInputs inputs;
  inputs.input_ids = Tensor(batch.input_ids.data(), DType::i32, Shape{n});
  inputs.positions = Tensor(batch.positions.data(), DType::i32, Shape{n});
  inputs.targets = Tensor(batch.targets.data(), DType::i32, Shape{n});
  if (!batch.segment_ids.empty())
    inputs.segment_ids = Tensor(batch.segment_ids.data(), DType::i32,
                                Shape{static_cast<int64_t>(batch.batch_size), batch.seq_len});
  return inputs;
}

void lay_out_batch(const PeftSpec& peft, data::Batch& batch, LayoutScratch* scratch) {
  const int64_t offset = peft.position_offset();
  if (offset == 0) return;
  const int64_t rows = peft.virtual_rows(), L = batch.seq_len, T = L + rows;
  const int64_t B = batch.batch_size;
  if (rows == 0) {
    for (int32_t& position : batch.positions) position += static_cast<int32_t>(offset);
    return;
  }
  LayoutScratch local;
  LayoutScratch& out = scratch ? *scratch : local;
  out.ids.assign(B * T, 0);
  out.targets.assign(B * T, data::kIgnoreTarget);
  out.positions.resize(B * T);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < rows; ++t) out.positions[b * T + t] = static_cast<int32_t>(t);
    for (int64_t t = 0; t < L; ++t) {
      out.ids[b * T + rows + t] = batch.input_ids[b * L + t];
      out.targets[b * T + rows + t] = batch.targets[b * L + t];
      out.positions[b * T + rows + t] = batch.positions[b * L + t] + static_cast<int32_t>(offset);
    }
  }
  std::swap(batch.input_ids, out.ids);
  std::swap(batch.targets, out.targets);
  std::swap(batch.positions, out.positions);
  batch.seq_len = static_cast<int>(T);
}

}  // namespace ft
