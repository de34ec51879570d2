#include "kernels/cpu/embedding_cpu.h"

#include <algorithm>
#include <string_view>

#include "kernels/cpu/cpu_common.h"
#include "runtime/error.h"

namespace ft::cpu {
namespace {

void check_ids(std::string_view op, const int32_t* ids, int64_t rows, int64_t vocab) {
  for (int64_t i = 0; i < rows; ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      fail("op {}: ids[{}] = {} is outside the table's [0, {})", op, i, ids[i], vocab);
    }
  }
}

}  // namespace

template <typename scalar_t>
void embedding_forward(scalar_t* out, const int32_t* ids, const scalar_t* table, int64_t rows,
                       int64_t vocab, int64_t cols, int threads) {
  check_ids("embedding_forward", ids, rows, vocab);
  parallel_ranges(rows, threads, cols, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      std::copy_n(table + static_cast<int64_t>(ids[i]) * cols, cols, out + i * cols);
    }
  });
}

template <typename scalar_t>
void embedding_backward(scalar_t* dtable, const int32_t* ids, const scalar_t* dout, int64_t rows,
                        int64_t vocab, int64_t cols, int threads) {
  check_ids("embedding_backward", ids, rows, vocab);
  // Threads own disjoint column ranges, so repeated ids never race; rows add in order.
  parallel_ranges(cols, threads, rows, [&](int64_t begin, int64_t end) {
    for (int64_t i = 0; i < rows; ++i) {
      scalar_t* target = dtable + static_cast<int64_t>(ids[i]) * cols;
      const scalar_t* source = dout + i * cols;
      for (int64_t j = begin; j < end; ++j) target[j] += source[j];
    }
  });
}

#define FT_INSTANTIATE(scalar_t)                                                                  \
  template void embedding_forward<scalar_t>(scalar_t*, const int32_t*, const scalar_t*, int64_t,  \
                                            int64_t, int64_t, int);                               \
  template void embedding_backward<scalar_t>(scalar_t*, const int32_t*, const scalar_t*, int64_t, \
                                             int64_t, int64_t, int);
FT_INSTANTIATE(float)
FT_INSTANTIATE(double)
#undef FT_INSTANTIATE

}  // namespace ft::cpu
