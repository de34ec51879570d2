#include "runtime/train/metrics.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace ft {

namespace {

// OpenAI's results file columns, then ft's trained_tokens (the job object's count, per step).
constexpr const char* kCsvHeader =
    "step,train_loss,train_mean_token_accuracy,valid_loss,valid_mean_token_accuracy,trained_tokens";

// Rewrites `path` keeping the lines `keep` accepts (through a temporary file and a rename).
template <typename Keep>
void filter_lines(const std::string& path, Keep keep) {
  std::ifstream in(path);
  if (!in) return;
  std::string tmp = path + ".tmp", line;
  {
    std::ofstream out(tmp, std::ios::trunc);
    while (std::getline(in, line))
      if (keep(line)) out << line << '\n';
    if (!out) fail("cannot rewrite {}", path);
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace

MetricsLog::MetricsLog(const std::string& dir, int64_t resume_step) : tensorboard_(dir) {
  std::string jsonl_path = dir + "/metrics.jsonl", csv_path = dir + "/results.csv";
  bool csv_has_header = false;
  if (resume_step > 0) {
    filter_lines(jsonl_path, [&](const std::string& line) {
      nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      return row.is_object() && row.contains("step") && row["step"].get<int64_t>() <= resume_step;
    });
    filter_lines(csv_path, [&](const std::string& line) {
      if (line.rfind("step,", 0) == 0) return csv_has_header = true;  // this or an older header
      return std::atoll(line.c_str()) <= resume_step && !line.empty();
    });
  }
  auto mode = resume_step > 0 ? std::ios::app : std::ios::trunc;
  jsonl_.open(jsonl_path, std::ios::out | mode);
  csv_.open(csv_path, std::ios::out | mode);
  if (!jsonl_ || !csv_) fail("cannot write metrics to {}", dir);
  if (!csv_has_header) csv_ << kCsvHeader << '\n';
}

void MetricsLog::log_step(const StepMetrics& m, const std::optional<EvalMetrics>& eval) {
  nlohmann::json line = {{"step", m.step},
                         {"total_steps", m.total_steps},
                         {"epoch", m.epoch},
                         {"train_loss", m.loss},
                         {"train_mean_token_accuracy", m.accuracy},
                         {"lr", m.lr},
                         {"grad_norm", m.grad_norm},
                         {"step_tokens", m.step_tokens},
                         {"weight_grad_products", m.weight_grad_products},
                         {"comm_seconds", m.comm_seconds},
                         {"comm_bytes", m.comm_bytes},
                         {"step_seconds", m.step_seconds},
                         {"trained_tokens", m.trained_tokens},
                         {"tokens_per_second", m.tokens_per_second},
                         {"gflops_per_second", m.gflops_per_second},
                         {"elapsed_seconds", m.elapsed_seconds},
                         {"eta_seconds", m.eta_seconds}};
  jsonl_ << line.dump() << '\n';
  csv_ << m.step << ',' << fmt::format("{}", m.loss) << ',' << fmt::format("{}", m.accuracy) << ',';
  if (eval)
    csv_ << fmt::format("{},{}", eval->loss, eval->accuracy);
  else
    csv_ << ',';
  csv_ << ',' << m.trained_tokens << '\n';
  jsonl_.flush();
  csv_.flush();
  tensorboard_.add_scalars(m.step, {{"train/loss", m.loss},
                                    {"train/mean_token_accuracy", m.accuracy},
                                    {"train/lr", m.lr},
                                    {"train/grad_norm", m.grad_norm},
                                    {"train/trained_tokens", static_cast<double>(m.trained_tokens)},
                                    {"train/tokens_per_second", m.tokens_per_second}});
  tensorboard_.flush();
}

void MetricsLog::log_eval(const EvalMetrics& m) {
  nlohmann::json line = {{"step", m.step},
                         {"valid_loss", m.loss},
                         {"valid_mean_token_accuracy", m.accuracy},
                         {"valid_tokens", m.tokens}};
  jsonl_ << line.dump() << '\n';
  jsonl_.flush();
  tensorboard_.add_scalars(m.step,
                           {{"valid/loss", m.loss}, {"valid/mean_token_accuracy", m.accuracy}});
  tensorboard_.flush();
}

void MetricsLog::log_full_eval(const EvalMetrics& m) {
  nlohmann::json line = {{"step", m.step},
                         {"full_valid_loss", m.loss},
                         {"full_valid_mean_token_accuracy", m.accuracy},
                         {"full_valid_tokens", m.tokens}};
  jsonl_ << line.dump() << '\n';
  jsonl_.flush();
  tensorboard_.add_scalars(
      m.step, {{"valid/full_loss", m.loss}, {"valid/full_mean_token_accuracy", m.accuracy}});
  tensorboard_.flush();
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  int64_t total = static_cast<int64_t>(seconds + 0.5);
  if (total < 3600) return fmt::format("{}m{:02}s", total / 60, total % 60);
  return fmt::format("{}h{:02}m", total / 3600, (total % 3600) / 60);
}

std::string format_count(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, units[unit]);
}

std::string format_progress(const StepMetrics& m) {
  return fmt::format(
      "step {}/{} | epoch {} | loss {:.4f} | acc {:.3f} | lr {:.2e} | gnorm {:.3f} | {} tok/s | "
      "{:.1f} GFLOP/s | trained {} tok | ETA {}",
      m.step, m.total_steps, m.epoch + 1, m.loss, m.accuracy, m.lr, m.grad_norm,
      format_count(static_cast<int64_t>(m.tokens_per_second)), m.gflops_per_second,
      format_count(m.trained_tokens), format_duration(m.eta_seconds));
}

}  // namespace ft
