#include "peft_bench.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <iostream>

#include "gemm_ceiling.h"
#include "runtime/error.h"
#include "runtime/train/metrics.h"

namespace ft::bench {

namespace {

const std::vector<std::string>& every_method() {
  static const std::vector<std::string> methods = {"full", "prompt_tuning", "prefix_tuning",
                                                   "p_tuning", "lora"};
  return methods;
}

bool is_qkv(LinearSlot slot) {
  return slot == LinearSlot::q || slot == LinearSlot::k || slot == LinearSlot::v ||
         slot == LinearSlot::qkv;
}

// "1.23 M" style, for parameter counts in a narrow column.
std::string short_count(int64_t count) {
  const double value = static_cast<double>(count);
  if (value >= 1e9) return fmt::format("{:.2f} G", value * 1e-9);
  if (value >= 1e6) return fmt::format("{:.2f} M", value * 1e-6);
  if (value >= 1e3) return fmt::format("{:.1f} k", value * 1e-3);
  return fmt::format("{}", count);
}

// Forward, weight and input gradients of P-tuning's MLP encoder or the prefix projection: they run
// on the P virtual rows once per step.
double encoder_flops_per_step(const ModelConfig& c, const PeftSpec& spec) {
  const double H = static_cast<double>(spec.encoder_hidden_size);
  const double rows_p = static_cast<double>(spec.num_virtual_tokens);
  const double C = static_cast<double>(c.hidden_size);
  if (spec.method == PeftMethod::p_tuning) return 3.0 * 2.0 * rows_p * (C * H + H * H + H * C);
  if (spec.method == PeftMethod::prefix_tuning && spec.prefix_projection) {
    const double kv = static_cast<double>(c.kv_dim());
    const double L = static_cast<double>(c.num_layers);
    return 3.0 * 2.0 * rows_p * (kv * H + H * 2.0 * L * kv);
  }
  return 0.0;
}

}  // namespace

std::vector<std::string> methods_to_run(const std::string& method) {
  if (method == "all") return every_method();
  if (std::find(every_method().begin(), every_method().end(), method) == every_method().end())
    fail("--method {}: expected full, prompt_tuning, prefix_tuning, p_tuning, lora or all", method);
  return {method};
}

config::PeftConfig peft_config_for(const std::string& method, const MethodOptions& options) {
  config::PeftConfig peft;
  peft.set_method(method);
  peft.set_num_virtual_tokens(options.virtual_tokens);
  peft.set_lora_r(options.lora_r);
  peft.set_lora_alpha(options.lora_alpha);
  peft.set_target_modules(options.lora_targets);
  peft.set_encoder_hidden_size(options.encoder_hidden);
  // Only prefix tuning has a projection; resolve_peft_spec refuses the flag elsewhere.
  peft.set_prefix_projection(options.prefix_projection && method == "prefix_tuning");
  return peft;
}

StepFlops executed_step_flops(const ModelConfig& c, const PeftSpec& spec, int64_t batch,
                              int64_t seq, int64_t lowest_backward_layer) {
  const int64_t L = c.num_layers, P = spec.num_virtual_tokens;
  const double T = static_cast<double>(spec.model_seq_len(seq));
  const double rows = static_cast<double>(batch) * T;
  // Keys each query attends over: prefix tuning adds P prefix rows in every layer.
  const double keys = T + (spec.method == PeftMethod::prefix_tuning ? static_cast<double>(P) : 0);
  const bool descends = lowest_backward_layer < L;
  const int64_t first_visited = std::max<int64_t>(lowest_backward_layer, 0);
  const double visited = descends ? static_cast<double>(L - first_visited) : 0.0;
  // In the lowest visited layer no q/k/v input gradient is needed unless the layer's input is
  // itself needed (lowest_backward_layer -1: the embeddings or the virtual rows train).
  const bool lowest_skips_qkv_dx = descends && lowest_backward_layer >= 0;
  const bool full = !spec.is_peft();

  StepFlops f;
  for (const LinearKind& kind : linear_kinds(c)) {
    const double products = 2.0 * rows * static_cast<double>(kind.out * kind.in);
    if (kind.name == "lm head") {
      f.forward += products;
      if (descends) f.input_grad += products;
      if (full) f.weight_grad += products;
      continue;
    }
    f.forward += products * static_cast<double>(kind.calls);
    f.input_grad += products * visited;
    const bool qkv = kind.name == "q" || kind.name == "k" || kind.name == "v";
    if (qkv && lowest_skips_qkv_dx) f.input_grad -= products;
    if (full) f.weight_grad += products * static_cast<double>(kind.calls);
  }
  const double attention_forward = 4.0 * rows * static_cast<double>(c.q_dim()) * keys;
  f.attention = attention_forward * static_cast<double>(L) + 2.0 * attention_forward * visited;

  const double r = static_cast<double>(spec.lora_r);
  for (const LoraTarget& target : spec.lora_targets) {
    const double in = static_cast<double>(target.in_features);
    const double out = static_cast<double>(target.out_features);
    // Forward t = A x and B t; backward dB, dt, dA, and dx where the input gradient is needed.
    f.adapter += 2.0 * rows * r * (in + out) + 2.0 * rows * r * (2.0 * out + in);
    const bool needs_dx = target.layer > lowest_backward_layer || !is_qkv(target.slot);
    if (needs_dx) f.adapter += 2.0 * rows * r * in;
  }
  f.adapter += encoder_flops_per_step(c, spec);
  return f;
}

double model_flops_per_token(const ModelConfig& c, const PeftSpec& spec, int64_t batch,
                             int64_t seq) {
  const double C = static_cast<double>(c.hidden_size), V = static_cast<double>(c.vocab_size);
  const double N =
      static_cast<double>(c.non_embedding_parameters()) + (c.tied_embeddings ? V * C : 0);
  const double rows = static_cast<double>(spec.model_seq_len(seq));
  const double keys =
      rows +
      (spec.method == PeftMethod::prefix_tuning ? static_cast<double>(spec.num_virtual_tokens) : 0);
  const double attention =
      12.0 * static_cast<double>(c.num_layers * c.num_heads * c.head_dim) * keys;
  double per_row = (spec.is_peft() ? 4.0 : 6.0) * N + attention;
  for (const LoraTarget& target : spec.lora_targets)
    per_row += 6.0 * static_cast<double>(spec.lora_r) *
               static_cast<double>(target.in_features + target.out_features);
  const double data_tokens = static_cast<double>(batch) * static_cast<double>(seq);
  return per_row * rows / static_cast<double>(seq) + encoder_flops_per_step(c, spec) / data_tokens;
}

void print_method_comparison(const std::vector<MethodResult>& results) {
  if (results.empty()) return;
  const MethodResult* full = nullptr;
  for (const MethodResult& r : results)
    if (r.method == "full") full = &r;

  std::cout << "\nMethod comparison: speed (median step; tokens = batch x seq data tokens, virtual "
               "rows not counted)\n";
  std::cout << fmt::format("  {:<14} {:>10} {:>8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>6} {:>6}\n",
                           "method", "trainable", "% model", "step ms", "tokens/s", "speed-up",
                           "GFLOP/st", "GFLOP/s", "dW/st", "dX/st");
  for (const MethodResult& r : results) {
    const double tokens_per_s = static_cast<double>(r.data_tokens) / r.step_seconds;
    const double percent =
        100.0 * static_cast<double>(r.trainable_params) / static_cast<double>(r.total_params);
    std::cout << fmt::format(
        "  {:<14} {:>10} {:>7.3g}% {:>9.1f} {:>9.0f} {:>8} {:>8.3g} {:>8.3g} {:>6} {:>6}\n",
        r.method, short_count(r.trainable_params), percent, r.step_seconds * 1e3, tokens_per_s,
        full ? fmt::format("{:.2f}x", full->step_seconds / r.step_seconds) : std::string("-"),
        r.flops.total() * 1e-9, r.flops.total() / r.step_seconds * 1e-9, r.weight_grad_products,
        r.input_grad_products);
  }
  std::cout << "  GFLOP/st: FLOPs the step executes (matrix products and attention, as 6N + 12LHDT "
               "counts them): PEFT\n"
               "  runs no weight-gradient product for the frozen base (about 4N + attention per "
               "row, over the layers\n"
               "  the backward visits, plus the adapter's own products). dW/st, dX/st: "
               "weight- and input-gradient\n"
               "  GEMMs per step as counted by OpCounters.\n";

  std::cout << "\nMethod comparison: memory (planned bytes of each method's own run)\n";
  std::cout << fmt::format("  {:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7}\n",
                           "method", "w trainab", "w frozen", "gradients", "optimizer",
                           "activation", "workspace", "total", "vs full");
  for (const MethodResult& r : results) {
    std::cout << fmt::format(
        "  {:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7}\n", r.method,
        format_bytes(static_cast<double>(r.weights_trainable)),
        format_bytes(static_cast<double>(r.weights_frozen)),
        format_bytes(static_cast<double>(r.gradients)),
        format_bytes(static_cast<double>(r.optimizer)),
        format_bytes(static_cast<double>(r.activations)),
        format_bytes(static_cast<double>(r.workspace)),
        format_bytes(static_cast<double>(r.total_bytes())),
        full ? fmt::format("{:.2f}x", static_cast<double>(r.total_bytes()) /
                                          static_cast<double>(full->total_bytes()))
             : std::string("-"));
  }
  std::cout << "  activation: the planned activation arena (saved forward values, gradient "
               "scratch); workspace: op scratch.\n";
  std::cout << "\nMethods\n";
  for (const MethodResult& r : results)
    std::cout << fmt::format("  {:<14} {}; {} model rows per step; loss {:.4f} -> {:.4f}\n",
                             r.method, r.summary, r.model_rows, r.first_loss, r.last_loss);
}

size_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<size_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace ft::bench
