#pragma once
#include "../guard.hpp"

// Saturating binary16 storage and a counter-based random stream for stochastic rounding,
// used by the optimizer's narrow accumulators.

#include <cstdint>
#include <cstring>

#include "../../half.hpp"

namespace mbok::detail {

// The bit pattern of a float and back (the optimizer compares magnitudes as integers).
inline std::uint32_t float_bits(float f) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float bits_float(std::uint32_t u) noexcept {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// The optimizer's 16-bit accumulators: float_to_f16 of <mbok/half.hpp> (the one binary16
// converter; f16_to_float reads them back), except that values beyond the largest finite half
// (65504) saturate to it, so an accumulator never becomes infinite. NaN is never passed in
// (inputs are checked).
inline std::uint16_t float_to_f16_saturating(float f) noexcept {
  constexpr float kMaxHalf = 65504.0f;
  return float_to_f16(f > kMaxHalf ? kMaxHalf : (f < -kMaxHalf ? -kMaxHalf : f));
}

inline std::uint64_t splitmix64(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A uniform float in [0, 1) that depends only on (key, index): any thread can draw the
// number of any element without shared state, so results do not depend on threading.
inline float counter_uniform(std::uint64_t key, std::uint64_t index) noexcept {
  return static_cast<float>(splitmix64(key ^ (index * 0xD1B54A32D192ED03ull)) >> 40) *
         (1.0f / 16777216.0f);
}

}  // namespace mbok::detail
