#include "parallel/data_parallel.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"

namespace ft {

DataParallelOptimizer::DataParallelOptimizer(const ParameterStore& params,
                                             std::vector<ShardRule> rules,
                                             const ProcessGroups& groups, Communicator* kv_group,
                                             AdamWConfig adamw, DataParallelOptions options)
    : params_(params),
      rules_(std::move(rules)),
      groups_(groups),
      kv_group_(kv_group),
      adamw_(adamw),
      options_(options) {
  const std::vector<Parameter>& all = params.all();
  FT_CHECK(rules_.size() == all.size(), "{} shard rules for {} parameters", rules_.size(),
           all.size());
  int64_t tp_elements = 0, kv_elements = 0;
  for (size_t index = 0; index < all.size(); ++index) {
    if (!all[index].spec.trainable) continue;
    const int64_t count = all[index].spec.shape.numel();
    if (rules_[index].grad_sync == GradSync::tp_sum) {
      tp_partials_.push_back(index);
      tp_elements += count;
    } else if (rules_[index].grad_sync == GradSync::kv_group_sum) {
      FT_CHECK(kv_group_ != nullptr, "parameter {} needs the kv group's communicator",
               all[index].spec.name);
      kv_partials_.push_back(index);
      kv_elements += count;
    }
  }
  const DType dtype = params.dtype();
  const size_t element = dtype_size(dtype);
  const int dp = groups.layout().dp;
  const int64_t shard_count = options_.zero1 ? params.padded_trainable_count() / dp : 0;
  if (options_.zero1) {
    FT_CHECK(!params.mixed_precision(),
             "ZeRO-1 updates fp32 slices only; mixed-precision working copies need the full "
             "update");
    FT_CHECK(params.padded_trainable_count() % dp == 0 && params.adam_m().empty(),
             "ZeRO-1 needs a parameter store without moments, padded to a multiple of dp = {}", dp);
  }
  staging_ = Buffer(params.device(), (tp_elements + kv_elements) * element);
  tp_staging_ = staging_.view(dtype, Shape{tp_elements});
  kv_staging_ = staging_.view(dtype, Shape{kv_elements}, tp_elements * element);
  if (options_.zero1) {
    shard_buffer_ = Buffer(params.device(), 4 * shard_count * element);
    shard_grads_ = shard_buffer_.view(dtype, Shape{shard_count});
    shard_m_ = shard_buffer_.view(dtype, Shape{shard_count}, shard_count * element);
    shard_v_ = shard_buffer_.view(dtype, Shape{shard_count}, 2 * shard_count * element);
    shard_values_ = shard_buffer_.view(dtype, Shape{shard_count}, 3 * shard_count * element);
  } else if (params.trainable_count() > 0) {
    // Mixed precision: the update also rewrites the bf16 working copy the model reads.
    std::vector<ops::AdamWTensor> tensors;
    for (const Parameter& param : all) {
      if (!param.spec.trainable) continue;
      tensors.push_back({param.spec.name, param.value, param.grad, param.adam_m, param.adam_v,
                         params.mixed_precision() ? param.compute : Tensor(), param.spec.decay});
    }
    OpContext ctx;
    ctx.device = params.device();
    multi_tensor_ = std::make_unique<ops::MultiTensorAdamW>(ctx, std::move(tensors));
  }
}

DataParallelOptimizer::Range DataParallelOptimizer::shard() const {
  if (!options_.zero1) return {0, params_.trainable_count()};
  const int64_t count = params_.padded_trainable_count() / groups_.layout().dp;
  return {groups_.layout().dp_rank * count, (groups_.layout().dp_rank + 1) * count};
}

void DataParallelOptimizer::sum_partials(const OpContext& ctx, const std::vector<size_t>& members,
                                         Communicator& group, Tensor staging) {
  if (members.empty() || group.size() == 1) return;
  const std::vector<Parameter>& all = params_.all();
  int64_t at = 0;
  for (size_t index : members) {
    const Tensor grad = all[index].grad.flat();
    ops::cast(ctx, staging.slice(at, at + grad.numel()), grad);
    at += grad.numel();
  }
  group.all_reduce_sum(staging);
  at = 0;
  for (size_t index : members) {
    const Tensor grad = all[index].grad.flat();
    ops::cast(ctx, grad, staging.slice(at, at + grad.numel()));
    at += grad.numel();
  }
}

void DataParallelOptimizer::reduce_gradients(const OpContext& ctx) {
  if (params_.trainable_count() == 0) return;
  sum_partials(ctx, tp_partials_, groups_.tp(), tp_staging_);
  if (kv_group_) sum_partials(ctx, kv_partials_, *kv_group_, kv_staging_);
  Communicator& dp = groups_.dp();
  if (options_.zero1) {
    dp.reduce_scatter(shard_grads_, params_.padded_trainable_grads(), ReduceOp::sum);
    return;
  }
  if (dp.size() == 1) return;
  // Buckets: on a GPU each is launched as soon as the backward has produced it; on the CPU they
  // bound the size of one MPI call.
  const Tensor grads = params_.trainable_grads();
  const int64_t bucket =
      std::max<int64_t>(1, options_.bucket_bytes / static_cast<int64_t>(dtype_size(grads.dtype)));
  for (int64_t begin = 0; begin < grads.numel(); begin += bucket)
    dp.all_reduce_sum(grads.slice(begin, std::min(grads.numel(), begin + bucket)));
}

double DataParallelOptimizer::clip_gradients(const OpContext& ctx) {
  grad_scale_ = 1.0;
  if (params_.trainable_count() == 0) return 0.0;
  const Range range = shard();
  const std::vector<Parameter>& all = params_.all();
  // Adjacent counted parameters are one span of the flat gradient buffer. On a GPU each span is
  // one reduction (one launch and one readback instead of one per tensor); the CPU keeps one sum
  // per tensor, whose rounding the CPU results were recorded with.
  const bool merge_spans = params_.device() == Device::cuda;
  const Tensor flat_grads = options_.zero1 ? shard_grads_ : params_.trainable_grads();
  const int64_t flat_base = options_.zero1 ? range.begin : 0;
  double squares[1] = {0.0};
  int64_t span_begin = 0, span_end = 0;  // flat offsets of the pending span
  const auto flush = [&] {
    if (span_begin < span_end)
      squares[0] +=
          ops::sum_squares(ctx, flat_grads.slice(span_begin - flat_base, span_end - flat_base));
    span_begin = span_end = 0;
  };
  for (size_t index = 0; index < all.size(); ++index) {
    const Parameter& param = all[index];
    if (!param.spec.trainable || !rules_[index].counts_in_norm) continue;
    const int64_t begin = std::max(range.begin, param.offset);
    const int64_t end = std::min(range.end, param.offset + param.spec.shape.numel());
    if (begin >= end) continue;
    if (!merge_spans || begin != span_end) flush();
    if (span_begin == span_end) span_begin = begin;
    span_end = end;
  }
  flush();
  if (options_.zero1) groups_.dp().all_reduce_sum(squares);
  groups_.tp().all_reduce_sum(squares);
  const double norm = std::sqrt(squares[0]);
  grad_scale_ = clip_scale(adamw_, norm);
  return norm;
}

void DataParallelOptimizer::update(const OpContext& ctx, double lr, int64_t step) {
  ops::AdamWArgs args = adamw_step_args(adamw_, lr, step, grad_scale_);
  grad_scale_ = 1.0;
  if (params_.trainable_count() == 0) return;
  if (multi_tensor_) {
    args.weight_decay = adamw_.weight_decay;  // the table knows which parameters decay
    multi_tensor_->step(ctx, args);
    return;
  }
  // ZeRO-1 (every other store with trainable parameters has multi_tensor_): this rank's slice,
  // one adamw_update per parameter piece.
  const Range range = shard();
  for (const Parameter& param : params_.all()) {
    if (!param.spec.trainable) continue;
    args.weight_decay = param.spec.decay ? adamw_.weight_decay : 0.0;
    const int64_t begin = std::max(range.begin, param.offset);
    const int64_t end = std::min(range.end, param.offset + param.spec.shape.numel());
    if (begin >= end) continue;
    const int64_t local_begin = begin - range.begin, local_end = end - range.begin;
    ops::adamw_update(ctx, param.value.flat().slice(begin - param.offset, end - param.offset),
                      shard_grads_.slice(local_begin, local_end),
                      shard_m_.slice(local_begin, local_end),
                      shard_v_.slice(local_begin, local_end), args);
  }
  // Every rank's updated slice to every rank of its data-parallel group.
  const Tensor values = params_.padded_trainable_values();
  ops::cast(ctx, shard_values_, values.slice(range.begin, range.end));
  groups_.dp().all_gather(values, shard_values_);
}

FlatMoments DataParallelOptimizer::moments_for_checkpoint(Buffer& scratch) {
  if (!options_.zero1) return {params_.adam_m(), params_.adam_v()};
  const int64_t padded = params_.padded_trainable_count();
  const DType dtype = params_.dtype();
  scratch = Buffer(params_.device(), 2 * padded * dtype_size(dtype));
  const Tensor m = scratch.view(dtype, Shape{padded});
  const Tensor v = scratch.view(dtype, Shape{padded}, padded * dtype_size(dtype));
  groups_.dp().all_gather(m, shard_m_);
  groups_.dp().all_gather(v, shard_v_);
  const int64_t count = params_.trainable_count();
  return {m.slice(0, count), v.slice(0, count)};
}

FlatMoments DataParallelOptimizer::moments_to_load(Buffer& scratch) {
  if (!options_.zero1) return {params_.adam_m(), params_.adam_v()};
  const int64_t count = params_.trainable_count();
  const DType dtype = params_.dtype();
  scratch = Buffer(params_.device(), 2 * count * dtype_size(dtype));
  return {scratch.view(dtype, Shape{count}),
          scratch.view(dtype, Shape{count}, count * dtype_size(dtype))};
}

void DataParallelOptimizer::load_moments(const FlatMoments& moments) {
  if (!options_.zero1) return;  // loaded in place
  const Range range = shard();
  const int64_t end = std::min(range.end, params_.trainable_count());
  if (end <= range.begin) return;  // a slice of padding only
  OpContext ctx;
  ctx.device = params_.device();
  ops::cast(ctx, shard_m_.slice(0, end - range.begin), moments.m.slice(range.begin, end));
  ops::cast(ctx, shard_v_.slice(0, end - range.begin), moments.v.slice(range.begin, end));
}

size_t DataParallelOptimizer::state_bytes() const {
  return options_.zero1 ? static_cast<size_t>(shard_m_.bytes() + shard_v_.bytes())
                        : params_.optimizer_bytes();
}

}  // namespace ft
