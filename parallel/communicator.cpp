#include "parallel/communicator.h"

#include "parallel/collective_timer.h"
#include "runtime/device.h"
#include "runtime/error.h"

namespace ft {

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
