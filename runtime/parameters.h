// Flat parameter memory. Trainable parameters live in one contiguous buffer, frozen ones in
// another; gradients and the two AdamW moments exist only for the trainable buffer and share its
// layout, so all-reduce, clipping and the optimizer each run over one span.
//
// Mixed precision (the CUDA backend's bf16 training): the store's dtype is that of the master
// weights, gradients and moments (fp32); the model computes with `compute_dtype` (bf16). Each
// trainable parameter then has a working copy in compute_dtype that AdamW writes beside the
// master (adamw_update's params_copy), and frozen parameters exist in compute_dtype only: they
// never need a master copy.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/context.h"
#include "models/param_layout.h"
#include "runtime/buffer.h"

namespace ft {

struct Parameter {
  ParamSpec spec;
  Tensor value;        // trainable: the master weights (the store's dtype); frozen: compute_dtype
  Tensor compute;      // what the model reads: `value`, or its compute_dtype working copy
  Tensor grad;         // empty when frozen
  Tensor adam_m;       // empty when frozen
  Tensor adam_v;       // empty when frozen
  int64_t offset = 0;  // element offset in its flat buffer (trainable or frozen)
};

struct ParameterStoreOptions {
  bool gradients = true;  // false: values only (checkpoint staging)
  bool moments = true;    // false: the optimizer keeps its own (ZeRO-1 shards), or none
  // The trainable buffers' element count is rounded up to a multiple of this (ZeRO-1: the data-
  // parallel size, so reduce-scatter and all-gather split them evenly); the padding stays 0.
  int64_t trainable_multiple = 1;
};

class ParameterStore {
 public:
  // compute_dtype: the dtype the model computes with; unset or equal to `dtype`: one copy of
  // every parameter. Otherwise mixed precision (see the top of this file).
  ParameterStore(std::vector<ParamSpec> specs, DType dtype, Device device,
                 ParameterStoreOptions options = {}, std::optional<DType> compute_dtype = {});

  // Seeded initialization: each parameter draws from its own stream, keyed by (seed, name), so
  // adding a parameter does not change the others' values.
  void initialize(uint64_t seed);

  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const Parameter& at(const std::string& name) const;
  const std::vector<Parameter>& all() const { return params_; }

  DType dtype() const { return dtype_; }  // master weights, gradients and moments
  DType compute_dtype() const { return compute_dtype_; }
  bool mixed_precision() const { return compute_dtype_ != dtype_; }
  Device device() const { return device_; }
  int64_t trainable_count() const { return trainable_count_; }
  int64_t frozen_count() const { return frozen_count_; }
  // Flat views over every trainable parameter / its gradient / its moments.
  Tensor trainable_values() const { return flat(trainable_); }
  Tensor trainable_grads() const { return flat(grads_); }
  Tensor adam_m() const { return flat(m_); }
  Tensor adam_v() const { return flat(v_); }
  Tensor frozen_values() const { return flat(frozen_); }  // in compute_dtype
  // The trainable parameters' working copies (mixed precision; otherwise trainable_values()).
  Tensor trainable_compute_values() const;
  // Rewrites every working copy from its master weights (after loading them). No-op without
  // mixed precision.
  void refresh_compute_copy(const OpContext& ctx) const;
  // The trainable values and gradients with their padding (ParameterStoreOptions).
  int64_t padded_trainable_count() const { return padded_trainable_count_; }
  Tensor padded_trainable_values() const { return padded(trainable_); }
  Tensor padded_trainable_grads() const { return padded(grads_); }

  void zero_grads(const OpContext& ctx) const;
  // Bytes held, per category, for the start-up memory report.
  size_t weight_bytes() const {
    return trainable_.bytes() + trainable_compute_.bytes() + frozen_.bytes();
  }
  size_t gradient_bytes() const { return grads_.bytes(); }
  size_t optimizer_bytes() const { return m_.bytes() + v_.bytes(); }

 private:
  Tensor flat(const Buffer& buffer) const;    // the trainable (or frozen) elements
  Tensor padded(const Buffer& buffer) const;  // with the trainable padding
  DType dtype_;
  DType compute_dtype_;
  Device device_;
  std::vector<Parameter> params_;
  std::unordered_map<std::string, size_t> index_;
  int64_t trainable_count_ = 0;
  int64_t frozen_count_ = 0;
  int64_t padded_trainable_count_ = 0;
  Buffer trainable_, trainable_compute_, frozen_, grads_, m_, v_;
};

}  // namespace ft
