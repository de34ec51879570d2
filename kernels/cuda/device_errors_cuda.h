// Errors the CUDA kernels find in index arguments (ids, targets, positions): recorded on the
// device, raised on the host by check_device_errors (kernels/cuda/common_cuda.cuh describes the
// record).
#pragma once

#include "kernels/context.h"

namespace ft::cuda {

// Waits for ctx.stream and throws the recorded error, if any, naming the op, the argument, the
// element and the rule it broke; the record is cleared so that the next error is reported too.
void check_device_errors(const OpContext& ctx);

}  // namespace ft::cuda
