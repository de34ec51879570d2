// The MPI communicator: collectives over an MPI_Comm on host buffers. Reductions take f32, f64
// and i32 (average: f32 and f64) and refuse bf16, for which MPI has no arithmetic; broadcast,
// all_gather and send/recv move bytes, so bf16 travels there too. The CPU backend's path, and the
// way every multi-rank code path is tested without GPUs (mpirun -np 2|4 on CPU).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "parallel/communicator.h"

namespace ft {

class MpiCommunicator final : public Communicator {
 public:
  // Borrows MPI_COMM_WORLD (never freed); any other communicator is owned and freed on
  // destruction (unless MPI has been finalized by then). MPI must be initialized.
  explicit MpiCommunicator(MPI_Comm comm);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* kind() const override { return "mpi"; }
  MPI_Comm comm() const { return comm_; }

  void all_reduce(Tensor tensor, ReduceOp op) override;
  void all_reduce(std::span<double> values, ReduceOp op) override;
  void reduce_scatter(Tensor output, Tensor input, ReduceOp op) override;
  void all_gather(Tensor output, Tensor input) override;
  void broadcast(Tensor tensor, int root) override;
  void broadcast(std::string& text, int root) override;
  void send(Tensor tensor, int peer) override;
  void recv(Tensor tensor, int peer) override;
  void barrier() override;
  std::unique_ptr<Communicator> split(int color, int key) override;

  // MPI counts are int: calls over more elements are made in pieces of at most this many. Only
  // tests lower it (to exercise the pieces on small tensors); children of split() inherit it.
  void set_max_count_per_call(int64_t count);
  int64_t max_count_per_call() const { return max_count_; }

 private:
  void all_reduce_elements(void* data, int64_t count, DType dtype, ReduceOp op, const char* what);
  void broadcast_bytes(void* data, int64_t count, MPI_Datatype type, size_t element_bytes,
                       int root);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  int64_t max_count_;
};

}  // namespace ft
