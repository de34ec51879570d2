// The fine-tuning methods side of bench_step: which methods a run covers, each method's PEFT
// config from the command line, the FLOPs a step of each method actually executes, and the
// comparison table of `--method all`. Benchmarks print figures; nothing here passes or fails.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "models/model_config.h"
#include "models/peft/peft_spec.h"
#include "runtime/config/ft_config.pb.h"

namespace ft::bench {

struct MethodOptions {
  std::string method = "full";  // full | prompt_tuning | prefix_tuning | p_tuning | lora | all
  int virtual_tokens = 20;      // P: prompt tuning, prefix tuning, P-tuning
  int lora_r = 8;
  double lora_alpha = 8;     // the schema's default
  std::string lora_targets;  // empty: PEFT's default for the family (q_proj,v_proj; GPT-2 c_attn)
  int encoder_hidden = 0;    // P-tuning's MLP / the prefix projection (0: the model's width)
  bool prefix_projection = false;
};

// The methods `method` names, in table order: "all" is every method, full first.
std::vector<std::string> methods_to_run(const std::string& method);

// The PeftConfig a run of `method` uses (lora_alpha and dropout at the schema's defaults).
config::PeftConfig peft_config_for(const std::string& method, const MethodOptions& options);

// FLOPs one training step executes: matrix products (2 m n k each) and attention, counted the way
// ModelConfig::training_flops_per_token counts them (attention over the full key length, not
// halved for the causal mask); norms, activations and the optimizer are not counted. Under PEFT
// the frozen base runs no weight-gradient product and the backward stops at the lowest layer the
// adapter feeds, so a step costs about 4N + attention per row instead of 6N, plus the adapter.
struct StepFlops {
  double forward = 0;      // base linears, LM head included
  double input_grad = 0;   // base linears' dX in the layers the backward visits
  double weight_grad = 0;  // base linears' dW (full fine-tuning only)
  double attention = 0;    // forward and backward
  double adapter = 0;      // LoRA products, the P-tuning / prefix-projection MLP
  double total() const { return forward + input_grad + weight_grad + attention + adapter; }
};

// `seq`: data tokens per sequence (the model runs spec.model_seq_len(seq) rows per sequence);
// `lowest_backward_layer`: Transformer::lowest_backward_layer() of the model the step runs.
StepFlops executed_step_flops(const ModelConfig& config, const PeftSpec& spec, int64_t batch,
                              int64_t seq, int64_t lowest_backward_layer);

// Model FLOPs per data token, for MFU (reference/performance.md: model FLOPs, no recompute). Per
// model row: 6N + 12 L H D K for full fine-tuning (= ModelConfig::training_flops_per_token), and
// 4N + 12 L H D K for a PEFT method (a frozen base computes no weight gradient) plus 6 r (in + out)
// for every LoRA-adapted matrix; N = every matmul weight (non-embedding parameters plus the LM
// head, tied or not), K = the keys a query attends to (the model rows per sequence, plus P with
// prefix tuning; not halved for the causal mask, as PaLM counts). Prompt tuning and P-tuning run P
// more rows per sequence, so a data token costs model rows / data tokens times a row. P-tuning's
// MLP encoder and the prefix projection run once per step; their forward and backward are spread
// over the batch x seq data tokens. bench/pytorch_peft_gpu.py computes the same count.
double model_flops_per_token(const ModelConfig& config, const PeftSpec& spec, int64_t batch,
                             int64_t seq);

// One method's figures for the comparison table.
struct MethodResult {
  std::string method;
  std::string summary;  // PeftSpec::summary()
  int64_t trainable_params = 0, total_params = 0;
  double step_seconds = 0;  // median over the timed steps
  int64_t data_tokens = 0;  // batch x seq per step (virtual rows not counted)
  int64_t model_rows = 0;   // batch x model_seq_len per step
  StepFlops flops;          // per step
  int64_t weight_grad_products = 0, input_grad_products = 0, forward_products = 0;  // per step
  size_t weights_trainable = 0, weights_frozen = 0, gradients = 0, optimizer = 0;
  size_t activations = 0, workspace = 0;
  double first_loss = 0, last_loss = 0;
  size_t total_bytes() const {
    return weights_trainable + weights_frozen + gradients + optimizer + activations + workspace;
  }
};

// Speed and memory of every method, with ratios to the "full" row (first, when present).
void print_method_comparison(const std::vector<MethodResult>& results);

// The process's peak resident set so far (getrusage ru_maxrss), in bytes.
size_t peak_rss_bytes();

}  // namespace ft::bench
