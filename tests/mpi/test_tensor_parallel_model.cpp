// Tensor parallelism on the whole model, under mpirun -np 2 and 4: for each model family and each
// fine-tuning method, the sharded model's loss, accuracy and (once partial gradients are summed
// as the optimizer sums them) every parameter gradient equal the single-process model's shards,
// in fp64 to relative 1e-10. Every rank also runs the single-process model as the reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "models/param_layout.h"
#include "models/peft/peft_spec.h"
#include "models/transformer.h"
#include "parallel/process_groups.h"
#include "parallel/tensor_parallel.h"
#include "runtime/data/batch_loader.h"
#include "runtime/parameters.h"
#include "runtime/random.h"
#include "runtime/train/input_layout.h"
#include "tests/support/mpi_world.h"
#include "tests/support/peft_cases.h"
#include "tests/support/random_model.h"

namespace ft {
namespace {

constexpr double kTolerance = 1e-10;

config::PeftConfig peft_config(const std::string& method) {
  return testing::small_peft_config(method);
}

struct MethodCase {
  std::string name;
  config::PeftConfig peft;
  uint64_t dropout_seed = 0;
};

// Every method; all-linear LoRA also with dropout (each shard's mask columns must line up).
std::vector<MethodCase> every_method() {
  std::vector<MethodCase> cases;
  for (const testing::PeftCase& method : testing::peft_cases()) {
    cases.push_back({method.name, method.peft});
    if (method.peft.target_modules() == "all-linear") {
      cases.back().name += " dropout";
      cases.back().peft.set_lora_dropout(0.25);
      cases.back().dropout_seed = 12345;
    }
  }
  return cases;
}

// One forward and backward of a model over `params`, returning the loss and accuracy counts.
struct StepResult {
  double loss_sum = 0.0;
  int64_t correct = 0;
};

StepResult run_step(const ModelConfig& config, const ParameterStore& params, const PeftSpec& peft,
                    data::Batch batch, uint64_t dropout_seed, const ModelSharding& sharding,
                    int64_t target_count) {
  lay_out_batch(peft, batch);
  Transformer model(config, params, peft, batch.batch_size, batch.seq_len, sharding);
  OpContext ctx;
  ctx.num_threads = 1;
  ModelMemory memory = plan_model_memory(model, ctx);
  ModelInputs inputs = model_inputs(batch);
  inputs.dropout_seed = dropout_seed;
  params.zero_grads(ctx);
  ForwardResult forward = model.forward(ctx, inputs);
  model.backward(ctx, inputs, 1.0 / static_cast<double>(target_count));
  return {forward.loss_sum, forward.correct};
}

double relative_error(double a, double b) {
  return std::abs(a - b) / std::max(1e-30, std::max(std::abs(a), std::abs(b)));
}

// Compares the tensor-parallel model with the single-process one for `preset` x every method at
// tensor-parallel size `tp` (the world splits into world / tp replicas that all run the check).
void check_tensor_parallel(const std::string& preset, int tp) {
  std::shared_ptr<Communicator> world = test::mpi_world();
  ProcessGroups groups(world, tp);
  const ParallelLayout& layout = groups.layout();
  const TensorParallelRank tp_rank{layout.tp_rank, layout.tp};
  const ModelConfig config = model_config_preset(preset);
  const int64_t batch_size = 2, seq_len = 6;
  for (const MethodCase& method : every_method()) {
    SCOPED_TRACE(preset + ", tp " + std::to_string(tp) + ", " + method.name);
    const PeftSpec peft = resolve_peft_spec(method.peft, config, seq_len);
    // The single-process model, every parameter at a random non-trivial value.
    ParameterStore full(run_param_specs(config, peft), DType::f64, Device::cpu);
    full.initialize(7);
    testing::randomize_parameters(full, 0.5, 0.5, /*keep_frozen_matrices=*/false);
    int64_t targets = 0;
    const data::Batch batch =
        testing::random_token_batch(config.vocab_size, batch_size, seq_len, &targets);
    const StepResult expected =
        run_step(config, full, peft, batch, method.dropout_seed, {}, targets);

    // The same step on this rank's shards.
    const std::vector<ParamSpec> full_specs = run_param_specs(config, peft);
    ParameterStore local(local_param_specs(full_specs, config, peft, tp_rank), DType::f64,
                         Device::cpu);
    std::vector<ShardRule> rules;
    for (size_t i = 0; i < full_specs.size(); ++i) {
      rules.push_back(shard_rule(full_specs[i], config, peft, tp_rank));
      extract_shard(full.all()[i].value, local.all()[i].value, rules.back());
    }
    ModelSharding sharding;
    sharding.tp = &groups.tp();
    sharding.vocab_begin = vocab_range(config.vocab_size, tp_rank).first;
    sharding.vocab_size = config.vocab_size;
    std::unique_ptr<Communicator> kv = groups.tp().split(kv_group(config, tp_rank), layout.tp_rank);
    const StepResult actual =
        run_step(local_model_config(config, tp_rank), local, local_peft_spec(peft, config, tp_rank),
                 batch, method.dropout_seed, sharding, targets);
    EXPECT_LT(relative_error(actual.loss_sum, expected.loss_sum), kTolerance)
        << actual.loss_sum << " vs " << expected.loss_sum;
    EXPECT_EQ(actual.correct, expected.correct);

    int compared = 0;
    for (size_t i = 0; i < full_specs.size(); ++i) {
      const Parameter& param = local.all()[i];
      if (!param.spec.trainable) continue;
      if (rules[i].grad_sync == GradSync::tp_sum) groups.tp().all_reduce_sum(param.grad);
      if (rules[i].grad_sync == GradSync::kv_group_sum) kv->all_reduce_sum(param.grad);
      std::vector<double> want(param.grad.numel());
      extract_shard(full.all()[i].grad, Tensor(want.data(), DType::f64, param.spec.shape),
                    rules[i]);
      const double* got = param.grad.ptr<double>();
      double worst = 0.0, scale = 0.0;
      for (size_t k = 0; k < want.size(); ++k) scale = std::max(scale, std::abs(want[k]));
      for (size_t k = 0; k < want.size(); ++k)
        worst = std::max(worst, std::abs(got[k] - want[k]) / std::max(scale, 1e-30));
      EXPECT_LT(worst, kTolerance) << param.spec.name;
      // (A token-embedding shard may see none of the batch's tokens.)
      if (param.spec.name != model_param_names(config).token_embedding)
        EXPECT_GT(scale, 0.0) << param.spec.name << ": a zero gradient proves nothing";
      ++compared;
    }
    EXPECT_GT(compared, 0);
  }
}

TEST(TensorParallelModel, TinyLlamaTp2) {
  check_tensor_parallel("tiny-llama", 2);
}
TEST(TensorParallelModel, TinyGpt2Tp2) {
  check_tensor_parallel("tiny-gpt2", 2);
}
TEST(TensorParallelModel, TinyQwen2Tp2) {
  check_tensor_parallel("tiny-qwen2", 2);
}

// tiny-llama has 2 KV heads: at tp 4 each is replicated over 2 ranks (kv_group_sum).
TEST(TensorParallelModel, TinyLlamaTp4ReplicatesKvHeads) {
  if (test::mpi_world()->size() % 4 != 0) GTEST_SKIP() << "needs a multiple of 4 ranks";
  check_tensor_parallel("tiny-llama", 4);
}

TEST(TensorParallelModel, TinyGpt2Tp4) {
  if (test::mpi_world()->size() % 4 != 0) GTEST_SKIP() << "needs a multiple of 4 ranks";
  check_tensor_parallel("tiny-gpt2", 4);
}

}  // namespace
}  // namespace ft
