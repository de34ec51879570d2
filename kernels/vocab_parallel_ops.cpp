// The ops.h entry points of the vocabulary-parallel embedding and loss (tensor parallelism): check
// every argument's device, dtype and shape and the shard's place in the vocabulary, naming the op
// and the argument, then run the CPU kernels of kernels/cpu/vocab_parallel_cpu.h.
#include <cstdint>
#include <string_view>

#include "kernels/arg_checks.h"
#include "kernels/cpu/vocab_parallel_cpu.h"
#include "kernels/dispatch.h"
#include "kernels/ops.h"
#include "runtime/error.h"

#ifdef FT_WITH_CUDA
#include "kernels/cuda/embedding_cuda.h"
#include "kernels/cuda/vocab_parallel_cuda.h"
#endif

namespace ft::ops {
namespace {

constexpr int64_t kStats = cpu::kShardStatCount;

void check_vocab_begin(const ArgChecks& check, int64_t vocab_begin) {
  if (vocab_begin < 0)
    fail("op {}: argument vocab_begin is {}, expected >= 0", check.op, vocab_begin);
}

// The stats store global column indices as values of the logits' dtype, exact only below
// 2^(significand bits): 2^24 in f32.
void check_indices_representable(const ArgChecks& check, DType dtype, int64_t vocab_end) {
  const int digits = dtype == DType::bf16 ? 8 : dtype == DType::f32 ? 24 : 53;
  if (vocab_end > (int64_t{1} << digits)) {
    fail(
        "op {}: the shard's columns end at {}, beyond 2^{} = {}: {} stats cannot hold every "
        "column index exactly (use f64 logits or a smaller vocabulary)",
        check.op, vocab_end, digits, int64_t{1} << digits, dtype_name(dtype));
  }
}

}  // namespace

// ---- embedding -------------------------------------------------------------------------------

void embedding_forward_shard(const OpContext& ctx, Tensor out, Tensor ids, Tensor table,
                             int64_t vocab_begin, int64_t vocab_size) {
  const ArgChecks check{"embedding_forward_shard", ctx};
  check.rank("ids", ids, 1);
  check.rank("table", table, 2);
  const int64_t rows = ids.dim(0), local_vocab = table.dim(0), cols = table.dim(1);
  check.tensor("ids", ids, {rows}, DType::i32);
  check.tensor("table", table, {local_vocab, cols}, table.dtype);
  check.tensor("out", out, {rows, cols}, table.dtype);
  check_vocab_begin(check, vocab_begin);
  if (vocab_begin + local_vocab > vocab_size) {
    fail(
        "op {}: the table's rows [{}, {}) (vocab_begin {}, {} rows) do not fit in the "
        "vocabulary's [0, {}) (vocab_size)",
        check.op, vocab_begin, vocab_begin + local_vocab, vocab_begin, local_vocab, vocab_size);
  }
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::embedding_forward_shard(ctx, "embedding_forward_shard", out, ids, table,
                                         vocab_begin, vocab_size);
  }
#endif
  check.cpu_only(table.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, table.dtype,
                        cpu::embedding_forward_shard(
                            out.ptr<scalar_t>(), ids.ptr<int32_t>(), table.ptr<scalar_t>(), rows,
                            vocab_begin, local_vocab, vocab_size, cols, ctx.num_threads));
}

void embedding_backward_shard(const OpContext& ctx, Tensor dtable, Tensor ids, Tensor dout,
                              int64_t vocab_begin) {
  const ArgChecks check{"embedding_backward_shard", ctx};
  if (dtable.empty()) return;  // frozen table
  check.rank("ids", ids, 1);
  check.rank("dtable", dtable, 2);
  const int64_t rows = ids.dim(0), local_vocab = dtable.dim(0), cols = dtable.dim(1);
  check.tensor("dtable", dtable, {local_vocab, cols}, param_grad_dtype(dtable.dtype, dout.dtype));
  check.tensor("ids", ids, {rows}, DType::i32);
  check.tensor("dout", dout, {rows, cols}, dout.dtype);
  check_vocab_begin(check, vocab_begin);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    // vocab_size 0: the shard checks only that ids are not negative (as the CPU).
    return cuda::embedding_backward_shard(ctx, "embedding_backward_shard", dtable, ids, dout,
                                          vocab_begin, 0);
  }
#endif
  check.cpu_only(dtable.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, dtable.dtype,
                        cpu::embedding_backward_shard(dtable.ptr<scalar_t>(), ids.ptr<int32_t>(),
                                                      dout.ptr<scalar_t>(), rows, vocab_begin,
                                                      local_vocab, cols, ctx.num_threads));
}

// ---- loss ------------------------------------------------------------------------------------

void cross_entropy_shard_stats(const OpContext& ctx, Tensor stats, Tensor logits, Tensor targets,
                               int64_t vocab_begin) {
  const ArgChecks check{"cross_entropy_shard_stats", ctx};
  check.rank("logits", logits, 2);
  const int64_t rows = logits.dim(0), local_vocab = logits.dim(1);
  check.tensor("targets", targets, {rows}, DType::i32);
  check.tensor("stats", stats, {rows, kStats}, stats_dtype(logits.dtype));
  if (local_vocab == 0) {
    fail("op {}: argument logits has shape {}: the shard has no columns", check.op,
         logits.shape.str());
  }
  check_vocab_begin(check, vocab_begin);
  check_indices_representable(check, stats.dtype, vocab_begin + local_vocab);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::cross_entropy_shard_stats(ctx, stats, logits, targets, vocab_begin);
  }
#endif
  check.cpu_only(logits.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, logits.dtype,
                        cpu::cross_entropy_shard_stats(
                            stats.ptr<scalar_t>(), logits.ptr<scalar_t>(), targets.ptr<int32_t>(),
                            rows, vocab_begin, local_vocab, ctx.num_threads));
}

void cross_entropy_combine_shards(const OpContext& ctx, Tensor losses, Tensor lse, Tensor parts,
                                  Tensor targets, int64_t* correct) {
  const ArgChecks check{"cross_entropy_combine_shards", ctx};
  check.rank("parts", parts, 3);
  const int64_t shards = parts.dim(0), rows = parts.dim(1);
  check.tensor("parts", parts, {shards, rows, kStats}, parts.dtype);
  if (shards == 0)
    fail("op {}: argument parts has shape {}: no shards", check.op, parts.shape.str());
  check.tensor("targets", targets, {rows}, DType::i32);
  check.tensor("losses", losses, {rows}, parts.dtype);
  check.tensor("lse", lse, {rows}, parts.dtype);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::cross_entropy_combine_shards(ctx, losses, lse, parts, targets, correct);
  }
#endif
  check.cpu_only(parts.dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, parts.dtype,
                        cpu::cross_entropy_combine_shards(
                            losses.ptr<scalar_t>(), lse.ptr<scalar_t>(), parts.ptr<scalar_t>(),
                            targets.ptr<int32_t>(), shards, rows, ctx.num_threads, correct));
}

void cross_entropy_backward_shard(const OpContext& ctx, Tensor dlogits, Tensor logits, Tensor lse,
                                  Tensor targets, int64_t vocab_begin, double dloss) {
  const ArgChecks check{"cross_entropy_backward_shard", ctx};
  check.rank("logits", logits, 2);
  const int64_t rows = logits.dim(0), local_vocab = logits.dim(1);
  check.tensor("dlogits", dlogits, {rows, local_vocab}, logits.dtype);
  check.tensor("lse", lse, {rows}, stats_dtype(logits.dtype));
  check.tensor("targets", targets, {rows}, DType::i32);
  check_vocab_begin(check, vocab_begin);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::cross_entropy_backward_shard(ctx, dlogits, logits, lse, targets, vocab_begin,
                                              dloss);
  }
#endif
  check.cpu_only(logits.dtype);
  FT_DISPATCH_CPU_FLOAT(
      check.op, logits.dtype,
      cpu::cross_entropy_backward_shard(dlogits.ptr<scalar_t>(), logits.ptr<scalar_t>(),
                                        lse.ptr<scalar_t>(), targets.ptr<int32_t>(), dloss, rows,
                                        vocab_begin, local_vocab, ctx.num_threads));
}

}  // namespace ft::ops
