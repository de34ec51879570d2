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
#include "parallel/parameter_distribution.h"
#include "parallel/stop_signal.h"
#include "runtime/blas.h"
#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "runtime/config/config.h"
#include "runtime/data/hf_tokenizer.h"
#include "runtime/device.h"
#include "runtime/random.h"
#include "runtime/train/input_layout.h"
#include "runtime/train/run_parameters.h"
#include "runtime/train/starting_point.h"

namespace ft {
namespace {

// 2^64 / golden ratio: spreads consecutive micro-batch indices over all 64 bits of a seed.
constexpr uint64_t kGoldenRatio64 = 0x9e3779b97f4a7c15ull;

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

}  // namespace

Trainer::Trainer(TrainerOptions options)
    : options_(std::move(options)),
      config_(options_.config),
      log_(options_.world && options_.world->rank() != 0
               ? static_cast<std::ostream&>(null_log_)
               : (options_.log ? *options_.log : std::cout)) {
  config::validate(config_);
  const Device device = select_device(config_.device());
  precision_ = resolve_precision(config_.dtype(), device);
  if (device == Device::cuda && options_.world && options_.world->size() > 1)
    fail(
        "device: cuda with {} ranks: multi-GPU training is not available yet (the NCCL data path "
        "is not wired into the trainer); run one process on one GPU, or device: cpu for "
        "multi-rank runs",
        options_.world->size());
  run_device_ = std::make_unique<RunDevice>(device);
  ctx_ = run_device_->context();
  ctx_.num_threads = resolve_threads(config_.threads());
  ctx_.counters = &counters_;
  omp_set_num_threads(ctx_.num_threads);
  openblas_set_num_threads(ctx_.num_threads);
  groups_ = options_.world && options_.world->size() > 1
                ? std::make_unique<ProcessGroups>(options_.world, config_.parallel().tp())
                : std::make_unique<ProcessGroups>(ProcessGroups::single());
  if (!options_.world || options_.world->size() == 1)
    make_parallel_layout(1, 0, config_.parallel().tp());  // parallel.tp > 1 needs that many ranks
  const ParallelLayout& layout = groups_->layout();

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
                               config_.train().grad_accum_steps() * layout.dp;
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
  check_tensor_parallel(model_config_, peft_, layout.tp);
  const DType dtype = precision_.master;
  StartingPointRequest request;
  request.config = &config_;
  request.model = &model_config_;
  request.peft = &peft_;
  request.tokenizer = tokenizer_.get();
  request.resume_path = resume_path;
  request.checkpoint_dir = checkpoint_dir_;
  request.total_steps = total_steps_;
  request.train_sequences = train_loader_->size();
  request.num_threads = ctx_.num_threads;
  const std::vector<ParamSpec> full_specs = run_param_specs(model_config_, peft_);
  const bool zero1 = config_.parallel().zero1() && layout.dp > 1;
  StartingPoint start;
  std::unique_ptr<ParameterStore> full_start;  // world rank 0 of a multi-rank job
  if (layout.world_size == 1 && ctx_.device == Device::cpu) {
    params_ = std::make_unique<ParameterStore>(full_specs, dtype, ctx_.device);
    start = load_starting_point(request, *params_);
    shard_rules_.assign(params_->all().size(), ShardRule{});
    local_model_config_ = model_config_;
    local_peft_ = peft_;
  } else if (layout.world_size == 1) {
    // One GPU: the starting point is read on the host (checkpoints, Hugging Face weights and
    // adapters are host files), then copied once into the device store (fp32 masters and
    // moments, bf16 working copies and frozen weights).
    params_ = std::make_unique<ParameterStore>(full_specs, dtype, ctx_.device,
                                               ParameterStoreOptions{}, precision_.compute);
    ParameterStoreOptions staging;
    staging.gradients = false;
    staging.moments = !resume_path.empty();
    ParameterStore host(full_specs, dtype, Device::cpu, staging);
    start = load_starting_point(request, host);
    ParameterCopy upload;
    upload.moments = !resume_path.empty();
    copy_parameters(*params_, host, upload, ctx_, ctx_.num_threads);
    shard_rules_.assign(params_->all().size(), ShardRule{});
    local_model_config_ = model_config_;
    local_peft_ = peft_;
  } else {
    // World rank 0 builds the full-shape starting point; every rank keeps its shard of it.
    const TensorParallelRank tp_rank{layout.tp_rank, layout.tp};
    ParameterStoreOptions local_options;
    local_options.moments = !zero1;
    local_options.trainable_multiple = zero1 ? layout.dp : 1;
    params_ = std::make_unique<ParameterStore>(
        local_param_specs(full_specs, model_config_, peft_, tp_rank), dtype, ctx_.device,
        local_options);
    for (const ParamSpec& spec : full_specs)
      shard_rules_.push_back(shard_rule(spec, model_config_, peft_, tp_rank));
    if (layout.rank == 0) {
      ParameterStoreOptions staging;
      staging.gradients = false;
      staging.moments = !resume_path.empty();
      full_start = std::make_unique<ParameterStore>(full_specs, dtype, Device::cpu, staging);
      start = load_starting_point(request, *full_start);
    }
    broadcast_starting_point(start, groups_->world(), 0);
    local_model_config_ = local_model_config(model_config_, tp_rank);
    local_peft_ = local_peft_spec(peft_, model_config_, tp_rank);
    if (layout.tp > 1 && model_config_.num_kv_heads < layout.tp)
      kv_group_ = groups_->tp().split(kv_group(model_config_, tp_rank), layout.tp_rank);
  }
  state_ = start.state;
  base_ = start.base;
  log_ << start.messages;
  if (!resume_path.empty()) train_loader_->set_cursor(state_.cursor);

  AdamWConfig adamw;
  adamw.beta1 = config_.optim().beta1();
  adamw.beta2 = config_.optim().beta2();
  adamw.eps = config_.optim().eps();
  adamw.weight_decay = config_.optim().weight_decay();
  adamw.grad_clip = config_.optim().grad_clip();
  DataParallelOptions dp_options;
  dp_options.zero1 = zero1;
  dp_options.bucket_bytes = static_cast<int64_t>(config_.parallel().bucket_mb()) << 20;
  optimizer_ = std::make_unique<DataParallelOptimizer>(*params_, shard_rules_, *groups_,
                                                       kv_group_.get(), adamw, dp_options);
  if (layout.world_size > 1) {
    Buffer scratch;
    const bool resumed = !resume_path.empty();
    FlatMoments moments = optimizer_->moments_to_load(scratch);
    scatter_parameters(full_start.get(), *params_, resumed ? &moments : nullptr, *groups_,
                       model_config_, peft_);
    if (resumed) optimizer_->load_moments(moments);
    full_start.reset();
  }
  schedule_.peak_lr = config_.optim().lr();
  schedule_.min_lr_ratio = config_.optim().min_lr_ratio();
  schedule_.kind = config_.optim().schedule();
  schedule_.warmup_steps = config_.optim().warmup_steps();
  schedule_.total_steps = total_steps_;

  check_writable(output_dir_, "output_dir");
  if (config_.checkpoint().save_every() > 0 || config_.checkpoint().save_final())
    check_writable(checkpoint_dir_, "checkpoint folder");

  ModelSharding sharding;
  if (layout.tp > 1) {
    sharding.tp = &groups_->tp();
    sharding.vocab_begin = vocab_range(model_config_.vocab_size, {layout.tp_rank, layout.tp}).first;
    sharding.vocab_size = model_config_.vocab_size;
  }
  model_ = std::make_unique<Transformer>(local_model_config_, *params_, local_peft_,
                                         config_.train().micro_batch_size(),
                                         peft_.model_seq_len(seq_len), sharding);
  memory_ = plan_model_memory(*model_, ctx_);
  device_inputs_ = std::make_unique<DeviceInputs>(ctx_.device, config_.train().micro_batch_size(),
                                                  peft_.model_seq_len(seq_len));
  micro_batches_.resize(config_.train().grad_accum_steps());
}

Trainer::~Trainer() = default;

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
  // Data-parallel ranks take every dp-th micro-batch; tensor-parallel ranks of one replica share.
  const ParallelLayout& layout = groups_->layout();
  for (int64_t first = static_cast<int64_t>(layout.dp_rank) * micro; first < rows;
       first += static_cast<int64_t>(layout.dp) * micro) {
    valid_loader_->eval_batch(order, first, micro, eval_batch_);
    lay_out_batch(peft_, eval_batch_, &layout_scratch_);
    ForwardResult forward =
        model_->forward(ctx_, device_inputs_->upload(model_inputs(eval_batch_)));
    loss_sum += forward.loss_sum;
    counts[0] += static_cast<double>(forward.correct);
    counts[1] += static_cast<double>(eval_batch_.target_tokens);
  }
  double reduced[3] = {loss_sum, counts[0], counts[1]};
  groups_->dp().all_reduce_sum(reduced);
  result.tokens = static_cast<int64_t>(reduced[2]);
  result.loss = reduced[2] > 0 ? reduced[0] / reduced[2] : 0.0;
  result.accuracy = reduced[2] > 0 ? reduced[1] / reduced[2] : 0.0;
  return result;
}

TrainSummary Trainer::run() {
  using Clock = std::chrono::steady_clock;
  print_startup_report();
  const ParallelLayout& layout = groups_->layout();
  const bool writer = layout.rank == 0;  // only world rank 0 writes files and prints
  std::optional<MetricsLog> metrics;
  if (writer) metrics.emplace(output_dir_, /*resume_step=*/state_.step);
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
    if (writer) {
      metrics->log_eval(*summary.initial_eval);
      log_ << fmt::format("ft: before training: valid loss {:.4f} (accuracy {:.3f})\n",
                          summary.initial_eval->loss, summary.initial_eval->accuracy);
    }
  }
  const auto start = Clock::now();
  int64_t steps_timed = 0;

  for (int64_t step = state_.step + 1; step <= total_steps_; ++step) {
    const auto step_start = Clock::now();
    const CommunicatorStats comm_before = communication_totals();
    const int64_t epoch = train_loader_->cursor().epoch;
    // Fetch the whole global batch first: the loss is normalized by its target-token count. The
    // global batch is dp x accum micro-batches in the order one rank would take them; data-
    // parallel rank r trains micro-batches [r * accum, (r + 1) * accum).
    double counts[1] = {0.0};
    const int64_t accum = static_cast<int64_t>(micro_batches_.size());
    for (int64_t global = 0; global < accum * layout.dp; ++global) {
      if (global / accum != layout.dp_rank) {
        train_loader_->next(micro, skipped_batch_);
        continue;
      }
      data::Batch& batch = micro_batches_[global % accum];
      train_loader_->next(micro, batch);
      lay_out_batch(peft_, batch, &layout_scratch_);
      counts[0] += static_cast<double>(batch.target_tokens);
    }
    groups_->dp().all_reduce_sum(counts);
    const double step_targets = counts[0];
    const double dloss = step_targets > 0 ? 1.0 / step_targets : 0.0;

    params_->zero_grads(ctx_);
    const int64_t products_before = counters_.weight_grad_products;
    double sums[2] = {0.0, 0.0};  // loss, correct
    for (size_t index = 0; index < micro_batches_.size(); ++index) {
      data::Batch& batch = micro_batches_[index];
      ModelInputs inputs = device_inputs_->upload(model_inputs(batch));
      const uint64_t global_index = static_cast<uint64_t>(layout.dp_rank * accum) + index;
      if (peft_.lora_dropout > 0)
        inputs.dropout_seed =  // a fresh mask per (step, micro-batch); never 0 (= no dropout)
            (Random(seed_, static_cast<uint64_t>(step)).next_u64() ^
             (global_index * kGoldenRatio64)) |
            1;
      ForwardResult forward = model_->forward(ctx_, inputs);
      fault_injection_.at_step(step, layout.rank);
      model_->backward(ctx_, inputs, dloss);
      sums[0] += forward.loss_sum;
      sums[1] += static_cast<double>(forward.correct);
    }
    optimizer_->reduce_gradients(ctx_);
    groups_->dp().all_reduce_sum(sums);  // tensor-parallel ranks of a replica agree already
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
        static_cast<double>(micro) * seq_len * micro_batches_.size() * layout.dp;
    m.tokens_per_second = input_tokens / m.step_seconds;
    m.gflops_per_second = input_tokens * flops_per_token / m.step_seconds * 1e-9;
    m.elapsed_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    ++steps_timed;
    m.eta_seconds = m.elapsed_seconds / steps_timed * static_cast<double>(total_steps_ - step);
    summary.step_losses.push_back(m.loss);
    summary.steps = step;

    const CommunicatorStats comm_after = communication_totals();
    m.comm_seconds = comm_after.seconds - comm_before.seconds;
    m.comm_bytes = comm_after.bytes - comm_before.bytes;
    summary.step_comm_bytes.push_back(m.comm_bytes);
    if (writer) {
      metrics->log_step(m, eval);
      if (eval) metrics->log_eval(*eval);
    }
    if (step % config_.train().log_every() == 0 || step == total_steps_ || step == 1) {
      log_ << format_progress(m);
      if (eval) log_ << fmt::format(" | valid loss {:.4f} acc {:.3f}", eval->loss, eval->accuracy);
      log_ << std::endl;
    }
    const bool last = step == total_steps_;
    bool saved = false;
    if ((save_every > 0 && step % save_every == 0) || (last && config_.checkpoint().save_final())) {
      save_checkpoint(step, trained_tokens);
      summary.last_checkpoint = checkpoint::step_checkpoint_path(checkpoint_dir_, step);
      saved = true;
    }
    // SIGTERM / SIGUSR1 (Slurm's warning before the time limit) on any rank: every rank stops
    // after the same step, with a checkpoint to --resume from.
    if (!last && any_rank_stop_requested(groups_->world())) {
      if (!saved) save_checkpoint(step, trained_tokens);
      summary.last_checkpoint = checkpoint::step_checkpoint_path(checkpoint_dir_, step);
      summary.stopped_early = true;
      log_ << "ft: stop requested by a signal: saved step " << step
           << "; continue with ft_train --resume" << std::endl;
      break;
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
    if (writer) metrics->log_full_eval(*summary.full_eval);
    log_ << fmt::format("ft: full validation set: loss {:.4f} (accuracy {:.3f}, {} tokens)\n",
                        summary.full_eval->loss, summary.full_eval->accuracy,
                        format_count(summary.full_eval->tokens));
  }
  std::unique_ptr<ParameterStore> gathered;
  const bool export_peft =
      peft_.is_peft() && config_.peft().export_peft() && !summary.stopped_early;
  if (export_peft && layout.world_size > 1)
    gathered = gather_full_parameters(/*frozen=*/true, /*moments=*/false);
  else if (export_peft && writer && ctx_.device != Device::cpu)
    gathered = host_copy(/*frozen=*/true, /*moments=*/false);
  if (export_peft && writer) {
    PeftExportInfo info;
    // A Hugging Face model folder when the base came from one; otherwise none (PEFT writes null),
    // since an ft checkpoint or preset is nothing transformers could load.
    const std::filesystem::path init_from(config_.model().init_from());
    if (!init_from.empty() && std::filesystem::is_directory(init_from))
      info.base_model_name_or_path = init_from.string();
    else if (init_from.extension() == ".safetensors" || init_from.extension() == ".json")
      info.base_model_name_or_path = init_from.parent_path().string();
    info.base_fingerprint = base_.fingerprint;
    OpContext host;
    host.num_threads = ctx_.num_threads;
    export_peft_adapter(output_dir_ + "/adapter", peft_, model_config_,
                        gathered ? *gathered : *params_, info, gathered ? host : ctx_);
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
  if (export_peft) summary.peft_adapter_dir = output_dir_ + "/adapter";
  if (!summary.peft_adapter_dir.empty())
    log_ << "ft: PEFT adapter (Hugging Face format) " << summary.peft_adapter_dir << "\n";
  return summary;
}

}  // namespace ft
