// GPU embedding ops (kernels/cuda/embedding_cuda.cu) against the CPU: the lookup and the
// deterministic scatter-add gradient, whole table and vocabulary shards, f32 and bf16, bad ids
// raised by check_device_errors. Skips without a GPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernels/ops.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using namespace ft::testing;

constexpr int64_t kRows = 37, kVocab = 1003, kCols = 33;

// Ids with repeats (the gradient must add them), covering the first and last rows.
std::vector<int32_t> repeating_ids(int64_t rows, int64_t vocab) {
  std::vector<int32_t> ids(rows);
  for (int64_t i = 0; i < rows; ++i) ids[i] = static_cast<int32_t>((i * 7919) % vocab);
  ids[0] = 0;
  ids[1] = static_cast<int32_t>(vocab - 1);
  ids[2] = ids[5] = ids[9] = 17;  // repeated
  return ids;
}

class CudaEmbedding : public ::testing::TestWithParam<DType> {};

TEST_P(CudaEmbedding, ForwardCopiesTheCpuRowsExactly) {
  FT_SKIP_WITHOUT_CUDA();
  const DType dtype = GetParam();
  std::vector<float> table = round_to_bf16(random_floats(kVocab * kCols, 1));
  std::vector<int32_t> ids = repeating_ids(kRows, kVocab);
  std::vector<float> expected(kRows * kCols);
  ops::embedding_forward(cpu_context(), view(expected, {kRows, kCols}), view(ids, {kRows}),
                         view(table, {kVocab, kCols}));
  DeviceTensor out = device_zeros(dtype, {kRows, kCols});
  ops::embedding_forward(cuda_context(), out, upload_ids(ids, {kRows}),
                         upload(table, {kVocab, kCols}, dtype));
  EXPECT_EQ(download(out), expected);  // a copy: exact in both dtypes (bf16-exact inputs)
}

// dtable accumulates (+=) onto random values; f32 sums rows in the CPU's order: bit for bit.
TEST_P(CudaEmbedding, BackwardAccumulatesLikeTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  const DType dtype = GetParam();
  std::vector<float> dout = round_to_bf16(random_floats(kRows * kCols, 2));
  std::vector<float> initial = random_floats(kVocab * kCols, 3);
  std::vector<int32_t> ids = repeating_ids(kRows, kVocab);
  std::vector<float> expected = initial;
  ops::embedding_backward(cpu_context(), view(expected, {kVocab, kCols}), view(ids, {kRows}),
                          view(dout, {kRows, kCols}));
  // f32 gradient beside dtype activations: exact.
  DeviceTensor dtable = upload(initial, {kVocab, kCols}, DType::f32);
  DeviceTensor device_ids = upload_ids(ids, {kRows});
  DeviceTensor device_dout = upload(dout, {kRows, kCols}, dtype);
  ops::embedding_backward(cuda_context(), dtable, device_ids, device_dout);
  EXPECT_EQ(download(dtable), expected);
  if (dtype == DType::bf16) {  // a bf16 gradient: rounded at every add
    std::vector<float> rounded_initial = round_to_bf16(initial);
    std::vector<float> expected_bf16 = rounded_initial;
    ops::embedding_backward(cpu_context(), view(expected_bf16, {kVocab, kCols}), view(ids, {kRows}),
                            view(dout, {kRows, kCols}));
    DeviceTensor dtable_bf16 = upload(rounded_initial, {kVocab, kCols}, DType::bf16);
    ops::embedding_backward(cuda_context(), dtable_bf16, device_ids, device_dout);
    EXPECT_LT(relative_error(download(dtable_bf16), expected_bf16), kBf16Tolerance);
  }
}

TEST_P(CudaEmbedding, ShardsMatchTheCpuShards) {
  FT_SKIP_WITHOUT_CUDA();
  const DType dtype = GetParam();
  const int64_t begin = 400, local = 301;  // rows [400, 701) of the vocabulary
  std::vector<float> table = round_to_bf16(random_floats(local * kCols, 4));
  std::vector<float> dout = round_to_bf16(random_floats(kRows * kCols, 5));
  std::vector<float> initial = random_floats(local * kCols, 6);
  std::vector<int32_t> ids = repeating_ids(kRows, kVocab);
  ids[3] = ids[4] = 450;  // make sure some rows fall in the shard, repeated
  std::vector<float> expected_out(kRows * kCols), expected_dtable = initial;
  ops::embedding_forward_shard(cpu_context(), view(expected_out, {kRows, kCols}),
                               view(ids, {kRows}), view(table, {local, kCols}), begin, kVocab);
  ops::embedding_backward_shard(cpu_context(), view(expected_dtable, {local, kCols}),
                                view(ids, {kRows}), view(dout, {kRows, kCols}), begin);
  DeviceTensor out = device_zeros(dtype, {kRows, kCols});
  DeviceTensor device_ids = upload_ids(ids, {kRows});
  ops::embedding_forward_shard(cuda_context(), out, device_ids,
                               upload(table, {local, kCols}, dtype), begin, kVocab);
  EXPECT_EQ(download(out), expected_out);
  DeviceTensor dtable = upload(initial, {local, kCols}, DType::f32);
  ops::embedding_backward_shard(cuda_context(), dtable, device_ids,
                                upload(dout, {kRows, kCols}, dtype), begin);
  EXPECT_EQ(download(dtable), expected_dtable);
}

TEST_P(CudaEmbedding, BadIdsAreRaisedNamingTheOpAndTheId) {
  FT_SKIP_WITHOUT_CUDA();
  const DType dtype = GetParam();
  std::vector<float> table = random_floats(10 * 4, 7);
  std::vector<int32_t> ids = {1, 2, 12, 3};
  DeviceTensor out = device_zeros(dtype, {4, 4});
  const OpContext ctx = cuda_context();
  ops::embedding_forward(ctx, out, upload_ids(ids, {4}), upload(table, {10, 4}, dtype));
  expect_error_mentioning([&] { ops::check_device_errors(ctx); },
                          "op embedding_forward: ids[2] = 12 is outside [0, 10)");
  ops::check_device_errors(ctx);  // cleared: a second check passes
  std::vector<int32_t> negative = {1, -4, 2, 3};
  DeviceTensor dtable = device_zeros(DType::f32, {10, 4});
  ops::embedding_backward_shard(ctx, dtable, upload_ids(negative, {4}),
                                upload(random_floats(16, 8), {4, 4}, dtype), 0);
  // sum synchronizes and raises what an earlier op recorded.
  expect_error_mentioning([&] { ops::sum(ctx, dtable); },
                          "op embedding_backward_shard: ids[1] = -4 is negative");
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaEmbedding, ::testing::Values(DType::f32, DType::bf16),
                         dtype_test_name);

}  // namespace
}  // namespace ft
