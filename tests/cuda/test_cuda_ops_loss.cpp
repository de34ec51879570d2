// GPU softmax cross-entropy (kernels/cuda/cross_entropy_cuda.cu), its vocabulary-parallel shards
// (vocab_parallel_cuda.cu) and the host-read reductions (reduction_cuda.cu) against the CPU:
// per-token weights, ignored rows, argmax counts, odd vocabularies (1000 + odd), f32 and bf16
// logits (losses, lse and stats f32). Skips without a GPU.
// Tolerances (relative L2): f32 1e-5; bf16 logits: lse and losses 1e-5 (fp32 math on the same
// bf16 inputs), dlogits 1e-2.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernels/ops.h"
#include "tests/support/cuda_test_util.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using namespace ft::testing;

constexpr int64_t kRows = 13, kVocab = 1031;

std::vector<int32_t> targets_with_ignored(int64_t rows, int64_t vocab) {
  std::vector<int32_t> targets(rows);
  for (int64_t i = 0; i < rows; ++i) targets[i] = static_cast<int32_t>((i * 389 + 5) % vocab);
  targets[3] = ops::kIgnoreIndex;
  targets[8] = ops::kIgnoreIndex;
  targets[0] = static_cast<int32_t>(vocab - 1);
  return targets;
}

// Logits with a few rows whose argmax is planted on the target (so the count is not zero) and a
// tie (the first index must win).
std::vector<float> planted_logits(int64_t rows, int64_t vocab, const std::vector<int32_t>& targets,
                                  uint64_t seed) {
  std::vector<float> logits = round_to_bf16(random_floats(rows * vocab, seed, 4.0));
  for (int64_t row : {1, 2, 5}) logits[row * vocab + targets[row]] = 9.0f;
  logits[4 * vocab + 10] = logits[4 * vocab + 900] = 9.5f;  // a tie in row 4
  return logits;
}

class CudaLoss : public ::testing::TestWithParam<DType> {};

TEST_P(CudaLoss, CrossEntropyForwardAndBackwardMatchTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  const DType dtype = GetParam();
  std::vector<int32_t> targets = targets_with_ignored(kRows, kVocab);
  targets[4] = 10;  // row 4's tie: the first index is the argmax
  std::vector<float> logits = planted_logits(kRows, kVocab, targets, 1);
  std::vector<float> weights = random_floats(kRows, 2);
  for (float& w : weights) w = 0.5f + std::abs(w);
  const double dloss = 1.0 / 11.0;
  for (bool weighted : {false, true}) {
    std::vector<float> losses(kRows), lse(kRows), dlogits(kRows * kVocab);
    Tensor cpu_weights = weighted ? view(weights, {kRows}) : Tensor();
    int64_t cpu_correct = -1;
    ops::cross_entropy_forward(cpu_context(), view(losses, {kRows}), view(lse, {kRows}),
                               view(logits, {kRows, kVocab}), view(targets, {kRows}), cpu_weights,
                               &cpu_correct);
    ops::cross_entropy_backward(cpu_context(), view(dlogits, {kRows, kVocab}),
                                view(logits, {kRows, kVocab}), view(lse, {kRows}),
                                view(targets, {kRows}), cpu_weights, dloss);
    EXPECT_GE(cpu_correct, 4);

    DeviceTensor d_logits = upload(logits, {kRows, kVocab}, dtype);
    DeviceTensor d_targets = upload_ids(targets, {kRows});
    DeviceTensor d_weights = upload(weights, {kRows}, DType::f32);
    Tensor gpu_weights = weighted ? d_weights.tensor : Tensor();
    DeviceTensor d_losses = device_zeros(DType::f32, {kRows}),
                 d_lse = device_zeros(DType::f32, {kRows});
    int64_t gpu_correct = -1;
    ops::cross_entropy_forward(cuda_context(), d_losses, d_lse, d_logits, d_targets, gpu_weights,
                               &gpu_correct);
    EXPECT_EQ(gpu_correct, cpu_correct);
    EXPECT_LT(relative_error(download(d_lse), lse), kF32Tolerance) << "lse";
    EXPECT_LT(relative_error(download(d_losses), losses), kF32Tolerance) << "losses";
    const std::vector<float> gpu_losses = download(d_losses);
    EXPECT_EQ(gpu_losses[3], 0.0f);
    EXPECT_EQ(gpu_losses[8], 0.0f);
    // Without a count the op stays asynchronous; same values.
    ops::cross_entropy_forward(cuda_context(), d_losses, d_lse, d_logits, d_targets, gpu_weights);
    EXPECT_LT(relative_error(download(d_losses), losses), kF32Tolerance) << "losses, no count";

    DeviceTensor d_dlogits = device_zeros(dtype, {kRows, kVocab});
    ops::cross_entropy_backward(cuda_context(), d_dlogits, d_logits, d_lse, d_targets, gpu_weights,
                                dloss);
    EXPECT_LT(relative_error(download(d_dlogits), dlogits), tolerance_for(dtype)) << "dlogits";
    // In place: dlogits aliases logits.
    ops::cross_entropy_backward(cuda_context(), d_logits, d_logits, d_lse, d_targets, gpu_weights,
                                dloss);
    EXPECT_LT(relative_error(download(d_logits), dlogits), tolerance_for(dtype)) << "in place";
  }
}

TEST_P(CudaLoss, CountCorrectSumAndSumSquaresMatchTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  const DType dtype = GetParam();
  std::vector<int32_t> targets = targets_with_ignored(kRows, kVocab);
  targets[4] = 10;
  std::vector<float> logits = planted_logits(kRows, kVocab, targets, 3);
  const int64_t expected =
      ops::count_correct(cpu_context(), view(logits, {kRows, kVocab}), view(targets, {kRows}));
  EXPECT_GE(expected, 4);
  DeviceTensor d_logits = upload(logits, {kRows, kVocab}, dtype);
  EXPECT_EQ(ops::count_correct(cuda_context(), d_logits, upload_ids(targets, {kRows})), expected);
  // sums over a size that is no multiple of the block (and beyond one block per SM).
  const int64_t count = 1000003;
  std::vector<float> x = round_to_bf16(random_floats(count, 4));
  const double sum = ops::sum(cpu_context(), view(x, {count}));
  const double squares = ops::sum_squares(cpu_context(), view(x, {count}));
  DeviceTensor d_x = upload(x, {count}, dtype);
  EXPECT_NEAR(ops::sum(cuda_context(), d_x), sum, 1e-9 * count);
  EXPECT_NEAR(ops::sum_squares(cuda_context(), d_x), squares, 1e-12 * squares * 100);
  // Deterministic: the same bits again.
  EXPECT_EQ(ops::sum_squares(cuda_context(), d_x), ops::sum_squares(cuda_context(), d_x));
}

// Three shards of an odd vocabulary: stats, their combination and the shards' gradients equal
// the CPU's shards, and the combination equals the whole-vocabulary loss.
TEST_P(CudaLoss, VocabParallelShardsMatchTheCpu) {
  FT_SKIP_WITHOUT_CUDA();
  const DType dtype = GetParam();
  const int64_t bounds[] = {0, 300, 701, kVocab};
  constexpr int64_t kShards = 3, kStats = 4;
  std::vector<int32_t> targets = targets_with_ignored(kRows, kVocab);
  std::vector<float> logits = planted_logits(kRows, kVocab, targets, 5);
  std::vector<float> cpu_parts(kShards * kRows * kStats);
  DeviceTensor d_parts = device_zeros(DType::f32, {kShards, kRows, kStats});
  DeviceTensor d_targets = upload_ids(targets, {kRows});
  std::vector<std::vector<float>> shards(kShards);
  for (int64_t s = 0; s < kShards; ++s) {
    const int64_t begin = bounds[s], local = bounds[s + 1] - bounds[s];
    shards[s].resize(kRows * local);
    for (int64_t r = 0; r < kRows; ++r)
      for (int64_t j = 0; j < local; ++j) shards[s][r * local + j] = logits[r * kVocab + begin + j];
    ops::cross_entropy_shard_stats(
        cpu_context(), Tensor(cpu_parts.data() + s * kRows * kStats, DType::f32, {kRows, kStats}),
        view(shards[s], {kRows, local}), view(targets, {kRows}), begin);
    Tensor gpu_stats(static_cast<float*>(d_parts.tensor.data) + s * kRows * kStats, DType::f32,
                     {kRows, kStats}, Device::cuda);
    ops::cross_entropy_shard_stats(cuda_context(), gpu_stats,
                                   upload(shards[s], {kRows, local}, dtype), d_targets, begin);
  }
  EXPECT_LT(relative_error(download(d_parts), cpu_parts), kF32Tolerance) << "stats";
  std::vector<float> losses(kRows), lse(kRows);
  int64_t cpu_correct = -1, gpu_correct = -1;
  ops::cross_entropy_combine_shards(cpu_context(), view(losses, {kRows}), view(lse, {kRows}),
                                    view(cpu_parts, {kShards, kRows, kStats}),
                                    view(targets, {kRows}), &cpu_correct);
  DeviceTensor d_losses = device_zeros(DType::f32, {kRows}),
               d_lse = device_zeros(DType::f32, {kRows});
  ops::cross_entropy_combine_shards(cuda_context(), d_losses, d_lse, d_parts, d_targets,
                                    &gpu_correct);
  EXPECT_EQ(gpu_correct, cpu_correct);
  EXPECT_LT(relative_error(download(d_losses), losses), kF32Tolerance) << "losses";
  EXPECT_LT(relative_error(download(d_lse), lse), kF32Tolerance) << "lse";
  const double dloss = 0.25;
  for (int64_t s = 0; s < kShards; ++s) {
    const int64_t begin = bounds[s], local = bounds[s + 1] - bounds[s];
    std::vector<float> dlogits(kRows * local);
    ops::cross_entropy_backward_shard(cpu_context(), view(dlogits, {kRows, local}),
                                      view(shards[s], {kRows, local}), view(lse, {kRows}),
                                      view(targets, {kRows}), begin, dloss);
    DeviceTensor d_dlogits = device_zeros(dtype, {kRows, local});
    ops::cross_entropy_backward_shard(cuda_context(), d_dlogits,
                                      upload(shards[s], {kRows, local}, dtype), d_lse, d_targets,
                                      begin, dloss);
    EXPECT_LT(relative_error(download(d_dlogits), dlogits), tolerance_for(dtype)) << "shard " << s;
  }
}

TEST_P(CudaLoss, BadTargetsAreRaised) {
  FT_SKIP_WITHOUT_CUDA();
  const DType dtype = GetParam();
  const OpContext ctx = cuda_context();
  DeviceTensor logits = upload(random_floats(3 * 5, 1), {3, 5}, dtype);
  DeviceTensor losses = device_zeros(DType::f32, {3}), lse = device_zeros(DType::f32, {3});
  int64_t correct = 0;
  expect_error_mentioning(
      [&] {
        ops::cross_entropy_forward(ctx, losses, lse, logits, upload_ids({1, 5, 2}, {3}), Tensor(),
                                   &correct);
      },
      "op cross_entropy_forward: targets[1] = 5 is outside [0, 5) and is not the ignore index");
  DeviceTensor stats = device_zeros(DType::f32, {3, 4});
  ops::cross_entropy_shard_stats(ctx, stats, logits, upload_ids({-3, 0, 1}, {3}), 0);
  expect_error_mentioning([&] { ops::check_device_errors(ctx); },
                          "op cross_entropy_shard_stats: targets[0] = -3 is negative");
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaLoss, ::testing::Values(DType::f32, DType::bf16),
                         dtype_test_name);

}  // namespace
}  // namespace ft
