#include "models/transformer.h"

#include <algorithm>
#include <cmath>

#include "kernels/fused_norm_ops.h"
#include "models/param_layout.h"

namespace ft {

Transformer::Transformer(const ModelConfig& config, const ParameterStore& params,
                         const PeftSpec& peft, int64_t batch_size, int64_t seq_len,
                         const ModelSharding& sharding)
    : config_(config),
      peft_(peft),
      sharding_(sharding),
      batch_(batch_size),
      seq_len_(seq_len),
      tokens_(batch_size * seq_len),
      dtype_(params.compute_dtype()),
      device_(params.device()) {
  // Prefix tuning's real tokens start at position P; prompt tuning's rows are part of seq_len.
  const int64_t positions_used =
      seq_len + (peft.method == PeftMethod::prefix_tuning ? peft.num_virtual_tokens : 0);
  FT_CHECK(
      positions_used <= config.max_position_embeddings,
      "sequence length {} (with virtual tokens) exceeds the model's max_position_embeddings {}",
      positions_used, config.max_position_embeddings);
  FT_CHECK(seq_len > peft.virtual_rows(), "sequence length {} leaves no room after {} virtual rows",
           seq_len, peft.virtual_rows());
  auto find = [&](const std::string& name) -> Weight {
    if (name.empty()) return {};
    const Parameter& p = params.at(name);
    return {p.compute, p.grad};
  };
  ModelParamNames names = model_param_names(config);
  token_embedding_ = find(names.token_embedding);
  position_embedding_ = find(names.position_embedding);
  final_norm_weight_ = find(names.final_norm_weight);
  final_norm_bias_ = find(names.final_norm_bias);
  lm_head_ = find(names.lm_head);
  embeddings_trainable_ = !token_embedding_.grad.empty() || !position_embedding_.grad.empty();

  const int64_t q = config.q_dim();
  lowest_trainable_layer_ = embeddings_trainable_ ? -1 : config.num_layers;
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    LayerParamNames n = layer_param_names(config, layer);
    LayerWeights w;
    bind_layer_weights(w, n, config, find, [&](const Weight& whole, int64_t begin, int64_t end) {
      return rows(whole, begin, end);
    });
    bool trainable = false;
    for (const Weight* part :
         {&w.attn_norm_weight, &w.attn_norm_bias, &w.q_weight, &w.k_weight, &w.v_weight, &w.q_bias,
          &w.k_bias, &w.v_bias, &w.o_weight, &w.o_bias, &w.mlp_norm_weight, &w.mlp_norm_bias,
          &w.gate_weight, &w.up_weight, &w.up_bias, &w.down_weight, &w.down_bias})
      trainable |= !part->grad.empty();
    if (trainable && layer < lowest_trainable_layer_) lowest_trainable_layer_ = layer;
    layers_.push_back(w);
  }
  // Adapters: the backward must reach the lowest layer an adapter feeds (every layer's attention
  // for prefixes; the layer-0 input for virtual rows).
  if (peft.virtual_rows() > 0) {
    prompt_ = std::make_unique<PromptEncoder>(peft, config, params);
    lowest_trainable_layer_ = -1;
  }
  if (peft.method == PeftMethod::prefix_tuning) {
    prefix_ = std::make_unique<PrefixEncoder>(peft, config, params);
    lowest_trainable_layer_ = std::min<int64_t>(lowest_trainable_layer_, 0);
  }
  lora_ = std::make_unique<LoraAdapters>(peft, config, params, tokens_);
  if (sharding_.active()) {
    // Row-parallel inputs are this rank's block of heads / of the intermediate size.
    const int64_t rank = sharding_.tp->rank(), size = sharding_.tp->size();
    lora_->set_input_shard(LinearSlot::o, rank * q, size * q);
    lora_->set_input_shard(LinearSlot::down, rank * config.intermediate_size,
                           size * config.intermediate_size);
  }
  lowest_trainable_layer_ = std::min(lowest_trainable_layer_, lora_->lowest_layer());

  if (config.positions == PositionKind::rope) {
    const int64_t half = config.head_dim / 2;
    const int64_t count = config.max_position_embeddings * half;
    rope_tables_ = Buffer(device_, 2 * count * dtype_size(dtype_));
    rope_cos_ = rope_tables_.view(dtype_, Shape{config.max_position_embeddings, half});
    rope_sin_ = rope_tables_.view(dtype_, Shape{config.max_position_embeddings, half},
                                  count * dtype_size(dtype_));
    OpContext ctx;
    ctx.device = device_;
    ops::rope_build_tables(ctx, rope_cos_, rope_sin_, config.rope_theta, config.rope_scaling);
  }
}

Transformer::~Transformer() = default;

Transformer::Weight Transformer::rows(const Weight& whole, int64_t begin, int64_t end) const {
  Weight part;
  if (!whole.value.empty()) part.value = whole.value.slice(begin, end);
  if (!whole.grad.empty()) part.grad = whole.grad.slice(begin, end);
  return part;
}

void Transformer::bind_activations(Arena& arena) {
  const int64_t N = tokens_, C = config_.hidden_size, F = config_.intermediate_size;
  const int64_t q = config_.q_dim(), kv = config_.kv_dim(), V = config_.vocab_size;
  const bool layernorm = config_.norm == NormKind::layernorm;
  const bool swiglu = config_.mlp == MlpKind::swiglu;
  auto take = [&](Shape shape, const char* what) { return arena.take(dtype_, shape, what); };
  // Per-row statistics stay f32 under bf16 activations (ops::stats_dtype).
  const DType stats = ops::stats_dtype(dtype_);
  auto take_stats = [&](Shape shape, const char* what) { return arena.take(stats, shape, what); };
  acts_.assign(config_.num_layers, {});
  for (LayerActivations& a : acts_) {
    a.residual_in = take({N, C}, "residual");
    a.attn_norm = take({N, C}, "attention norm");
    if (layernorm) a.attn_norm_mean = take_stats({N}, "norm mean");
    a.attn_norm_rstd = take_stats({N}, "norm rstd");
    a.q = take({N, q}, "q");
    a.k = take({N, kv}, "k");
    a.v = take({N, kv}, "v");
    a.attn = take({N, q}, "attention output");
    a.attn_lse = take_stats({batch_, config_.num_heads, seq_len_}, "attention lse");
    a.residual_mid = take({N, C}, "residual");
    a.mlp_norm = take({N, C}, "mlp norm");
    if (layernorm) a.mlp_norm_mean = take_stats({N}, "norm mean");
    a.mlp_norm_rstd = take_stats({N}, "norm rstd");
    if (swiglu) a.gate = take({N, F}, "mlp gate");
    a.up = take({N, F}, "mlp up");
    a.act = take({N, F}, "mlp activation");
  }
  final_residual_ = take({N, C}, "residual");
  final_norm_ = take({N, C}, "final norm");
  if (layernorm) final_norm_mean_ = take_stats({N}, "norm mean");
  final_norm_rstd_ = take_stats({N}, "norm rstd");
  logits_ = take({N, V}, "logits");
  token_losses_ = take_stats({N}, "token losses");
  token_lse_ = take_stats({N}, "logits lse");
  if (sharding_.active()) {
    loss_stats_ = take_stats({N, 4}, "loss statistics");
    loss_stats_parts_ = take_stats({sharding_.tp->size(), N, 4}, "loss statistics of every rank");
  }
  scratch_ = take({N, C}, "scratch");
  grads_.residual = take({N, C}, "residual gradient");
  grads_.normed = take({N, C}, "norm gradient");
  grads_.scratch = take({N, C}, "scratch gradient");
  grads_.q = take({N, q}, "q gradient");
  grads_.k = take({N, kv}, "k gradient");
  grads_.v = take({N, kv}, "v gradient");
  grads_.attn = take({N, q}, "attention gradient");
  if (swiglu) grads_.gate = take({N, F}, "gate gradient");
  grads_.up = take({N, F}, "up gradient");
  grads_.act = take({N, F}, "activation gradient");
  if (prompt_) prompt_->bind_activations(arena);
  if (prefix_) prefix_->bind_activations(arena);
  lora_->bind_activations(arena);
}

size_t Transformer::workspace_bytes(const OpContext& ctx) const {
  return ops::attention_workspace_bytes(ctx, dtype_, batch_, seq_len_, config_.num_heads,
                                        config_.num_kv_heads, config_.head_dim,
                                        prefix_ ? peft_.num_virtual_tokens : 0);
}

Tensor Transformer::as_heads(Tensor x, int64_t heads) const {
  return x.reshape({batch_, seq_len_, heads, config_.head_dim});
}

void Transformer::reduce_over_tp(Tensor x) const {
  if (sharding_.active()) sharding_.tp->all_reduce_sum(x);
}

Tensor Transformer::row_parallel_bias(const Weight& bias) const {
  return sharding_.active() && sharding_.tp->rank() != 0 ? Tensor() : bias.value;
}

Transformer::NormSite Transformer::input_norm(int64_t layer) const {
  if (layer == config_.num_layers) {
    return {final_norm_, final_norm_mean_, final_norm_rstd_, &final_norm_weight_,
            &final_norm_bias_};
  }
  const LayerActivations& a = acts_[layer];
  const LayerWeights& w = layers_[layer];
  return {a.attn_norm, a.attn_norm_mean, a.attn_norm_rstd, &w.attn_norm_weight, &w.attn_norm_bias};
}

void Transformer::norm_forward(const OpContext& ctx, const NormSite& norm, Tensor x) const {
  if (config_.norm == NormKind::rmsnorm) {
    ops::rmsnorm_forward(ctx, norm.out, norm.rstd, x, norm.weight->value, config_.norm_eps);
  } else {
    ops::layernorm_forward(ctx, norm.out, norm.mean, norm.rstd, x, norm.weight->value,
                           norm.bias->value, config_.norm_eps);
  }
}

void Transformer::residual_norm_forward(const OpContext& ctx, const NormSite& norm,
                                        Tensor residual_out, Tensor residual_in,
                                        Tensor delta) const {
  if (config_.norm == NormKind::rmsnorm) {
    ops::residual_rmsnorm_forward(ctx, residual_out, norm.out, norm.rstd, residual_in, delta,
                                  norm.weight->value, config_.norm_eps);
  } else {
    ops::residual_layernorm_forward(ctx, residual_out, norm.out, norm.mean, norm.rstd, residual_in,
                                    delta, norm.weight->value, norm.bias->value, config_.norm_eps);
  }
}

void Transformer::norm_backward(const OpContext& ctx, Tensor dx, Tensor dout, Tensor x,
                                const Weight& weight, const Weight& bias, Tensor mean,
                                Tensor rstd) const {
  if (config_.norm == NormKind::rmsnorm) {
    ops::rmsnorm_backward(ctx, dx, weight.grad, dout, x, weight.value, rstd);
  } else {
    ops::layernorm_backward(ctx, dx, weight.grad, bias.grad, dout, x, weight.value, mean, rstd);
  }
}

void Transformer::residual_norm_backward(const OpContext& ctx, Tensor dresidual, Tensor dout,
                                         Tensor x, const Weight& weight, const Weight& bias,
                                         Tensor mean, Tensor rstd) const {
  if (config_.norm == NormKind::rmsnorm) {
    ops::residual_rmsnorm_backward(ctx, dresidual, weight.grad, dout, dresidual, x, weight.value,
                                   rstd);
  } else {
    ops::residual_layernorm_backward(ctx, dresidual, weight.grad, bias.grad, dout, dresidual, x,
                                     weight.value, mean, rstd);
  }
}

ForwardResult Transformer::forward(const OpContext& ctx, const ModelInputs& in) {
  FT_CHECK(in.input_ids.numel() == tokens_ && in.targets.numel() == tokens_ &&
               in.positions.numel() == tokens_,
           "model inputs must hold {} x {} tokens", batch_, seq_len_);
  // Virtual rows and prefixes are shared by a whole row; packed documents would need their own.
  FT_CHECK(in.segment_ids.empty() || (!prompt_ && !prefix_),
           "packed sequences (segment ids) cannot be combined with {}",
           peft_method_name(peft_.method));
  Tensor residual = acts_.empty() ? final_residual_ : acts_[0].residual_in;
  if (sharding_.active()) {
    ops::embedding_forward_shard(ctx, residual, in.input_ids, token_embedding_.value,
                                 sharding_.vocab_begin, sharding_.vocab_size);
    reduce_over_tp(residual);
  } else {
    ops::embedding_forward(ctx, residual, in.input_ids, token_embedding_.value);
  }
  if (prompt_) {
    const Tensor rows = prompt_->forward(ctx);
    const int64_t P = peft_.num_virtual_tokens;
    for (int64_t b = 0; b < batch_; ++b)
      ops::cast(ctx, residual.slice(b * seq_len_, b * seq_len_ + P), rows);
  }
  if (prefix_) prefix_->forward(ctx);
  // Each norm of the residual stream runs fused with the add that produced its input: here the
  // first layer's (or, without layers, the final) norm; every layer ends with the next one's.
  if (config_.positions == PositionKind::learned) {
    ops::embedding_forward(ctx, scratch_, in.positions, position_embedding_.value);
    residual_norm_forward(ctx, input_norm(0), residual, residual, scratch_);
  } else {
    norm_forward(ctx, input_norm(0), residual);
  }
  for (int64_t layer = 0; layer < config_.num_layers; ++layer) layer_forward(ctx, layer, in);
  ops::linear_forward(ctx, logits_, final_norm_, lm_head_.value, Tensor());
  ForwardResult result;
  loss_forward(ctx, in, result);
  result.loss_sum = ops::sum(ctx, token_losses_);
  return result;
}

void Transformer::loss_forward(const OpContext& ctx, const ModelInputs& in, ForwardResult& result) {
  if (!sharding_.active()) {
    ops::cross_entropy_forward(ctx, token_losses_, token_lse_, logits_, in.targets, Tensor(),
                               &result.correct);
    return;
  }
  // Each rank summarizes its vocabulary columns per token; every rank combines all summaries, so
  // losses, lse and accuracy are the whole vocabulary's on every rank.
  ops::cross_entropy_shard_stats(ctx, loss_stats_, logits_, in.targets, sharding_.vocab_begin);
  sharding_.tp->all_gather(loss_stats_parts_, loss_stats_);
  ops::cross_entropy_combine_shards(ctx, token_losses_, token_lse_, loss_stats_parts_, in.targets,
                                    &result.correct);
}

void Transformer::layer_forward(const OpContext& ctx, int64_t layer, const ModelInputs& in) {
  const LayerWeights& w = layers_[layer];
  LayerActivations& a = acts_[layer];
  Tensor residual_out =
      layer + 1 < config_.num_layers ? acts_[layer + 1].residual_in : final_residual_;
  const int64_t N = tokens_, D = config_.head_dim;
  const int64_t Hq = config_.num_heads, Hkv = config_.num_kv_heads;

  // a.attn_norm holds the attention norm of a.residual_in (computed with the add before it).
  ops::linear_forward(ctx, a.q, a.attn_norm, w.q_weight.value, w.q_bias.value);
  ops::linear_forward(ctx, a.k, a.attn_norm, w.k_weight.value, w.k_bias.value);
  ops::linear_forward(ctx, a.v, a.attn_norm, w.v_weight.value, w.v_bias.value);
  const uint64_t seed = in.dropout_seed;
  lora_->forward(ctx, layer, LinearSlot::qkv, a.attn_norm, {a.q, a.k, a.v}, seed);
  lora_->forward(ctx, layer, LinearSlot::q, a.attn_norm, {a.q}, seed);
  lora_->forward(ctx, layer, LinearSlot::k, a.attn_norm, {a.k}, seed);
  lora_->forward(ctx, layer, LinearSlot::v, a.attn_norm, {a.v}, seed);
  if (config_.positions == PositionKind::rope) {
    ops::rope_forward(ctx, a.q.reshape({N, Hq, D}), in.positions, rope_cos_, rope_sin_);
    ops::rope_forward(ctx, a.k.reshape({N, Hkv, D}), in.positions, rope_cos_, rope_sin_);
  }
  ops::attention_forward(
      ctx, as_heads(a.attn, Hq), a.attn_lse, as_heads(a.q, Hq), as_heads(a.k, Hkv),
      as_heads(a.v, Hkv), prefix_ ? prefix_->key(layer) : Tensor(),
      prefix_ ? prefix_->value(layer) : Tensor(), in.segment_ids, ops::AttentionArgs{});
  ops::linear_forward(ctx, scratch_, a.attn, w.o_weight.value, row_parallel_bias(w.o_bias));
  lora_->forward(ctx, layer, LinearSlot::o, a.attn, {scratch_}, seed);
  reduce_over_tp(scratch_);
  const NormSite mlp_norm{a.mlp_norm, a.mlp_norm_mean, a.mlp_norm_rstd, &w.mlp_norm_weight,
                          &w.mlp_norm_bias};
  residual_norm_forward(ctx, mlp_norm, a.residual_mid, a.residual_in, scratch_);
  if (config_.mlp == MlpKind::swiglu) {
    ops::linear_forward(ctx, a.gate, a.mlp_norm, w.gate_weight.value, Tensor());
    ops::linear_forward(ctx, a.up, a.mlp_norm, w.up_weight.value, Tensor());
    lora_->forward(ctx, layer, LinearSlot::gate, a.mlp_norm, {a.gate}, seed);
    lora_->forward(ctx, layer, LinearSlot::up, a.mlp_norm, {a.up}, seed);
    ops::swiglu_forward(ctx, a.act, a.gate, a.up);
  } else {
    ops::linear_forward(ctx, a.up, a.mlp_norm, w.up_weight.value, w.up_bias.value);
    lora_->forward(ctx, layer, LinearSlot::up, a.mlp_norm, {a.up}, seed);
    ops::gelu_forward(ctx, a.act, a.up);
  }
  ops::linear_forward(ctx, scratch_, a.act, w.down_weight.value, row_parallel_bias(w.down_bias));
  lora_->forward(ctx, layer, LinearSlot::down, a.act, {scratch_}, seed);
  reduce_over_tp(scratch_);
  residual_norm_forward(ctx, input_norm(layer + 1), residual_out, a.residual_mid, scratch_);
}

void Transformer::backward(const OpContext& ctx, const ModelInputs& in, double dloss) {
  if (prefix_) prefix_->begin_backward(ctx);
  // The logits buffer becomes dlogits in place.
  if (sharding_.active())
    ops::cross_entropy_backward_shard(ctx, logits_, logits_, token_lse_, in.targets,
                                      sharding_.vocab_begin, dloss);
  else
    ops::cross_entropy_backward(ctx, logits_, logits_, token_lse_, in.targets, Tensor(), dloss);
  const bool descend = lowest_trainable_layer_ < config_.num_layers;
  const bool final_norm_trains = !final_norm_weight_.grad.empty() || !final_norm_bias_.grad.empty();
  const bool head_input_grad = descend || final_norm_trains;
  ops::linear_backward(ctx, head_input_grad ? grads_.normed : Tensor(), lm_head_.grad, Tensor(),
                       logits_, final_norm_, lm_head_.value);
  if (!head_input_grad) return;
  reduce_over_tp(grads_.normed);
  norm_backward(ctx, grads_.residual, grads_.normed, final_residual_, final_norm_weight_,
                final_norm_bias_, final_norm_mean_, final_norm_rstd_);
  if (!descend) return;
  for (int64_t layer = config_.num_layers - 1;
       layer >= std::max<int64_t>(lowest_trainable_layer_, 0); --layer)
    layer_backward(ctx, layer, in);
  if (prefix_) prefix_->end_backward(ctx);
  if (prompt_) {
    // The virtual rows' gradient, summed over the batch; the token rows' stays unused.
    prompt_->begin_backward(ctx);
    const int64_t P = peft_.num_virtual_tokens;
    for (int64_t b = 0; b < batch_; ++b)
      prompt_->accumulate_rows(ctx, grads_.residual.slice(b * seq_len_, b * seq_len_ + P));
    prompt_->end_backward(ctx);
  }
  if (embeddings_trainable_) {
    if (!token_embedding_.grad.empty()) {
      if (sharding_.active())
        ops::embedding_backward_shard(ctx, token_embedding_.grad, in.input_ids, grads_.residual,
                                      sharding_.vocab_begin);
      else
        ops::embedding_backward(ctx, token_embedding_.grad, in.input_ids, grads_.residual);
    }
    if (!position_embedding_.grad.empty())
      ops::embedding_backward(ctx, position_embedding_.grad, in.positions, grads_.residual);
  }
}

void Transformer::layer_backward(const OpContext& ctx, int64_t layer, const ModelInputs& in) {
  const LayerWeights& w = layers_[layer];
  LayerActivations& a = acts_[layer];
  Gradients& g = grads_;
  const int64_t N = tokens_, D = config_.head_dim;
  const int64_t Hq = config_.num_heads, Hkv = config_.num_kv_heads;
  // Below the lowest trainable layer nothing needs this layer's input gradient; the q/k/v input
  // gradient is still needed there when the attention norm itself trains.
  const bool below_needs_grad = layer > lowest_trainable_layer_;
  const bool attn_norm_trains = !w.attn_norm_weight.grad.empty() || !w.attn_norm_bias.grad.empty();
  const bool needs_input_grad = below_needs_grad || attn_norm_trains;

  // g.residual holds dL/d(residual_out). MLP branch:
  const uint64_t seed = in.dropout_seed;
  ops::linear_backward(ctx, g.act, w.down_weight.grad, w.down_bias.grad, g.residual, a.act,
                       w.down_weight.value);
  lora_->backward(ctx, layer, LinearSlot::down, g.act, {g.residual}, a.act, seed);
  if (config_.mlp == MlpKind::swiglu) {
    ops::swiglu_backward(ctx, g.gate, g.up, g.act, a.gate, a.up);
    ops::linear_backward(ctx, g.normed, w.gate_weight.grad, Tensor(), g.gate, a.mlp_norm,
                         w.gate_weight.value);
    ops::linear_backward(ctx, g.scratch, w.up_weight.grad, Tensor(), g.up, a.mlp_norm,
                         w.up_weight.value);
    ops::add(ctx, g.normed, g.normed, g.scratch);
    lora_->backward(ctx, layer, LinearSlot::gate, g.normed, {g.gate}, a.mlp_norm, seed);
    lora_->backward(ctx, layer, LinearSlot::up, g.normed, {g.up}, a.mlp_norm, seed);
  } else {
    ops::gelu_backward(ctx, g.up, g.act, a.up);
    ops::linear_backward(ctx, g.normed, w.up_weight.grad, w.up_bias.grad, g.up, a.mlp_norm,
                         w.up_weight.value);
    lora_->backward(ctx, layer, LinearSlot::up, g.normed, {g.up}, a.mlp_norm, seed);
  }
  reduce_over_tp(g.normed);
  // g.residual += the norm's input gradient: now dL/d(residual_mid).
  residual_norm_backward(ctx, g.residual, g.normed, a.residual_mid, w.mlp_norm_weight,
                         w.mlp_norm_bias, a.mlp_norm_mean, a.mlp_norm_rstd);

  // Attention branch.
  ops::linear_backward(ctx, g.attn, w.o_weight.grad, w.o_bias.grad, g.residual, a.attn,
                       w.o_weight.value);
  lora_->backward(ctx, layer, LinearSlot::o, g.attn, {g.residual}, a.attn, seed);
  ops::attention_backward(ctx, as_heads(g.q, Hq), as_heads(g.k, Hkv), as_heads(g.v, Hkv),
                          prefix_ ? prefix_->key_grad(layer) : Tensor(),
                          prefix_ ? prefix_->value_grad(layer) : Tensor(), as_heads(g.attn, Hq),
                          as_heads(a.attn, Hq), a.attn_lse, as_heads(a.q, Hq), as_heads(a.k, Hkv),
                          as_heads(a.v, Hkv), prefix_ ? prefix_->key(layer) : Tensor(),
                          prefix_ ? prefix_->value(layer) : Tensor(), in.segment_ids,
                          ops::AttentionArgs{});
  if (config_.positions == PositionKind::rope) {
    ops::rope_backward(ctx, g.q.reshape({N, Hq, D}), in.positions, rope_cos_, rope_sin_);
    ops::rope_backward(ctx, g.k.reshape({N, Hkv, D}), in.positions, rope_cos_, rope_sin_);
  }
  Tensor dnormed = needs_input_grad ? g.normed : Tensor();
  Tensor dscratch = needs_input_grad ? g.scratch : Tensor();
  ops::linear_backward(ctx, dnormed, w.q_weight.grad, w.q_bias.grad, g.q, a.attn_norm,
                       w.q_weight.value);
  ops::linear_backward(ctx, dscratch, w.k_weight.grad, w.k_bias.grad, g.k, a.attn_norm,
                       w.k_weight.value);
  if (needs_input_grad) ops::add(ctx, g.normed, g.normed, g.scratch);
  ops::linear_backward(ctx, dscratch, w.v_weight.grad, w.v_bias.grad, g.v, a.attn_norm,
                       w.v_weight.value);
  if (needs_input_grad) ops::add(ctx, g.normed, g.normed, g.scratch);
  lora_->backward(ctx, layer, LinearSlot::qkv, dnormed, {g.q, g.k, g.v}, a.attn_norm, seed);
  lora_->backward(ctx, layer, LinearSlot::q, dnormed, {g.q}, a.attn_norm, seed);
  lora_->backward(ctx, layer, LinearSlot::k, dnormed, {g.k}, a.attn_norm, seed);
  lora_->backward(ctx, layer, LinearSlot::v, dnormed, {g.v}, a.attn_norm, seed);
  if (!needs_input_grad) return;
  reduce_over_tp(g.normed);
  if (below_needs_grad) {  // g.residual becomes dL/d(residual_in)
    residual_norm_backward(ctx, g.residual, g.normed, a.residual_in, w.attn_norm_weight,
                           w.attn_norm_bias, a.attn_norm_mean, a.attn_norm_rstd);
  } else {  // only the norm's own gradients are wanted
    norm_backward(ctx, g.scratch, g.normed, a.residual_in, w.attn_norm_weight, w.attn_norm_bias,
                  a.attn_norm_mean, a.attn_norm_rstd);
  }
}

ModelMemory plan_model_memory(Transformer& model, OpContext& ctx) {
  ModelMemory memory;
  Arena measuring = Arena::measuring(ctx.device);
  model.bind_activations(measuring);
  memory.activations = Arena(ctx.device, measuring.used());
  model.bind_activations(memory.activations);
  memory.workspace = Buffer(ctx.device, model.workspace_bytes(ctx));
  ctx.workspace = {memory.workspace.data(), memory.workspace.bytes()};
  return memory;
}

}  // namespace ft
