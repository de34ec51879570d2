// PEFT on the whole model: finite-difference gradients of every adapter parameter for each method
// on a tiny Llama-style model (GQA, RoPE) and a tiny GPT-2-style model; frozen weights costing no
// weight-gradient product and holding no gradient or optimizer state; where the backward stops;
// the input layout of virtual tokens; configuration errors that name the field.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "models/peft/peft_spec.h"
#include "models/transformer.h"
#include "runtime/parameters.h"
#include "runtime/random.h"
#include "runtime/train/input_layout.h"
#include "support/gradcheck.h"
#include "support/model_gradcheck.h"
#include "support/peft_cases.h"
#include "support/random_model.h"

namespace ft {
namespace {

// Expects an ft::Error whose message holds every one of `texts`.
using testing::expect_error_naming;

config::PeftConfig peft_config(const std::string& method) {
  return testing::small_peft_config(method);
}

// A tiny model with an adapter, fp64, every parameter at a random non-trivial value (LoRA's B
// included, or A's gradient would be zero).
struct PeftRun : testing::ModelRun {
  PeftSpec spec;
  data::Batch batch;

  PeftRun(const std::string& preset, const config::PeftConfig& peft, int64_t batch_size,
          int64_t seq_len, uint64_t dropout_seed = 0) {
    config = model_config_preset(preset);
    spec = resolve_peft_spec(peft, config, seq_len);
    params =
        std::make_unique<ParameterStore>(run_param_specs(config, spec), DType::f64, Device::cpu);
    params->initialize(7);
    testing::randomize_parameters(*params, /*trainable_spread=*/0.6, /*frozen_spread=*/0.2,
                                  /*keep_frozen_matrices=*/true);
    const int64_t rows = spec.model_seq_len(seq_len);
    model = std::make_unique<Transformer>(config, *params, spec, batch_size, rows);
    bind_model();

    batch = testing::random_token_batch(config.vocab_size, batch_size, seq_len, &target_count);
    lay_out_batch(spec, batch);
    inputs = model_inputs(batch);
    inputs.dropout_seed = dropout_seed;
  }
};

// Central differences on up to `per_parameter` elements of every trainable parameter.
void check_adapter_gradients(PeftRun& run, int per_parameter) {
  run.compute_gradients();
  const int checked =
      testing::expect_parameter_gradients(run.config.name, *run.params, [&] { return run.loss(); },
                                          {.per_parameter = per_parameter,
                                           .first_sampled = [](int64_t) { return 1; },
                                           .relative_floor = 1e-4});
  EXPECT_GT(checked, 0);
}

using MethodCase = testing::PeftCase;

std::vector<MethodCase> every_method() {
  return testing::peft_cases(/*with_full=*/false);
}

TEST(PeftGradient, TinyLlamaEveryMethodEveryAdapterParameter) {
  for (const MethodCase& method : every_method()) {
    SCOPED_TRACE(method.name);
    PeftRun run("tiny-llama", method.peft, 2, 6);
    check_adapter_gradients(run, 24);
  }
}

TEST(PeftGradient, TinyGpt2EveryMethodEveryAdapterParameter) {
  for (const MethodCase& method : every_method()) {
    SCOPED_TRACE(method.name);
    PeftRun run("tiny-gpt2", method.peft, 2, 6);
    check_adapter_gradients(run, 24);
  }
}

TEST(PeftGradient, LoraWithDropoutUsesOneMaskPerSeed) {
  config::PeftConfig peft = peft_config("lora");
  peft.set_target_modules("all-linear");
  peft.set_lora_dropout(0.25);
  PeftRun run("tiny-llama", peft, 2, 6, /*dropout_seed=*/12345);
  check_adapter_gradients(run, 16);
  // Another seed drops other elements: another loss.
  const double first = run.loss();
  run.inputs.dropout_seed = 999;
  EXPECT_NE(run.loss(), first);
  run.inputs.dropout_seed = 0;  // evaluation: no dropout
  const double eval = run.loss();
  run.inputs.dropout_seed = 12345;
  EXPECT_EQ(run.loss(), first);
  EXPECT_NE(eval, first);
}

TEST(PeftWork, FrozenBaseRunsNoWeightGradientProduct) {
  // Weight-gradient products per method on tiny-llama (2 layers): only the adapter's matrices.
  struct Expectation {
    config::PeftConfig peft;
    int64_t products;
  };
  config::PeftConfig projected = peft_config("prefix_tuning");
  projected.set_prefix_projection(true);
  const std::vector<Expectation> expectations = {
      {peft_config("prompt_tuning"), 0},
      {peft_config("prefix_tuning"), 0},
      {projected, 2},                    // the projection's two Linear layers
      {peft_config("p_tuning"), 3},      // the MLP encoder's three Linear layers
      {peft_config("lora"), 2 * 2 * 2},  // q and v in 2 layers, A and B each
  };
  for (const Expectation& e : expectations) {
    SCOPED_TRACE(e.peft.method());
    PeftRun run("tiny-llama", e.peft, 1, 5);
    run.compute_gradients();
    EXPECT_EQ(run.counters.weight_grad_products, e.products);
    for (const Parameter& p : run.params->all()) {
      EXPECT_EQ(p.grad.empty(), !p.spec.trainable) << p.spec.name;
      EXPECT_EQ(p.adam_m.empty(), !p.spec.trainable) << p.spec.name;
    }
    EXPECT_EQ(run.params->gradient_bytes(),
              static_cast<size_t>(run.params->trainable_count()) * sizeof(double));
  }
}

TEST(PeftWork, Gpt2FusedAttentionLoraCountsOneProductPerBlock) {
  PeftRun run("tiny-gpt2", peft_config("lora"), 1, 5);  // default target: c_attn
  run.compute_gradients();
  // Per layer: A once, B's q, k and v row blocks once each.
  EXPECT_EQ(run.counters.weight_grad_products, 2 * 4);
}

TEST(PeftWork, BackwardStopsAtTheLowestLayerAnAdapterFeeds) {
  EXPECT_EQ(
      PeftRun("tiny-llama", peft_config("prompt_tuning"), 1, 5).model->lowest_backward_layer(), -1);
  EXPECT_EQ(
      PeftRun("tiny-llama", peft_config("prefix_tuning"), 1, 5).model->lowest_backward_layer(), 0);
  config::PeftConfig upper = peft_config("lora");
  upper.set_target_modules("layers.1.self_attn.q_proj,layers.1.mlp.down_proj");
  PeftRun run("tiny-llama", upper, 1, 5);
  EXPECT_EQ(run.model->lowest_backward_layer(), 1);
  EXPECT_EQ(run.spec.lora_targets.size(), 2u);
  check_adapter_gradients(run, 12);
}

TEST(PeftWork, LoraWithZeroBLeavesTheBaseModelUnchanged) {
  PeftRun run("tiny-llama", peft_config("lora"), 2, 6);
  PeftRun base("tiny-llama", peft_config("full"), 2, 6);
  for (const Parameter& p : run.params->all()) {
    if (p.spec.name.find("lora_B") != std::string::npos) {
      std::fill_n(p.value.ptr<double>(), p.value.numel(), 0.0);
    } else if (!p.spec.trainable) {
      std::copy_n(p.value.ptr<double>(), p.value.numel(),
                  base.params->at(p.spec.name).value.ptr<double>());
    }
  }
  EXPECT_EQ(run.loss(), base.loss());
}

TEST(PeftLayout, VirtualRowsGoInFrontAndPositionsStartAtP) {
  config::PeftConfig peft = peft_config("prompt_tuning");
  peft.set_num_virtual_tokens(2);
  const ModelConfig model = model_config_preset("tiny-llama");
  const PeftSpec prompt = resolve_peft_spec(peft, model, 3);
  data::Batch batch;
  batch.batch_size = 2;
  batch.seq_len = 3;
  batch.input_ids = {10, 11, 12, 20, 21, 22};
  batch.targets = {11, 12, -100, 21, 22, -100};
  batch.positions = {0, 1, 2, 0, 1, 2};
  data::Batch prefix_batch = batch;
  lay_out_batch(prompt, batch);
  EXPECT_EQ(batch.seq_len, 5);
  EXPECT_EQ(batch.input_ids, (std::vector<int32_t>{0, 0, 10, 11, 12, 0, 0, 20, 21, 22}));
  EXPECT_EQ(batch.targets,
            (std::vector<int32_t>{-100, -100, 11, 12, -100, -100, -100, 21, 22, -100}));
  EXPECT_EQ(batch.positions, (std::vector<int32_t>{0, 1, 2, 3, 4, 0, 1, 2, 3, 4}));

  peft.set_method("prefix_tuning");
  lay_out_batch(resolve_peft_spec(peft, model, 3), prefix_batch);
  EXPECT_EQ(prefix_batch.seq_len, 3);
  EXPECT_EQ(prefix_batch.input_ids, (std::vector<int32_t>{10, 11, 12, 20, 21, 22}));
  EXPECT_EQ(prefix_batch.positions, (std::vector<int32_t>{2, 3, 4, 2, 3, 4}));
}

TEST(PeftSpecErrors, NameTheFieldAndWhatWasExpected) {
  const ModelConfig llama = model_config_preset("tiny-llama");
  const ModelConfig gpt2 = model_config_preset("tiny-gpt2");
  config::PeftConfig peft = peft_config("lora");
  peft.set_target_modules("q_proj,qkv_proj");
  expect_error_naming([&] { resolve_peft_spec(peft, llama, 8); },
                      {"peft.target_modules", "qkv_proj", "q_proj", "all-linear"});
  peft.set_target_modules("q_proj");
  expect_error_naming([&] { resolve_peft_spec(peft, gpt2, 8); },
                      {"peft.target_modules", "q_proj", "c_attn"});
  peft.set_target_modules("all-linear,q_proj");
  expect_error_naming([&] { resolve_peft_spec(peft, llama, 8); }, {"all-linear"});
  peft.set_target_modules("");
  peft.set_lora_dropout(1.0);
  expect_error_naming([&] { resolve_peft_spec(peft, llama, 8); }, {"peft.lora_dropout", "[0, 1)"});
  peft.set_lora_dropout(0.0);
  peft.set_lora_r(0);
  expect_error_naming([&] { resolve_peft_spec(peft, llama, 8); }, {"peft.lora_r"});

  config::PeftConfig prompt = peft_config("prompt_tuning");
  prompt.set_num_virtual_tokens(60);  // tiny-llama has 64 positions
  expect_error_naming([&] { resolve_peft_spec(prompt, llama, 8); },
                      {"peft.num_virtual_tokens = 60", "max_position_embeddings 64"});
  prompt.set_num_virtual_tokens(0);
  expect_error_naming([&] { resolve_peft_spec(prompt, llama, 8); }, {"peft.num_virtual_tokens"});
  prompt.set_num_virtual_tokens(4);
  prompt.set_prompt_tuning_init("TEXT");
  expect_error_naming([&] { resolve_peft_spec(prompt, llama, 8); }, {"prompt_tuning_init_text"});
  prompt.set_prompt_tuning_init("VOCAB");
  expect_error_naming([&] { resolve_peft_spec(prompt, llama, 8); },
                      {"peft.prompt_tuning_init", "SAMPLE_VOCAB"});
  config::PeftConfig misplaced = peft_config("lora");
  misplaced.set_prefix_projection(true);
  expect_error_naming([&] { resolve_peft_spec(misplaced, llama, 8); },
                      {"peft.prefix_projection", "prefix_tuning"});
  expect_error_naming([&] { resolve_peft_spec(peft_config("adapter"), llama, 8); },
                      {"peft.method", "prompt_tuning", "lora"});
}

TEST(PeftSpecs, ShapesAndNamesFollowPeft) {
  const ModelConfig llama = model_config_preset("tiny-llama");
  config::PeftConfig peft = peft_config("prefix_tuning");
  const PeftSpec prefix = resolve_peft_spec(peft, llama, 8);
  std::vector<ParamSpec> specs = peft_param_specs(prefix, llama);
  ASSERT_EQ(specs.size(), 1u);
  EXPECT_EQ(specs[0].name, "prompt_embeddings");
  // GQA: the prefix holds KV heads only.
  EXPECT_EQ(specs[0].shape, (Shape{3, llama.num_layers * 2 * llama.kv_dim()}));

  const PeftSpec lora = resolve_peft_spec(peft_config("lora"), llama, 8);
  specs = peft_param_specs(lora, llama);
  ASSERT_EQ(specs.size(), 2u * 2 * llama.num_layers);
  EXPECT_EQ(specs[0].name, "model.layers.0.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ(specs[0].shape, (Shape{3, llama.hidden_size}));
  EXPECT_EQ(specs[1].name, "model.layers.0.self_attn.q_proj.lora_B.weight");
  EXPECT_EQ(specs[1].shape, (Shape{llama.q_dim(), 3}));
  EXPECT_EQ(specs[1].init, InitKind::zeros);
  EXPECT_EQ(specs[2].name, "model.layers.0.self_attn.v_proj.lora_A.weight");
  EXPECT_DOUBLE_EQ(lora.lora_scale(), 2.0);
  config::PeftConfig rs = peft_config("lora");
  rs.set_use_rslora(true);
  EXPECT_DOUBLE_EQ(resolve_peft_spec(rs, llama, 8).lora_scale(), 6.0 / std::sqrt(3.0));

  // Every base parameter is frozen under PEFT, trainable under full fine-tuning.
  for (const ParamSpec& spec : run_param_specs(llama, lora))
    EXPECT_EQ(spec.trainable, spec.name.find("lora_") != std::string::npos) << spec.name;
  for (const ParamSpec& spec : run_param_specs(llama, PeftSpec{})) EXPECT_TRUE(spec.trainable);
}

}  // namespace
}  // namespace ft
