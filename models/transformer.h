// The decoder-only transformer: explicit forward and backward over flat parameters and a planned
// activation arena. One class covers Llama, Mistral, Qwen2 and GPT-2; the ModelConfig picks the
// norm, positions, MLP and biases.
//
// Gradients: parameter gradients accumulate into the ParameterStore's gradient buffer (so
// micro-batches add up); frozen parameters have none and their weight-gradient products are
// skipped; the backward stops descending below the lowest layer that holds a trainable parameter.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/ops.h"
#include "models/model_config.h"
#include "models/peft/lora.h"
#include "models/peft/peft_spec.h"
#include "models/peft/prefix_encoder.h"
#include "models/peft/prompt_encoder.h"
#include "parallel/communicator.h"
#include "runtime/buffer.h"
#include "runtime/parameters.h"

namespace ft {

// One micro-batch, (B, T) row-major, as i32 tensors on the model's device. With prompt tuning
// or P-tuning the first P rows of each sequence are the virtual tokens: their ids are ignored
// (any valid id), their targets are kIgnoreIndex, and positions run 0..T-1 (see input_layout.h).
struct ModelInputs {
  Tensor input_ids;           // (B*T)
  Tensor positions;           // (B*T)
  Tensor targets;             // (B*T), ops::kIgnoreIndex where no loss
  Tensor segment_ids;         // (B, T), optional (packed sequences)
  uint64_t dropout_seed = 0;  // LoRA dropout's mask seed for this micro-batch; 0: no dropout
};

// Megatron tensor parallelism as the model sees it (parallel/tensor_parallel.h holds the sharding
// rules; the model is built from local_model_config and the local parameter shards). The
// row-parallel projections (attention output, down) all-reduce their outputs over `tp` in the
// forward, the column-parallel ones (q/k/v, gate/up) their input gradients in the backward; the
// token embedding and LM head are vocabulary-parallel, with a vocabulary-parallel cross-entropy.
struct ModelSharding {
  Communicator* tp = nullptr;  // nullptr or a group of 1: the whole model on this rank
  int64_t vocab_begin = 0;     // this rank's first vocabulary row
  int64_t vocab_size = 0;      // the full vocabulary
  bool active() const { return tp != nullptr && tp->size() > 1; }
};

struct ForwardResult {
  double loss_sum = 0.0;  // sum of per-token losses over the micro-batch's targets
  int64_t correct = 0;    // targets equal to the logits' argmax
};

class Transformer {
 public:
  // seq_len: model rows per sequence, including prompt tuning's virtual rows (PeftSpec::
  // model_seq_len). `params` holds the base model and the adapter named by `peft`.
  // With tensor parallelism `config`, `params` and `peft` are this rank's (local_model_config,
  // the shards, local_peft_spec).
  Transformer(const ModelConfig& config, const ParameterStore& params, const PeftSpec& peft,
              int64_t batch_size, int64_t seq_len, const ModelSharding& sharding = {});
  Transformer(const ModelConfig& config, const ParameterStore& params, int64_t batch_size,
              int64_t seq_len)
      : Transformer(config, params, PeftSpec{}, batch_size, seq_len) {}
  ~Transformer();

  // Takes every activation from `arena`. Call once with Arena::measuring() to learn the size,
  // then with a real arena of at least that size.
  void bind_activations(Arena& arena);
  // Scratch bytes the ops need in OpContext::workspace.
  size_t workspace_bytes(const OpContext& ctx) const;

  ForwardResult forward(const OpContext& ctx, const ModelInputs& inputs);
  // dloss: the derivative of the optimized loss with respect to each token's loss (e.g. 1 / the
  // number of target tokens in the global batch). Requires the forward of the same inputs.
  void backward(const OpContext& ctx, const ModelInputs& inputs, double dloss);

  const ModelConfig& config() const { return config_; }
  const PeftSpec& peft() const { return peft_; }
  // The forward's logits (B*T, V) (tensor parallel: this rank's vocabulary columns); valid after
  // forward() until backward() reuses the buffer.
  Tensor logits() const { return logits_; }
  int64_t batch_size() const { return batch_; }
  int64_t seq_len() const { return seq_len_; }
  // Index of the lowest layer the backward visits (-1: down to the embeddings).
  int64_t lowest_backward_layer() const { return lowest_trainable_layer_; }

 private:
  // A parameter and its gradient (empty when frozen or absent).
  struct Weight {
    Tensor value;
    Tensor grad;
  };
  struct LayerWeights {
    Weight attn_norm_weight, attn_norm_bias;
    Weight q_weight, k_weight, v_weight, q_bias, k_bias, v_bias;
    Weight o_weight, o_bias;
    Weight mlp_norm_weight, mlp_norm_bias;
    Weight gate_weight, up_weight, up_bias, down_weight, down_bias;
  };
  struct LayerActivations {
    Tensor residual_in;  // (N, C) the layer's input
    Tensor attn_norm, attn_norm_mean, attn_norm_rstd;
    Tensor q, k, v;         // (N, Hq*D), (N, Hkv*D) after RoPE
    Tensor attn, attn_lse;  // (N, Hq*D), (B, Hq, T)
    Tensor residual_mid;    // (N, C) after the attention residual
    Tensor mlp_norm, mlp_norm_mean, mlp_norm_rstd;
    Tensor gate, up, act;  // (N, F); GELU MLPs use up (c_fc) and act
  };
  struct Gradients {                   // shared by all layers
    Tensor residual, normed, scratch;  // (N, C)
    Tensor q, k, v, attn;              // (N, Hq*D), (N, Hkv*D)
    Tensor gate, up, act;              // (N, F)
  };

  // A norm on the residual stream: where its output and saved statistics go, and its parameters.
  struct NormSite {
    Tensor out, mean, rstd;
    const Weight* weight;
    const Weight* bias;
  };

  Weight rows(const Weight& whole, int64_t begin, int64_t end) const;
  // The norm reading the residual stream that enters `layer`: its attention norm, or the final
  // norm for layer == num_layers.
  NormSite input_norm(int64_t layer) const;
  void norm_forward(const OpContext& ctx, const NormSite& norm, Tensor x) const;
  // residual_out = residual_in + delta, then `norm` of it, in one op (kernels/fused_norm_ops.h).
  void residual_norm_forward(const OpContext& ctx, const NormSite& norm, Tensor residual_out,
                             Tensor residual_in, Tensor delta) const;
  void norm_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor x, const Weight& weight,
                     const Weight& bias, Tensor mean, Tensor rstd) const;
  // dresidual += the norm's input gradient for dout (x: its input), in one op.
  void residual_norm_backward(const OpContext& ctx, Tensor dresidual, Tensor dout, Tensor x,
                              const Weight& weight, const Weight& bias, Tensor mean,
                              Tensor rstd) const;
  void layer_forward(const OpContext& ctx, int64_t layer, const ModelInputs& inputs);
  void layer_backward(const OpContext& ctx, int64_t layer, const ModelInputs& inputs);
  Tensor as_heads(Tensor x, int64_t heads) const;  // (N, H*D) -> (B, T, H, D)
  // Sums a row-parallel output / column-parallel input gradient over the tensor-parallel group.
  void reduce_over_tp(Tensor x) const;
  void loss_forward(const OpContext& ctx, const ModelInputs& inputs, ForwardResult& result);
  // A row-parallel layer's bias is added once, by tp rank 0, after its partial sums meet.
  Tensor row_parallel_bias(const Weight& bias) const;

  ModelConfig config_;
  PeftSpec peft_;
  ModelSharding sharding_;
  int64_t batch_, seq_len_, tokens_;
  DType dtype_;
  Device device_;
  Weight token_embedding_, position_embedding_, final_norm_weight_, final_norm_bias_, lm_head_;
  std::vector<LayerWeights> layers_;
  int64_t lowest_trainable_layer_ = -1;
  bool embeddings_trainable_ = true;
  std::unique_ptr<PromptEncoder> prompt_;  // prompt tuning, P-tuning
  std::unique_ptr<PrefixEncoder> prefix_;  // prefix tuning
  std::unique_ptr<LoraAdapters> lora_;     // LoRA (empty for other methods)

  Buffer rope_tables_;
  Tensor rope_cos_, rope_sin_;
  std::vector<LayerActivations> acts_;
  Tensor final_residual_, final_norm_, final_norm_mean_, final_norm_rstd_;
  Tensor logits_, token_losses_, token_lse_, scratch_;
  Tensor loss_stats_, loss_stats_parts_;  // vocabulary-parallel loss: (N, 4), (tp, N, 4)
  Gradients grads_;
};

// A model's planned memory: the activation arena, sized by a measuring pass of bind_activations
// and bound, and the op workspace.
struct ModelMemory {
  Arena activations = Arena::measuring();
  Buffer workspace;
};
// Plans and binds `model`'s memory on ctx.device and points ctx.workspace at the workspace (whose
// size depends on ctx.num_threads: set it first).
ModelMemory plan_model_memory(Transformer& model, OpContext& ctx);

}  // namespace ft
