// The communicator the training step talks to. This issue builds the single-process one; MPI (host
// buffers) and NCCL (device buffers) implement the same interface when multi-rank training lands.
// The step calls all_reduce_sum on the trainable gradients and on its metric counters, so adding a
// backend changes no training code.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "runtime/tensor.h"

namespace ft {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place, sum over ranks.
  virtual void all_reduce_sum(Tensor tensor) = 0;
  virtual void all_reduce_sum(std::span<double> values) = 0;
  virtual void barrier() = 0;
};

// One process: every collective is the identity.
class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_sum(Tensor) override {}
  void all_reduce_sum(std::span<double>) override {}
  void barrier() override {}
};

}  // namespace ft
