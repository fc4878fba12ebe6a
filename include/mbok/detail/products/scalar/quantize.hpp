#pragma once
#include "../../guard.hpp"

// Portable per-token int8 quantization (activations.hpp's `quantize_activations`): the entries
// every ISA's table starts from and the reference the vector versions match bit for bit. Both
// read v(l) = x(l) * s(l) (s null: x(l)), recomputing the same float product in each pass
// instead of keeping it in a buffer (no allocation per call).

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../table.hpp"

namespace mbok::detail::scalar {

// max |v| over n values as its bit pattern: for finite floats the order of |v| is the integer
// order of (bits & 0x7FFFFFFF), and NaN and infinities are exactly the patterns >= 0x7F800000.
// An integer max reduction vectorizes (a float one does not, for its NaN rules); 16
// independent maxima hide the latency of the compare-and-select chain.
inline std::uint32_t abs_max_bits_f32(const float* x, const float* s, std::size_t n) noexcept {
  auto abs_bits = [x, s](std::size_t l) {
    const float f = s != nullptr ? x[l] * s[l] : x[l];
    std::uint32_t b;
    std::memcpy(&b, &f, sizeof b);
    return b & 0x7FFFFFFFu;
  };
  std::uint32_t acc[16] = {};
  std::size_t l0 = 0;
  for (; l0 + 16 <= n; l0 += 16)
    for (std::size_t j = 0; j < 16; ++j) {
      const std::uint32_t b = abs_bits(l0 + j);
      acc[j] = b > acc[j] ? b : acc[j];
    }
  for (; l0 < n; ++l0) {
    const std::uint32_t b = abs_bits(l0);
    acc[0] = b > acc[0] ? b : acc[0];
  }
  std::uint32_t best = 0;
  for (std::uint32_t a : acc) best = a > best ? a : best;
  return best;
}

// q(l) = r rounded to nearest, halves away from zero, clamped to [-127, 127], where
// r = (v(l) * pre) * inv, and without the first product when pre is 1; q has n bytes.
// Returns sum q.
template <bool kScaled, bool kPre>
std::int32_t quantize_codes_loop(const float* x, const float* s, std::size_t n, float pre,
                                 float inv, std::int8_t* q) noexcept {
  // The byte stores could alias x and s for all the compiler knows, which keeps it from
  // vectorizing the loop.
  std::int8_t* __restrict out = q;
  std::int32_t sum = 0;
  for (std::size_t l = 0; l < n; ++l) {
    float v = kScaled ? x[l] * s[l] : x[l];
    if (kPre) v *= pre;
    const float r = v * inv;
    // v * (127 / amax) can exceed 127 by a rounding step; the clamp keeps q in range.
    int qv = static_cast<int>(r + (r >= 0.0f ? 0.5f : -0.5f));
    qv = qv < -127 ? -127 : (qv > 127 ? 127 : qv);
    out[l] = static_cast<std::int8_t>(qv);
    sum += qv;
  }
  return sum;
}

#include "../generic/quantize.hpp"

}  // namespace mbok::detail::scalar
