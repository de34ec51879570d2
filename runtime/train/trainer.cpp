#include "runtime/train/trainer.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "models/param_layout.h"
#include "models/peft/peft_interchange.h"
#include "models/peft/prompt_init.h"
#include "runtime/blas.h"
#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "runtime/config/config.h"
#include "runtime/data/hf_tokenizer.h"
#include "runtime/device.h"
#include "runtime/random.h"
#include "runtime/train/input_layout.h"
#include "runtime/train/run_parameters.h"

namespace ft {
namespace {

int resolve_threads(int requested) {
  if (requested > 0) return requested;
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    int value = std::atoi(env);
    if (value > 0) return value;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

// Fails now, not after hours of training, when the run could not write into `dir`.
void check_writable(const std::string& dir, const char* what) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) fail("{} {}: cannot create it: {}", what, dir, error.message());
  const std::string probe = dir + "/.ft_write_probe.tmp";
  {
    std::ofstream file(probe);
    if (!(file << "probe")) fail("{} {}: cannot write files there", what, dir);
  }
  std::filesystem::remove(probe, error);
}

// The fields that decide which data a resumed run reads next and which model it continues; the
// rest (learning rate, length of the run, logging, ...) may change on resume.
void check_resume_compatible(const std::string& path, const config::RunConfig& saved,
                             const config::RunConfig& now) {
  for (const char* field :
       {"seed", "data.train_file", "data.format", "data.seq_len", "data.shuffle", "data.too_long",
        "data.tokenizer", "data.chat_template", "data.train_on", "data.packing", "data.valid_split",
        "data.chatml_default_system", "model.preset", "model.hf_config",
        "model.max_position_embeddings", "dtype"}) {
    std::string before = config::get_field(saved, field), after = config::get_field(now, field);
    if (before != after)
      fail(
          "--resume {}: config field {} was '{}' in the checkpointed run and is '{}' now; the "
          "run cannot continue where it stopped. Resume with the same value, or start a new run "
          "from these weights with model.init_from",
          path, field, before, after);
  }
}

}  // namespace

Trainer::Trainer(TrainerOptions options)
    : options_(std::move(options)),
      config_(options_.config),
      log_(options_.log ? *options_.log : std::cout) {
  config::validate(config_);
  ctx_.device = select_device(config_.device());
  ctx_.num_threads = resolve_threads(config_.threads());
  ctx_.counters = &counters_;
  omp_set_num_threads(ctx_.num_threads);
  openblas_set_num_threads(ctx_.num_threads);
  if (config_.parallel().tp() != 1)
    fail("parallel.tp = {}: tensor parallelism is not available yet (expected 1)",
         config_.parallel().tp());
  comm_ = std::make_unique<SingleProcessCommunicator>();

  model_config_ = resolve_model_config(config_.model());
  const int seq_len = config_.data().seq_len();
  if (seq_len > model_config_.max_position_embeddings)
    fail("data.seq_len = {} exceeds the model's max_position_embeddings {}", seq_len,
         model_config_.max_position_embeddings);

  if (model_config_.sliding_window > 0 && seq_len > model_config_.sliding_window)
    fail(
        "data.seq_len = {} exceeds the model's sliding_window {}: sliding-window attention is not "
        "implemented, so sequences must fit in the window",
        seq_len, model_config_.sliding_window);

  const config::DataConfig& data_config = config_.data();
  if (data_config.tokenizer().empty()) {
    tokenizer_ = std::make_unique<data::ByteTokenizer>();
  } else {
    try {
      tokenizer_ = data::HfTokenizer::load(data_config.tokenizer());
      tokenizer_->eos_id();  // a tokenizer without EOS cannot end completions or texts
    } catch (const Error& error) {
      fail("data.tokenizer = {}: {}", data_config.tokenizer(), error.what());
    }
  }
  if (tokenizer_->vocab_size() > model_config_.vocab_size)
    fail("model {}: vocab_size {} is smaller than the tokenizer's {} ids", model_config_.name,
         model_config_.vocab_size, tokenizer_->vocab_size());
  data::DataOptions data_options;
  data_options.format = data_config.format();
  data_options.chat_template = data_config.chat_template();
  data_options.chatml_default_system = data_config.chatml_default_system();
  data_options.train_on = data_config.train_on();
  data_options.seq_len = seq_len;
  data_options.too_long = data_config.too_long();
  train_sequences_ =
      data::load_dataset(data_config.train_file(), data_options, *tokenizer_, &train_report_);
  const uint64_t seed = config_.seed();
  seed_ = seed;
  if (data_config.valid_split() != 0.0) {
    if (!data_config.valid_file().empty())
      fail("data.valid_split = {} and data.valid_file = {}: choose one source of validation data",
           data_config.valid_split(), data_config.valid_file());
    data::split_validation(train_sequences_, data_config.valid_split(), seed, valid_sequences_,
                           train_report_, valid_report_);
  } else if (!data_config.valid_file().empty()) {
    valid_sequences_ =
        data::load_dataset(data_config.valid_file(), data_options, *tokenizer_, &valid_report_);
  }
  train_loader_ =
      std::make_unique<data::BatchLoader>(train_sequences_, seq_len, tokenizer_->eos_id(), seed,
                                          data_config.shuffle(), data_config.packing());
  if (!valid_sequences_.empty())
    valid_loader_ = std::make_unique<data::BatchLoader>(valid_sequences_, seq_len,
                                                        tokenizer_->eos_id(), seed, false);

  const int64_t global_batch = static_cast<int64_t>(config_.train().micro_batch_size()) *
                               config_.train().grad_accum_steps() * comm_->size();
  total_steps_ =
      config_.train().max_steps() > 0
          ? config_.train().max_steps()
          : (train_loader_->rows_for_epochs(config_.train().epochs()) + global_batch - 1) /
                global_batch;

  output_dir_ = config_.output_dir();
  checkpoint_dir_ = output_dir_ + "/checkpoints";
  std::string resume_path;
  if (options_.resume == "latest") {
    auto latest = checkpoint::latest_checkpoint(checkpoint_dir_);
    if (!latest) fail("--resume latest: no checkpoint in {}", checkpoint_dir_);
    resume_path = *latest;
  } else if (!options_.resume.empty()) {
    resume_path = options_.resume;
    if (!std::filesystem::exists(resume_path)) fail("--resume-from {}: no such file", resume_path);
  } else if (auto existing = checkpoint::latest_checkpoint(checkpoint_dir_)) {
    // A fresh run would write over this run's checkpoints.
    fail(
        "output_dir {} already holds checkpoints (newest: {}): pass --resume to continue "
        "that run, or choose another output_dir",
        output_dir_, *existing);
  } else if (std::filesystem::exists(output_dir_ + "/metrics.jsonl")) {
    fail("output_dir {} already holds a run's metrics.jsonl: choose another output_dir",
         output_dir_);
  }

  peft_ = resolve_peft_spec(config_.peft(), model_config_, seq_len);
  // Virtual rows and prefixes sit in front of a row, so packed examples after the first would
  // not see them (the segment mask) and their positions would not start at the virtual tokens.
  if (data_config.packing() && peft_.position_offset() != 0)
    fail(
        "data.packing = true with peft.method = {}: packing is not supported with virtual-token "
        "methods (prompt tuning, P-tuning, prefix tuning); set data.packing to false",
        peft_method_name(peft_.method));
  const DType dtype = config_.dtype() == "fp64" ? DType::f64 : DType::f32;
  params_ =
      std::make_unique<ParameterStore>(run_param_specs(model_config_, peft_), dtype, ctx_.device);
  params_->initialize(seed);
  const std::string& base_path = config_.model().init_from();
  if (peft_.is_peft()) {
    // The frozen base comes from model.init_from (or the seeded init) on every start, resumes
    // included: adapter checkpoints hold only the adapter.
    if (!base_path.empty())
      load_init_weights(base_path, model_config_, *params_, /*base_only=*/true);
    base_.fingerprint = base_fingerprint(*params_, ctx_.num_threads);
    base_.description = model_config_.summary() +
                        (base_path.empty() ? fmt::format(", seeded random init (seed {})", seed)
                                           : ", " + base_path);
    std::vector<int32_t> text_ids;
    if (peft_.prompt_init == PromptInit::text)
      text_ids = tokenizer_->encode(peft_.prompt_init_text);
    initialize_prompt_from_vocabulary(peft_, model_config_, *params_, text_ids, seed);
  }
  const BaseIdentity* base = peft_.is_peft() ? &base_ : nullptr;
  if (!resume_path.empty()) {
    int64_t resume_step = 0;
    std::string saved_config;
    try {
      checkpoint::CheckpointReader reader(resume_path);
      resume_step = reader.int_attribute("step");
      saved_config = reader.string_attribute("config");
    } catch (const Error& error) {
      fail(
          "{}\n(if this checkpoint is damaged, move it out of {} and --resume continues from the "
          "one before it)",
          error.what(), checkpoint_dir_);
    }
    // Continuing from an older checkpoint would overwrite (and rotate away) newer ones. Their step
    // comes from the file name, so a damaged newer file does not block this check.
    if (auto newest = checkpoint::latest_checkpoint(checkpoint_dir_)) {
      if (checkpoint::checkpoint_step(*newest).value_or(0) > resume_step)
        fail(
            "--resume {}: {} holds a newer checkpoint ({}) that this run would overwrite; resume "
            "from the newest (--resume), move that file away if it is damaged, or resume into "
            "another output_dir",
            resume_path, checkpoint_dir_, *newest);
    }
    // The config check first: a changed model would otherwise surface as a missing tensor.
    const config::RunConfig saved = config::from_text(saved_config, resume_path);
    check_resume_compatible(resume_path, saved, config_);
    // The method compared as resolved: "" and "q_proj,v_proj" select the same LoRA modules.
    check_same_adapter(resolve_peft_spec(saved.peft(), model_config_, saved.data().seq_len()),
                       peft_, "--resume " + resume_path);
    state_ = load_training_checkpoint(resume_path, *params_, /*with_optimizer=*/true, base);
    if (state_.train_sequences != train_loader_->size())
      fail("--resume {}: the checkpointed run had {} training sequences, {} now holds {}",
           resume_path, state_.train_sequences, config_.data().train_file(), train_loader_->size());
    if (state_.step >= total_steps_)
      fail(
          "--resume {}: the checkpoint is at step {} and this run has {} steps: nothing left to "
          "train (raise train.max_steps or train.epochs)",
          resume_path, state_.step, total_steps_);
    train_loader_->set_cursor(state_.cursor);
    log_ << "ft: resumed from " << resume_path << " at step " << state_.step << "\n";
  } else {
    if (!base_path.empty() && !peft_.is_peft())
      load_init_weights(base_path, model_config_, *params_, /*base_only=*/false);
    if (!config_.peft().init_from().empty()) {
      if (!peft_.is_peft())
        fail("peft.init_from = {}: an adapter needs a PEFT method (peft.method is full)",
             config_.peft().init_from());
      load_adapter(config_.peft().init_from());
    }
  }
  state_.seed = seed;
  state_.train_sequences = train_loader_->size();

  AdamWConfig adamw;
  adamw.beta1 = config_.optim().beta1();
  adamw.beta2 = config_.optim().beta2();
  adamw.eps = config_.optim().eps();
  adamw.weight_decay = config_.optim().weight_decay();
  adamw.grad_clip = config_.optim().grad_clip();
  optimizer_ = std::make_unique<AdamW>(*params_, adamw);
  schedule_.peak_lr = config_.optim().lr();
  schedule_.min_lr_ratio = config_.optim().min_lr_ratio();
  schedule_.kind = config_.optim().schedule();
  schedule_.warmup_steps = config_.optim().warmup_steps();
  schedule_.total_steps = total_steps_;

  check_writable(output_dir_, "output_dir");
  if (config_.checkpoint().save_every() > 0 || config_.checkpoint().save_final())
    check_writable(checkpoint_dir_, "checkpoint folder");

  model_ = std::make_unique<Transformer>(model_config_, *params_, peft_,
                                         config_.train().micro_batch_size(),
                                         peft_.model_seq_len(seq_len));
  memory_ = plan_model_memory(*model_, ctx_);
  micro_batches_.resize(config_.train().grad_accum_steps());
}

Trainer::~Trainer() = default;

void Trainer::print_startup_report() const {
  const int64_t trainable = params_->trainable_count();
  const int64_t total = trainable + params_->frozen_count();
  log_ << "ft: model " << model_config_.summary() << "\n";
  log_ << "ft: method " << peft_.summary() << "\n";
  if (peft_.is_peft())
    log_ << "ft: base " << base_.description << " (fingerprint " << base_.fingerprint << ")\n";
  log_ << fmt::format("ft: parameters {} trainable of {} ({:.4g}%), {} on {} with {} threads\n",
                      format_count(trainable), format_count(total),
                      100.0 * static_cast<double>(trainable) / static_cast<double>(total),
                      config_.dtype(), device_name(ctx_.device), ctx_.num_threads);
  log_ << "ft: BLAS: " << blas_description() << "\n";
  log_ << fmt::format(
      "ft: memory: weights {} (trainable {}, frozen {}), gradients {}, optimizer state {}, "
      "activations {}, workspace {}\n",
      format_bytes(params_->weight_bytes()), format_bytes(params_->trainable_values().bytes()),
      format_bytes(params_->frozen_values().bytes()), format_bytes(params_->gradient_bytes()),
      format_bytes(params_->optimizer_bytes()), format_bytes(memory_.activations.capacity()),
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
  log_ << fmt::format(
      "ft: plan: {} steps of {} sequences ({} x {} accumulated) of {} tokens; {} sequences per "
      "epoch{}\n",
      total_steps_, micro * accum, micro, accum, data_config.seq_len(), train_loader_->size(),
      data_config.packing() ? fmt::format(" packed into {} rows", rows_per_epoch) : "");
  const double epochs = static_cast<double>(total_steps_) * static_cast<double>(micro * accum) *
                        comm_->size() / static_cast<double>(rows_per_epoch);
  log_ << "ft: tokens: " << data::format_token_plan(train_report_, epochs) << "\n";
}

void Trainer::load_adapter(const std::string& path) {
  if (std::filesystem::is_directory(path)) {
    import_peft_adapter(path, peft_, model_config_, *params_, base_.fingerprint);
  } else {
    if (!std::filesystem::exists(path)) fail("peft.init_from = {}: no such file or folder", path);
    if (!is_adapter_checkpoint(path))
      fail(
          "peft.init_from = {}: not an adapter checkpoint (a full checkpoint is a base: use "
          "model.init_from)",
          path);
    check_same_adapter(saved_peft_spec(path, model_config_), peft_, "peft.init_from = " + path);
    load_training_checkpoint(path, *params_, /*with_optimizer=*/false, &base_);
  }
  log_ << "ft: adapter initialized from " << path << "\n";
}

EvalMetrics Trainer::evaluate(int64_t step, bool full) {
  EvalMetrics result;
  result.step = step;
  if (!valid_loader_) return result;
  const int micro = config_.train().micro_batch_size();
  const int64_t limit = full ? 0 : config_.train().eval_batches();
  // A sample of eval_batches micro-batches, drawn once by seed so every evaluation of the run
  // sees the same rows (the curve compares steps, not samples); the whole set when full.
  const int64_t rows =
      limit == 0 ? valid_loader_->size() : std::min<int64_t>(valid_loader_->size(), limit * micro);
  std::vector<int64_t> order = data::epoch_order(valid_loader_->size(), seed_, 0);
  order.resize(rows);
  std::sort(order.begin(), order.end());
  double loss_sum = 0.0;
  double counts[2] = {0.0, 0.0};  // correct, tokens
  for (int64_t first = 0; first < rows; first += micro) {
    valid_loader_->eval_batch(order, first, micro, eval_batch_);
    lay_out_batch(peft_, eval_batch_, &layout_scratch_);
    ForwardResult forward = model_->forward(ctx_, model_inputs(eval_batch_));
    loss_sum += forward.loss_sum;
    counts[0] += static_cast<double>(forward.correct);
    counts[1] += static_cast<double>(eval_batch_.target_tokens);
  }
  double reduced[3] = {loss_sum, counts[0], counts[1]};
  comm_->all_reduce_sum(reduced);
  result.tokens = static_cast<int64_t>(reduced[2]);
  result.loss = reduced[2] > 0 ? reduced[0] / reduced[2] : 0.0;
  result.accuracy = reduced[2] > 0 ? reduced[1] / reduced[2] : 0.0;
  return result;
}

void Trainer::save_checkpoint(int64_t step, int64_t trained_tokens) {
  state_.step = step;
  state_.cursor = train_loader_->cursor();
  state_.trained_tokens = trained_tokens;
  if (comm_->rank() == 0) {
    std::string path = checkpoint::step_checkpoint_path(checkpoint_dir_, step);
    save_training_checkpoint(path, *params_, state_, config_, model_config_.summary(),
                             peft_.is_peft() ? &base_ : nullptr);
    checkpoint::remove_old_checkpoints(checkpoint_dir_, config_.checkpoint().keep_last());
  }
  comm_->barrier();
}

TrainSummary Trainer::run() {
  using Clock = std::chrono::steady_clock;
  print_startup_report();
  MetricsLog metrics(output_dir_, /*resume_step=*/state_.step);
  TrainSummary summary;
  summary.steps = state_.step;
  int64_t trained_tokens = state_.trained_tokens;
  const int micro = config_.train().micro_batch_size();
  const int64_t seq_len = config_.data().seq_len();
  // FLOPs of the rows the model runs (virtual rows included); a frozen base skips its
  // weight-gradient products, 2N of the 6N.
  const int64_t model_rows = peft_.model_seq_len(seq_len);
  const double flops_per_token =
      (model_config_.training_flops_per_token(model_rows) -
       (peft_.is_peft() ? 2.0 * static_cast<double>(model_config_.non_embedding_parameters())
                        : 0.0)) *
      static_cast<double>(model_rows) / static_cast<double>(seq_len);
  const int eval_every = config_.train().eval_every();
  const int save_every = config_.checkpoint().save_every();
  if (valid_loader_ && state_.step == 0 && config_.train().eval_at_start()) {
    summary.initial_eval = evaluate(0);
    if (comm_->rank() == 0) {
      metrics.log_eval(*summary.initial_eval);
      log_ << fmt::format("ft: before training: valid loss {:.4f} (accuracy {:.3f})\n",
                          summary.initial_eval->loss, summary.initial_eval->accuracy);
    }
  }
  const auto start = Clock::now();
  int64_t steps_timed = 0;

  for (int64_t step = state_.step + 1; step <= total_steps_; ++step) {
    const auto step_start = Clock::now();
    const int64_t epoch = train_loader_->cursor().epoch;
    // Fetch the whole global batch first: the loss is normalized by its target-token count.
    double counts[1] = {0.0};
    for (data::Batch& batch : micro_batches_) {
      train_loader_->next(micro, batch);
      lay_out_batch(peft_, batch, &layout_scratch_);
      counts[0] += static_cast<double>(batch.target_tokens);
    }
    comm_->all_reduce_sum(counts);
    const double step_targets = counts[0];
    const double dloss = step_targets > 0 ? 1.0 / step_targets : 0.0;

    params_->zero_grads(ctx_);
    const int64_t products_before = counters_.weight_grad_products;
    double sums[2] = {0.0, 0.0};  // loss, correct
    for (size_t index = 0; index < micro_batches_.size(); ++index) {
      data::Batch& batch = micro_batches_[index];
      ModelInputs inputs = model_inputs(batch);
      if (peft_.lora_dropout > 0)
        inputs.dropout_seed =  // a fresh mask per (step, micro-batch); never 0 (= no dropout)
            (Random(seed_, static_cast<uint64_t>(step)).next_u64() ^
             (index * 0x9e3779b97f4a7c15ull)) |
            1;
      ForwardResult forward = model_->forward(ctx_, inputs);
      model_->backward(ctx_, inputs, dloss);
      sums[0] += forward.loss_sum;
      sums[1] += static_cast<double>(forward.correct);
    }
    comm_->all_reduce_sum(params_->trainable_grads());
    comm_->all_reduce_sum(sums);
    const double grad_norm = optimizer_->clip_gradients(ctx_);
    if (!std::isfinite(grad_norm) || !std::isfinite(sums[0]))
      fail(
          "step {}: the loss ({}) or gradient norm ({}) is not finite; stopping before the update "
          "so the saved checkpoints stay valid",
          step, sums[0], grad_norm);
    const double lr = schedule_.at(step);
    optimizer_->update(ctx_, lr, step);

    StepMetrics m;
    m.step = step;
    m.total_steps = total_steps_;
    m.epoch = epoch;
    m.loss = step_targets > 0 ? sums[0] / step_targets : 0.0;
    m.accuracy = step_targets > 0 ? sums[1] / step_targets : 0.0;
    m.lr = lr;
    m.grad_norm = grad_norm;
    m.step_tokens = static_cast<int64_t>(step_targets);
    m.weight_grad_products = counters_.weight_grad_products - products_before;
    trained_tokens += m.step_tokens;
    m.trained_tokens = trained_tokens;

    const auto step_end = Clock::now();
    std::optional<EvalMetrics> eval;
    if (valid_loader_ && ((eval_every > 0 && step % eval_every == 0) || step == total_steps_)) {
      eval = evaluate(step);
      summary.final_eval = eval;
    }
    m.step_seconds = std::chrono::duration<double>(step_end - step_start).count();
    const double input_tokens =
        static_cast<double>(micro) * seq_len * micro_batches_.size() * comm_->size();
    m.tokens_per_second = input_tokens / m.step_seconds;
    m.gflops_per_second = input_tokens * flops_per_token / m.step_seconds * 1e-9;
    m.elapsed_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    ++steps_timed;
    m.eta_seconds = m.elapsed_seconds / steps_timed * static_cast<double>(total_steps_ - step);
    summary.step_losses.push_back(m.loss);
    summary.steps = step;

    if (comm_->rank() == 0) {
      metrics.log_step(m, eval);
      if (eval) metrics.log_eval(*eval);
      if (step % config_.train().log_every() == 0 || step == total_steps_ || step == 1) {
        log_ << format_progress(m);
        if (eval)
          log_ << fmt::format(" | valid loss {:.4f} acc {:.3f}", eval->loss, eval->accuracy);
        log_ << std::endl;
      }
    }
    const bool last = step == total_steps_;
    if ((save_every > 0 && step % save_every == 0) || (last && config_.checkpoint().save_final())) {
      save_checkpoint(step, trained_tokens);
      summary.last_checkpoint = checkpoint::step_checkpoint_path(checkpoint_dir_, step);
    }
  }
  summary.trained_tokens = trained_tokens;
  if (valid_loader_ && summary.final_eval) {
    // The last step's evaluation covered a sample when eval_batches > 0: the end of training also
    // reports the whole validation set (OpenAI's full_valid_loss).
    const int64_t sampled_rows =
        static_cast<int64_t>(config_.train().eval_batches()) * config_.train().micro_batch_size();
    summary.full_eval = config_.train().eval_batches() == 0 || sampled_rows >= valid_loader_->size()
                            ? *summary.final_eval
                            : evaluate(summary.steps, /*full=*/true);
    if (comm_->rank() == 0) {
      metrics.log_full_eval(*summary.full_eval);
      log_ << fmt::format("ft: full validation set: loss {:.4f} (accuracy {:.3f}, {} tokens)\n",
                          summary.full_eval->loss, summary.full_eval->accuracy,
                          format_count(summary.full_eval->tokens));
    }
  }
  if (peft_.is_peft() && config_.peft().export_peft() && comm_->rank() == 0) {
    PeftExportInfo info;
    // A Hugging Face model folder when the base came from one; otherwise none (PEFT writes null),
    // since an ft checkpoint or preset is nothing transformers could load.
    const std::filesystem::path init_from(config_.model().init_from());
    if (!init_from.empty() && std::filesystem::is_directory(init_from))
      info.base_model_name_or_path = init_from.string();
    else if (init_from.extension() == ".safetensors" || init_from.extension() == ".json")
      info.base_model_name_or_path = init_from.parent_path().string();
    info.base_fingerprint = base_.fingerprint;
    export_peft_adapter(output_dir_ + "/adapter", peft_, model_config_, *params_, info, ctx_);
    summary.peft_adapter_dir = output_dir_ + "/adapter";
  }
  summary.wall_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  log_ << fmt::format("ft: done: {} steps, {} trained tokens, final train loss {:.4f}",
                      summary.steps, format_count(trained_tokens),
                      summary.step_losses.empty() ? 0.0 : summary.step_losses.back());
  if (summary.final_eval)
    log_ << fmt::format(", valid loss {:.4f} (accuracy {:.3f})", summary.final_eval->loss,
                        summary.final_eval->accuracy);
  log_ << ", wall time " << format_duration(summary.wall_seconds) << "\n";
  if (!summary.last_checkpoint.empty())
    log_ << "ft: checkpoint " << summary.last_checkpoint << "\n";
  if (!summary.peft_adapter_dir.empty())
    log_ << "ft: PEFT adapter (Hugging Face format) " << summary.peft_adapter_dir << "\n";
  return summary;
}

}  // namespace ft
