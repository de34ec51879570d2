// From the data's (B, L) batches to the model's rows. Prompt tuning and P-tuning put P virtual rows
// in front of every sequence (ids 0, targets ignored, positions 0..P-1); with every virtual-token
// method (prefix tuning too) the real tokens' positions start at P, as in PEFT.
#pragma once

#include "models/peft/peft_spec.h"
#include "runtime/data/batch_loader.h"

namespace ft {

// Rewrites `batch` in place; a no-op for full fine-tuning and LoRA. Afterwards batch.seq_len is
// peft.model_seq_len(L).
void lay_out_batch(const PeftSpec& peft, data::Batch& batch);

}  // namespace ft
