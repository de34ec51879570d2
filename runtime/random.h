// A small, portable random generator (splitmix64). Standard-library engines are portable but
// their distributions are not; ft's initialization must give the same weights everywhere.
#pragma once

#include <cmath>
#include <cstdint>

namespace ft {

class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  // Two seeds combined into one stream, e.g. (run seed, parameter index).
  Random(uint64_t seed, uint64_t stream)
      : state_(mix(seed ^ mix(stream + 0x9e3779b97f4a7c15ull))) {}

  uint64_t next_u64() { return mix(state_ += 0x9e3779b97f4a7c15ull); }
  // Uniform in [0, bound) by rejection, so no value is favoured (bound > 0).
  uint64_t below(uint64_t bound) {
    const uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
    uint64_t value = next_u64();
    while (value < threshold) value = next_u64();
    return value % bound;
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // Standard normal by Box-Muller (one value per call; the pair's second half is dropped).
  double normal() {
    double u1 = uniform();
    double u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  uint64_t state() const { return state_; }

  static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

}  // namespace ft
