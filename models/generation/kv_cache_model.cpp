#include "models/generation/kv_cache_model.h"

#include <algorithm>

#include "models/param_layout.h"
#include "models/peft/lora_merge.h"
#include "models/peft/saved_prompt.h"

namespace ft {
namespace {

// The LoRA-adapted weights with their A and B, copied out of `params`, merged.
std::unique_ptr<ParameterStore> merged_lora_weights(const OpContext& ctx, const PeftSpec& peft,
                                                    const ParameterStore& params) {
  std::vector<ParamSpec> specs;
  for (const LoraTarget& target : peft.lora_targets)
    for (const std::string& name : {target.module + ".weight", target.a_name(), target.b_name()}) {
      ParamSpec spec = params.at(name).spec;
      spec.trainable = false;
      specs.push_back(spec);
    }
  auto merged =
      std::make_unique<ParameterStore>(std::move(specs), params.dtype(), Device::cpu,
                                       ParameterStoreOptions{.gradients = false, .moments = false});
  for (const Parameter& p : merged->all()) ops::cast(ctx, p.value, params.at(p.spec.name).value);
  merge_lora(peft, *merged);
  return merged;
}

}  // namespace

KvCacheModel::KvCacheModel(const ModelConfig& config, const ParameterStore& params,
                           const PeftSpec& peft, const KvCacheOptions& options)
    : config_(config), peft_(peft), dtype_(params.dtype()) {
  FT_CHECK(params.device() == Device::cpu,
           "the generation model runs on the CPU (parameters on {})", device_name(params.device()));
  FT_CHECK(dtype_ == DType::f32 || dtype_ == DType::f64,
           "the generation model runs in f32 or f64, not {}", dtype_name(dtype_));
  ctx_.num_threads = std::max(1, options.num_threads);
  offset_ = peft.position_offset();
  const int64_t positions_left = config.max_position_embeddings - offset_;
  if (positions_left < 1)
    fail("the model's {} positions leave no room after the adapter's {} virtual tokens",
         config.max_position_embeddings, offset_);
  capacity_ = options.capacity > 0 ? options.capacity : positions_left;
  if (capacity_ > positions_left)
    fail("a context of {} tokens does not fit: the model has {} positions{} (at most {} tokens)",
         capacity_, config.max_position_embeddings,
         offset_ > 0 ? fmt::format(", {} of them taken by virtual tokens", offset_) : "",
         positions_left);
  max_chunk_ = options.max_chunk > 0 ? std::min(options.max_chunk, capacity_) : capacity_;
  chunk_rows_ = max_chunk_ + peft.virtual_rows();

  if (peft.method == PeftMethod::lora) merged_ = merged_lora_weights(ctx_, peft, params);
  auto find = [&](const std::string& name) -> Tensor {
    if (name.empty()) return {};
    if (merged_ && merged_->contains(name)) return merged_->at(name).value;
    return params.at(name).value;
  };
  const ModelParamNames names = model_param_names(config);
  token_embedding_ = find(names.token_embedding);
  position_embedding_ = find(names.position_embedding);
  final_norm_weight_ = find(names.final_norm_weight);
  final_norm_bias_ = find(names.final_norm_bias);
  lm_head_ = find(names.lm_head);
  const int64_t qd = config.q_dim(), kv = config.kv_dim();
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    const LayerParamNames n = layer_param_names(config, layer);
    LayerWeights w;
    bind_layer_weights(w, n, config, find, [](const Tensor& whole, int64_t begin, int64_t end) {
      return whole.slice(begin, end);
    });
    layers_.push_back(w);
  }

  // The virtual rows or the prefix, computed once (P-tuning's encoder output, the projected
  // prefix), as PEFT saves them.
  if (peft.virtual_rows() > 0 || peft.method == PeftMethod::prefix_tuning) {
    const Shape shape = saved_prompt_shape(peft, config);
    adapter_rows_ = Buffer(Device::cpu, shape.numel() * dtype_size(dtype_));
    adapter_table_ = adapter_rows_.view(dtype_, shape);
    compute_saved_prompt(ctx_, peft, config, params, adapter_table_);
  }
  if (config.positions == PositionKind::rope) {
    const int64_t half = config.head_dim / 2, count = config.max_position_embeddings * half;
    rope_tables_ = Buffer(Device::cpu, 2 * count * dtype_size(dtype_));
    rope_cos_ = rope_tables_.view(dtype_, Shape{config.max_position_embeddings, half});
    rope_sin_ = rope_tables_.view(dtype_, Shape{config.max_position_embeddings, half},
                                  count * dtype_size(dtype_));
    ops::rope_build_tables(ctx_, rope_cos_, rope_sin_, config.rope_theta, config.rope_scaling);
  }
  const int64_t rows = offset_ + capacity_;
  cache_ = Buffer(Device::cpu, config.num_layers * 2 * rows * kv * dtype_size(dtype_));

  // Activations for one chunk, bound twice: once to measure, once for real.
  const int64_t R = chunk_rows_, C = config.hidden_size, F = config.intermediate_size;
  const bool layernorm = config.norm == NormKind::layernorm;
  auto bind = [&](Arena& arena) {
    auto take = [&](Shape shape, const char* what) { return arena.take(dtype_, shape, what); };
    residual_ = take({R, C}, "residual");
    normed_ = take({R, C}, "norm");
    if (layernorm) norm_mean_ = take({R}, "norm mean");
    norm_rstd_ = take({R}, "norm rstd");
    q_ = take({R, qd}, "q");
    attn_ = take({R, qd}, "attention output");
    lse_ = take({config.num_heads * R}, "attention lse");
    scratch_ = take({R, C}, "scratch");
    if (config.mlp == MlpKind::swiglu) gate_ = take({R, F}, "mlp gate");
    up_ = take({R, F}, "mlp up");
    act_ = take({R, F}, "mlp activation");
    last_normed_ = take({1, C}, "final norm");
    if (layernorm) last_mean_ = take({1}, "final norm mean");
    last_rstd_ = take({1}, "final norm rstd");
    logits_ = take({1, config.vocab_size}, "logits");
    ids_ = arena.take(DType::i32, {R}, "token ids");
    positions_ = arena.take(DType::i32, {R}, "positions");
  };
  Arena measuring = Arena::measuring(Device::cpu);
  bind(measuring);
  Arena arena(Device::cpu, measuring.used());
  bind(arena);
  activations_ = std::move(arena);
  workspace_ = Buffer(Device::cpu,
                      ops::attention_workspace_bytes(ctx_, dtype_, 1, R, config.num_heads,
                                                     config.num_kv_heads, config.head_dim, rows));
  ctx_.workspace = {workspace_.data(), workspace_.bytes()};
  reset();
}

KvCacheModel::~KvCacheModel() = default;

Tensor KvCacheModel::cache_rows(int64_t layer, int which, int64_t begin, int64_t end) const {
  const int64_t rows = offset_ + capacity_;
  const Tensor all = cache_.view(
      dtype_, Shape{config_.num_layers * 2 * rows, config_.num_kv_heads, config_.head_dim});
  const int64_t first = (2 * layer + which) * rows;
  return all.slice(first + begin, first + end);
}

void KvCacheModel::reset() {
  length_ = 0;
  cached_rows_ = 0;
  if (peft_.method != PeftMethod::prefix_tuning) return;
  // The trained prefix, row layout [layer0 K | layer0 V | layer1 K | ...], used as it is.
  const int64_t P = offset_, kv = config_.kv_dim();
  for (int64_t index = 0; index < 2 * config_.num_layers; ++index)
    ops::copy_columns(ctx_, cache_rows(index / 2, index % 2, 0, P).reshape({P, kv}), adapter_table_,
                      index * kv);
  cached_rows_ = P;
}

Tensor KvCacheModel::forward(std::span<const int32_t> tokens) {
  FT_CHECK(!tokens.empty(), "forward needs at least one token");
  const int64_t count = static_cast<int64_t>(tokens.size());
  if (length_ + count > capacity_)
    fail("{} more tokens do not fit in the context: it holds {} tokens and {} are in use", count,
         capacity_, length_);
  for (int64_t done = 0; done < count;) {
    const int64_t take = std::min(max_chunk_, count - done);
    // Prompt tuning's virtual rows go in front of the sequence's first chunk.
    const int64_t virtual_rows = cached_rows_ == 0 ? peft_.virtual_rows() : 0;
    const int64_t rows = virtual_rows + take, start = cached_rows_;
    int32_t* ids = ids_.ptr<int32_t>();
    int32_t* positions = positions_.ptr<int32_t>();
    for (int64_t r = 0; r < rows; ++r) {
      ids[r] = r < virtual_rows ? 0 : tokens[done + r - virtual_rows];
      positions[r] = static_cast<int32_t>(start + r);
    }
    ops::embedding_forward(ctx_, residual_.slice(virtual_rows, rows),
                           ids_.slice(virtual_rows, rows), token_embedding_);
    if (virtual_rows > 0) ops::cast(ctx_, residual_.slice(0, virtual_rows), adapter_table_);
    if (config_.positions == PositionKind::learned) {
      ops::embedding_forward(ctx_, rows_of(scratch_, rows), rows_of(positions_, rows),
                             position_embedding_);
      ops::add(ctx_, rows_of(residual_, rows), rows_of(residual_, rows), rows_of(scratch_, rows));
    }
    run_chunk(start, rows);
    cached_rows_ += rows;
    length_ += take;
    done += take;
  }
  return logits_.reshape({config_.vocab_size});
}

void KvCacheModel::norm(Tensor out, Tensor x, const Tensor& weight, const Tensor& bias,
                        int64_t rows) {
  if (config_.norm == NormKind::rmsnorm)
    ops::rmsnorm_forward(ctx_, out, rows_of(norm_rstd_, rows), x, weight, config_.norm_eps);
  else
    ops::layernorm_forward(ctx_, out, rows_of(norm_mean_, rows), rows_of(norm_rstd_, rows), x,
                           weight, bias, config_.norm_eps);
}

void KvCacheModel::run_chunk(int64_t start, int64_t rows) {
  for (int64_t layer = 0; layer < config_.num_layers; ++layer) layer_forward(layer, start, rows);
  // Only the last row's logits are needed to continue.
  const Tensor last = residual_.slice(rows - 1, rows);
  if (config_.norm == NormKind::rmsnorm)
    ops::rmsnorm_forward(ctx_, last_normed_, last_rstd_, last, final_norm_weight_,
                         config_.norm_eps);
  else
    ops::layernorm_forward(ctx_, last_normed_, last_mean_, last_rstd_, last, final_norm_weight_,
                           final_norm_bias_, config_.norm_eps);
  ops::linear_forward(ctx_, logits_, last_normed_, lm_head_, Tensor());
}

void KvCacheModel::layer_forward(int64_t layer, int64_t start, int64_t rows) {
  const LayerWeights& w = layers_[layer];
  const int64_t D = config_.head_dim, Hq = config_.num_heads, Hkv = config_.num_kv_heads;
  const int64_t kv = config_.kv_dim();
  const Tensor residual = rows_of(residual_, rows), normed = rows_of(normed_, rows);
  const Tensor q = rows_of(q_, rows), attn = rows_of(attn_, rows),
               scratch = rows_of(scratch_, rows);
  const Tensor positions = rows_of(positions_, rows);
  // This chunk's keys and values are written straight into their cache rows.
  const Tensor k = cache_rows(layer, 0, start, start + rows),
               v = cache_rows(layer, 1, start, start + rows);

  norm(normed, residual, w.attn_norm_weight, w.attn_norm_bias, rows);
  ops::linear_forward(ctx_, q, normed, w.q_weight, w.q_bias);
  ops::linear_forward(ctx_, k.reshape({rows, kv}), normed, w.k_weight, w.k_bias);
  ops::linear_forward(ctx_, v.reshape({rows, kv}), normed, w.v_weight, w.v_bias);
  if (config_.positions == PositionKind::rope) {
    ops::rope_forward(ctx_, q.reshape({rows, Hq, D}), positions, rope_cos_, rope_sin_);
    ops::rope_forward(ctx_, k, positions, rope_cos_, rope_sin_);
  }
  // Every row before the chunk (prefix rows, earlier tokens) is seen by all of its queries;
  // within the chunk the mask is causal.
  const Tensor past_k = start > 0 ? cache_rows(layer, 0, 0, start) : Tensor();
  const Tensor past_v = start > 0 ? cache_rows(layer, 1, 0, start) : Tensor();
  ops::attention_forward(
      ctx_, attn.reshape({1, rows, Hq, D}), lse_.slice(0, Hq * rows).reshape({1, Hq, rows}),
      q.reshape({1, rows, Hq, D}), k.reshape({1, rows, Hkv, D}), v.reshape({1, rows, Hkv, D}),
      past_k, past_v, Tensor(), ops::AttentionArgs{});
  ops::linear_forward(ctx_, scratch, attn, w.o_weight, w.o_bias);
  ops::add(ctx_, residual, residual, scratch);

  norm(normed, residual, w.mlp_norm_weight, w.mlp_norm_bias, rows);
  const Tensor up = rows_of(up_, rows), act = rows_of(act_, rows);
  if (config_.mlp == MlpKind::swiglu) {
    const Tensor gate = rows_of(gate_, rows);
    ops::linear_forward(ctx_, gate, normed, w.gate_weight, Tensor());
    ops::linear_forward(ctx_, up, normed, w.up_weight, Tensor());
    ops::swiglu_forward(ctx_, act, gate, up);
  } else {
    ops::linear_forward(ctx_, up, normed, w.up_weight, w.up_bias);
    ops::gelu_forward(ctx_, act, up);
  }
  ops::linear_forward(ctx_, scratch, act, w.down_weight, w.down_bias);
  ops::add(ctx_, residual, residual, scratch);
}

}  // namespace ft
