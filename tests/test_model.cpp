// Whole-model checks: the gradient of every parameter of each model family against finite
// differences in fp64, frozen parameters costing no weight-gradient product, and the backward
// stopping below the lowest trainable layer.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "models/param_layout.h"
#include "models/transformer.h"
#include "runtime/parameters.h"
#include "runtime/random.h"
#include "tests/support/model_gradcheck.h"

namespace ft {
namespace {

struct TinyRun : testing::ModelRun {
  std::vector<int32_t> ids, positions, targets, segments;

  TinyRun(const std::string& preset, int64_t batch, int64_t seq_len, bool packed,
          const std::function<bool(const std::string&)>& trainable = nullptr) {
    config = model_config_preset(preset);
    std::vector<ParamSpec> specs = transformer_param_specs(config);
    if (trainable)
      for (ParamSpec& spec : specs) spec.trainable = trainable(spec.name);
    params = std::make_unique<ParameterStore>(specs, DType::f64, Device::cpu);
    params->initialize(7);
    // Norm weights and biases start at 1 and 0; move them off so every path carries signal.
    Random random(99);
    for (const Parameter& p : params->all()) {
      if (p.spec.init == InitKind::normal) continue;
      double* values = p.value.ptr<double>();
      for (int64_t i = 0; i < p.value.numel(); ++i)
        values[i] = (p.spec.init == InitKind::ones ? 1.0 : 0.0) + 0.2 * (random.uniform() - 0.5);
    }
    model = std::make_unique<Transformer>(config, *params, batch, seq_len);
    bind_model();

    const int64_t n = batch * seq_len;
    ids.resize(n);
    positions.resize(n);
    targets.resize(n);
    segments.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = i % seq_len;
      ids[i] = static_cast<int32_t>(random.next_u64() % config.vocab_size);
      // Packed rows: two documents per row, positions restarting at the boundary.
      const int64_t boundary = seq_len / 2;
      segments[i] = packed && t >= boundary ? 1 : 0;
      positions[i] = static_cast<int32_t>(packed && t >= boundary ? t - boundary : t);
      targets[i] = (i % 4 == 3) ? ops::kIgnoreIndex
                                : static_cast<int32_t>(random.next_u64() % config.vocab_size);
      target_count += targets[i] != ops::kIgnoreIndex;
    }
    inputs.input_ids = Tensor(ids.data(), DType::i32, Shape{n});
    inputs.positions = Tensor(positions.data(), DType::i32, Shape{n});
    inputs.targets = Tensor(targets.data(), DType::i32, Shape{n});
    if (packed) inputs.segment_ids = Tensor(segments.data(), DType::i32, Shape{batch, seq_len});
  }
};

// Checks up to `per_parameter` elements of every trainable parameter.
void check_all_gradients(TinyRun& run, int per_parameter) {
  run.compute_gradients();
  testing::expect_parameter_gradients(run.config.name, *run.params, [&] { return run.loss(); },
                                      {.per_parameter = per_parameter,
                                       .first_sampled = [](int64_t stride) { return 3 % stride; },
                                       .relative_floor = 1e-3});
}

TEST(ModelGradient, TinyLlamaEveryParameter) {
  TinyRun run("tiny-llama", 2, 7, false);
  check_all_gradients(run, 48);
}

TEST(ModelGradient, TinyGpt2EveryParameter) {
  TinyRun run("tiny-gpt2", 2, 7, false);
  check_all_gradients(run, 48);
}

TEST(ModelGradient, TinyQwen2EveryParameterWithPackedSequences) {
  TinyRun run("tiny-qwen2", 2, 8, true);
  check_all_gradients(run, 48);
}

TEST(ModelGradient, TinyMistralEveryParameter) {
  TinyRun run("tiny-mistral", 1, 9, false);
  check_all_gradients(run, 48);
}

TEST(ModelGradient, FrozenLowerLayersStillGiveExactGradientsAbove) {
  // Only layer 1 and the final norm train: the backward stops at layer 1.
  TinyRun run("tiny-llama", 2, 6, false, [](const std::string& name) {
    return name.find("layers.1.") != std::string::npos || name == "model.norm.weight";
  });
  EXPECT_EQ(run.model->lowest_backward_layer(), 1);
  check_all_gradients(run, 32);
}

int64_t count_trainable_matrices(const ParameterStore& params) {
  int64_t matrices = 0;
  for (const Parameter& p : params.all())
    if (p.spec.trainable && p.spec.shape.rank == 2 &&
        p.spec.name.find("embed") == std::string::npos)
      ++matrices;
  return matrices;
}

TEST(ModelWork, FullTrainingRunsOneWeightGradientProductPerMatrix) {
  TinyRun run("tiny-llama", 1, 5, false);
  run.compute_gradients();
  // Untied llama: 7 matrices per layer plus the LM head; the embedding has no product.
  EXPECT_EQ(count_trainable_matrices(*run.params), 2 * 7 + 1);
  EXPECT_EQ(run.counters.weight_grad_products, 2 * 7 + 1);
}

TEST(ModelWork, FrozenWeightsRunNoWeightGradientProduct) {
  // Everything frozen but the last layer's MLP.
  TinyRun run("tiny-llama", 1, 5, false, [](const std::string& name) {
    return name.find("layers.1.mlp.") != std::string::npos;
  });
  run.compute_gradients();
  EXPECT_EQ(run.counters.weight_grad_products, 3);  // gate, up, down of layer 1
  for (const Parameter& p : run.params->all()) {
    if (p.spec.trainable) continue;
    EXPECT_TRUE(p.grad.empty()) << p.spec.name;
    EXPECT_TRUE(p.adam_m.empty()) << p.spec.name;
  }
  EXPECT_EQ(run.params->gradient_bytes(),
            static_cast<size_t>(run.params->trainable_count()) * sizeof(double));
}

TEST(ModelWork, AllFrozenRunsNoWeightGradientProductAndNoLayerBackward) {
  TinyRun run("tiny-gpt2", 1, 5, false, [](const std::string&) { return false; });
  run.compute_gradients();
  EXPECT_EQ(run.counters.weight_grad_products, 0);
  EXPECT_EQ(run.counters.input_grad_products, 0);
}

TEST(ModelConfigs, PresetsAreConsistentAndCountParameters) {
  for (const std::string& name : model_preset_names()) {
    ModelConfig config = model_config_preset(name);
    int64_t total = 0, embeddings = 0;
    for (const ParamSpec& spec : transformer_param_specs(config)) {
      total += spec.shape.numel();
      if (spec.name.find("embed_tokens") != std::string::npos ||
          spec.name.find("wte") != std::string::npos || spec.name.find("wpe") != std::string::npos)
        embeddings += spec.shape.numel();
    }
    EXPECT_EQ(total - embeddings, config.non_embedding_parameters()) << name;
  }
  EXPECT_THROW(model_config_preset("tiny-llamma"), Error);
}

TEST(ModelConfigs, BenchPresetFlopsFollowPalmFormula) {
  ModelConfig c = model_config_preset("bench-gpt2");
  // 6 layers x (4 C^2 attention + 8 C^2 mlp) plus biases and norms; the tied head adds V*C.
  double n = static_cast<double>(c.non_embedding_parameters() + c.vocab_size * c.hidden_size);
  EXPECT_DOUBLE_EQ(c.training_flops_per_token(256), 6 * n + 12.0 * 6 * 6 * 64 * 256);
}

}  // namespace
}  // namespace ft
