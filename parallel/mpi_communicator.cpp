#include "parallel/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include "parallel/collective_timer.h"
#include "runtime/error.h"

namespace ft {
namespace {

constexpr int kPointToPointTag = 17;

void check_mpi(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  fail("{} failed: {}", call, std::string(text, static_cast<size_t>(length)));
}

// The MPI type of a reduction over `dtype`; bf16 has none.
MPI_Datatype reduction_type(DType dtype, const char* what) {
  switch (dtype) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::f64:
      return MPI_DOUBLE;
    case DType::i32:
      return MPI_INT;
    case DType::bf16:
      break;
    case DType::i8:
    case DType::f8e4m3:
      fail("{}: {} tensors (quantized weights) cannot be reduced; only moved", what,
           dtype_name(dtype));
  }
  fail(
      "{}: bf16 tensors cannot be reduced by the MPI communicator (MPI has no bf16 arithmetic); "
      "reduce in f32 or f64, or use the NCCL communicator on GPUs",
      what);
}

MPI_Op reduction_op(ReduceOp op) {
  return op == ReduceOp::max ? MPI_MAX : MPI_SUM;
}

void require_host(const Tensor& tensor, const char* what, const char* role) {
  FT_CHECK(tensor.device == Device::cpu,
           "{}: the {} {} is on {}; the MPI communicator takes host buffers", what, role,
           tensor.describe(), device_name(tensor.device));
  FT_CHECK(tensor.numel() == 0 || tensor.data != nullptr, "{}: the {} {} has no data", what, role,
           tensor.describe());
}

// Checked before any message, so that a refused call leaves every rank's data as it was.
void check_reduction(DType dtype, ReduceOp op, const char* what) {
  if (op == ReduceOp::average && dtype != DType::f32 && dtype != DType::f64)
    fail("{}: ReduceOp::average needs a floating-point tensor, got {}", what, dtype_name(dtype));
}

// Average = sum / ranks, in place.
void divide(void* data, int64_t count, DType dtype, int ranks, const char* what) {
  if (dtype == DType::f32) {
    float* values = static_cast<float*>(data);
    for (int64_t i = 0; i < count; ++i) values[i] /= static_cast<float>(ranks);
  } else if (dtype == DType::f64) {
    double* values = static_cast<double*>(data);
    for (int64_t i = 0; i < count; ++i) values[i] /= static_cast<double>(ranks);
  } else {
    fail("{}: ReduceOp::average needs a floating-point tensor, got {}", what, dtype_name(dtype));
  }
}

char* byte_pointer(const Tensor& tensor, int64_t element_offset = 0) {
  return static_cast<char*>(tensor.data) + element_offset * dtype_size(tensor.dtype);
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm) : comm_(comm), max_count_(INT_MAX) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  FT_CHECK(initialized, "MpiCommunicator: MPI is not initialized (see parallel/launch.h)");
  FT_CHECK(comm != MPI_COMM_NULL, "MpiCommunicator: MPI_COMM_NULL");
  check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
}

MpiCommunicator::~MpiCommunicator() {
  if (comm_ == MPI_COMM_NULL || comm_ == MPI_COMM_WORLD || comm_ == MPI_COMM_SELF) return;
  // A split group outliving MPI_Finalize (held past the runtime) has nothing left to free.
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&comm_);
}

void MpiCommunicator::set_max_count_per_call(int64_t count) {
  FT_CHECK(count >= 1 && count <= INT_MAX, "max_count_per_call must be in [1, INT_MAX], got {}",
           count);
  max_count_ = count;
}

void MpiCommunicator::all_reduce_elements(void* data, int64_t count, DType dtype, ReduceOp op,
                                          const char* what) {
  const MPI_Datatype type = reduction_type(dtype, what);
  check_reduction(dtype, op, what);
  char* bytes = static_cast<char*>(data);
  for (int64_t begin = 0; begin < count; begin += max_count_) {
    const int piece = static_cast<int>(std::min(max_count_, count - begin));
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, bytes + begin * dtype_size(dtype), piece, type,
                            reduction_op(op), comm_),
              "MPI_Allreduce");
  }
  if (op == ReduceOp::average) divide(data, count, dtype, size_, what);
}

void MpiCommunicator::broadcast_bytes(void* data, int64_t count, MPI_Datatype type,
                                      size_t element_bytes, int root) {
  char* bytes = static_cast<char*>(data);
  for (int64_t begin = 0; begin < count; begin += max_count_) {
    const int piece = static_cast<int>(std::min(max_count_, count - begin));
    check_mpi(MPI_Bcast(bytes + begin * element_bytes, piece, type, root, comm_), "MPI_Bcast");
  }
}

void MpiCommunicator::all_reduce(Tensor tensor, ReduceOp op) {
  CollectiveTimer timer(stats_, tensor.bytes());
  require_host(tensor, "all_reduce", "tensor");
  all_reduce_elements(tensor.data, tensor.numel(), tensor.dtype, op, "all_reduce");
}

void MpiCommunicator::all_reduce(std::span<double> values, ReduceOp op) {
  CollectiveTimer timer(stats_, values.size_bytes());
  all_reduce_elements(values.data(), static_cast<int64_t>(values.size()), DType::f64, op,
                      "all_reduce (host values)");
}

void MpiCommunicator::reduce_scatter(Tensor output, Tensor input, ReduceOp op) {
  CollectiveTimer timer(stats_, input.bytes());
  require_host(output, "reduce_scatter", "output");
  require_host(input, "reduce_scatter", "input");
  check_reduce_scatter_arguments(output, input, /*allow_in_place=*/false);
  const int64_t n = output.numel();
  const MPI_Datatype type = reduction_type(input.dtype, "reduce_scatter");
  check_reduction(input.dtype, op, "reduce_scatter");
  if (input.numel() <= max_count_) {
    check_mpi(MPI_Reduce_scatter_block(input.data, output.data, static_cast<int>(n), type,
                                       reduction_op(op), comm_),
              "MPI_Reduce_scatter_block");
  } else {
    // Past int counts: rank r's chunk reduced to rank r, piece by piece.
    for (int root = 0; root < size_; ++root) {
      for (int64_t begin = 0; begin < n; begin += max_count_) {
        const int piece = static_cast<int>(std::min(max_count_, n - begin));
        check_mpi(MPI_Reduce(byte_pointer(input, root * n + begin),
                             root == rank_ ? byte_pointer(output, begin) : nullptr, piece, type,
                             reduction_op(op), root, comm_),
                  "MPI_Reduce");
      }
    }
  }
  if (op == ReduceOp::average) divide(output.data, n, output.dtype, size_, "reduce_scatter");
}

void MpiCommunicator::all_gather(Tensor output, Tensor input) {
  CollectiveTimer timer(stats_, input.bytes());
  require_host(output, "all_gather", "output");
  require_host(input, "all_gather", "input");
  const bool in_place = check_all_gather_arguments(output, input);
  const int64_t n = input.numel();
  // Gathering moves bytes without arithmetic, so every dtype (bf16 too) travels as bytes.
  const int64_t chunk_bytes = static_cast<int64_t>(input.bytes());
  if (chunk_bytes * size_ <= max_count_) {
    check_mpi(MPI_Allgather(in_place ? MPI_IN_PLACE : input.data, static_cast<int>(chunk_bytes),
                            MPI_BYTE, output.data, static_cast<int>(chunk_bytes), MPI_BYTE, comm_),
              "MPI_Allgather");
    return;
  }
  // Past int counts: each rank broadcasts its chunk, piece by piece.
  if (!in_place) std::memcpy(byte_pointer(output, rank_ * n), input.data, input.bytes());
  for (int root = 0; root < size_; ++root)
    broadcast_bytes(byte_pointer(output, root * n), chunk_bytes, MPI_BYTE, 1, root);
}

void MpiCommunicator::broadcast(Tensor tensor, int root) {
  CollectiveTimer timer(stats_, tensor.bytes());
  require_host(tensor, "broadcast", "tensor");
  FT_CHECK(root >= 0 && root < size_, "broadcast: root {} is not a rank of a communicator of {}",
           root, size_);
  broadcast_bytes(tensor.data, static_cast<int64_t>(tensor.bytes()), MPI_BYTE, 1, root);
}

void MpiCommunicator::broadcast(std::string& text, int root) {
  CollectiveTimer timer(stats_, text.size());
  FT_CHECK(root >= 0 && root < size_,
           "broadcast (text): root {} is not a rank of a communicator of {}", root, size_);
  int64_t length = static_cast<int64_t>(text.size());
  check_mpi(MPI_Bcast(&length, 1, MPI_INT64_T, root, comm_), "MPI_Bcast");
  if (rank_ != root) text.assign(static_cast<size_t>(length), '\0');
  broadcast_bytes(text.data(), length, MPI_CHAR, 1, root);
}

void MpiCommunicator::send(Tensor tensor, int peer) {
  CollectiveTimer timer(stats_, tensor.bytes());
  require_host(tensor, "send", "tensor");
  FT_CHECK(peer >= 0 && peer < size_ && peer != rank_,
           "send: peer {} must be another rank of a communicator of {} (this is rank {})", peer,
           size_, rank_);
  // Pieces of at most max_count_ bytes; an empty tensor is one empty message.
  const int64_t count = static_cast<int64_t>(tensor.bytes());
  int64_t begin = 0;
  do {
    const int piece = static_cast<int>(std::min(max_count_, count - begin));
    check_mpi(
        MPI_Send(byte_pointer(tensor) + begin, piece, MPI_BYTE, peer, kPointToPointTag, comm_),
        "MPI_Send");
    begin += piece;
  } while (begin < count);
}

void MpiCommunicator::recv(Tensor tensor, int peer) {
  CollectiveTimer timer(stats_, tensor.bytes());
  require_host(tensor, "recv", "tensor");
  FT_CHECK(peer >= 0 && peer < size_ && peer != rank_,
           "recv: peer {} must be another rank of a communicator of {} (this is rank {})", peer,
           size_, rank_);
  const int64_t count = static_cast<int64_t>(tensor.bytes());
  int64_t begin = 0;
  do {
    const int piece = static_cast<int>(std::min(max_count_, count - begin));
    // Probe first: a message of another size is an error that names both sizes (receiving it
    // would truncate, which MPI treats as fatal without saying what was expected).
    MPI_Status status;
    check_mpi(MPI_Probe(peer, kPointToPointTag, comm_, &status), "MPI_Probe");
    int incoming = 0;
    check_mpi(MPI_Get_count(&status, MPI_BYTE, &incoming), "MPI_Get_count");
    FT_CHECK(incoming == piece,
             "recv from rank {}: expected {} bytes for {}, the sender sent {} (the send and recv "
             "tensors differ in size)",
             peer, piece, tensor.describe(), incoming);
    check_mpi(MPI_Recv(byte_pointer(tensor) + begin, piece, MPI_BYTE, peer, kPointToPointTag, comm_,
                       MPI_STATUS_IGNORE),
              "MPI_Recv");
    begin += piece;
  } while (begin < count);
}

void MpiCommunicator::barrier() {
  CollectiveTimer timer(stats_, 0);
  check_mpi(MPI_Barrier(comm_), "MPI_Barrier");
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) {
  FT_CHECK(color >= 0, "split: color must be >= 0, got {} (every rank joins some group)", color);
  MPI_Comm group = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split(comm_, color, key, &group), "MPI_Comm_split");
  auto child = std::make_unique<MpiCommunicator>(group);
  child->max_count_ = max_count_;
  return child;
}

}  // namespace ft
