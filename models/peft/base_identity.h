// The identity of the frozen base model an adapter was trained on. An adapter only means something
// on top of the exact weights it was tuned against, so adapter checkpoints record a fingerprint of
// the base and a run refuses an adapter whose fingerprint differs from its own base's.
//
// The fingerprint hashes every frozen parameter's name, shape and values rounded to bf16: the same
// base held in fp32 on the CPU or in bf16 on a GPU has one fingerprint.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/parameters.h"

namespace ft {

struct BaseIdentity {
  std::string fingerprint;  // 16 hex digits
  std::string description;  // model summary and where the weights came from, for messages
};

// Hashes the frozen parameters of `params` (host tensors).
std::string base_fingerprint(const ParameterStore& params, int num_threads);

}  // namespace ft
