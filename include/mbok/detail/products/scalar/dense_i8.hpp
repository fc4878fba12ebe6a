#pragma once
#include "../../guard.hpp"

// Portable dense int8 x float product (table entry dense_i8_f32): the reference the SIMD
// versions are tested against (within float rounding: they sum in another order) and the
// fallback where no SIMD version is installed.

#include <cstddef>
#include <cstdint>

namespace mbok::detail::scalar {

inline void dense_i8_f32(const std::int8_t* q, std::size_t ldq, const float* s, std::size_t n,
                         const float* x, std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
                         std::size_t j0, std::size_t j1) {
  for (std::size_t j = j0; j < j1; ++j) {
    const std::int8_t* row = q + j * ldq;
    for (std::size_t i = 0; i < t; ++i) {
      const float* xi = x + i * ldx;
      float acc = 0.0f;
      for (std::size_t l = 0; l < n; ++l) acc += static_cast<float>(row[l]) * xi[l];
      y[i * ldy + j] = s[j] * acc;
    }
  }
}

}  // namespace mbok::detail::scalar
