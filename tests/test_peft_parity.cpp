// Parity with Hugging Face transformers 4.49 + PEFT 0.21.2 on the goldens in
// tests/data/peft_golden/ (README.md there): for each of the 12 cases (Llama and GPT-2, six
// PEFT configurations) ft loads the base with load_hf_weights, sets the adapter to the golden's
// starting values and must reproduce PEFT's logits and mean loss, the gradient of every adapter
// tensor, and three AdamW steps (losses and final values). Each case runs in fp32 (the
// requirement: relative 1e-5 on logits and loss) and in fp64.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "models/hf_weights.h"
#include "models/model_config.h"
#include "models/peft/peft_spec.h"
#include "models/transformer.h"
#include "runtime/checkpoint/safetensors.h"
#include "runtime/config/config.h"
#include "runtime/parameters.h"
#include "runtime/train/optimizer.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using checkpoint::SafetensorsReader;
using nlohmann::json;

const std::string kGolden = std::string(FT_TEST_DATA_DIR) + "/peft_golden/";

// Tolerances (relative L2 error against the golden): the fp32 bar for logits and loss,
// and 1e-4 for gradients and the AdamW trajectory (the goldens' own float64 headroom is 3e-5).
constexpr double kLogitsTolerance = 1e-5;
constexpr double kLossTolerance = 1e-5;
constexpr double kGradTolerance = 1e-4;
constexpr double kStepTolerance = 1e-4;

json read_json(const std::string& path) {
  std::ifstream file(path);
  if (!file) fail("{}: cannot open", path);
  return json::parse(file);
}

std::vector<double> read_doubles(const SafetensorsReader& reader, const std::string& name) {
  std::vector<double> values(reader.entry(name).numel);
  reader.read(name, Tensor(values.data(), DType::f64, reader.shape(name)));
  return values;
}

std::vector<int32_t> read_ints(const SafetensorsReader& reader, const std::string& name) {
  std::vector<int32_t> values(reader.entry(name).numel);
  reader.read(name, Tensor(values.data(), DType::i32, reader.shape(name)));
  return values;
}

std::vector<double> to_doubles(const Tensor& tensor) {
  std::vector<double> values(tensor.numel());
  for (int64_t i = 0; i < tensor.numel(); ++i)
    values[i] = tensor.dtype == DType::f32 ? tensor.ptr<float>()[i] : tensor.ptr<double>()[i];
  return values;
}

double relative_error(double actual, double expected) {
  return std::abs(actual - expected) / std::abs(expected);
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct ParityCase {
  std::string name;
  DType dtype;
};

// gtest prints the parameter of a failing test with this (instead of its bytes).
void PrintTo(const ParityCase& c, std::ostream* out) {
  *out << c.name << " " << dtype_name(c.dtype);
}

std::string case_label(const ::testing::TestParamInfo<ParityCase>& info) {
  return info.param.name + "_" + dtype_name(info.param.dtype);
}

std::vector<ParityCase> every_case() {
  std::vector<ParityCase> cases;
  for (const char* family : {"llama", "gpt2"})
    for (const char* method : {"prompt_tuning", "p_tuning", "prefix_tuning",
                               "prefix_tuning_projection", "lora", "lora_all_linear_rslora"})
      for (DType dtype : {DType::f32, DType::f64})
        cases.push_back({std::string(family) + "_" + method, dtype});
  return cases;
}

// One golden case: the model with its adapter, the batch in ft's row layout, and the goldens.
struct GoldenRun {
  std::string dir;
  json case_json;
  ModelConfig config;
  PeftSpec spec;
  std::unique_ptr<ParameterStore> params;
  std::unique_ptr<Transformer> model;
  ModelMemory memory;
  OpContext ctx;
  std::vector<int32_t> ids, positions, targets;
  ModelInputs inputs;
  int64_t target_count = 0;
  SafetensorsReader trainable;
  std::vector<double> golden_logits;

  GoldenRun(const std::string& name, DType dtype)
      : dir(kGolden + name + "/"), trainable(dir + "trainable.safetensors") {
    case_json = read_json(dir + "case.json");
    config = model_config_from_hf(dir + "config.json");
    const int64_t L = case_json.at("seq_len").get<int64_t>();
    const int64_t B = case_json.at("batch_size").get<int64_t>();
    const config::RunConfig run =
        config::parse(json{{"peft", case_json.at("peft")}}.dump(), "json", dir + "case.json");
    spec = resolve_peft_spec(run.peft(), config, L);

    params = std::make_unique<ParameterStore>(run_param_specs(config, spec), dtype, Device::cpu);
    load_hf_weights(dir + "model.safetensors", config, *params);
    set_adapter_from_golden();

    const int64_t T = spec.model_seq_len(L);
    model = std::make_unique<Transformer>(config, *params, spec, B, T);
    ctx.num_threads = 2;
    memory = plan_model_memory(*model, ctx);

    lay_out_inputs(B, L, T);
    SafetensorsReader tensors(dir + "tensors.safetensors");
    golden_logits = read_doubles(tensors, "logits");
  }

  // Every trainable tensor of the run from trainable.safetensors, and nothing else there.
  void set_adapter_from_golden() {
    std::set<std::string> expected;
    for (const std::string& name : trainable.names())
      if (name.rfind("grad.", 0) != 0 && name.rfind("step3.", 0) != 0) expected.insert(name);
    std::set<std::string> trainable_names;
    for (const Parameter& p : params->all()) {
      if (!p.spec.trainable) continue;
      trainable_names.insert(p.spec.name);
      ASSERT_TRUE(trainable.contains(p.spec.name)) << p.spec.name;
      trainable.read(p.spec.name, p.value);
    }
    EXPECT_EQ(trainable_names, expected);
  }

  // HF's labels[b, t] predict from position t-1; ft's target at row r is the label of row r + 1.
  // Prompt tuning / P-tuning: P virtual rows in front, HF's labels extended by P leading -100,
  // positions 0..P+L-1. Prefix tuning: positions P..P+L-1. LoRA: 0..L-1.
  void lay_out_inputs(int64_t B, int64_t L, int64_t T) {
    SafetensorsReader tensors(dir + "tensors.safetensors");
    const std::vector<int32_t> input_ids = read_ints(tensors, "input_ids");
    const std::vector<int32_t> labels = read_ints(tensors, "labels");
    const int64_t virtual_rows = T - L;
    const int64_t first_position = spec.position_offset() - virtual_rows;
    ids.assign(B * T, 0);
    positions.assign(B * T, 0);
    targets.assign(B * T, ops::kIgnoreIndex);
    auto label_of_row = [&](int64_t b, int64_t row) {
      return row < virtual_rows ? ops::kIgnoreIndex : labels[b * L + row - virtual_rows];
    };
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t row = 0; row < T; ++row) {
        if (row >= virtual_rows) ids[b * T + row] = input_ids[b * L + row - virtual_rows];
        positions[b * T + row] = static_cast<int32_t>(first_position + row);
        if (row + 1 < T) targets[b * T + row] = label_of_row(b, row + 1);
        target_count += targets[b * T + row] != ops::kIgnoreIndex;
      }
    }
    inputs.input_ids = Tensor(ids.data(), DType::i32, Shape{B * T});
    inputs.positions = Tensor(positions.data(), DType::i32, Shape{B * T});
    inputs.targets = Tensor(targets.data(), DType::i32, Shape{B * T});
  }

  double forward() {
    return model->forward(ctx, inputs).loss_sum / static_cast<double>(target_count);
  }
  // Mean loss and, in every trainable parameter's grad, its gradient.
  double forward_backward() {
    params->zero_grads(ctx);
    const double loss = forward();
    model->backward(ctx, inputs, 1.0 / static_cast<double>(target_count));
    return loss;
  }
  // Worst relative L2 error of the trainable parameters' value (or grad) against `prefix`.name.
  double worst_parameter_error(const std::string& prefix, bool grads, double tolerance) {
    double worst = 0.0;
    for (const Parameter& p : params->all()) {
      if (!p.spec.trainable) continue;
      const std::vector<double> expected = read_doubles(trainable, prefix + p.spec.name);
      const double error = testing::relative_l2(to_doubles(grads ? p.grad : p.value), expected);
      EXPECT_LT(error, tolerance) << prefix << p.spec.name;
      worst = std::max(worst, error);
    }
    return worst;
  }
};

class PeftParity : public ::testing::TestWithParam<ParityCase> {};

TEST_P(PeftParity, MatchesHuggingFacePeft) {
  const ParityCase& param = GetParam();
  GoldenRun run(param.name, param.dtype);
  if (HasFatalFailure()) return;
  const json& golden = run.case_json;

  // Forward: every row's logits (virtual rows included) and the mean loss.
  const double loss = run.forward();
  const std::vector<double> logits = to_doubles(run.model->logits());
  ASSERT_EQ(logits.size(), run.golden_logits.size());
  const double logits_error = testing::relative_l2(logits, run.golden_logits);
  EXPECT_LT(logits_error, kLogitsTolerance);
  const double loss_error = relative_error(loss, golden.at("loss").get<double>());
  EXPECT_LT(loss_error, kLossTolerance) << "ft " << loss << ", PEFT " << golden.at("loss");

  // Backward: the gradient of the mean loss for every adapter tensor.
  run.forward_backward();
  const double grad_error = run.worst_parameter_error("grad.", /*grads=*/true, kGradTolerance);

  // Three AdamW steps on the same batch, with the golden's settings. torch decays every tensor
  // whose name does not end in "bias"; ft decays those whose spec says so: they must agree.
  const json& adamw = golden.at("adamw");
  ASSERT_TRUE(adamw.at("grad_clip").is_null());
  for (const Parameter& p : run.params->all())
    if (p.spec.trainable) EXPECT_EQ(p.spec.decay, !ends_with(p.spec.name, "bias")) << p.spec.name;
  AdamWConfig settings;
  settings.beta1 = adamw.at("betas")[0].get<double>();
  settings.beta2 = adamw.at("betas")[1].get<double>();
  settings.eps = adamw.at("eps").get<double>();
  settings.weight_decay = adamw.at("weight_decay").get<double>();
  settings.grad_clip = 0.0;
  const double lr = adamw.at("lr").get<double>();
  const int64_t steps = adamw.at("steps").get<int64_t>();
  const std::vector<double> golden_losses = golden.at("losses").get<std::vector<double>>();
  ASSERT_EQ(static_cast<int64_t>(golden_losses.size()), steps);
  AdamW optimizer(*run.params, settings);
  double step_loss_error = relative_error(loss, golden_losses[0]);
  for (int64_t step = 1; step <= steps; ++step) {
    optimizer.update(run.ctx, lr, step);
    if (step == steps) break;
    const double step_loss = run.forward_backward();
    const double error = relative_error(step_loss, golden_losses[step]);
    EXPECT_LT(error, kLossTolerance) << "loss before update " << step + 1 << ": ft " << step_loss
                                     << ", PEFT " << golden_losses[step];
    step_loss_error = std::max(step_loss_error, error);
  }
  const double step3_error = run.worst_parameter_error("step3.", /*grads=*/false, kStepTolerance);

  std::printf("[ parity ] %-32s %s logits %.2e loss %.2e grads %.2e step losses %.2e step3 %.2e\n",
              param.name.c_str(), dtype_name(param.dtype), logits_error, loss_error, grad_error,
              step_loss_error, step3_error);
}

INSTANTIATE_TEST_SUITE_P(Golden, PeftParity, ::testing::ValuesIn(every_case()), case_label);

}  // namespace
}  // namespace ft
