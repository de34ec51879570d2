// The matmul with a frozen weight (PEFT: the base model's projections never get a weight
// gradient), with its epilogue fused: bias, a LoRA term, GELU or SwiGLU, a residual add. The
// weight may be held in bf16 (the activations' dtype) or quantized to int8 or fp8 (E4M3) with one
// f32 scale per output channel: W[o, :] = weight_scale[o] * Wq[o, :] (kernels/weight_quantization.h
// has the rounding rules).
//
// Backends: CPU for f32 and f64 activations (the reference; a quantized weight is dequantized into
// a temporary), CUDA for bf16 activations with fp32 accumulation
// (kernels/cuda/frozen_linear_cuda.cu: a tensor-core kernel, or a simple one for shapes the fast
// path does not take). Conventions as in kernels/ops.h: N = tokens, outputs overwritten, empty
// optional tensors absent.
#pragma once

#include "kernels/context.h"
#include "runtime/tensor.h"

namespace ft::ops {

enum class FrozenEpilogue {
  none,
  // GPT-2's gelu_new (ops::gelu_forward) of the pre-activation.
  gelu,
  // Two weights: out = silu(x Wg^T) * (x Wu^T), Wg = weight, Wu = up_weight (Llama's MLP).
  swiglu,
};

// The optional parts of one frozen_linear_forward. Every tensor but the scales has the
// activations' dtype (x.dtype); the scales are f32.
struct FrozenLinearArgs {
  // (Out): added before the activation. Not with swiglu.
  Tensor bias;
  // (N, Out): out = residual + result, after the activation. May be `out` itself (in place).
  Tensor residual;
  // LoRA: result += lora_scale * lora_xa (N, r) @ lora_b (Out, r)^T, before the activation, where
  // lora_xa = dropout(x) @ A^T is computed by the caller (it is saved for the LoRA backward
  // anyway). Both tensors or neither; r >= 1. Not with swiglu. lora_scale 0 skips the term.
  Tensor lora_xa;
  Tensor lora_b;
  double lora_scale = 0.0;
  // (Out) f32: required iff weight is i8 or f8e4m3.
  Tensor weight_scale;
  FrozenEpilogue epilogue = FrozenEpilogue::none;
  // swiglu only: the up projection (Out, In), same dtype as weight, and its scale (iff quantized).
  Tensor up_weight;
  Tensor up_scale;
  // Optional, what the activation's backward reads: gelu: (N, Out), the input of the GELU (for
  // ops::gelu_backward); swiglu: (2, N, Out), [0] = gate and [1] = up (ops::swiglu_backward's
  // gate and up). Must be empty for epilogue none.
  Tensor pre_activation;
};

// out (N, Out) = residual + act(x (N, In) @ W^T + bias + lora_scale * lora_xa @ lora_b^T), W
// dequantized. out must not overlap x, the weights, bias or the LoRA tensors.
// Counts one forward product per weight (two for swiglu) in ctx.counters.
void frozen_linear_forward(const OpContext& ctx, Tensor out, Tensor x, Tensor weight,
                           const FrozenLinearArgs& args);

// dx (N, In) = dout (N, Out) @ W (dequantized), overwritten. For SwiGLU's two weights pass the
// second pair too: dx = dout @ W + up_dout @ W_up (up_dout, up_weight and, iff quantized,
// up_scale; all or none). weight_scale (and up_scale) as in the forward. No weight gradient
// exists: the weight is frozen. Counts one input-gradient product per weight.
void frozen_linear_backward_input(const OpContext& ctx, Tensor dx, Tensor dout, Tensor weight,
                                  Tensor weight_scale, Tensor up_dout = {}, Tensor up_weight = {},
                                  Tensor up_scale = {});

// quantized (Out, In) i8 or f8e4m3 and scale (Out) f32 from weight (Out, In) f32 or bf16, per row
// (absmax scaling, kernels/weight_quantization.h). The same bytes on the CPU and the GPU.
void quantize_weight_per_channel(const OpContext& ctx, Tensor quantized, Tensor scale,
                                 Tensor weight);

}  // namespace ft::ops
