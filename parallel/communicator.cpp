#include "parallel/communicator.h"

#include <cstring>

#include "runtime/device.h"
#include "runtime/error.h"

namespace ft {

void SingleProcessCommunicator::reduce_scatter(Tensor output, Tensor input, ReduceOp) {
  FT_CHECK(output.numel() == input.numel() && output.dtype == input.dtype,
           "reduce_scatter over one rank: output {} must match input {}", output.describe(),
           input.describe());
  if (output.data != input.data) copy_tensor(output, input);
}

void SingleProcessCommunicator::all_gather(Tensor output, Tensor input) {
  FT_CHECK(output.numel() == input.numel() && output.dtype == input.dtype,
           "all_gather over one rank: output {} must match input {}", output.describe(),
           input.describe());
  if (output.data != input.data) copy_tensor(output, input);
}

void SingleProcessCommunicator::broadcast(Tensor, int root) {
  FT_CHECK(root == 0, "broadcast from rank {} in a communicator of one rank", root);
}

void SingleProcessCommunicator::broadcast(std::string&, int root) {
  FT_CHECK(root == 0, "broadcast from rank {} in a communicator of one rank", root);
}

void SingleProcessCommunicator::send(Tensor, int peer) {
  fail("send to rank {} in a communicator of one rank", peer);
}

void SingleProcessCommunicator::recv(Tensor, int peer) {
  fail("recv from rank {} in a communicator of one rank", peer);
}

std::unique_ptr<Communicator> SingleProcessCommunicator::split(int, int) {
  return std::make_unique<SingleProcessCommunicator>();
}

}  // namespace ft
