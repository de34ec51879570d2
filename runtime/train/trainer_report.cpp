// The trainer's start-up report (model, method, layout, parameters, memory, data, plan) and its
// communication totals.
#include <fmt/format.h>

#include "runtime/blas.h"
#include "runtime/data/hf_tokenizer.h"
#include "runtime/device.h"
#include "runtime/train/trainer.h"

namespace ft {

CommunicatorStats Trainer::communication_totals() const {
  CommunicatorStats total;
  for (const Communicator* comm :
       {&groups_->world(), &groups_->tp(), &groups_->dp(), kv_group_.get()}) {
    if (!comm) continue;
    total.calls += comm->stats().calls;
    total.bytes += comm->stats().bytes;
    total.seconds += comm->stats().seconds;
  }
  return total;
}

void Trainer::print_startup_report() const {
  const int64_t trainable = params_->trainable_count();
  const int64_t total = trainable + params_->frozen_count();
  log_ << "ft: model " << model_config_.summary() << "\n";
  log_ << "ft: method " << peft_.summary() << "\n";
  if (peft_.is_peft())
    log_ << "ft: base " << base_.description << " (fingerprint " << base_.fingerprint << ")\n";
  const ParallelLayout& layout = groups_->layout();
  if (layout.world_size > 1)
    log_ << fmt::format(
        "ft: layout: {} ranks = tensor parallel {} x data parallel {} ({} communicator{}); "
        "the parameter counts and memory below are per rank\n",
        layout.world_size, layout.tp, layout.dp, groups_->world().kind(),
        optimizer_->zero1() ? ", ZeRO-1 optimizer state" : "");
  log_ << fmt::format("ft: parameters {} trainable of {} ({:.4g}%), {} on {} with {} threads\n",
                      format_count(trainable), format_count(total),
                      100.0 * static_cast<double>(trainable) / static_cast<double>(total),
                      precision_.describe(), device_name(ctx_.device), ctx_.num_threads);
  if (ctx_.device == Device::cuda) log_ << "ft: GPU: " << cuda_device_description(0) << "\n";
  log_ << "ft: BLAS: " << blas_description() << "\n";
  log_ << fmt::format(
      "ft: memory: weights {} (trainable {}, frozen {}), gradients {}, optimizer state {}, "
      "activations {}, workspace {}\n",
      format_bytes(params_->weight_bytes()), format_bytes(params_->trainable_values().bytes()),
      format_bytes(params_->frozen_values().bytes()), format_bytes(params_->gradient_bytes()),
      format_bytes(optimizer_->state_bytes()),
      format_bytes(memory_.activations.capacity() + device_inputs_->bytes()),
      format_bytes(memory_.workspace.bytes()));
  const config::DataConfig& data_config = config_.data();
  const std::string tokenizer =
      data_config.tokenizer().empty()
          ? fmt::format(
                "byte-level ({} ids: 256 bytes and <|endoftext|>, <|im_start|>, <|im_end|>)",
                tokenizer_->vocab_size())
          : fmt::format("{} ({} ids)", data_config.tokenizer(), tokenizer_->vocab_size());
  log_ << fmt::format("ft: tokenizer: {}; chat template {}; loss on {} tokens\n", tokenizer,
                      data_config.chat_template(), data_config.train_on());
  log_ << "ft: train data: " << data::format_report(train_report_) << "\n";
  if (valid_loader_) log_ << "ft: valid data: " << data::format_report(valid_report_) << "\n";
  const int64_t micro = config_.train().micro_batch_size(),
                accum = config_.train().grad_accum_steps();
  const int64_t rows_per_epoch = train_loader_->rows_for_epochs(1);
  const std::string data_parallel =
      layout.dp > 1 ? fmt::format(" x {} data-parallel ranks", layout.dp) : "";
  log_ << fmt::format(
      "ft: plan: {} steps of {} sequences ({} x {} accumulated{}) of {} tokens; {} sequences per "
      "epoch{}\n",
      total_steps_, micro * accum * layout.dp, micro, accum, data_parallel, data_config.seq_len(),
      train_loader_->size(),
      data_config.packing() ? fmt::format(" packed into {} rows", rows_per_epoch) : "");
  const double epochs = static_cast<double>(total_steps_) * static_cast<double>(micro * accum) *
                        layout.dp / static_cast<double>(rows_per_epoch);
  log_ << "ft: tokens: " << data::format_token_plan(train_report_, epochs) << "\n";
}

}  // namespace ft
