// Multi-tensor AdamW (kernels/multi_tensor_ops.h) on the CPU: the chunk table the GPU kernel walks
// (kernels/multi_tensor_table.h) covers every element of every tensor exactly once, whatever the
// tensor and chunk sizes, walked as the kernel walks it; the CPU step equals one adamw_update per
// tensor with each tensor's weight decay; argument errors name the tensor.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/multi_tensor_ops.h"
#include "kernels/multi_tensor_table.h"
#include "kernels/ops.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using ft::testing::cpu_context;
using ft::testing::expect_error_mentioning;
using ft::testing::random_floats;
using ft::testing::view;

// Entries of the given sizes (the builder leaves out empty tensors, as MultiTensorAdamW does).
std::vector<multi_tensor::AdamWEntry> entries_of(const std::vector<int64_t>& counts) {
  std::vector<multi_tensor::AdamWEntry> entries;
  for (int64_t count : counts) {
    if (count == 0) continue;
    multi_tensor::AdamWEntry entry{};
    entry.count = count;
    entries.push_back(entry);
  }
  return entries;
}

// Walks chunks [0, total) as the kernel's blocks do and counts how often each element is visited.
void expect_every_element_once(const std::vector<int64_t>& counts, int64_t chunk_elements) {
  SCOPED_TRACE(::testing::Message() << "chunk_elements " << chunk_elements);
  std::vector<multi_tensor::AdamWEntry> entries = entries_of(counts);
  const int64_t total = multi_tensor::number_chunks(entries, chunk_elements);
  int64_t expected_total = 0;
  for (int64_t count : counts) expected_total += (count + chunk_elements - 1) / chunk_elements;
  EXPECT_EQ(total, expected_total);
  std::vector<std::vector<int>> visits;
  for (const multi_tensor::AdamWEntry& entry : entries) visits.emplace_back(entry.count, 0);
  const int64_t entry_count = static_cast<int64_t>(entries.size());
  for (int64_t chunk = 0; chunk < total; ++chunk) {
    const int64_t index = multi_tensor::entry_of_chunk(entries.data(), entry_count, chunk);
    ASSERT_GE(index, 0);
    ASSERT_LT(index, entry_count);
    const multi_tensor::ChunkRange range =
        multi_tensor::chunk_range(entries[index], chunk, chunk_elements);
    ASSERT_GE(range.begin, 0) << "chunk " << chunk;
    ASSERT_LT(range.begin, range.end) << "chunk " << chunk << " is empty";
    ASSERT_LE(range.end, entries[index].count) << "chunk " << chunk;
    ASSERT_LE(range.end - range.begin, chunk_elements);
    for (int64_t i = range.begin; i < range.end; ++i) ++visits[index][i];
  }
  for (size_t e = 0; e < visits.size(); ++e) {
    for (size_t i = 0; i < visits[e].size(); ++i) {
      ASSERT_EQ(visits[e][i], 1) << "entry " << e << " element " << i;
    }
  }
}

TEST(MultiTensorTable, ChunksCoverEveryElementOnce) {
  // Empty and one-element tensors, exact multiples of the chunk and one past, runs of empties.
  const std::vector<int64_t> counts = {0, 1, 7, 8, 9, 0, 0, 16, 1, 0, 33, 64, 65, 2, 0};
  for (int64_t chunk_elements : {1, 2, 7, 8, 64, 1000}) {
    expect_every_element_once(counts, chunk_elements);
  }
  expect_every_element_once({5}, 5);
  expect_every_element_once({0, 0, 3}, 2);
  expect_every_element_once({}, 4);
}

TEST(MultiTensorTable, FirstChunksAreConsecutive) {
  std::vector<multi_tensor::AdamWEntry> entries = entries_of({10, 1, 4, 9});
  EXPECT_EQ(multi_tensor::number_chunks(entries, 4), 3 + 1 + 1 + 3);
  EXPECT_EQ(entries[0].first_chunk, 0);
  EXPECT_EQ(entries[1].first_chunk, 3);
  EXPECT_EQ(entries[2].first_chunk, 4);
  EXPECT_EQ(entries[3].first_chunk, 5);
  EXPECT_EQ(multi_tensor::entry_of_chunk(entries.data(), 4, 2), 0);
  EXPECT_EQ(multi_tensor::entry_of_chunk(entries.data(), 4, 3), 1);
  EXPECT_EQ(multi_tensor::entry_of_chunk(entries.data(), 4, 7), 3);
  const multi_tensor::ChunkRange last = multi_tensor::chunk_range(entries[3], 7, 4);
  EXPECT_EQ(last.begin, 8);
  EXPECT_EQ(last.end, 9);
}

// The parameters of one tensor of the test, in f64 or f32.
template <typename T>
struct HostTensor {
  std::vector<T> params, grads, m, v;
};

template <typename T>
HostTensor<T> host_tensor(int64_t count, uint64_t seed) {
  auto values = [&](uint64_t offset, double scale) {
    const std::vector<float> wide = random_floats(count, seed * 10 + offset, scale);
    return std::vector<T>(wide.begin(), wide.end());
  };
  std::vector<T> v = values(4, 0.01);
  for (T& value : v) value = value < 0 ? -value : value;  // a second moment is never negative
  return {values(1, 1.0), values(2, 0.5), values(3, 0.1), v};
}

TEST(MultiTensorAdamW, CpuStepEqualsOneUpdatePerTensor) {
  const std::vector<int64_t> counts = {0, 1, 5, 17, 64, 3};
  const OpContext ctx = cpu_context(2);
  std::vector<HostTensor<double>> fused, reference;
  HostTensor<double> decayed = host_tensor<double>(counts[3], 4);  // tensor 3, decayed anyway
  for (size_t i = 0; i < counts.size(); ++i) {
    fused.push_back(host_tensor<double>(counts[i], i + 1));
    reference.push_back(fused.back());
  }
  std::vector<ops::AdamWTensor> tensors;
  for (size_t i = 0; i < counts.size(); ++i) {
    const Shape shape{counts[i]};
    tensors.push_back({"t" + std::to_string(i), view(fused[i].params, shape),
                       view(fused[i].grads, shape), view(fused[i].m, shape),
                       view(fused[i].v, shape), Tensor(), i % 2 == 0});
  }
  const ops::MultiTensorAdamW multi(ctx, tensors);
  EXPECT_EQ(multi.tensor_count(), counts.size());
  ops::AdamWArgs args;
  args.lr = 1e-2;
  args.weight_decay = 0.1;
  for (int64_t step = 1; step <= 3; ++step) {
    args.step = step;
    args.grad_scale = step == 2 ? 0.25 : 1.0;
    multi.step(ctx, args);
    for (size_t i = 0; i < counts.size(); ++i) {
      ops::AdamWArgs one = args;
      one.weight_decay = i % 2 == 0 ? args.weight_decay : 0.0;
      const Shape shape{counts[i]};
      HostTensor<double>& r = reference[i];
      ops::adamw_update(ctx, view(r.params, shape), view(r.grads, shape), view(r.m, shape),
                        view(r.v, shape), one);
    }
    const Shape shape{counts[3]};
    ops::adamw_update(ctx, view(decayed.params, shape), view(decayed.grads, shape),
                      view(decayed.m, shape), view(decayed.v, shape), args);
  }
  for (size_t i = 0; i < counts.size(); ++i) {
    EXPECT_EQ(fused[i].params, reference[i].params) << "tensor " << i;
    EXPECT_EQ(fused[i].m, reference[i].m) << "tensor " << i;
    EXPECT_EQ(fused[i].v, reference[i].v) << "tensor " << i;
  }
  // Tensor 3 does not decay: the flag was honoured, not ignored.
  EXPECT_NE(fused[3].params, decayed.params);
}

TEST(MultiTensorAdamW, ArgumentErrorsNameTheTensor) {
  const OpContext ctx = cpu_context();
  HostTensor<float> a = host_tensor<float>(6, 1);
  std::vector<float> short_grads(5);
  std::vector<double> wide(6);
  std::vector<int32_t> ids(6);
  auto make = [&](Tensor grads, Tensor m, Tensor copy) {
    return std::vector<ops::AdamWTensor>{
        {"first",
         view(a.params, {6}),
         view(a.grads, {6}),
         view(a.m, {6}),
         view(a.v, {6}),
         {},
         true},
        {"model.norm.weight", view(a.params, {6}), grads, m, view(a.v, {6}), copy, false}};
  };
  expect_error_mentioning(
      [&] { ops::MultiTensorAdamW(ctx, make(view(short_grads, {5}), view(a.m, {6}), {})); },
      "multi_tensor_adamw: argument tensors[1] (model.norm.weight).grads has shape (5), expected "
      "(6)");
  expect_error_mentioning(
      [&] { ops::MultiTensorAdamW(ctx, make(view(a.grads, {6}), view(wide, {6}), {})); },
      "argument tensors[1] (model.norm.weight).m has dtype f64, expected f32");
  expect_error_mentioning(
      [&] { ops::MultiTensorAdamW(ctx, make(view(a.grads, {6}), Tensor(), {})); },
      "argument tensors[1] (model.norm.weight).m is empty");
  expect_error_mentioning(
      [&] { ops::MultiTensorAdamW(ctx, make(view(a.grads, {6}), view(a.m, {6}), view(ids, {6}))); },
      "argument tensors[1] (model.norm.weight).params_copy has dtype i32");
  const ops::MultiTensorAdamW multi(ctx, make(view(a.grads, {6}), view(a.m, {6}), {}));
  ops::AdamWArgs args;
  args.step = 0;
  expect_error_mentioning([&] { multi.step(ctx, args); }, "step is 0, expected >= 1");
}

}  // namespace
}  // namespace ft
