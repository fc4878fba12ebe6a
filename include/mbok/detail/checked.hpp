#pragma once
#include "guard.hpp"

// Checked arithmetic for sizes, and checks of options narrowed from double to float.
// Every size product in the library goes through checked_mul, so a huge shape is an error
// instead of a wrapped, too-small allocation.

#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "../error.hpp"

namespace mbok::detail {

// out = a * b; false (out unchanged) when the product overflows std::size_t.
inline constexpr bool checked_mul(std::size_t a, std::size_t b, std::size_t& out) noexcept {
  if (b != 0 && a > SIZE_MAX / b) return false;
  out = a * b;
  return true;
}

// a * b * ..., or InvalidArgument("mbok: <what...>") when a product overflows.
template <typename... Parts>
inline std::size_t mul_or_throw(std::initializer_list<std::size_t> factors, const Parts&... what) {
  std::size_t out = 1;
  for (std::size_t f : factors)
    if (!checked_mul(out, f, out))
      throw InvalidArgument(concat("mbok: ", what..., " overflows the address space"));
  return out;
}

// a + b; false when the sum overflows std::size_t.
inline constexpr bool checked_add(std::size_t a, std::size_t b, std::size_t& out) noexcept {
  if (a > SIZE_MAX - b) return false;
  out = a + b;
  return true;
}

// True when x, used as a float, is finite and > 0: x > 0 and it neither overflows float nor
// rounds to zero. (The comparison stays in double: converting a double beyond float's
// range is undefined behaviour.)
inline bool positive_as_float(double x) noexcept {
  return std::isfinite(x) && x > 0 && x <= static_cast<double>(FLT_MAX) &&
         static_cast<float>(x) > 0.0f;
}

// True when x, used as a float, is finite and >= 0.
inline bool non_negative_as_float(double x) noexcept {
  return std::isfinite(x) && x >= 0 && x <= static_cast<double>(FLT_MAX);
}

}  // namespace mbok::detail
