#include "parallel/nccl_communicator.h"

#include "runtime/error.h"

#ifdef FT_WITH_CUDA

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "parallel/collective_timer.h"

namespace ft {
namespace {

constexpr int kSpinPolls = 1000;
constexpr int64_t kDefaultTimeoutSeconds = 600;

// How long one collective may take before the watchdog declares the job broken:
// FT_NCCL_TIMEOUT_S, or 10 minutes (a first collective may wait for a slow rank's start-up).
std::chrono::steady_clock::duration collective_timeout() {
  int64_t seconds = kDefaultTimeoutSeconds;
  if (const char* text = std::getenv("FT_NCCL_TIMEOUT_S"); text != nullptr && *text != '\0') {
    char* end = nullptr;
    seconds = std::strtoll(text, &end, 10);
    if (*end != '\0' || seconds <= 0)
      fail("FT_NCCL_TIMEOUT_S = '{}': expected a positive number of seconds", text);
  }
  return std::chrono::seconds(seconds);
}

}  // namespace

struct NcclCommunicator::State {
  ncclComm_t comm = nullptr;
  int device = 0;
  cudaStream_t own_stream = nullptr;
  cudaStream_t stream = nullptr;  // own_stream, or the one set_stream() gave
  void* scratch = nullptr;
  size_t scratch_bytes = 0;
  bool broken = false;  // an NCCL call failed: abort instead of destroy
  std::chrono::steady_clock::duration timeout = collective_timeout();

  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  // Here rather than in ~NcclCommunicator, so that a constructor that throws half-way releases
  // what it had created.
  ~State() {
    cudaSetDevice(device);
    if (comm != nullptr) {
      if (broken)
        ncclCommAbort(comm);
      else
        ncclCommDestroy(comm);
    }
    if (scratch != nullptr) cudaFree(scratch);
    if (own_stream != nullptr) cudaStreamDestroy(own_stream);
  }

  // Throws, naming the call and NCCL's reason; marks the communicator broken.
  void check(ncclResult_t result, const char* call) {
    if (result == ncclSuccess) return;
    broken = true;
    const char* detail = comm != nullptr ? ncclGetLastError(comm) : nullptr;
    fail("{} failed: {}{}{}", call, ncclGetErrorString(result),
         detail != nullptr && *detail != '\0' ? ": " : "", detail != nullptr ? detail : "");
  }
  void check(cudaError_t error, const char* call) {
    if (error == cudaSuccess) return;
    broken = true;
    fail("{} failed: {} ({})", call, cudaGetErrorString(error), cudaGetErrorName(error));
  }
  void use_device() { check(cudaSetDevice(device), "cudaSetDevice"); }
  void create_stream() {
    // A blocking stream: it waits for the work queued on the legacy default stream.
    check(cudaStreamCreate(&own_stream), "cudaStreamCreate");
    stream = own_stream;
  }
};

namespace {

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return ncclFloat32;
    case DType::f64:
      return ncclFloat64;
    case DType::bf16:
      return ncclBfloat16;
    case DType::i32:
      return ncclInt32;
    case DType::i8:
      return ncclInt8;
    case DType::f8e4m3:
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 24, 0)
      return ncclFloat8e4m3;
#else
      fail("NCCL communicator: f8e4m3 tensors need NCCL >= 2.24; this build has NCCL {}",
           NCCL_VERSION_CODE);
#endif
  }
  fail("NCCL communicator: unknown dtype {}", static_cast<int>(dtype));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return ncclSum;
    case ReduceOp::average:
      return ncclAvg;
    case ReduceOp::max:
      return ncclMax;
  }
  fail("NCCL communicator: unknown reduce op {}", static_cast<int>(op));
}

void require_device(const Tensor& tensor, const char* what, const char* role) {
  FT_CHECK(tensor.device == Device::cuda,
           "{}: the {} {} is on {}; the NCCL communicator takes device buffers", what, role,
           tensor.describe(), device_name(tensor.device));
}

}  // namespace

NcclCommunicator::NcclCommunicator(std::unique_ptr<State> state) : state_(std::move(state)) {
  state_->check(ncclCommUserRank(state_->comm, &rank_), "ncclCommUserRank");
  state_->check(ncclCommCount(state_->comm, &size_), "ncclCommCount");
}

NcclCommunicator::NcclCommunicator(Communicator& host, int device)
    : state_(std::make_unique<State>()) {
  FT_CHECK(device >= 0, "NcclCommunicator: device {} must be >= 0", device);
  state_->device = device;
  state_->use_device();
  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  // Rank 0 broadcasts the id, or an empty text when it could not make one, so that no rank waits
  // in the broadcast for a rank that already failed.
  std::string bytes;
  if (host.rank() == 0) {
    const ncclResult_t made = ncclGetUniqueId(&id);
    if (made == ncclSuccess) bytes.assign(reinterpret_cast<const char*>(&id), sizeof(id));
    host.broadcast(bytes, 0);
    state_->check(made, "ncclGetUniqueId");
  } else {
    host.broadcast(bytes, 0);
    FT_CHECK(!bytes.empty(), "NcclCommunicator: rank 0 could not create the NCCL unique id");
  }
  FT_CHECK(bytes.size() == sizeof(id), "NcclCommunicator: the unique id broadcast carried {} bytes",
           bytes.size());
  std::memcpy(&id, bytes.data(), sizeof(id));
  state_->check(ncclCommInitRank(&state_->comm, host.size(), id, host.rank()), "ncclCommInitRank");
  state_->create_stream();
  state_->check(ncclCommUserRank(state_->comm, &rank_), "ncclCommUserRank");
  state_->check(ncclCommCount(state_->comm, &size_), "ncclCommCount");
}

NcclCommunicator::NcclCommunicator(int device) : state_(std::make_unique<State>()) {
  FT_CHECK(device >= 0, "NcclCommunicator: device {} must be >= 0", device);
  state_->device = device;
  state_->use_device();
  state_->check(ncclCommInitAll(&state_->comm, 1, &device), "ncclCommInitAll");
  state_->create_stream();
}

NcclCommunicator::~NcclCommunicator() = default;

int NcclCommunicator::device() const {
  return state_->device;
}

void NcclCommunicator::set_stream(void* stream) {
  state_->stream = stream != nullptr ? static_cast<cudaStream_t>(stream) : state_->own_stream;
}

void* NcclCommunicator::scratch(size_t bytes) {
  if (bytes > state_->scratch_bytes) {
    if (state_->scratch != nullptr) {
      state_->check(cudaStreamSynchronize(state_->stream), "cudaStreamSynchronize");
      state_->check(cudaFree(state_->scratch), "cudaFree");
      state_->scratch = nullptr;
      state_->scratch_bytes = 0;
    }
    state_->check(cudaMalloc(&state_->scratch, bytes), "cudaMalloc (NCCL scratch)");
    state_->scratch_bytes = bytes;
  }
  return state_->scratch;
}

void NcclCommunicator::finish(const char* what) {
  // Polled rather than cudaStreamSynchronize: with a peer dead or hung, a synchronize would wait
  // forever; polling sees NCCL's asynchronous error, or gives up after the watchdog's timeout.
  // Either way the communicator is marked broken (aborted, not destroyed) and the error ends the
  // job (ft_train aborts every rank).
  const auto start = std::chrono::steady_clock::now();
  for (int polls = 0;; ++polls) {
    const cudaError_t status = cudaStreamQuery(state_->stream);
    if (status == cudaSuccess) break;
    if (status != cudaErrorNotReady) state_->check(status, what);
    ncclResult_t async = ncclSuccess;
    state_->check(ncclCommGetAsyncError(state_->comm, &async), "ncclCommGetAsyncError");
    state_->check(async, what);
    if (std::chrono::steady_clock::now() - start > state_->timeout) {
      state_->broken = true;
      fail("{} did not finish within {} s (FT_NCCL_TIMEOUT_S): a rank did not join it or hung",
           what, std::chrono::duration_cast<std::chrono::seconds>(state_->timeout).count());
    }
    // Spin briefly (most collectives end within microseconds of the last rank arriving), then
    // give the core back.
    if (polls > kSpinPolls) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  ncclResult_t async = ncclSuccess;
  state_->check(ncclCommGetAsyncError(state_->comm, &async), "ncclCommGetAsyncError");
  state_->check(async, what);
}

void NcclCommunicator::all_reduce(Tensor tensor, ReduceOp op) {
  CollectiveTimer timer(stats_, tensor.bytes());
  require_device(tensor, "all_reduce", "tensor");
  state_->use_device();
  state_->check(ncclAllReduce(tensor.data, tensor.data, static_cast<size_t>(tensor.numel()),
                              nccl_type(tensor.dtype), nccl_op(op), state_->comm, state_->stream),
                "ncclAllReduce");
  finish("ncclAllReduce");
}

void NcclCommunicator::all_reduce(std::span<double> values, ReduceOp op) {
  CollectiveTimer timer(stats_, values.size_bytes());
  if (values.empty()) return;
  state_->use_device();
  void* device_values = scratch(values.size_bytes());
  state_->check(cudaMemcpyAsync(device_values, values.data(), values.size_bytes(),
                                cudaMemcpyHostToDevice, state_->stream),
                "cudaMemcpyAsync (host values to device)");
  state_->check(ncclAllReduce(device_values, device_values, values.size(), ncclFloat64, nccl_op(op),
                              state_->comm, state_->stream),
                "ncclAllReduce (host values)");
  state_->check(cudaMemcpyAsync(values.data(), device_values, values.size_bytes(),
                                cudaMemcpyDeviceToHost, state_->stream),
                "cudaMemcpyAsync (host values from device)");
  finish("ncclAllReduce (host values)");
}

void NcclCommunicator::reduce_scatter(Tensor output, Tensor input, ReduceOp op) {
  CollectiveTimer timer(stats_, input.bytes());
  require_device(output, "reduce_scatter", "output");
  require_device(input, "reduce_scatter", "input");
  // NCCL's in-place form: the output is this rank's chunk of the input.
  check_reduce_scatter_arguments(output, input, /*allow_in_place=*/true);
  const int64_t n = output.numel();
  state_->use_device();
  state_->check(
      ncclReduceScatter(input.data, output.data, static_cast<size_t>(n), nccl_type(input.dtype),
                        nccl_op(op), state_->comm, state_->stream),
      "ncclReduceScatter");
  finish("ncclReduceScatter");
}

void NcclCommunicator::all_gather(Tensor output, Tensor input) {
  CollectiveTimer timer(stats_, input.bytes());
  require_device(output, "all_gather", "output");
  require_device(input, "all_gather", "input");
  check_all_gather_arguments(output, input);
  const int64_t n = input.numel();
  state_->use_device();
  state_->check(ncclAllGather(input.data, output.data, static_cast<size_t>(n),
                              nccl_type(input.dtype), state_->comm, state_->stream),
                "ncclAllGather");
  finish("ncclAllGather");
}

void NcclCommunicator::broadcast(Tensor tensor, int root) {
  CollectiveTimer timer(stats_, tensor.bytes());
  require_device(tensor, "broadcast", "tensor");
  FT_CHECK(root >= 0 && root < size_, "broadcast: root {} is not a rank of a communicator of {}",
           root, size_);
  state_->use_device();
  state_->check(ncclBroadcast(tensor.data, tensor.data, static_cast<size_t>(tensor.numel()),
                              nccl_type(tensor.dtype), root, state_->comm, state_->stream),
                "ncclBroadcast");
  finish("ncclBroadcast");
}

void NcclCommunicator::broadcast(std::string& text, int root) {
  CollectiveTimer timer(stats_, text.size());
  FT_CHECK(root >= 0 && root < size_,
           "broadcast (text): root {} is not a rank of a communicator of {}", root, size_);
  state_->use_device();
  // The length first, then the bytes, both through device scratch memory.
  int64_t length = static_cast<int64_t>(text.size());
  void* device_length = scratch(sizeof(length));
  state_->check(cudaMemcpyAsync(device_length, &length, sizeof(length), cudaMemcpyHostToDevice,
                                state_->stream),
                "cudaMemcpyAsync (text length)");
  state_->check(
      ncclBroadcast(device_length, device_length, 1, ncclInt64, root, state_->comm, state_->stream),
      "ncclBroadcast (text length)");
  state_->check(cudaMemcpyAsync(&length, device_length, sizeof(length), cudaMemcpyDeviceToHost,
                                state_->stream),
                "cudaMemcpyAsync (text length)");
  finish("ncclBroadcast (text length)");
  if (length == 0) {
    text.clear();
    return;
  }
  void* device_text = scratch(static_cast<size_t>(length));
  if (rank_ == root)
    state_->check(cudaMemcpyAsync(device_text, text.data(), text.size(), cudaMemcpyHostToDevice,
                                  state_->stream),
                  "cudaMemcpyAsync (text)");
  state_->check(ncclBroadcast(device_text, device_text, static_cast<size_t>(length), ncclUint8,
                              root, state_->comm, state_->stream),
                "ncclBroadcast (text)");
  text.assign(static_cast<size_t>(length), '\0');
  state_->check(cudaMemcpyAsync(text.data(), device_text, text.size(), cudaMemcpyDeviceToHost,
                                state_->stream),
                "cudaMemcpyAsync (text)");
  finish("ncclBroadcast (text)");
}

void NcclCommunicator::send(Tensor tensor, int peer) {
  CollectiveTimer timer(stats_, tensor.bytes());
  require_device(tensor, "send", "tensor");
  FT_CHECK(peer >= 0 && peer < size_ && peer != rank_,
           "send: peer {} must be another rank of a communicator of {} (this is rank {})", peer,
           size_, rank_);
  state_->use_device();
  state_->check(ncclSend(tensor.data, static_cast<size_t>(tensor.numel()), nccl_type(tensor.dtype),
                         peer, state_->comm, state_->stream),
                "ncclSend");
  finish("ncclSend");
}

void NcclCommunicator::recv(Tensor tensor, int peer) {
  CollectiveTimer timer(stats_, tensor.bytes());
  require_device(tensor, "recv", "tensor");
  FT_CHECK(peer >= 0 && peer < size_ && peer != rank_,
           "recv: peer {} must be another rank of a communicator of {} (this is rank {})", peer,
           size_, rank_);
  state_->use_device();
  state_->check(ncclRecv(tensor.data, static_cast<size_t>(tensor.numel()), nccl_type(tensor.dtype),
                         peer, state_->comm, state_->stream),
                "ncclRecv");
  finish("ncclRecv");
}

void NcclCommunicator::barrier() {
  CollectiveTimer timer(stats_, 0);
  // NCCL has no barrier: a one-element all-reduce that every rank must join.
  state_->use_device();
  void* flag = scratch(sizeof(float));
  state_->check(ncclAllReduce(flag, flag, 1, ncclFloat32, ncclSum, state_->comm, state_->stream),
                "ncclAllReduce (barrier)");
  finish("ncclAllReduce (barrier)");
}

std::unique_ptr<Communicator> NcclCommunicator::split(int color, int key) {
  FT_CHECK(color >= 0, "split: color must be >= 0, got {} (every rank joins some group)", color);
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 18, 0)
  state_->use_device();
  auto child = std::make_unique<State>();
  child->device = state_->device;
  state_->check(ncclCommSplit(state_->comm, color, key, &child->comm, nullptr), "ncclCommSplit");
  child->create_stream();
  child->stream = state_->stream;  // ordered after the same compute stream as its parent
  return std::unique_ptr<Communicator>(new NcclCommunicator(std::move(child)));
#else
  fail("split: ncclCommSplit needs NCCL >= 2.18; this build has NCCL {}", NCCL_VERSION_CODE);
#endif
}

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host_world, int device) {
  return std::make_unique<NcclCommunicator>(host_world, device);
}

}  // namespace ft

#else  // no CUDA

namespace ft {

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host_world, int device) {
  fail(
      "the NCCL communicator (device {}, {} ranks) needs a build of ft with CUDA: configure with "
      "-DFT_CUDA=ON on a machine with the CUDA toolkit and NCCL",
      device, host_world.size());
}

}  // namespace ft

#endif
