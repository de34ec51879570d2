// The NCCL communicator: collectives on device buffers (f32, f64, bf16, i32), one rank per GPU.
// Bootstrap: rank 0 of a host communicator (the MPI world) creates the NCCL unique id, the host
// communicator broadcasts it, every rank joins with ncclCommInitRank on its device; groups come
// from ncclCommSplit. Collectives are blocking like the interface says: enqueued on the
// communicator's stream, then waited for. A failed NCCL call marks the communicator broken, and a
// broken one is aborted (ncclCommAbort), never destroyed, since ncclCommDestroy can wait forever on
// peers that are gone. Compiled only in CUDA builds; make_nccl_communicator exists in every build.
#pragma once

#include <memory>

#include "parallel/communicator.h"

namespace ft {

// An NCCL communicator over the ranks of `host_world` (collective over it), this rank on CUDA
// device `device`. In a build without CUDA it fails, saying so.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host_world, int device);

#ifdef FT_WITH_CUDA
class NcclCommunicator final : public Communicator {
 public:
  // Every rank of `host` calls it, each with the device it drives.
  NcclCommunicator(Communicator& host, int device);
  // One rank on `device`, no MPI needed (a single GPU, tests).
  explicit NcclCommunicator(int device);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* kind() const override { return "nccl"; }
  int device() const;
  // The CUDA stream (a cudaStream_t) the collectives run on: by default one of the
  // communicator's own, which waits for work on the legacy default stream; pass the compute
  // stream to order collectives after its kernels. Not owned.
  void set_stream(void* stream);

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

 private:
  struct State;  // the NCCL communicator, its stream and scratch memory (nccl_communicator.cpp)
  explicit NcclCommunicator(std::unique_ptr<State> state);
  void* scratch(size_t bytes);  // device memory for host values, grown on demand
  // Waits for the enqueued collective, then checks NCCL's asynchronous error state.
  void finish(const char* what);

  std::unique_ptr<State> state_;
  int rank_ = 0, size_ = 1;
};
#endif

}  // namespace ft
