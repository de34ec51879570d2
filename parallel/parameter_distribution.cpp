#include "parallel/parameter_distribution.h"

#include <algorithm>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "parallel/tensor_parallel.h"
#include "runtime/buffer.h"
#include "runtime/error.h"

namespace ft {
namespace {

// Every rank learns whether any rank's checks failed, and the first failing rank's message, so
// all ranks stop together instead of some waiting forever in the transfers. Collective.
void agree_on_errors(Communicator& world, const std::string& error) {
  double first_failing[1] = {error.empty() ? 0.0
                                           : static_cast<double>(world.size() - world.rank())};
  world.all_reduce(std::span<double>(first_failing), ReduceOp::max);
  if (first_failing[0] == 0.0) return;
  const int root = world.size() - static_cast<int>(first_failing[0]);
  std::string message = error;
  world.broadcast(message, root);
  fail("{} (world rank {})", message, root);
}

// Runs `checks`, returning the message of the ft::Error it throws ("" when none).
template <typename Checks>
std::string error_of(Checks&& checks) {
  try {
    checks();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

void check_host_moments(const FlatMoments& moments, const ParameterStore& local, const char* what) {
  for (const Tensor* flat : {&moments.m, &moments.v}) {
    FT_CHECK(flat->device == Device::cpu && !flat->empty(),
             "{}: the flat moments must be host tensors, got {}", what, flat->describe());
    FT_CHECK(flat->numel() >= local.trainable_count(),
             "{}: flat moments of {} elements cannot hold the {} local trainable elements", what,
             flat->numel(), local.trainable_count());
  }
  FT_CHECK(moments.m.dtype == moments.v.dtype, "{}: flat moments m {} and v {} differ in dtype",
           what, moments.m.describe(), moments.v.describe());
}

// The local store holds this rank's shard of every parameter of the run, in the same roles.
void check_local_store(const ParameterStore& local, const std::vector<ParamSpec>& specs,
                       const ModelConfig& config, const PeftSpec& peft, TensorParallelRank tp,
                       const char* what) {
  FT_CHECK(local.device() == Device::cpu,
           "{}: the local parameter store is on {}; only host stores are supported", what,
           device_name(local.device()));
  for (const ParamSpec& spec : specs) {
    FT_CHECK(local.contains(spec.name), "{}: the local store has no parameter {}", what, spec.name);
    const ParamSpec& held = local.at(spec.name).spec;
    const Shape shape = local_shape(spec.shape, shard_rule(spec, config, peft, tp));
    FT_CHECK(held.shape == shape && held.trainable == spec.trainable,
             "{}: local parameter {} is {} ({}), expected tensor-parallel rank {} of {}'s shard {} "
             "({})",
             what, spec.name, held.shape.str(), held.trainable ? "trainable" : "frozen", tp.rank,
             tp.size, shape.str(), spec.trainable ? "trainable" : "frozen");
  }
}

void check_full_store(const ParameterStore* full, const std::vector<ParamSpec>& specs, bool moments,
                      const char* what) {
  FT_CHECK(full != nullptr, "{}: world rank 0 must pass the full parameter store", what);
  FT_CHECK(full->device() == Device::cpu,
           "{}: the full parameter store is on {}; only host stores are supported", what,
           device_name(full->device()));
  for (const ParamSpec& spec : specs) {
    FT_CHECK(full->contains(spec.name), "{}: the full store has no parameter {}", what, spec.name);
    const Parameter& held = full->at(spec.name);
    FT_CHECK(held.spec.shape == spec.shape,
             "{}: full parameter {} is {}, expected the full shape {}", what, spec.name,
             held.spec.shape.str(), spec.shape.str());
    FT_CHECK(!moments || !spec.trainable || !held.adam_m.empty(),
             "{}: moments were asked for, and the full store keeps none for {}", what, spec.name);
  }
}

// dst = src, converting the dtype when they differ (host tensors of one element count).
void convert(Tensor dst, const Tensor& src) {
  if (dst.dtype == src.dtype) {
    std::memcpy(dst.data, src.data, src.bytes());
    return;
  }
  OpContext ctx;
  ops::cast(ctx, dst, src);
}

// A trainable parameter's slice of a flat moment buffer, in its local shape.
Tensor moment_slice(const Tensor& flat, const Parameter& param) {
  return flat.flat()
      .slice(param.offset, param.offset + param.spec.shape.numel())
      .reshape(param.spec.shape);
}

int64_t largest_numel(const std::vector<ParamSpec>& specs) {
  int64_t largest = 1;
  for (const ParamSpec& spec : specs) largest = std::max(largest, spec.shape.numel());
  return largest;
}

// One full tensor, broadcast from world rank 0 in `local`'s dtype; each rank keeps its shard.
void broadcast_shard(Communicator& world, const Tensor* full, const Tensor& local,
                     const Shape& full_shape, const ShardRule& rule, const Buffer& staging) {
  Tensor whole = staging.view(local.dtype, full_shape);
  if (world.rank() == 0) convert(whole, *full);
  world.broadcast(whole, 0);
  extract_shard(whole, local, rule);
}

// Every rank checks its store (rank 0 also the full one) before any collective moves data; an
// error on any rank is raised on all of them.
void check_stores(Communicator& world, const ParameterStore& local, const FlatMoments* moments,
                  const ParameterStore* full, const std::vector<ParamSpec>& specs,
                  const ModelConfig& config, const PeftSpec& peft, const TensorParallelRank& tp,
                  const char* what) {
  agree_on_errors(world, error_of([&] {
                    check_local_store(local, specs, config, peft, tp, what);
                    if (moments) check_host_moments(*moments, local, what);
                    if (world.rank() == 0) check_full_store(full, specs, moments != nullptr, what);
                  }));
}

}  // namespace

void scatter_parameters(const ParameterStore* full, const ParameterStore& local,
                        const FlatMoments* moments, const ProcessGroups& groups,
                        const ModelConfig& config, const PeftSpec& peft) {
  const ParallelLayout& layout = groups.layout();
  Communicator& world = groups.world();
  const TensorParallelRank tp{layout.tp_rank, layout.tp};
  const std::vector<ParamSpec> specs = run_param_specs(config, peft);
  check_stores(world, local, moments, full, specs, config, peft, tp, "scatter_parameters");

  const Buffer staging(Device::cpu, largest_numel(specs) * sizeof(double));
  for (const ParamSpec& spec : specs) {
    const ShardRule rule = shard_rule(spec, config, peft, tp);
    const Parameter& mine = local.at(spec.name);
    const Parameter* source = world.rank() == 0 ? &full->at(spec.name) : nullptr;
    broadcast_shard(world, source ? &source->value : nullptr, mine.value, spec.shape, rule,
                    staging);
    if (!moments || !spec.trainable) continue;
    broadcast_shard(world, source ? &source->adam_m : nullptr, moment_slice(moments->m, mine),
                    spec.shape, rule, staging);
    broadcast_shard(world, source ? &source->adam_v : nullptr, moment_slice(moments->v, mine),
                    spec.shape, rule, staging);
  }
}

void gather_parameters(const ParameterStore& local, const FlatMoments* moments,
                       ParameterStore* full, bool frozen, const ProcessGroups& groups,
                       const ModelConfig& config, const PeftSpec& peft) {
  const ParallelLayout& layout = groups.layout();
  Communicator& world = groups.world();
  const TensorParallelRank tp{layout.tp_rank, layout.tp};
  const std::vector<ParamSpec> specs = run_param_specs(config, peft);
  check_stores(world, local, moments, full, specs, config, peft, tp, "gather_parameters");
  // One replica (the ranks with dp_rank 0, world ranks 0 .. tp - 1) holds every shard.
  if (layout.dp_rank != 0) return;

  const int64_t largest = largest_numel(specs);
  const Buffer received(Device::cpu, largest * sizeof(double));
  const Buffer converted(Device::cpu, largest * sizeof(double));
  // Tensor `which` (0 value, 1 m, 2 v) of a parameter, local and full.
  auto local_tensor = [&](const Parameter& param, int which) {
    if (which == 0) return param.value;
    return moment_slice(which == 1 ? moments->m : moments->v, param);
  };
  auto full_tensor = [&](const Parameter& param, int which) {
    return which == 0 ? param.value : which == 1 ? param.adam_m : param.adam_v;
  };
  for (const ParamSpec& spec : specs) {
    if (!spec.trainable && !frozen) continue;
    const Parameter& mine = local.at(spec.name);
    const int tensors = moments && spec.trainable ? 3 : 1;
    for (int which = 0; which < tensors; ++which) {
      const Tensor shard = local_tensor(mine, which);
      for (int sender = 0; sender < layout.tp; ++sender) {
        const ShardRule rule = shard_rule(spec, config, peft, {sender, layout.tp});
        // A replicated tensor comes from rank 0's own copy; a replicated KV head from the first
        // rank of its kv group.
        if (rule.axis < 0 ? sender != 0 : !rule.counts_in_norm) continue;
        if (world.rank() == 0) {
          Tensor part = shard;
          if (sender != 0) {
            part = received.view(shard.dtype, local_shape(spec.shape, rule));
            world.recv(part, sender);
          }
          const Tensor target = full_tensor(full->at(spec.name), which);
          Tensor same_dtype = part;
          if (part.dtype != target.dtype) {
            same_dtype = converted.view(target.dtype, part.shape);
            convert(same_dtype, part);
          }
          insert_shard(target, same_dtype, rule);
        } else if (world.rank() == sender) {
          world.send(shard, 0);
        }
      }
    }
  }
}

}  // namespace ft
