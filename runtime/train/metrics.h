// What a run reports: the progress line on stdout; every step in metrics.jsonl with the names of
// OpenAI's fine-tuning metrics (train_loss, train_mean_token_accuracy, valid_loss,
// valid_mean_token_accuracy, full_valid_loss, full_valid_mean_token_accuracy, trained_tokens);
// and results.csv with those names as columns (step, train_loss, train_mean_token_accuracy,
// valid_loss, valid_mean_token_accuracy, trained_tokens).
#pragma once

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>

#include "runtime/train/tensorboard.h"

namespace ft {

struct StepMetrics {
  int64_t step = 0;
  int64_t total_steps = 0;
  int64_t epoch = 0;
  double loss = 0.0;
  double accuracy = 0.0;  // mean token accuracy over the trained tokens
  double lr = 0.0;
  double grad_norm = 0.0;
  int64_t step_tokens = 0;     // target tokens in this step's global batch
  int64_t trained_tokens = 0;  // target tokens trained so far (all steps)
  double step_seconds = 0.0;
  double tokens_per_second = 0.0;  // input tokens (batch x sequence) per second
  double gflops_per_second = 0.0;
  double elapsed_seconds = 0.0;
  double eta_seconds = 0.0;
  // Weight-gradient matrix products the step's backward ran (frozen weights cost none).
  int64_t weight_grad_products = 0;
  double comm_seconds = 0.0;  // this rank's time inside collectives during the step
  int64_t comm_bytes = 0;     // payload bytes this rank passed to collectives during the step
};

struct EvalMetrics {
  int64_t step = 0;
  double loss = 0.0;
  double accuracy = 0.0;
  int64_t tokens = 0;
};

class MetricsLog {
 public:
  // Opens <dir>/metrics.jsonl and <dir>/results.csv. resume_step 0 starts them afresh; a resumed
  // run keeps the rows up to resume_step (dropping those of steps it will run again) and appends.
  MetricsLog(const std::string& dir, int64_t resume_step);
  void log_step(const StepMetrics& metrics, const std::optional<EvalMetrics>& eval);
  void log_eval(const EvalMetrics& metrics);
  // The whole validation set at the end of training: full_valid_loss and
  // full_valid_mean_token_accuracy in metrics.jsonl, valid/full_loss and
  // valid/full_mean_token_accuracy in TensorBoard.
  void log_full_eval(const EvalMetrics& metrics);

 private:
  std::ofstream jsonl_, csv_;
  TensorBoardWriter tensorboard_;
};

// "step 12/300 | loss 2.3456 | acc 0.412 | lr 3.00e-04 | gnorm 1.23 | 8,532 tok/s | ..."
std::string format_progress(const StepMetrics& metrics);
std::string format_duration(double seconds);  // "1h02m", "3m05s", "12.3s"
std::string format_count(int64_t value);      // "1,234,567"
std::string format_bytes(double bytes);       // "12.3 MiB"

}  // namespace ft
