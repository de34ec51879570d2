// The residual add fused with the norm that reads its sum, forward and backward: a transformer's
// residual stream is "x += branch output; h = norm(x)" between every two blocks, and in the
// backward "dx += norm's input gradient". Fused, the GPU reads each row once instead of three
// times and the separate add kernel disappears. Conventions as in kernels/ops.h.
//
// Results equal the composed ops (add, then rmsnorm_forward / layernorm_forward; norm backward,
// then add) on every backend: the CPU runs the same code in the same order, and the GPU rounds
// the intermediate sum and input gradient to the activation dtype where the composed ops store
// them.
#pragma once

#include "kernels/context.h"
#include "runtime/tensor.h"

namespace ft::ops {

// residual_out = residual_in + delta; out = rmsnorm(residual_out) * weight; rstd (N) saved.
// residual_in, delta, residual_out, out (N, C); weight (C). residual_out may be residual_in or
// delta (in place) or disjoint from them; out must not overlap any of them.
void residual_rmsnorm_forward(const OpContext& ctx, Tensor residual_out, Tensor out, Tensor rstd,
                              Tensor residual_in, Tensor delta, Tensor weight, double eps);
// The same with LayerNorm: out = (residual_out - mean) * rstd * weight + bias (bias may be empty);
// mean, rstd (N) saved.
void residual_layernorm_forward(const OpContext& ctx, Tensor residual_out, Tensor out, Tensor mean,
                                Tensor rstd, Tensor residual_in, Tensor delta, Tensor weight,
                                Tensor bias, double eps);

// dresidual = rmsnorm's input gradient for dout + dresidual_above: the gradient of a residual
// stream that feeds both the norm (x, its saved input: the forward's residual_out) and, through
// the skip connection, whatever produced dresidual_above. dresidual (N, C) is overwritten; it may
// be dresidual_above (in place) or disjoint from it, and must not overlap dout or x. dweight (C)
// accumulated (empty: frozen).
void residual_rmsnorm_backward(const OpContext& ctx, Tensor dresidual, Tensor dweight, Tensor dout,
                               Tensor dresidual_above, Tensor x, Tensor weight, Tensor rstd);
// The same with LayerNorm; dweight and dbias accumulated, each skipped when empty.
void residual_layernorm_backward(const OpContext& ctx, Tensor dresidual, Tensor dweight,
                                 Tensor dbias, Tensor dout, Tensor dresidual_above, Tensor x,
                                 Tensor weight, Tensor mean, Tensor rstd);

}  // namespace ft::ops
