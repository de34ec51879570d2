// Segment ids for the attention tests (tests/cuda/test_cuda_attention.cpp and
// test_cuda_flash_attention.cpp): packed documents whose boundaries differ per batch row.
#pragma once

#include <cstdint>
#include <vector>

namespace ft::testing {

// ids (batch, seq_len): row b starts at segment 3b and opens a new one at t = 5 + 3b, seq_len / 2
// and seq_len / 2 + 1 (so [seq_len / 2, seq_len / 2 + 1) is a one-token document).
inline std::vector<int32_t> packed_segments(int64_t batch, int64_t seq_len) {
  std::vector<int32_t> ids(batch * seq_len);
  for (int64_t b = 0; b < batch; ++b) {
    int32_t segment = static_cast<int32_t>(3 * b);
    for (int64_t t = 0; t < seq_len; ++t) {
      if (t == 5 + 3 * b || t == seq_len / 2 || t == seq_len / 2 + 1) ++segment;
      ids[b * seq_len + t] = segment;
    }
  }
  return ids;
}

}  // namespace ft::testing
