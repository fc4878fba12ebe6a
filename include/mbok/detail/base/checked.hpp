#pragma once
#include "../guard.hpp"

// Checked arithmetic for sizes, and checks of options narrowed from double to float.
// Every size product in the library goes through checked_mul, so a huge shape is an error
// instead of a wrapped, too-small allocation.

#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "../../error.hpp"

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

// True when `rows` rows of `cols` elements of `elem` bytes, `ld` elements apart, can be
// addressed from one pointer: ((rows - 1) * ld + cols) * elem <= PTRDIFF_MAX without
// wrapping (no rows: true). A caller's t and stride whose product wraps would otherwise make
// x + i * ld point anywhere.
inline bool addressable(std::size_t rows, std::size_t ld, std::size_t cols,
                        std::size_t elem) noexcept {
  std::size_t span = 0, bytes = 0;
  return rows == 0 ||
         (checked_mul(rows - 1, ld, span) && checked_add(span, cols, span) &&
          checked_mul(span, elem, bytes) && bytes <= static_cast<std::size_t>(PTRDIFF_MAX));
}

// InvalidArgument("mbok: <what...>: ...") unless `addressable(rows, ld, cols, elem)`.
template <typename... Parts>
inline void require_addressable(std::size_t rows, std::size_t ld, std::size_t cols,
                                std::size_t elem, const Parts&... what) {
  if (!addressable(rows, ld, cols, elem))
    throw InvalidArgument(concat("mbok: ", what..., ": ", rows, " rows of ", cols, " elements, ",
                                 ld, " apart, overflow the address space"));
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
