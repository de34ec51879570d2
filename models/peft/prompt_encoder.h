// The virtual tokens of prompt tuning and P-tuning: P rows placed in front of every sequence's
// token embeddings. Prompt tuning trains the rows directly; P-tuning produces them with PEFT's MLP
// encoder (Linear C->H, ReLU, Linear H->H, ReLU, Linear H->C) from a trained embedding.
#pragma once

#include "kernels/ops.h"
#include "models/peft/peft_spec.h"
#include "runtime/buffer.h"
#include "runtime/parameters.h"

namespace ft {

class PromptEncoder {
 public:
  PromptEncoder(const PeftSpec& spec, const ModelConfig& model, const ParameterStore& params);

  void bind_activations(Arena& arena);
  // The (P, C) rows, valid until the next forward.
  Tensor forward(const OpContext& ctx);
  // Starts a backward: d(rows) is summed over the batch by accumulate_rows into the encoder's
  // own buffer (P-tuning, zeroed here) or into the parameter gradient itself (prompt tuning).
  void begin_backward(const OpContext& ctx);
  // Adds one sequence's (P, C) virtual-row gradient, in the activations' dtype. Under mixed
  // precision it is widened to the f32 gradient before the sum (bf16 sums would lose bits).
  void accumulate_rows(const OpContext& ctx, Tensor drows);
  // Carries d(rows) into the encoder's parameters (P-tuning). Needs the forward's activations.
  void end_backward(const OpContext& ctx);

 private:
  struct Linear {
    Tensor weight, bias, dweight, dbias;
  };
  bool mlp_ = false;
  bool mixed_ = false;  // bf16 activations, f32 parameter gradients
  int64_t rows_ = 0, width_ = 0, hidden_ = 0;
  DType dtype_;
  Tensor embedding_, dembedding_;
  Linear layers_[3];
  Tensor h1_, a1_, h2_, a2_, table_;  // MLP activations and output
  Tensor dtable_, dh_, da_, dembedding_rows_;
  Tensor dtable_f32_, rows_f32_;  // mixed precision: f32 sum of d(rows) (P-tuning), widened rows
};

}  // namespace ft
