#include "kernels/cpu/adapter_cpu.h"

#include <cmath>
#include <cstring>

#include "kernels/cpu/cpu_common.h"

namespace ft::cpu {
namespace {

// Work per value for the parallel split: a load, a store and a compare (ReLU, copies), a
// libm tanh, or a dozen integer operations (the dropout hash).
constexpr int64_t kStreamCost = 1;
constexpr int64_t kTanhCost = 16;
constexpr int64_t kHashCost = 8;

template <typename scalar_t>
FT_CPU_CLONES void relu_forward_range(scalar_t* out, const scalar_t* x, int64_t begin,
                                      int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    scalar_t v = x[i];
    out[i] = v < scalar_t{0} ? scalar_t{0} : v;  // not max(v, 0): a NaN must reach the loss
  }
}

template <typename scalar_t>
FT_CPU_CLONES void relu_backward_range(scalar_t* dx, const scalar_t* dout, const scalar_t* x,
                                       int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) dx[i] = x[i] > scalar_t{0} ? dout[i] : scalar_t{0};
}

template <typename scalar_t>
FT_CPU_CLONES void tanh_backward_range(scalar_t* dx, const scalar_t* dout, const scalar_t* out,
                                       int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    scalar_t t = out[i];
    dx[i] = dout[i] * (scalar_t{1} - t * t);
  }
}

// Values [begin, end) of out and x, whose mask indices are first_index + i.
template <typename scalar_t>
FT_CPU_CLONES void dropout_range(scalar_t* out, const scalar_t* x, uint64_t stream,
                                 uint64_t threshold, scalar_t keep_scale, uint64_t first_index,
                                 int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    scalar_t kept = x[i] * keep_scale;
    const uint64_t index = first_index + static_cast<uint64_t>(i);
    out[i] = dropout_keeps(stream, threshold, index) ? kept : scalar_t{0};
  }
}

}  // namespace

template <typename scalar_t>
void relu_forward(scalar_t* out, const scalar_t* x, int64_t count, int threads) {
  parallel_ranges(count, threads, kStreamCost,
                  [&](int64_t begin, int64_t end) { relu_forward_range(out, x, begin, end); });
}

template <typename scalar_t>
void relu_backward(scalar_t* dx, const scalar_t* dout, const scalar_t* x, int64_t count,
                   int threads) {
  parallel_ranges(count, threads, kStreamCost, [&](int64_t begin, int64_t end) {
    relu_backward_range(dx, dout, x, begin, end);
  });
}

template <typename scalar_t>
void tanh_forward(scalar_t* out, const scalar_t* x, int64_t count, int threads) {
  // libm's tanh in both precisions: tanh_vectorizable(float) loses relative accuracy near 0,
  // where an encoder's outputs often sit, and the encoders are far too small for speed to matter.
  parallel_ranges(count, threads, kTanhCost, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = std::tanh(x[i]);
  });
}

template <typename scalar_t>
void tanh_backward(scalar_t* dx, const scalar_t* dout, const scalar_t* out, int64_t count,
                   int threads) {
  parallel_ranges(count, threads, kStreamCost, [&](int64_t begin, int64_t end) {
    tanh_backward_range(dx, dout, out, begin, end);
  });
}

template <typename scalar_t>
void dropout(scalar_t* out, const scalar_t* x, double p, uint64_t seed, int64_t count,
             int threads) {
  const uint64_t stream = dropout_stream(seed);
  const uint64_t threshold = dropout_threshold(p);
  const auto keep_scale = static_cast<scalar_t>(1.0 / (1.0 - p));
  parallel_ranges(count, threads, kHashCost, [&](int64_t begin, int64_t end) {
    dropout_range(out, x, stream, threshold, keep_scale, 0, begin, end);
  });
}

template <typename scalar_t>
void dropout_columns(scalar_t* out, const scalar_t* x, double p, uint64_t seed, int64_t rows,
                     int64_t width, int64_t col_offset, int64_t full_cols, int threads) {
  const uint64_t stream = dropout_stream(seed);
  const uint64_t threshold = dropout_threshold(p);
  const auto keep_scale = static_cast<scalar_t>(1.0 / (1.0 - p));
  parallel_ranges(rows, threads, width * kHashCost, [&](int64_t first_row, int64_t end_row) {
    for (int64_t row = first_row; row < end_row; ++row) {
      const auto first_index = static_cast<uint64_t>(row * full_cols + col_offset);
      dropout_range(out + row * width, x + row * width, stream, threshold, keep_scale, first_index,
                    0, width);
    }
  });
}

template <typename scalar_t>
void copy_columns(scalar_t* dst, const scalar_t* src, int64_t rows, int64_t width, int64_t src_cols,
                  int64_t offset, int threads) {
  if (width == 0) return;
  parallel_ranges(rows, threads, width * kStreamCost, [&](int64_t first_row, int64_t end_row) {
    for (int64_t row = first_row; row < end_row; ++row) {
      std::memcpy(dst + row * width, src + row * src_cols + offset, width * sizeof(scalar_t));
    }
  });
}

template <typename scalar_t>
void add_to_columns(scalar_t* dst, const scalar_t* src, int64_t rows, int64_t width,
                    int64_t dst_cols, int64_t offset, int threads) {
  parallel_ranges(rows, threads, width * kStreamCost, [&](int64_t first_row, int64_t end_row) {
    for (int64_t row = first_row; row < end_row; ++row) {
      scalar_t* target = dst + row * dst_cols + offset;
      const scalar_t* source = src + row * width;
      for (int64_t j = 0; j < width; ++j) target[j] += source[j];
    }
  });
}

#define FT_INSTANTIATE(scalar_t)                                                                 \
  template void relu_forward<scalar_t>(scalar_t*, const scalar_t*, int64_t, int);                \
  template void relu_backward<scalar_t>(scalar_t*, const scalar_t*, const scalar_t*, int64_t,    \
                                        int);                                                    \
  template void tanh_forward<scalar_t>(scalar_t*, const scalar_t*, int64_t, int);                \
  template void tanh_backward<scalar_t>(scalar_t*, const scalar_t*, const scalar_t*, int64_t,    \
                                        int);                                                    \
  template void dropout<scalar_t>(scalar_t*, const scalar_t*, double, uint64_t, int64_t, int);   \
  template void dropout_columns<scalar_t>(scalar_t*, const scalar_t*, double, uint64_t, int64_t, \
                                          int64_t, int64_t, int64_t, int);                       \
  template void copy_columns<scalar_t>(scalar_t*, const scalar_t*, int64_t, int64_t, int64_t,    \
                                       int64_t, int);                                            \
  template void add_to_columns<scalar_t>(scalar_t*, const scalar_t*, int64_t, int64_t, int64_t,  \
                                         int64_t, int);
FT_INSTANTIATE(float)
FT_INSTANTIATE(double)
#undef FT_INSTANTIATE

}  // namespace ft::cpu
