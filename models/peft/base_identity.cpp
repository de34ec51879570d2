#include "models/peft/base_identity.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace ft {
namespace {

constexpr uint64_t kPrime = 0x100000001b3ull;
constexpr uint64_t kOffset = 0xcbf29ce484222325ull;

uint64_t mix(uint64_t hash, uint64_t value) {
  hash ^= value;
  hash *= kPrime;
  return hash ^ (hash >> 29);
}

template <typename T>
uint16_t bf16_bits(T value) {
  return float_to_bf16(static_cast<float>(value)).bits;
}

// Fixed-size chunks hashed independently, then combined in order: the result does not depend on
// the thread count.
template <typename T>
uint64_t hash_values(const T* values, int64_t count, int num_threads) {
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (count + kChunk - 1) / kChunk;
  std::vector<uint64_t> partial(chunks);
#pragma omp parallel for num_threads(num_threads) schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    uint64_t hash = kOffset;
    const int64_t end = std::min(count, (chunk + 1) * kChunk);
    for (int64_t i = chunk * kChunk; i < end; ++i) hash = mix(hash, bf16_bits(values[i]));
    partial[chunk] = hash;
  }
  uint64_t hash = kOffset;
  for (uint64_t value : partial) hash = mix(hash, value);
  return hash;
}

}  // namespace

std::string base_fingerprint(const ParameterStore& params, int num_threads) {
  uint64_t hash = kOffset;
  for (const Parameter& param : params.all()) {
    if (param.spec.trainable) continue;
    const Tensor& value = param.value;
    FT_CHECK(value.device == Device::cpu, "the base fingerprint reads host tensors");
    for (char c : param.spec.name) hash = mix(hash, static_cast<unsigned char>(c));
    for (int axis = 0; axis < param.spec.shape.rank; ++axis)
      hash = mix(hash, static_cast<uint64_t>(param.spec.shape[axis]));
    switch (value.dtype) {
      case DType::f32:
        hash = mix(hash, hash_values(value.ptr<float>(), value.numel(), num_threads));
        break;
      case DType::f64:
        hash = mix(hash, hash_values(value.ptr<double>(), value.numel(), num_threads));
        break;
      case DType::bf16: {
        const bf16* values = value.ptr<bf16>();
        std::vector<float> widened(value.numel());
        for (int64_t i = 0; i < value.numel(); ++i) widened[i] = bf16_to_float(values[i]);
        hash = mix(hash, hash_values(widened.data(), value.numel(), num_threads));
        break;
      }
      default:
        fail("parameter {} holds {}: no fingerprint for that dtype", param.spec.name,
             dtype_name(value.dtype));
    }
  }
  return fmt::format("{:016x}", hash);
}

}  // namespace ft
