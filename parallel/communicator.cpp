#include "parallel/communicator.h"

#include "parallel/collective_timer.h"
#include "runtime/device.h"
#include "runtime/error.h"

namespace ft {
namespace {

const char* element_address(const Tensor& tensor, int64_t element_offset) {
  return static_cast<const char*>(tensor.data) + element_offset * dtype_size(tensor.dtype);
}

bool overlaps(const Tensor& a, const Tensor& b) {
  const char* a_begin = static_cast<const char*>(a.data);
  const char* b_begin = static_cast<const char*>(b.data);
  return a.bytes() > 0 && b.bytes() > 0 && a_begin < b_begin + b.bytes() &&
         b_begin < a_begin + a.bytes();
}

}  // namespace

bool Communicator::check_all_gather_arguments(const Tensor& output, const Tensor& input) const {
  FT_CHECK(output.dtype == input.dtype, "all_gather: output {} and input {} differ in dtype",
           output.describe(), input.describe());
  const int64_t n = input.numel();
  FT_CHECK(output.numel() == n * size(),
           "all_gather: the output {} must hold size() x input = {} x {} = {} elements",
           output.describe(), size(), n, n * size());
  const bool in_place = input.data == element_address(output, rank() * n);
  FT_CHECK(in_place || !overlaps(output, input),
           "all_gather: input {} overlaps output {} other than as chunk {} of it", input.describe(),
           output.describe(), rank());
  return in_place;
}

bool Communicator::check_reduce_scatter_arguments(const Tensor& output, const Tensor& input,
                                                  bool allow_in_place) const {
  FT_CHECK(output.dtype == input.dtype, "reduce_scatter: output {} and input {} differ in dtype",
           output.describe(), input.describe());
  const int64_t n = output.numel();
  FT_CHECK(input.numel() == n * size(),
           "reduce_scatter: the input {} must hold size() x output = {} x {} = {} elements",
           input.describe(), size(), n, n * size());
  const bool in_place = allow_in_place && output.data == element_address(input, rank() * n);
  FT_CHECK(in_place || !overlaps(output, input), "reduce_scatter: output {} overlaps input {}{}",
           output.describe(), input.describe(),
           allow_in_place ? fmt::format(" other than as chunk {} of it", rank()) : "");
  return in_place;
}

// One rank: the reduction over ranks of a value is the value itself, for sum, average and max.
void SingleProcessCommunicator::all_reduce(Tensor tensor, ReduceOp) {
  CollectiveTimer timer(stats_, tensor.bytes());
}

void SingleProcessCommunicator::all_reduce(std::span<double> values, ReduceOp) {
  CollectiveTimer timer(stats_, values.size_bytes());
}

void SingleProcessCommunicator::reduce_scatter(Tensor output, Tensor input, ReduceOp) {
  CollectiveTimer timer(stats_, input.bytes());
  FT_CHECK(output.numel() == input.numel() && output.dtype == input.dtype,
           "reduce_scatter over one rank: output {} must match input {}", output.describe(),
           input.describe());
  if (output.data != input.data) copy_tensor(output, input);
}

void SingleProcessCommunicator::all_gather(Tensor output, Tensor input) {
  CollectiveTimer timer(stats_, input.bytes());
  FT_CHECK(output.numel() == input.numel() && output.dtype == input.dtype,
           "all_gather over one rank: output {} must match input {}", output.describe(),
           input.describe());
  if (output.data != input.data) copy_tensor(output, input);
}

void SingleProcessCommunicator::broadcast(Tensor tensor, int root) {
  CollectiveTimer timer(stats_, tensor.bytes());
  FT_CHECK(root == 0, "broadcast from rank {} in a communicator of one rank", root);
}

void SingleProcessCommunicator::broadcast(std::string& text, int root) {
  CollectiveTimer timer(stats_, text.size());
  FT_CHECK(root == 0, "broadcast from rank {} in a communicator of one rank", root);
}

void SingleProcessCommunicator::send(Tensor, int peer) {
  fail("send to rank {} in a communicator of one rank (a process cannot send to itself)", peer);
}

void SingleProcessCommunicator::recv(Tensor, int peer) {
  fail("recv from rank {} in a communicator of one rank (a process cannot receive from itself)",
       peer);
}

void SingleProcessCommunicator::barrier() {
  CollectiveTimer timer(stats_, 0);
}

std::unique_ptr<Communicator> SingleProcessCommunicator::split(int, int) {
  return std::make_unique<SingleProcessCommunicator>();
}

}  // namespace ft
