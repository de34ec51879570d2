// The communicator interface every parallel mode talks to, with three implementations:
//  - SingleProcessCommunicator (here): one rank, every collective is the identity;
//  - MpiCommunicator (parallel/mpi_communicator.h): host buffers, the CPU backend's path and the
//    way multi-rank logic is tested without GPUs;
//  - NcclCommunicator (parallel/nccl_communicator.h, CUDA builds): device buffers.
// Collectives are blocking and in rank order; every rank of the communicator must make the same
// calls with the same element counts and dtypes. Tensors are flat views (only numel counts).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "runtime/tensor.h"

namespace ft {

enum class ReduceOp { sum, average, max };

// Time and traffic spent in collectives, for the scaling benchmark and the step report.
struct CommunicatorStats {
  int64_t calls = 0;
  int64_t bytes = 0;     // payload bytes this rank passed in (input sizes)
  double seconds = 0.0;  // wall time inside collectives (blocking: includes waiting for peers)
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "single", "mpi" or "nccl".
  virtual const char* kind() const = 0;

  // In place over ranks. Tensors: f32 and f64 everywhere; bf16 on NCCL.
  virtual void all_reduce(Tensor tensor, ReduceOp op) = 0;
  // Host scalars (metrics, counts), on every implementation.
  virtual void all_reduce(std::span<double> values, ReduceOp op) = 0;
  // output (n) = the reduction over ranks of chunk `rank()` of input (size() * n elements).
  virtual void reduce_scatter(Tensor output, Tensor input, ReduceOp op) = 0;
  // output (size() * n) = the concatenation in rank order of every rank's input (n).
  virtual void all_gather(Tensor output, Tensor input) = 0;
  virtual void broadcast(Tensor tensor, int root) = 0;
  // Host text (configs, fingerprints, error messages): `text` is root's on return.
  virtual void broadcast(std::string& text, int root) = 0;
  // Point to point, for gathering shards of unequal size to one rank.
  virtual void send(Tensor tensor, int peer) = 0;
  virtual void recv(Tensor tensor, int peer) = 0;
  virtual void barrier() = 0;
  // A communicator over the ranks that pass the same color, ordered by key (then by rank).
  // Collective: every rank calls it.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

  void all_reduce_sum(Tensor tensor) { all_reduce(tensor, ReduceOp::sum); }
  void all_reduce_sum(std::span<double> values) { all_reduce(values, ReduceOp::sum); }
  const CommunicatorStats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }

 protected:
  // Argument checks the implementations share; errors name the collective and both tensors.
  // all_gather: same dtype, output = size() x input, no overlap except input being this rank's
  // chunk of the output. Returns whether it is (the in-place form).
  bool check_all_gather_arguments(const Tensor& output, const Tensor& input) const;
  // reduce_scatter: same dtype, input = size() x output, no overlap except (when
  // `allow_in_place`) output being this rank's chunk of the input. Returns whether it is.
  bool check_reduce_scatter_arguments(const Tensor& output, const Tensor& input,
                                      bool allow_in_place) const;

  CommunicatorStats stats_;
};

// One process: every collective is the identity (reduce_scatter and all_gather copy).
class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char* kind() const override { return "single"; }
  void all_reduce(Tensor tensor, ReduceOp op) override;
  void all_reduce(std::span<double> values, ReduceOp op) override;
  void reduce_scatter(Tensor output, Tensor input, ReduceOp op) override;
  void all_gather(Tensor output, Tensor input) override;
  void broadcast(Tensor, int root) override;
  void broadcast(std::string&, int root) override;
  void send(Tensor, int peer) override;
  void recv(Tensor, int peer) override;
  void barrier() override;
  std::unique_ptr<Communicator> split(int color, int key) override;
};

}  // namespace ft
