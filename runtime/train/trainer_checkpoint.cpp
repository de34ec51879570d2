// The trainer's checkpoints: unsharded on disk, gathered to rank 0 from every rank's shards (and
// ZeRO-1 moment slices), or copied to the host from the GPU.
#include "parallel/parameter_distribution.h"
#include "runtime/checkpoint/hdf5_checkpoint.h"
#include "runtime/train/run_device.h"
#include "runtime/train/run_parameters.h"
#include "runtime/train/trainer.h"

namespace ft {

std::unique_ptr<ParameterStore> Trainer::gather_full_parameters(bool frozen, bool moments) {
  ParameterStoreOptions staging;
  staging.gradients = false;
  staging.moments = moments;
  std::unique_ptr<ParameterStore> full;
  if (groups_->layout().rank == 0)
    full = std::make_unique<ParameterStore>(run_param_specs(model_config_, peft_), params_->dtype(),
                                            Device::cpu, staging);
  Buffer scratch;
  FlatMoments flat_moments;
  if (moments) flat_moments = optimizer_->moments_for_checkpoint(scratch);
  gather_parameters(*params_, moments ? &flat_moments : nullptr, full.get(), frozen, *groups_,
                    model_config_, peft_);
  return full;
}

std::unique_ptr<ParameterStore> Trainer::host_copy(bool frozen, bool moments) const {
  ParameterStoreOptions staging;
  staging.gradients = false;
  staging.moments = moments;
  auto host = std::make_unique<ParameterStore>(run_param_specs(model_config_, peft_),
                                               params_->dtype(), Device::cpu, staging);
  ParameterCopy what;
  what.moments = moments;
  what.frozen = frozen;
  OpContext host_ctx;
  host_ctx.num_threads = ctx_.num_threads;
  copy_parameters(*host, *params_, what, host_ctx, ctx_.num_threads);
  return host;
}

void Trainer::save_checkpoint(int64_t step, int64_t trained_tokens) {
  state_.step = step;
  state_.cursor = train_loader_->cursor();
  state_.trained_tokens = trained_tokens;
  // Unsharded on disk: one file, written by world rank 0 from every rank's shards.
  std::unique_ptr<ParameterStore> gathered;
  if (groups_->layout().world_size > 1)
    gathered = gather_full_parameters(/*frozen=*/!peft_.is_peft(), /*moments=*/true);
  if (groups_->layout().rank == 0) {
    std::string path = checkpoint::step_checkpoint_path(checkpoint_dir_, step);
    if (!gathered && ctx_.device != Device::cpu)
      gathered = host_copy(/*frozen=*/!peft_.is_peft(), /*moments=*/true);
    save_training_checkpoint(path, gathered ? *gathered : *params_, state_, config_,
                             model_config_.summary(), peft_.is_peft() ? &base_ : nullptr);
    checkpoint::remove_old_checkpoints(checkpoint_dir_, config_.checkpoint().keep_last());
  }
  groups_->world().barrier();
}

}  // namespace ft
