// Moving parameters between the full-shape form (checkpoints, Hugging Face weights, seeded
// initialization: what one process would hold) and the shards each rank holds under a tensor-
// and data-parallel layout. Checkpoints stay unsharded on disk, so any layout loads any other's.
//
// World rank 0 holds the full store; every rank holds its local store, built from
// local_param_specs (parallel/tensor_parallel.h). Optimizer moments travel with the values when
// asked: as the local store's own moments, or as flat buffers over the local trainable layout
// (ZeRO-1, whose sharded optimizer reassembles them for a checkpoint).
#pragma once

#include "models/model_config.h"
#include "models/peft/peft_spec.h"
#include "parallel/process_groups.h"
#include "runtime/parameters.h"

namespace ft {

// Flat (local trainable count) moment buffers on the host.
struct FlatMoments {
  Tensor m, v;
};

// Every rank's local values (and, when `moments` is non-null, the moments into it) from `full`,
// which world rank 0 passes and every other rank passes as nullptr. Frozen and trainable
// parameters both travel. Tensor by tensor: rank 0 broadcasts each full tensor over the world and
// each rank keeps its shard, so no rank but 0 ever holds more than one full tensor.
void scatter_parameters(const ParameterStore* full, const ParameterStore& local,
                        const FlatMoments* moments, const ProcessGroups& groups,
                        const ModelConfig& config, const PeftSpec& peft);

// The reverse: `full` on world rank 0 (nullptr elsewhere) receives every parameter's values (and
// moments when non-null) assembled from the shards of the ranks with dp_rank 0. `frozen`: also
// the frozen parameters (a full checkpoint of a PEFT run's base, or a merged model); adapter
// checkpoints skip them.
void gather_parameters(const ParameterStore& local, const FlatMoments* moments,
                       ParameterStore* full, bool frozen, const ProcessGroups& groups,
                       const ModelConfig& config, const PeftSpec& peft);

}  // namespace ft
