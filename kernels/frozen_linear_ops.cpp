// The entry points of kernels/frozen_linear_ops.h: check every argument (naming the op, the
// argument and what was expected), count the products, then run the CPU reference
// (kernels/cpu/frozen_linear_cpu.h) or the CUDA kernels (kernels/cuda/frozen_linear_cuda.h).
#include "kernels/frozen_linear_ops.h"

#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include "kernels/arg_checks.h"
#include "kernels/cpu/frozen_linear_cpu.h"
#include "kernels/dispatch.h"
#include "runtime/error.h"

#ifdef FT_WITH_CUDA
#include "kernels/cuda/frozen_linear_cuda.h"
#endif

namespace ft::ops {
namespace {

bool is_quantized(DType dtype) {
  return dtype == DType::i8 || dtype == DType::f8e4m3;
}

// The activations' dtype must be one the device computes in: f32/f64 on the CPU, bf16 on CUDA.
void check_activation_dtype(const ArgChecks& check, DType dtype) {
  const bool ok = check.ctx.device == Device::cpu ? dtype == DType::f32 || dtype == DType::f64
                                                  : dtype == DType::bf16;
  if (!ok) unsupported(check.op, check.ctx.device, dtype);
}

// A weight (rows, cols) in the activations' dtype or quantized, and its scale iff quantized.
void check_weight(const ArgChecks& check, std::string_view weight_arg, const Tensor& weight,
                  std::string_view scale_arg, const Tensor& scale, int64_t rows, int64_t cols,
                  DType activations) {
  if (weight.dtype != activations && !is_quantized(weight.dtype)) {
    fail("op {}: argument {} has dtype {}, expected {} (the activations' dtype), i8 or f8e4m3",
         check.op, weight_arg, dtype_name(weight.dtype), dtype_name(activations));
  }
  check.tensor(weight_arg, weight, {rows, cols}, weight.dtype);
  if (is_quantized(weight.dtype)) {
    if (scale.empty()) {
      fail("op {}: argument {} is empty, expected f32 ({}) per-row scales for the {} {}", check.op,
           scale_arg, rows, dtype_name(weight.dtype), weight_arg);
    }
    check.tensor(scale_arg, scale, {rows}, DType::f32);
  } else if (!scale.empty()) {
    fail("op {}: argument {} is given but {} is {}; only i8 and f8e4m3 weights take a scale",
         check.op, scale_arg, weight_arg, dtype_name(weight.dtype));
  }
}

// SwiGLU's up projection (given) beside `weight`: in weight's dtype, with its scale iff quantized.
void check_up_weight(const ArgChecks& check, const Tensor& up_weight, const Tensor& up_scale,
                     const Tensor& weight, int64_t out_features, int64_t in_features,
                     DType activations) {
  if (up_weight.dtype != weight.dtype) {
    fail("op {}: argument up_weight has dtype {}, expected {} (weight's dtype)", check.op,
         dtype_name(up_weight.dtype), dtype_name(weight.dtype));
  }
  check_weight(check, "up_weight", up_weight, "up_scale", up_scale, out_features, in_features,
               activations);
}

struct FrozenDims {
  int64_t rows, in_features, out_features;
  DType dtype;  // the activations'
};

// The checks both products start with: the activation (x (N, In) when activation_is_input, else
// dout (N, Out)) in a dtype the device computes in, and the weight (Out, In) with its scale, its
// shape checked against the activation's.
FrozenDims check_activation_and_weight(const ArgChecks& check, std::string_view activation_arg,
                                       const Tensor& activation, bool activation_is_input,
                                       const Tensor& weight, const Tensor& weight_scale) {
  check.matrix(activation_arg, activation, activation_is_input ? "(N, In)" : "(N, Out)");
  check.matrix("weight", weight, "(Out, In)");
  const int64_t rows = activation.dim(0), features = activation.dim(1);
  const FrozenDims dims{rows, activation_is_input ? features : weight.dim(1),
                        activation_is_input ? weight.dim(0) : features, activation.dtype};
  check.tensor(activation_arg, activation, {rows, features}, dims.dtype);
  check_activation_dtype(check, dims.dtype);
  check_weight(check, "weight", weight, "weight_scale", weight_scale, dims.out_features,
               dims.in_features, dims.dtype);
  return dims;
}

void require_empty(const ArgChecks& check, std::string_view arg, const Tensor& t,
                   std::string_view why) {
  if (!t.empty()) fail("op {}: argument {} must be empty {}", check.op, arg, why);
}

void count(const OpContext& ctx, int64_t OpCounters::*counter, int64_t products) {
  if (ctx.counters) ctx.counters->*counter += products;
}

// The weight as scalar_t: a view of its data, or its dequantized copy in `storage`.
template <typename scalar_t>
const scalar_t* weight_values(const Tensor& weight, const Tensor& scale,
                              std::vector<scalar_t>& storage, int threads) {
  if (weight.empty()) return nullptr;
  if (!is_quantized(weight.dtype)) return weight.ptr<scalar_t>();
  storage.resize(static_cast<size_t>(weight.numel()));
  const int64_t rows = weight.dim(0), cols = weight.dim(1);
  if (weight.dtype == DType::i8) {
    cpu::dequantize_rows(storage.data(), weight.ptr<int8_t>(), scale.ptr<float>(), rows, cols,
                         threads);
  } else {
    cpu::dequantize_rows(storage.data(), weight.ptr<f8e4m3>(), scale.ptr<float>(), rows, cols,
                         threads);
  }
  return storage.data();
}

template <typename scalar_t>
void forward_cpu(const OpContext& ctx, Tensor out, Tensor x, Tensor weight,
                 const FrozenLinearArgs& args) {
  std::vector<scalar_t> weight_storage, up_storage;
  const cpu::FrozenForward<scalar_t> f{
      out.ptr<scalar_t>(),
      args.pre_activation.empty() ? nullptr : args.pre_activation.ptr<scalar_t>(),
      x.ptr<scalar_t>(),
      weight_values<scalar_t>(weight, args.weight_scale, weight_storage, ctx.num_threads),
      weight_values<scalar_t>(args.up_weight, args.up_scale, up_storage, ctx.num_threads),
      ptr_or_null<scalar_t>(args.bias),
      ptr_or_null<scalar_t>(args.residual),
      ptr_or_null<scalar_t>(args.lora_xa),
      ptr_or_null<scalar_t>(args.lora_b),
      args.lora_scale,
      args.epilogue,
      x.dim(0),
      x.dim(1),
      weight.dim(0),
      args.lora_xa.empty() ? 0 : args.lora_xa.dim(1)};
  cpu::frozen_linear_forward(f, ctx.num_threads);
}

}  // namespace

void frozen_linear_forward(const OpContext& ctx, Tensor out, Tensor x, Tensor weight,
                           const FrozenLinearArgs& args) {
  const ArgChecks check{"frozen_linear_forward", ctx};
  const auto [rows, in_features, out_features, dtype] =
      check_activation_and_weight(check, "x", x, true, weight, args.weight_scale);
  check.tensor("out", out, {rows, out_features}, dtype);
  check.optional("residual", args.residual, {rows, out_features}, dtype);
  const bool swiglu = args.epilogue == FrozenEpilogue::swiglu;
  if (swiglu) {
    require_empty(check, "bias", args.bias, "with the swiglu epilogue (Llama's MLP has none)");
    require_empty(check, "lora_xa", args.lora_xa,
                  "with the swiglu epilogue (LoRA on gate/up "
                  "goes through epilogue none)");
    require_empty(check, "lora_b", args.lora_b, "with the swiglu epilogue");
    if (args.up_weight.empty()) {
      fail("op {}: argument up_weight is empty, expected ({}, {}) for the swiglu epilogue",
           check.op, out_features, in_features);
    }
    check_up_weight(check, args.up_weight, args.up_scale, weight, out_features, in_features, dtype);
    check.optional("pre_activation", args.pre_activation, {2, rows, out_features}, dtype);
  } else {
    require_empty(check, "up_weight", args.up_weight, "unless the epilogue is swiglu");
    require_empty(check, "up_scale", args.up_scale, "unless the epilogue is swiglu");
    check.optional("bias", args.bias, {out_features}, dtype);
    if (args.lora_xa.empty() != args.lora_b.empty()) {
      fail("op {}: arguments lora_xa and lora_b go together, but only {} is given", check.op,
           args.lora_xa.empty() ? "lora_b" : "lora_xa");
    }
    if (!args.lora_xa.empty()) {
      check.matrix("lora_xa", args.lora_xa, "(N, r)");
      const int64_t rank = args.lora_xa.dim(1);
      if (rank < 1) fail("op {}: argument lora_xa has rank r = 0, expected r >= 1", check.op);
      check.tensor("lora_xa", args.lora_xa, {rows, rank}, dtype);
      check.tensor("lora_b", args.lora_b, {out_features, rank}, dtype);
    }
    if (!std::isfinite(args.lora_scale)) {
      fail("op {}: argument lora_scale is {}, expected a finite number", check.op, args.lora_scale);
    }
    if (args.epilogue == FrozenEpilogue::gelu) {
      check.optional("pre_activation", args.pre_activation, {rows, out_features}, dtype);
    } else {
      require_empty(check, "pre_activation", args.pre_activation,
                    "with epilogue none (nothing to save)");
    }
  }
  count(ctx, &OpCounters::forward_products, swiglu ? 2 : 1);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) return cuda::frozen_linear_forward(ctx, out, x, weight, args);
#endif
  check.cpu_only(dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, dtype, forward_cpu<scalar_t>(ctx, out, x, weight, args));
}

void frozen_linear_backward_input(const OpContext& ctx, Tensor dx, Tensor dout, Tensor weight,
                                  Tensor weight_scale, Tensor up_dout, Tensor up_weight,
                                  Tensor up_scale) {
  const ArgChecks check{"frozen_linear_backward_input", ctx};
  const auto [rows, in_features, out_features, dtype] =
      check_activation_and_weight(check, "dout", dout, false, weight, weight_scale);
  check.tensor("dx", dx, {rows, in_features}, dtype);
  const bool second = !up_dout.empty();
  if (second) {
    if (up_weight.empty()) {
      fail("op {}: argument up_weight is empty, expected ({}, {}) beside up_dout", check.op,
           out_features, in_features);
    }
    check.tensor("up_dout", up_dout, {rows, out_features}, dtype);
    check_up_weight(check, up_weight, up_scale, weight, out_features, in_features, dtype);
  } else {
    require_empty(check, "up_weight", up_weight, "without up_dout");
    require_empty(check, "up_scale", up_scale, "without up_dout");
  }
  count(ctx, &OpCounters::input_grad_products, second ? 2 : 1);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::frozen_linear_backward_input(ctx, dx, dout, weight, weight_scale, up_dout,
                                              up_weight, up_scale);
  }
#endif
  check.cpu_only(dtype);
  FT_DISPATCH_CPU_FLOAT(check.op, dtype, {
    std::vector<scalar_t> weight_storage, up_storage;
    const scalar_t* w =
        weight_values<scalar_t>(weight, weight_scale, weight_storage, ctx.num_threads);
    const scalar_t* w_up =
        second ? weight_values<scalar_t>(up_weight, up_scale, up_storage, ctx.num_threads)
               : nullptr;
    cpu::frozen_linear_backward_input(dx.ptr<scalar_t>(), dout.ptr<scalar_t>(), w,
                                      second ? up_dout.ptr<scalar_t>() : nullptr, w_up, rows,
                                      in_features, out_features);
  });
}

void quantize_weight_per_channel(const OpContext& ctx, Tensor quantized, Tensor scale,
                                 Tensor weight) {
  const ArgChecks check{"quantize_weight_per_channel", ctx};
  check.matrix("weight", weight, "(Out, In)");
  const int64_t rows = weight.dim(0), cols = weight.dim(1);
  if (weight.dtype != DType::f32 && weight.dtype != DType::bf16) {
    fail("op {}: argument weight has dtype {}, expected f32 or bf16", check.op,
         dtype_name(weight.dtype));
  }
  check.tensor("weight", weight, {rows, cols}, weight.dtype);
  if (!is_quantized(quantized.dtype)) {
    fail("op {}: argument quantized has dtype {}, expected i8 or f8e4m3", check.op,
         dtype_name(quantized.dtype));
  }
  check.tensor("quantized", quantized, {rows, cols}, quantized.dtype);
  check.tensor("scale", scale, {rows}, DType::f32);
#ifdef FT_WITH_CUDA
  if (ctx.device == Device::cuda) {
    return cuda::quantize_weight_per_channel(ctx, quantized, scale, weight);
  }
#endif
  check.cpu_only(weight.dtype);
  const auto run = [&](auto* stored) {
    if (weight.dtype == DType::f32) {
      cpu::quantize_rows(stored, scale.ptr<float>(), weight.ptr<float>(), rows, cols,
                         ctx.num_threads);
    } else {
      cpu::quantize_rows(stored, scale.ptr<float>(), weight.ptr<bf16>(), rows, cols,
                         ctx.num_threads);
    }
  };
  if (quantized.dtype == DType::i8) {
    run(quantized.ptr<int8_t>());
  } else {
    run(quantized.ptr<f8e4m3>());
  }
}

}  // namespace ft::ops
