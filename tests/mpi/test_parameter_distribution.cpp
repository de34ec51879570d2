// Moving parameters between world rank 0's full-shape store and every rank's tensor-parallel
// shards, under mpirun -np 2 and 4 with tp 1, 2 and the whole world: after a scatter each rank's
// values (and moments) are its shards of the full store; a gather rebuilds the full store bit for
// bit, reading only the copies it should (one replica, rank 0's replicated tensors, the first
// rank of each kv group); errors on any rank stop every rank with the same message.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "kernels/ops.h"
#include "models/model_config.h"
#include "models/peft/peft_spec.h"
#include "parallel/parameter_distribution.h"
#include "parallel/process_groups.h"
#include "parallel/tensor_parallel.h"
#include "runtime/buffer.h"
#include "runtime/parameters.h"
#include "tests/support/gradcheck.h"
#include "tests/support/mpi_world.h"
#include "tests/support/peft_cases.h"

namespace ft {
namespace {

config::PeftConfig peft_config(const std::string& method) {
  return testing::small_peft_config(method);
}

std::vector<std::pair<std::string, config::PeftConfig>> methods() {
  std::vector<std::pair<std::string, config::PeftConfig>> list;
  for (const testing::PeftCase& method : testing::peft_cases())
    list.push_back({method.name, method.peft});
  return list;
}

std::vector<int> tp_sizes() {
  const int world = test::mpi_world()->size();
  std::vector<int> sizes{1};
  if (world % 2 == 0) sizes.push_back(2);
  if (world > 2) sizes.push_back(world);
  return sizes;
}

ParameterStoreOptions with_moments(bool moments) {
  ParameterStoreOptions options;
  options.gradients = false;
  options.moments = moments;
  return options;
}

// The full store every rank can rebuild: seeded initialization, then a distinct offset on every
// element (zero-initialized biases and LoRA B would otherwise hide misplaced elements), and
// moments distinct from the values.
std::unique_ptr<ParameterStore> reference_store(const ModelConfig& config, const PeftSpec& peft,
                                                DType dtype) {
  auto store = std::make_unique<ParameterStore>(run_param_specs(config, peft), dtype, Device::cpu,
                                                with_moments(true));
  store->initialize(1234);
  OpContext ctx;
  auto fill = [&](const Tensor& tensor, double start, double step, bool add) {
    std::vector<double> host(tensor.numel());
    if (add) ops::cast(ctx, Tensor(host.data(), DType::f64, tensor.shape), tensor);
    for (size_t k = 0; k < host.size(); ++k) host[k] += start + step * static_cast<double>(k);
    ops::cast(ctx, tensor, Tensor(host.data(), DType::f64, tensor.shape));
  };
  double start = 0.0;
  for (const Parameter& param : store->all()) {
    fill(param.value, start, 1.0 / 1024, /*add=*/true);
    if (param.spec.trainable) {
      fill(param.adam_m, -start, 1.0 / 512, false);
      fill(param.adam_v, start + 0.5, 1.0 / 256, false);
    }
    start += 1.0;
  }
  return store;
}

void fill_nan(const ParameterStore& store) {
  OpContext ctx;
  for (const Parameter& param : store.all()) {
    std::vector<double> nan(param.value.numel(), std::nan(""));
    const Tensor source(nan.data(), DType::f64, param.value.shape);
    ops::cast(ctx, param.value, source);
    if (!param.adam_m.empty()) ops::cast(ctx, param.adam_m, source);
    if (!param.adam_v.empty()) ops::cast(ctx, param.adam_v, source);
  }
}

double first_value(const Tensor& tensor) {
  double value = 0.0;
  OpContext ctx;
  ops::cast(ctx, Tensor(&value, DType::f64, Shape{1}), tensor.flat().slice(0, 1));
  return value;
}

// `store` with every tensor converted to `dtype`.
std::unique_ptr<ParameterStore> converted_store(const ParameterStore& store, DType dtype) {
  std::vector<ParamSpec> specs;
  for (const Parameter& param : store.all()) specs.push_back(param.spec);
  auto converted = std::make_unique<ParameterStore>(specs, dtype, Device::cpu, with_moments(true));
  OpContext ctx;
  for (const Parameter& param : converted->all()) {
    const Parameter& source = store.at(param.spec.name);
    ops::cast(ctx, param.value, source.value);
    if (!param.spec.trainable) continue;
    ops::cast(ctx, param.adam_m, source.adam_m);
    ops::cast(ctx, param.adam_v, source.adam_v);
  }
  return converted;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype == b.dtype && a.shape == b.shape && std::memcmp(a.data, b.data, a.bytes()) == 0;
}

Tensor moment_slice(const Tensor& flat, const Parameter& param) {
  return flat.slice(param.offset, param.offset + param.spec.shape.numel())
      .reshape(param.spec.shape);
}

// Every rank's local tensors equal its shards of `full`.
void expect_local_shards(const ParameterStore& full, const ParameterStore& local,
                         const FlatMoments* moments, const ModelConfig& config,
                         const PeftSpec& peft, TensorParallelRank tp) {
  for (const Parameter& whole : full.all()) {
    const ShardRule rule = shard_rule(whole.spec, config, peft, tp);
    const Parameter& mine = local.at(whole.spec.name);
    std::vector<double> staging(mine.spec.shape.numel());
    const Tensor expected(staging.data(), DType::f64, mine.spec.shape);
    extract_shard(whole.value, expected, rule);
    EXPECT_TRUE(same_bits(mine.value, expected)) << whole.spec.name;
    if (!moments || !whole.spec.trainable) continue;
    extract_shard(whole.adam_m, expected, rule);
    EXPECT_TRUE(same_bits(moment_slice(moments->m, mine), expected)) << whole.spec.name << " m";
    extract_shard(whole.adam_v, expected, rule);
    EXPECT_TRUE(same_bits(moment_slice(moments->v, mine), expected)) << whole.spec.name << " v";
  }
}

// Overwrites what a gather must not read: every rank but the first replica's, replicated tensors
// on tp ranks other than 0, and replicated KV heads on all but the first rank of their kv group.
void spoil_unread_copies(const ParameterStore& local, const FlatMoments* moments,
                         const ParallelLayout& layout, const ModelConfig& config,
                         const PeftSpec& peft) {
  const std::vector<ParamSpec> specs = run_param_specs(config, peft);
  for (const ParamSpec& spec : specs) {
    const ShardRule rule = shard_rule(spec, config, peft, {layout.tp_rank, layout.tp});
    const bool read =
        layout.dp_rank == 0 && (rule.axis < 0 ? layout.tp_rank == 0 : rule.counts_in_norm);
    if (read) continue;
    const Parameter& mine = local.at(spec.name);
    const std::vector<double> spoiled(mine.value.numel(), -7.0);
    std::memcpy(mine.value.data, spoiled.data(), mine.value.bytes());
    if (!moments || !spec.trainable) continue;
    std::memcpy(moment_slice(moments->m, mine).data, spoiled.data(), mine.value.bytes());
    std::memcpy(moment_slice(moments->v, mine).data, spoiled.data(), mine.value.bytes());
  }
}

struct RoundTrip {
  bool moments = true;
  bool frozen = true;
  bool flat_moments = false;  // moments in separate padded buffers (ZeRO-1) instead of the store's
  DType full_dtype = DType::f64;
};

void round_trip(const ModelConfig& config, const PeftSpec& peft, int tp, RoundTrip mode) {
  std::shared_ptr<Communicator> world = test::mpi_world();
  ProcessGroups groups(world, tp);
  const ParallelLayout& layout = groups.layout();
  const TensorParallelRank tp_rank{layout.tp_rank, layout.tp};
  const std::vector<ParamSpec> specs = run_param_specs(config, peft);
  // Every rank builds the reference to compare with; only rank 0's takes part in the transfers.
  const std::unique_ptr<ParameterStore> reference = reference_store(config, peft, mode.full_dtype);

  ParameterStoreOptions options = with_moments(mode.moments && !mode.flat_moments);
  options.trainable_multiple = mode.flat_moments ? layout.dp + 2 : 1;
  ParameterStore local(local_param_specs(specs, config, peft, tp_rank), DType::f64, Device::cpu,
                       options);
  Buffer flat_m, flat_v;
  FlatMoments flat;
  if (mode.flat_moments) {
    const int64_t count = local.padded_trainable_count();
    flat_m = Buffer(Device::cpu, count * sizeof(double));
    flat_v = Buffer(Device::cpu, count * sizeof(double));
    flat = {flat_m.view(DType::f64, Shape{count}), flat_v.view(DType::f64, Shape{count})};
  } else {
    flat = {local.adam_m(), local.adam_v()};
  }
  const FlatMoments* moments = mode.moments ? &flat : nullptr;
  fill_nan(local);

  scatter_parameters(layout.rank == 0 ? reference.get() : nullptr, local, moments, groups, config,
                     peft);
  if (mode.full_dtype == local.dtype()) {
    expect_local_shards(*reference, local, moments, config, peft, tp_rank);
  } else {
    // The shards of the full store converted to the local dtype.
    const std::unique_ptr<ParameterStore> converted = converted_store(*reference, local.dtype());
    expect_local_shards(*converted, local, moments, config, peft, tp_rank);
  }

  spoil_unread_copies(local, moments, layout, config, peft);
  std::unique_ptr<ParameterStore> gathered;
  if (layout.rank == 0) {
    gathered = std::make_unique<ParameterStore>(specs, mode.full_dtype, Device::cpu,
                                                with_moments(mode.moments));
    fill_nan(*gathered);
  }
  gather_parameters(local, moments, gathered.get(), mode.frozen, groups, config, peft);
  if (layout.rank != 0) return;
  for (const Parameter& original : reference->all()) {
    const Parameter& got = gathered->at(original.spec.name);
    if (!original.spec.trainable && !mode.frozen) {
      EXPECT_TRUE(std::isnan(first_value(got.value)))
          << original.spec.name << ": a frozen parameter was gathered with frozen = false";
      continue;
    }
    EXPECT_TRUE(same_bits(got.value, original.value)) << original.spec.name;
    if (!mode.moments || !original.spec.trainable) continue;
    EXPECT_TRUE(same_bits(got.adam_m, original.adam_m)) << original.spec.name << " m";
    EXPECT_TRUE(same_bits(got.adam_v, original.adam_v)) << original.spec.name << " v";
  }
}

void round_trip_every_method(const std::string& preset, RoundTrip mode) {
  const ModelConfig config = model_config_preset(preset);
  for (const auto& [method, peft_cfg] : methods()) {
    const PeftSpec peft = resolve_peft_spec(peft_cfg, config, 8);
    for (int tp : tp_sizes()) {
      SCOPED_TRACE(fmt::format("{}, {}, tp {}, moments {}, frozen {}, flat moments {}, full {}",
                               preset, method, tp, mode.moments, mode.frozen, mode.flat_moments,
                               dtype_name(mode.full_dtype)));
      round_trip(config, peft, tp, mode);
    }
  }
}

// tiny-llama: 2 KV heads, replicated at tp 4; tiny-mistral: one KV head; tiny-gpt2: fused c_attn.
TEST(ParameterDistribution, RoundTripWithMoments) {
  for (const char* preset : {"tiny-llama", "tiny-mistral", "tiny-gpt2"})
    round_trip_every_method(preset, {.moments = true, .frozen = true});
}

TEST(ParameterDistribution, RoundTripValuesOnlyWithoutFrozen) {
  for (const char* preset : {"tiny-llama", "tiny-gpt2"})
    round_trip_every_method(preset, {.moments = false, .frozen = false});
}

TEST(ParameterDistribution, RoundTripWithFlatMomentsAndAnotherFullDtype) {
  round_trip_every_method("tiny-llama", {.moments = true, .frozen = true, .flat_moments = true});
  // An f32 full store (an f32 checkpoint) around f64 shards: both conversions are exact.
  round_trip_every_method(
      "tiny-qwen2",
      {.moments = true, .frozen = false, .flat_moments = true, .full_dtype = DType::f32});
}

// A mistake on one rank stops every rank with that rank's message (none waits in a transfer).
TEST(ParameterDistribution, ErrorsStopEveryRank) {
  std::shared_ptr<Communicator> world = test::mpi_world();
  const int tp = world->size();
  ProcessGroups groups(world, tp);
  const ParallelLayout& layout = groups.layout();
  const ModelConfig config = model_config_preset("tiny-llama");
  const PeftSpec peft = resolve_peft_spec(peft_config("full"), config, 8);
  const std::vector<ParamSpec> specs = run_param_specs(config, peft);
  const std::unique_ptr<ParameterStore> reference = reference_store(config, peft, DType::f64);
  ParameterStore right(local_param_specs(specs, config, peft, {layout.tp_rank, tp}), DType::f64,
                       Device::cpu, with_moments(false));
  // The last rank holds full shapes where its shards belong.
  ParameterStore wrong(specs, DType::f64, Device::cpu, with_moments(false));
  const ParameterStore& local = layout.rank == world->size() - 1 ? wrong : right;
  const std::string last = fmt::format("world rank {}", world->size() - 1);
  std::string message = testing::error_message([&] {
    scatter_parameters(layout.rank == 0 ? reference.get() : nullptr, local, nullptr, groups, config,
                       peft);
  });
  EXPECT_NE(message.find(last), std::string::npos) << message;
  EXPECT_NE(message.find("model.embed_tokens.weight"), std::string::npos) << message;
  message = testing::error_message([&] {
    gather_parameters(local, nullptr, layout.rank == 0 ? reference.get() : nullptr, true, groups,
                      config, peft);
  });
  EXPECT_NE(message.find(last), std::string::npos) << message;

  // Rank 0 without the full store.
  message = testing::error_message(
      [&] { scatter_parameters(nullptr, right, nullptr, groups, config, peft); });
  EXPECT_NE(message.find("world rank 0 must pass the full parameter store"), std::string::npos)
      << message;
  // Moments asked of a full store that keeps none.
  ParameterStore bare(specs, DType::f64, Device::cpu, with_moments(false));
  ParameterStore local_moments(local_param_specs(specs, config, peft, {layout.tp_rank, tp}),
                               DType::f64, Device::cpu, with_moments(true));
  const FlatMoments moments{local_moments.adam_m(), local_moments.adam_v()};
  message = testing::error_message([&] {
    gather_parameters(local_moments, &moments, layout.rank == 0 ? &bare : nullptr, true, groups,
                      config, peft);
  });
  EXPECT_NE(message.find("keeps none"), std::string::npos) << message;
}

}  // namespace
}  // namespace ft
