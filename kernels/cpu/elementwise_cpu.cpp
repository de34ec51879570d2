#include "kernels/cpu/elementwise_cpu.h"

#include <cstring>

#include "kernels/cpu/cpu_common.h"
#include "runtime/tensor.h"

namespace ft::cpu {
namespace {

// These loops are memory-bound: split only spans worth a thread's start-up.
constexpr int64_t kStreamCost = 1;

template <typename dst_t, typename src_t>
dst_t convert(src_t value) {
  if constexpr (std::is_same_v<src_t, bf16>) {
    return convert<dst_t>(bf16_to_float(value));
  } else if constexpr (std::is_same_v<dst_t, bf16>) {
    return float_to_bf16(static_cast<float>(value));  // double rounds via float, as PyTorch does
  } else {
    return static_cast<dst_t>(value);
  }
}

}  // namespace

template <typename scalar_t>
void add(scalar_t* out, const scalar_t* a, const scalar_t* b, int64_t count, int threads) {
  parallel_ranges(count, threads, kStreamCost, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = a[i] + b[i];
  });
}

template <typename scalar_t>
void scale(scalar_t* x, double factor, int64_t count, int threads) {
  auto factor_scalar = static_cast<scalar_t>(factor);
  parallel_ranges(count, threads, kStreamCost, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) x[i] *= factor_scalar;
  });
}

template <typename dst_t, typename src_t>
void cast(dst_t* dst, const src_t* src, int64_t count, int threads) {
  parallel_ranges(count, threads, kStreamCost, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) dst[i] = convert<dst_t>(src[i]);
  });
}

void zero(void* data, size_t bytes, int threads) {
  auto* first = static_cast<char*>(data);
  parallel_ranges(static_cast<int64_t>(bytes), threads, kStreamCost,
                  [&](int64_t begin, int64_t end) { std::memset(first + begin, 0, end - begin); });
}

template void add<float>(float*, const float*, const float*, int64_t, int);
template void add<double>(double*, const double*, const double*, int64_t, int);
template void scale<float>(float*, double, int64_t, int);
template void scale<double>(double*, double, int64_t, int);

#define FT_INSTANTIATE_CAST(dst_t)                                        \
  template void cast<dst_t, float>(dst_t*, const float*, int64_t, int);   \
  template void cast<dst_t, double>(dst_t*, const double*, int64_t, int); \
  template void cast<dst_t, bf16>(dst_t*, const bf16*, int64_t, int);
FT_INSTANTIATE_CAST(float)
FT_INSTANTIATE_CAST(double)
FT_INSTANTIATE_CAST(bf16)
#undef FT_INSTANTIATE_CAST

}  // namespace ft::cpu
