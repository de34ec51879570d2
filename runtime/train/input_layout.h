// From the data's (B, L) batches to the model's rows. Prompt tuning and P-tuning put P virtual rows
// in front of every sequence (ids 0, targets ignored, positions 0..P-1); with every virtual-token
// method (prefix tuning too) the real tokens' positions start at P, as in PEFT.
#pragma once

#include <cstdint>
#include <vector>
#include "models/peft/peft_spec.h"
#include "models/transformer.h"

#include "runtime/data/batch_loader.h"

namespace ft {

// Buffers lay_out_batch swaps with the batch's, so that once both have grown to the model's rows a
// step allocates nothing.
struct LayoutScratch {
  std::vector<int32_t> ids, targets, positions;
};

// Views of a batch's vectors as the model's inputs (segment ids when the batch is packed).
ModelInputs model_inputs(data::Batch& batch);

// Rewrites `batch` in place; a no-op for full fine-tuning and LoRA. Afterwards batch.seq_len is
// peft.model_seq_len(L).
void lay_out_batch(const PeftSpec& peft, data::Batch& batch, LayoutScratch* scratch = nullptr);

}  // namespace ft
