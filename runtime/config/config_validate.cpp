// Range and choice checks on a parsed config, run before any training so that a bad value is
// reported with its field path and what is expected. All problems are reported at once.
#include <fmt/format.h>

#include <cmath>
#include <initializer_list>
#include <string>
#include <vector>

#include "runtime/config/config.h"
#include "runtime/error.h"

namespace ft::config {

namespace {

class Checker {
 public:
  // A number that must satisfy `ok`; `expected` reads "expected <expected>".
  template <typename Number>
  void number(const char* path, Number value, bool ok, const char* expected) {
    if constexpr (std::is_floating_point_v<Number>) ok = ok && std::isfinite(value);
    if (!ok) add(fmt::format("config field {} = {}: expected {}", path, value, expected));
  }

  // The upper bounds keep absurd sizes from reaching allocations as an opaque std::bad_alloc.
  template <typename Number>
  void at_most(const char* path, Number value, Number limit) {
    if (value > limit)
      add(fmt::format("config field {} = {}: expected at most {}", path, value, limit));
  }

  void choice(const char* path, const std::string& value,
              std::initializer_list<const char*> choices) {
    for (const char* candidate : choices) {
      if (value == candidate) return;
    }
    add(fmt::format("config field {} = '{}': expected one of {}", path, value,
                    fmt::join(choices, ", ")));
  }

  void non_empty(const char* path, const std::string& value, const char* what) {
    if (value.empty()) add(fmt::format("config field {} is empty: expected {}", path, what));
  }

  void add(std::string problem) { problems_.push_back(std::move(problem)); }

  void throw_if_any() const {
    if (problems_.empty()) return;
    if (problems_.size() == 1) throw ft::Error(problems_.front());
    throw ft::Error(fmt::format("{} invalid config fields:\n  {}", problems_.size(),
                                fmt::join(problems_, "\n  ")));
  }

 private:
  std::vector<std::string> problems_;
};

void check_model(const ModelConfig& model, Checker& check) {
  const bool has_preset = !model.preset().empty();
  const bool has_hf_config = !model.hf_config().empty();
  const char* expected =
      "set exactly one of model.preset (a built-in model name) and model.hf_config (a Hugging "
      "Face config.json or its folder), or neither when model.init_from names a Hugging Face "
      "model folder or an ft checkpoint (it brings its architecture)";
  if (!has_preset && !has_hf_config && model.init_from().empty()) {
    check.add(fmt::format("config field model: {}; neither is set, nor model.init_from", expected));
  } else if (has_preset && has_hf_config) {
    check.add(
        fmt::format("config field model: {}; both are set (model.preset = '{}', "
                    "model.hf_config = '{}')",
                    expected, model.preset(), model.hf_config()));
  }
  check.number("model.max_position_embeddings", model.max_position_embeddings(),
               model.max_position_embeddings() >= 0, "an integer >= 0 (0: keep the model's)");
}

void check_data(const DataConfig& data, Checker& check) {
  check.non_empty("data.train_file", data.train_file(), "the path of the training data");
  check.choice("data.format", data.format(), {"auto", "chat", "prompt_completion", "text"});
  check.number("data.seq_len", data.seq_len(), data.seq_len() > 0, "a positive integer");
  check.at_most("data.seq_len", data.seq_len(), 1048576);
  check.choice("data.too_long", data.too_long(), {"truncate", "drop"});
  check.choice("data.chat_template", data.chat_template(),
               {"chatml", "llama3", "llama2", "mistral", "plain"});
  check.choice("data.train_on", data.train_on(), {"assistant", "all"});
  check.number("data.valid_split", data.valid_split(),
               data.valid_split() >= 0 && data.valid_split() < 1, "a fraction in [0, 1)");
}

void check_optim(const OptimConfig& optim, Checker& check) {
  check.number("optim.lr", optim.lr(), optim.lr() > 0, "a positive number");
  check.choice("optim.schedule", optim.schedule(), {"cosine", "linear", "constant"});
  check.number("optim.min_lr_ratio", optim.min_lr_ratio(),
               optim.min_lr_ratio() >= 0 && optim.min_lr_ratio() <= 1, "a number in [0, 1]");
  check.number("optim.warmup_steps", optim.warmup_steps(), optim.warmup_steps() >= 0,
               "an integer >= 0");
  check.number("optim.weight_decay", optim.weight_decay(), optim.weight_decay() >= 0,
               "a number >= 0");
  check.number("optim.beta1", optim.beta1(), optim.beta1() >= 0 && optim.beta1() < 1,
               "a number in [0, 1)");
  check.number("optim.beta2", optim.beta2(), optim.beta2() >= 0 && optim.beta2() < 1,
               "a number in [0, 1)");
  check.number("optim.eps", optim.eps(), optim.eps() > 0, "a positive number");
  check.number("optim.grad_clip", optim.grad_clip(), optim.grad_clip() >= 0,
               "a number >= 0 (0: no clipping)");
}

void check_train(const TrainConfig& train, Checker& check) {
  check.number("train.micro_batch_size", train.micro_batch_size(), train.micro_batch_size() >= 1,
               "an integer >= 1");
  check.at_most("train.micro_batch_size", train.micro_batch_size(), 65536);
  check.number("train.grad_accum_steps", train.grad_accum_steps(), train.grad_accum_steps() >= 1,
               "an integer >= 1");
  check.at_most("train.grad_accum_steps", train.grad_accum_steps(), 65536);
  check.number("train.epochs", train.epochs(), train.epochs() >= 1, "an integer >= 1");
  check.number("train.max_steps", train.max_steps(), train.max_steps() >= 0,
               "an integer >= 0 (0: derived from epochs)");
  check.number("train.eval_every", train.eval_every(), train.eval_every() >= 0,
               "an integer >= 0 (0: only at the end)");
  check.number("train.eval_batches", train.eval_batches(), train.eval_batches() >= 0,
               "an integer >= 0 (0: the whole validation set)");
  check.number("train.log_every", train.log_every(), train.log_every() >= 1, "an integer >= 1");
}

}  // namespace

void validate(const RunConfig& config) {
  Checker check;
  check_model(config.model(), check);
  check_data(config.data(), check);
  check_optim(config.optim(), check);
  check_train(config.train(), check);
  check.number("checkpoint.save_every", config.checkpoint().save_every(),
               config.checkpoint().save_every() >= 0, "an integer >= 0 (0: only at the end)");
  check.number("checkpoint.keep_last", config.checkpoint().keep_last(),
               config.checkpoint().keep_last() >= 1, "an integer >= 1");
  check.number("parallel.tp", config.parallel().tp(), config.parallel().tp() >= 1,
               "an integer >= 1");
  check.number("parallel.bucket_mb", config.parallel().bucket_mb(),
               config.parallel().bucket_mb() >= 1, "an integer >= 1");
  check.at_most("parallel.bucket_mb", config.parallel().bucket_mb(), 4096);
  check.non_empty("output_dir", config.output_dir(), "a folder for metrics and checkpoints");
  check.choice("device", config.device(), {"auto", "cpu", "cuda"});
  check.choice("dtype", config.dtype(), {"fp32", "fp64", "auto"});
  if (config.device() == "cuda" && config.dtype() == "fp64")
    check.add(
        "config field dtype = 'fp64' with device = 'cuda': expected auto (bf16 with fp32 master "
        "weights) or fp32; fp64 runs on the CPU only");
  check.number("threads", config.threads(), config.threads() >= 0,
               "an integer >= 0 (0: all cores)");
  check.at_most("threads", config.threads(), 1024);
  check.throw_if_any();
}

}  // namespace ft::config
