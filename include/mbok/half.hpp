#pragma once
/// \file
/// IEEE binary16 (F16) and bfloat16 (BF16) conversions to and from float, bit-exact:
/// subnormals, signed zeros, infinities and NaN (payload kept, made quiet) are handled, and
/// float -> 16-bit rounds to nearest, ties to even (overflow gives infinity). The one binary16
/// converter of the library: file I/O and the optimizer's 16-bit accumulators both use it.

#include <cstdint>
#include <cstring>

namespace mbok {

/// The float value of the binary16 bit pattern `h` (exact: every F16 is a float).
inline float f16_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits;
  if (exponent == 0x1fu) {  // infinity or NaN: payload moves to the top of the float mantissa
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal: normalise (value = mantissa * 2^-24)
    exponent = 113u;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

/// The binary16 bit pattern nearest to `x` (ties to even; beyond 65504 rounds to infinity
/// as IEEE requires; NaN stays NaN, made quiet).
inline std::uint16_t float_to_f16(float x) noexcept {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  const std::uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u)  // NaN
    return static_cast<std::uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));
  if (abs >= 0x477ff000u)  // >= 65520 (halfway past 65504, which is odd): infinity
    return static_cast<std::uint16_t>(sign | 0x7c00u);
  const std::uint32_t exponent = abs >> 23;
  if (abs < 0x38800000u) {             // below 2^-14: an F16 subnormal or zero
    if (exponent < 102u) return sign;  // below 2^-25: rounds to zero
    const std::uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126u - exponent;  // value / 2^-24 = mantissa >> shift
    std::uint32_t r = mantissa >> shift;
    const std::uint32_t rest = mantissa & ((1u << shift) - 1u);
    const std::uint32_t half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (r & 1u))) ++r;  // may carry into the smallest normal
    return static_cast<std::uint16_t>(sign | r);
  }
  std::uint32_t r = ((exponent - 112u) << 10) | ((abs >> 13) & 0x3ffu);
  const std::uint32_t rest = abs & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (r & 1u))) ++r;  // a carry bumps the exponent
  return static_cast<std::uint16_t>(sign | r);
}

/// The float value of the bfloat16 bit pattern `b` (exact).
inline float bf16_to_float(std::uint16_t b) noexcept {
  const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

/// The bfloat16 bit pattern nearest to `x` (ties to even; NaN stays NaN, made quiet).
inline std::uint16_t float_to_bf16(float x) noexcept {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}

}  // namespace mbok
