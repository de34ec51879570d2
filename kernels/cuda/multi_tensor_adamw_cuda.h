// The multi-tensor AdamW launch (kernels/multi_tensor_ops.h) over a table already on the device.
// Arguments are checked when the table is built.
#pragma once

#include <cstdint>

#include "kernels/context.h"
#include "kernels/multi_tensor_table.h"
#include "kernels/ops.h"

namespace ft::cuda {

// One AdamW step over `chunk_count` chunks of `chunk_elements` elements of the `entry_count`
// tensors of `entries` (device memory): args.weight_decay for entries with decay, 0 for the
// others. One launch; nothing waits for it.
void multi_tensor_adamw(const OpContext& ctx, const multi_tensor::AdamWEntry* entries,
                        int64_t entry_count, int64_t chunk_count, int64_t chunk_elements,
                        const ops::AdamWArgs& args);

}  // namespace ft::cuda
