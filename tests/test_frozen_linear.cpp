// The frozen-weight matmul on the CPU (kernels/frozen_linear_ops.h): the fused forward against the
// same computation composed from existing ops (linear, scale, add, gelu, swiglu) for every
// epilogue, weight dtype (f64, i8, f8e4m3) and set of optional parts; fp64 finite-difference
// checks of the input gradient through frozen_linear_backward_input (with the activations'
// backward reading the saved pre-activations); quantization rounding, ties and error bounds
// against an independent E4M3 decoder; counters; argument errors naming the tensor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/frozen_linear_ops.h"
#include "kernels/ops.h"
#include "tests/support/gradcheck.h"

namespace ft {
namespace {

using namespace ft::testing;
using ops::FrozenEpilogue;
using ops::FrozenLinearArgs;

constexpr int64_t kRows = 7, kIn = 13, kOut = 11, kRank = 3;

// E4M3 decoded from its definition (not the library's decoder): (1 + m / 8) 2^(e - 7), or
// m 2^-9 when e = 0.
double e4m3_reference(uint8_t code) {
  const int exponent = (code >> 3) & 15, mantissa = code & 7;
  const double magnitude =
      exponent == 0 ? std::ldexp(mantissa, -9) : std::ldexp(8 + mantissa, exponent - 10);
  return (code & 0x80) ? -magnitude : magnitude;
}

// A weight as the op sees it (tensor and scale) and its exact values in f64.
struct TestWeight {
  DType dtype;
  std::vector<double> values;  // f64 weights: the tensor's storage
  std::vector<uint8_t> bytes;
  std::vector<float> scale;
  Tensor tensor, scale_tensor;
};

// rows x cols random values, held as `dtype` (f64, or quantized per channel by the op).
TestWeight make_weight(DType dtype, int64_t rows, int64_t cols, uint64_t seed) {
  TestWeight w{dtype, random_values(rows * cols, seed), {}, {}, {}, {}};
  if (dtype == DType::f64) {
    w.tensor = view(w.values, {rows, cols});
    return w;
  }
  std::vector<float> source(w.values.begin(), w.values.end());
  w.bytes.resize(rows * cols);
  w.scale.resize(rows);
  w.tensor = Tensor(w.bytes.data(), dtype, {rows, cols});
  w.scale_tensor = view(w.scale, {rows});
  ops::quantize_weight_per_channel(cpu_context(), w.tensor, w.scale_tensor,
                                   view(source, {rows, cols}));
  for (int64_t i = 0; i < rows * cols; ++i) {
    const double q =
        dtype == DType::i8 ? static_cast<int8_t>(w.bytes[i]) : e4m3_reference(w.bytes[i]);
    w.values[i] = static_cast<double>(w.scale[i / cols]) * q;
  }
  return w;
}

// The optional parts of one forward, as bits.
struct Parts {
  bool bias, residual, lora, pre_activation;
};
std::vector<Parts> parts_for(FrozenEpilogue epilogue) {
  std::vector<Parts> all;
  for (int bits = 0; bits < 16; ++bits) {
    Parts parts{(bits & 1) != 0, (bits & 2) != 0, (bits & 4) != 0, (bits & 8) != 0};
    if (epilogue == FrozenEpilogue::swiglu && (parts.bias || parts.lora)) continue;
    if (epilogue == FrozenEpilogue::none && parts.pre_activation) continue;
    all.push_back(parts);
  }
  return all;
}

std::string epilogue_name(FrozenEpilogue epilogue) {
  return epilogue == FrozenEpilogue::none ? "none"
                                          : (epilogue == FrozenEpilogue::gelu ? "gelu" : "swiglu");
}

// The inputs of one forward in f64 and what frozen_linear_forward wrote.
struct ForwardCase {
  FrozenEpilogue epilogue;
  TestWeight weight, up;
  std::vector<double> x = random_values(kRows * kIn, 11), bias = random_values(kOut, 12),
                      residual = random_values(kRows * kOut, 13),
                      lora_xa = random_values(kRows * kRank, 14),
                      lora_b = random_values(kOut * kRank, 15);
  double lora_scale = 0.75;
  std::vector<double> out = std::vector<double>(kRows * kOut),
                      pre = std::vector<double>(2 * kRows * kOut);

  ForwardCase(FrozenEpilogue epilogue, DType dtype)
      : epilogue(epilogue),
        weight(make_weight(dtype, kOut, kIn, 21)),
        up(make_weight(dtype, kOut, kIn, 22)) {}

  FrozenLinearArgs args(const Parts& parts) {
    FrozenLinearArgs a;
    a.epilogue = epilogue;
    a.weight_scale = weight.scale_tensor;
    if (parts.bias) a.bias = view(bias, {kOut});
    if (parts.residual) a.residual = view(residual, {kRows, kOut});
    if (parts.lora) {
      a.lora_xa = view(lora_xa, {kRows, kRank});
      a.lora_b = view(lora_b, {kOut, kRank});
      a.lora_scale = lora_scale;
    }
    if (epilogue == FrozenEpilogue::swiglu) {
      a.up_weight = up.tensor;
      a.up_scale = up.scale_tensor;
    }
    if (parts.pre_activation) {
      a.pre_activation = epilogue == FrozenEpilogue::swiglu ? view(pre, {2, kRows, kOut})
                                                            : view(pre, {kRows, kOut});
    }
    return a;
  }
  void run(const Parts& parts) {
    ops::frozen_linear_forward(cpu_context(), view(out, {kRows, kOut}), view(x, {kRows, kIn}),
                               weight.tensor, args(parts));
  }
};

class FrozenLinearForward : public ::testing::TestWithParam<std::tuple<FrozenEpilogue, DType>> {};

TEST_P(FrozenLinearForward, EqualsTheComposedOps) {
  const auto [epilogue, dtype] = GetParam();
  const OpContext ctx = cpu_context();
  for (const Parts& parts : parts_for(epilogue)) {
    SCOPED_TRACE(::testing::Message() << "bias " << parts.bias << " residual " << parts.residual
                                      << " lora " << parts.lora << " pre " << parts.pre_activation);
    ForwardCase c(epilogue, dtype);
    c.run(parts);
    // The same with linear, scale, add and the activation ops on the dequantized weights.
    std::vector<double> gate(kRows * kOut), up(kRows * kOut), lora(kRows * kOut),
        expected(kRows * kOut);
    ops::linear_forward(ctx, view(gate, {kRows, kOut}), view(c.x, {kRows, kIn}),
                        view(c.weight.values, {kOut, kIn}),
                        parts.bias ? view(c.bias, {kOut}) : Tensor());
    if (parts.lora) {
      ops::linear_forward(ctx, view(lora, {kRows, kOut}), view(c.lora_xa, {kRows, kRank}),
                          view(c.lora_b, {kOut, kRank}), Tensor());
      ops::scale(ctx, view(lora, {kRows, kOut}), c.lora_scale);
      ops::add(ctx, view(gate, {kRows, kOut}), view(gate, {kRows, kOut}),
               view(lora, {kRows, kOut}));
    }
    const Tensor expected_view = view(expected, {kRows, kOut});
    if (epilogue == FrozenEpilogue::none) {
      std::copy(gate.begin(), gate.end(), expected.begin());
    } else if (epilogue == FrozenEpilogue::gelu) {
      ops::gelu_forward(ctx, expected_view, view(gate, {kRows, kOut}));
    } else {
      ops::linear_forward(ctx, view(up, {kRows, kOut}), view(c.x, {kRows, kIn}),
                          view(c.up.values, {kOut, kIn}), Tensor());
      ops::swiglu_forward(ctx, expected_view, view(gate, {kRows, kOut}), view(up, {kRows, kOut}));
    }
    if (parts.residual) {
      ops::add(ctx, expected_view, expected_view, view(c.residual, {kRows, kOut}));
    }
    for (int64_t i = 0; i < kRows * kOut; ++i) {
      EXPECT_NEAR(c.out[i], expected[i], 1e-12 * (1.0 + std::abs(expected[i]))) << "out " << i;
      if (parts.pre_activation) {
        EXPECT_NEAR(c.pre[i], gate[i], 1e-12 * (1.0 + std::abs(gate[i]))) << "pre-activation " << i;
        if (epilogue == FrozenEpilogue::swiglu) {
          EXPECT_NEAR(c.pre[kRows * kOut + i], up[i], 1e-12 * (1.0 + std::abs(up[i])))
              << "up pre-activation " << i;
        }
      }
    }
  }
}

// dx through frozen_linear_backward_input after the activation's own backward, which reads the
// saved pre-activations (so their layout is what gelu_backward / swiglu_backward take).
TEST_P(FrozenLinearForward, InputGradientMatchesFiniteDifferences) {
  const auto [epilogue, dtype] = GetParam();
  const OpContext ctx = cpu_context();
  ForwardCase c(epilogue, dtype);
  const bool swiglu = epilogue == FrozenEpilogue::swiglu;
  const Parts parts{!swiglu, true, !swiglu, epilogue != FrozenEpilogue::none};
  const std::vector<double> probe = random_values(kRows * kOut, 31);
  auto loss = [&] {
    c.run(parts);
    return dot(c.out, probe);
  };
  c.run(parts);
  std::vector<double> probe_copy = probe, dgate(kRows * kOut), dup(kRows * kOut);
  const Tensor dout = view(probe_copy, {kRows, kOut});
  std::vector<double> dx = random_values(kRows * kIn, 32);  // overwritten
  if (epilogue == FrozenEpilogue::none) {
    ops::frozen_linear_backward_input(ctx, view(dx, {kRows, kIn}), dout, c.weight.tensor,
                                      c.weight.scale_tensor);
  } else if (epilogue == FrozenEpilogue::gelu) {
    ops::gelu_backward(ctx, view(dgate, {kRows, kOut}), dout, view(c.pre, {kRows, kOut}));
    ops::frozen_linear_backward_input(ctx, view(dx, {kRows, kIn}), view(dgate, {kRows, kOut}),
                                      c.weight.tensor, c.weight.scale_tensor);
  } else {
    const Tensor pre = view(c.pre, {2, kRows, kOut});
    ops::swiglu_backward(ctx, view(dgate, {kRows, kOut}), view(dup, {kRows, kOut}), dout,
                         pre.slice(0, 1).reshape({kRows, kOut}),
                         pre.slice(1, 2).reshape({kRows, kOut}));
    ops::frozen_linear_backward_input(ctx, view(dx, {kRows, kIn}), view(dgate, {kRows, kOut}),
                                      c.weight.tensor, c.weight.scale_tensor,
                                      view(dup, {kRows, kOut}), c.up.tensor, c.up.scale_tensor);
  }
  expect_gradient("dx", c.x, dx, loss);
}

INSTANTIATE_TEST_SUITE_P(
    EpiloguesAndWeights, FrozenLinearForward,
    ::testing::Combine(::testing::Values(FrozenEpilogue::none, FrozenEpilogue::gelu,
                                         FrozenEpilogue::swiglu),
                       ::testing::Values(DType::f64, DType::i8, DType::f8e4m3)),
    [](const ::testing::TestParamInfo<std::tuple<FrozenEpilogue, DType>>& info) {
      return epilogue_name(std::get<0>(info.param)) + "_" + dtype_name(std::get<1>(info.param));
    });

TEST(FrozenLinear, ResidualMayBeTheOutput) {
  ForwardCase c(FrozenEpilogue::gelu, DType::i8);
  const Parts parts{true, true, true, false};
  c.run(parts);
  const std::vector<double> expected = c.out;
  std::vector<double> in_place = c.residual;
  FrozenLinearArgs args = c.args(parts);
  args.residual = view(in_place, {kRows, kOut});
  ops::frozen_linear_forward(cpu_context(), view(in_place, {kRows, kOut}), view(c.x, {kRows, kIn}),
                             c.weight.tensor, args);
  EXPECT_EQ(in_place, expected);
}

TEST(FrozenLinear, F32AgreesWithF64) {
  ForwardCase c(FrozenEpilogue::gelu, DType::f8e4m3);
  c.run({true, true, true, true});
  std::vector<float> x(c.x.begin(), c.x.end()), bias(c.bias.begin(), c.bias.end()),
      residual(c.residual.begin(), c.residual.end()), xa(c.lora_xa.begin(), c.lora_xa.end()),
      b(c.lora_b.begin(), c.lora_b.end()), out(kRows * kOut), pre(kRows * kOut);
  FrozenLinearArgs args;
  args.epilogue = FrozenEpilogue::gelu;
  args.weight_scale = c.weight.scale_tensor;
  args.bias = view(bias, {kOut});
  args.residual = view(residual, {kRows, kOut});
  args.lora_xa = view(xa, {kRows, kRank});
  args.lora_b = view(b, {kOut, kRank});
  args.lora_scale = c.lora_scale;
  args.pre_activation = view(pre, {kRows, kOut});
  ops::frozen_linear_forward(cpu_context(), view(out, {kRows, kOut}), view(x, {kRows, kIn}),
                             c.weight.tensor, args);
  EXPECT_LT(relative_l2(widen(out), c.out), 1e-6);
  EXPECT_LT(
      relative_l2(widen(pre), std::vector<double>(c.pre.begin(), c.pre.begin() + kRows * kOut)),
      1e-6);
}

TEST(FrozenLinear, CountsOneProductPerWeight) {
  OpCounters counters;
  OpContext ctx = cpu_context();
  ctx.counters = &counters;
  ForwardCase c(FrozenEpilogue::swiglu, DType::f64);
  ops::frozen_linear_forward(ctx, view(c.out, {kRows, kOut}), view(c.x, {kRows, kIn}),
                             c.weight.tensor, c.args({false, false, false, false}));
  EXPECT_EQ(counters.forward_products, 2);
  std::vector<double> dx(kRows * kIn), dout = random_values(kRows * kOut, 41);
  ops::frozen_linear_backward_input(ctx, view(dx, {kRows, kIn}), view(dout, {kRows, kOut}),
                                    c.weight.tensor, Tensor(), view(dout, {kRows, kOut}),
                                    c.up.tensor);
  EXPECT_EQ(counters.input_grad_products, 2);
  EXPECT_EQ(counters.weight_grad_products, 0);
}

// ---- quantization ------------------------------------------------------------------------------

// Quantizes rows (f32) on the CPU; returns bytes and scales.
std::pair<std::vector<uint8_t>, std::vector<float>> quantize(DType dtype, std::vector<float> w,
                                                             int64_t rows, int64_t cols) {
  std::vector<uint8_t> bytes(rows * cols, 0xAA);
  std::vector<float> scale(rows, -1.0f);
  ops::quantize_weight_per_channel(cpu_context(), Tensor(bytes.data(), dtype, {rows, cols}),
                                   view(scale, {rows}), view(w, {rows, cols}));
  return {bytes, scale};
}

// Rows of different magnitudes, one of zeros, one with a single large value.
std::vector<float> varied_rows(int64_t rows, int64_t cols) {
  std::vector<float> w = random_floats(rows * cols, 51);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      w[r * cols + c] *= std::pow(10.0f, static_cast<float>(r % 7) - 4);
  for (int64_t c = 0; c < cols; ++c) w[1 * cols + c] = 0.0f;
  w[2 * cols + 3] = 1000.0f;
  return w;
}

TEST(QuantizeWeight, Int8IsWithinHalfAStepAndUsesTheFullRange) {
  const int64_t rows = 9, cols = 37;
  const std::vector<float> w = varied_rows(rows, cols);
  const auto [bytes, scale] = quantize(DType::i8, w, rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    float absmax = 0.0f;
    int largest_q = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const int q = static_cast<int8_t>(bytes[r * cols + c]);
      EXPECT_LE(std::abs(q), 127);
      const double error = std::abs(static_cast<double>(w[r * cols + c]) - double(scale[r]) * q);
      EXPECT_LE(error, 0.5 * scale[r] * (1 + 1e-6)) << "row " << r << " col " << c;
      absmax = std::max(absmax, std::abs(w[r * cols + c]));
      largest_q = std::max(largest_q, std::abs(q));
    }
    EXPECT_EQ(scale[r], absmax / 127.0f) << "row " << r;
    EXPECT_EQ(largest_q, r == 1 ? 0 : 127) << "row " << r;
  }
}

TEST(QuantizeWeight, E4m3IsWithinHalfAnE4m3StepAndUsesTheFullRange) {
  const int64_t rows = 9, cols = 37;
  const std::vector<float> w = varied_rows(rows, cols);
  const auto [bytes, scale] = quantize(DType::f8e4m3, w, rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    double largest = 0.0;
    for (int64_t c = 0; c < cols; ++c) {
      const double q = e4m3_reference(bytes[r * cols + c]);
      const double value = w[r * cols + c];
      // 3 mantissa bits: half a step is 2^-4 relative; below 2^-6 the step is 2^-9 (absolute).
      const double bound = std::ldexp(std::abs(value), -4) + std::ldexp(double(scale[r]), -10);
      EXPECT_LE(std::abs(value - scale[r] * q), bound * (1 + 1e-6)) << "row " << r << " col " << c;
      largest = std::max(largest, std::abs(q));
    }
    EXPECT_EQ(largest, r == 1 ? 0.0 : 448.0) << "row " << r;
  }
}

TEST(QuantizeWeight, Int8RoundsTiesToEven) {
  const auto [bytes, scale] = quantize(DType::i8, {127.0f, 2.5f, 3.5f, -2.5f, 0.5f, 1.5f}, 1, 6);
  EXPECT_EQ(scale[0], 1.0f);
  const std::vector<int> expected = {127, 2, 4, -2, 0, 2};
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(static_cast<int8_t>(bytes[i]), expected[i]);
}

TEST(QuantizeWeight, E4m3RoundsTiesToEvenIncludingSubnormals) {
  // Scale 1 (absmax 448). 1.0625 lies between 1 and 1.125, 1.1875 between 1.125 and 1.25, 248
  // between 240 and 256; 2^-10 between 0 and 2^-9, 3 * 2^-10 between 2^-9 and 2^-8, 7.5 * 2^-9
  // between 7 * 2^-9 and 2^-6 (the smallest normal).
  const std::vector<float> w = {448.0f,
                                1.0625f,
                                1.1875f,
                                248.0f,
                                std::ldexp(1.0f, -10),
                                3 * std::ldexp(1.0f, -10),
                                7.5f * std::ldexp(1.0f, -9),
                                -1.0625f};
  const auto [bytes, scale] = quantize(DType::f8e4m3, w, 1, static_cast<int64_t>(w.size()));
  EXPECT_EQ(scale[0], 1.0f);
  const std::vector<uint8_t> expected = {0x7e, 0x38, 0x3a, 0x78, 0x00, 0x02, 0x08, 0xb8};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(int(bytes[i]), int(expected[i])) << i;
}

TEST(QuantizeWeight, EveryFiniteE4m3ValueComesBackAsItsCode) {
  std::vector<float> w;
  std::vector<uint8_t> codes;
  for (int code = 0; code < 256; ++code) {
    if ((code & 0x7f) == 0x7f) continue;  // NaN
    codes.push_back(static_cast<uint8_t>(code));
    w.push_back(static_cast<float>(e4m3_reference(static_cast<uint8_t>(code))));
  }
  const auto [bytes, scale] = quantize(DType::f8e4m3, w, 1, static_cast<int64_t>(w.size()));
  EXPECT_EQ(scale[0], 1.0f);
  EXPECT_EQ(bytes, codes);
}

TEST(QuantizeWeight, Bf16WeightsQuantizeLikeTheirF32Values) {
  const int64_t rows = 5, cols = 19;
  std::vector<float> w = varied_rows(rows, cols);
  std::vector<bf16> w16(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    w16[i] = float_to_bf16(w[i]);
    w[i] = bf16_to_float(w16[i]);
  }
  for (const DType dtype : {DType::i8, DType::f8e4m3}) {
    const auto [expected_bytes, expected_scale] = quantize(dtype, w, rows, cols);
    std::vector<uint8_t> bytes(rows * cols);
    std::vector<float> scale(rows);
    ops::quantize_weight_per_channel(cpu_context(), Tensor(bytes.data(), dtype, {rows, cols}),
                                     view(scale, {rows}),
                                     Tensor(w16.data(), DType::bf16, {rows, cols}));
    EXPECT_EQ(bytes, expected_bytes) << dtype_name(dtype);
    EXPECT_EQ(scale, expected_scale) << dtype_name(dtype);
  }
}

// ---- argument errors ---------------------------------------------------------------------------

TEST(FrozenLinearArguments, ErrorsNameTheTensorAndWhatWasExpected) {
  const OpContext ctx = cpu_context();
  ForwardCase c(FrozenEpilogue::none, DType::i8);
  const Tensor out = view(c.out, {kRows, kOut}), x = view(c.x, {kRows, kIn});
  const Parts plain{false, false, false, false};
  auto forward = [&](FrozenLinearArgs args, Tensor weight, Tensor out_tensor) {
    return [=, &ctx] { ops::frozen_linear_forward(ctx, out_tensor, x, weight, args); };
  };
  FrozenLinearArgs args = c.args(plain);
  args.weight_scale = Tensor();
  expect_error_naming(forward(args, c.weight.tensor, out), {"weight_scale", "i8", "(11)"});
  std::vector<float> short_scale(kOut - 1);
  args.weight_scale = view(short_scale, {kOut - 1});
  expect_error_naming(forward(args, c.weight.tensor, out), {"weight_scale", "(10)", "(11)"});
  TestWeight f64_weight = make_weight(DType::f64, kOut, kIn, 61);
  args = c.args(plain);  // a scale beside an f64 weight
  expect_error_naming(forward(args, f64_weight.tensor, out), {"weight_scale", "f64"});
  std::vector<int32_t> ints(kOut * kIn);
  expect_error_naming(forward(c.args(plain), view(ints, {kOut, kIn}), out), {"weight", "i32"});
  expect_error_naming(forward(c.args(plain), c.weight.tensor, view(c.out, {kOut, kRows})),
                      {"out", "(7, 11)"});
  args = c.args({false, false, true, false});
  args.lora_b = Tensor();
  expect_error_naming(forward(args, c.weight.tensor, out), {"lora_xa", "lora_b"});
  args = c.args({false, false, true, false});
  args.lora_b = view(c.lora_b, {kRank, kOut});
  expect_error_naming(forward(args, c.weight.tensor, out), {"lora_b", "(11, 3)"});
  args = c.args(plain);
  args.pre_activation = view(c.pre, {kRows, kOut});
  expect_error_naming(forward(args, c.weight.tensor, out), {"pre_activation", "none"});

  ForwardCase s(FrozenEpilogue::swiglu, DType::i8);
  args = s.args(plain);
  args.up_weight = Tensor();
  expect_error_naming(forward(args, s.weight.tensor, out), {"up_weight", "(11, 13)", "swiglu"});
  args = s.args(plain);
  args.up_scale = Tensor();
  expect_error_naming(forward(args, s.weight.tensor, out), {"up_scale"});
  args = s.args(plain);
  args.bias = view(s.bias, {kOut});
  expect_error_naming(forward(args, s.weight.tensor, out), {"bias", "swiglu"});
  args = s.args(plain);
  args.pre_activation = view(s.pre, {kRows, kOut});
  expect_error_naming(forward(args, s.weight.tensor, out), {"pre_activation", "(2, 7, 11)"});

  std::vector<float> x32(kRows * kIn), out32(kRows * kOut);
  expect_error_naming(
      [&] {
        ops::frozen_linear_forward(ctx, view(out32, {kRows, kOut}), view(x32, {kRows, kIn}),
                                   f64_weight.tensor, {});
      },
      {"weight", "f64", "f32"});
  std::vector<bf16> x16(kRows * kIn), out16(kRows * kOut);
  expect_error_naming(
      [&] {
        ops::frozen_linear_forward(ctx, Tensor(out16.data(), DType::bf16, {kRows, kOut}),
                                   Tensor(x16.data(), DType::bf16, {kRows, kIn}), c.weight.tensor,
                                   c.args(plain));
      },
      {"frozen_linear_forward", "cpu", "bf16"});
}

TEST(FrozenLinearArguments, BackwardAndQuantizeErrorsNameTheTensor) {
  const OpContext ctx = cpu_context();
  ForwardCase c(FrozenEpilogue::none, DType::f8e4m3);
  std::vector<double> dx(kRows * kIn), dout = random_values(kRows * kOut, 71);
  expect_error_naming(
      [&] {
        ops::frozen_linear_backward_input(ctx, view(dx, {kIn, kRows}), view(dout, {kRows, kOut}),
                                          c.weight.tensor, c.weight.scale_tensor);
      },
      {"frozen_linear_backward_input", "dx", "(7, 13)"});
  expect_error_naming(
      [&] {
        ops::frozen_linear_backward_input(ctx, view(dx, {kRows, kIn}), view(dout, {kRows, kOut}),
                                          c.weight.tensor, c.weight.scale_tensor, Tensor(),
                                          c.up.tensor);
      },
      {"up_weight", "up_dout"});
  expect_error_naming(
      [&] {
        ops::frozen_linear_backward_input(ctx, view(dx, {kRows, kIn}), view(dout, {kRows, kOut}),
                                          c.weight.tensor, c.weight.scale_tensor,
                                          view(dout, {kRows, kOut}), c.up.tensor);
      },
      {"up_scale", "f8e4m3"});
  TestWeight int8_up = make_weight(DType::i8, kOut, kIn, 72);
  expect_error_naming(
      [&] {
        ops::frozen_linear_backward_input(
            ctx, view(dx, {kRows, kIn}), view(dout, {kRows, kOut}), c.weight.tensor,
            c.weight.scale_tensor, view(dout, {kRows, kOut}), int8_up.tensor, int8_up.scale_tensor);
      },
      {"up_weight", "i8", "f8e4m3"});
  std::vector<float> w(kOut * kIn), scale(kOut), wrong(kOut * kIn);
  std::vector<double> w64(kOut * kIn);
  expect_error_naming(
      [&] {
        ops::quantize_weight_per_channel(ctx, view(wrong, {kOut, kIn}), view(scale, {kOut}),
                                         view(w, {kOut, kIn}));
      },
      {"quantized", "f32", "i8 or f8e4m3"});
  std::vector<uint8_t> bytes(kOut * kIn);
  expect_error_naming(
      [&] {
        ops::quantize_weight_per_channel(ctx, Tensor(bytes.data(), DType::i8, {kOut, kIn}),
                                         view(scale, {kOut - 1}), view(w, {kOut, kIn}));
      },
      {"scale", "(11)"});
  expect_error_naming(
      [&] {
        ops::quantize_weight_per_channel(ctx, Tensor(bytes.data(), DType::i8, {kOut, kIn}),
                                         view(scale, {kOut}), view(w64, {kOut, kIn}));
      },
      {"weight", "f64", "f32 or bf16"});
}

}  // namespace
}  // namespace ft
