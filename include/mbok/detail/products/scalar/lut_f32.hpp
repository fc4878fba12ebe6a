#pragma once
#include "../../guard.hpp"

// Portable table-lookup float product (lut_f32_format.hpp): the per-token tables, which every
// ISA builds bit for bit the same, and the product over either weight layout. The reference of
// the SIMD versions, and the product wherever an ISA has no kernel for a layout.

#include <cstddef>
#include <cstdint>

#include "../lut_f32_format.hpp"

namespace mbok::detail::scalar {

// Tables of t tokens of v = x (.) s (s: cols values, or null for x itself; x rows `ldx`
// floats apart, read up to column cols only) into `tables` (token i at tables + i * ld).
inline void lut_tables_f32(const float* x, std::size_t ldx, std::size_t t, std::size_t cols,
                           const float* s, float* tables, std::size_t ld) noexcept {
  const std::size_t groups = lut_cols32(cols) / 4;
  for (std::size_t i = 0; i < t; ++i) {
    const float* xi = x + i * ldx;
    float* ti = tables + i * ld;
    for (std::size_t g = 0; g < groups; ++g) {
      float v[4];
      for (std::size_t k = 0; k < 4; ++k) {
        const std::size_t l = 4 * g + k;
        v[k] = l < cols ? (s != nullptr ? xi[l] * s[l] : xi[l]) : 0.0f;
      }
      float* e = ti + 16 * g;
      for (unsigned p = 0; p < 16; ++p) {
        const float a = (p & 1u ? -v[0] : v[0]) + (p & 2u ? -v[1] : v[1]);
        const float b = (p & 4u ? -v[2] : v[2]) + (p & 8u ? -v[3] : v[3]);
        e[p] = a + b;
      }
    }
  }
}

// Y[i * ldy + j] = s_out[j] acc_ij (+ Y[i * ldy + j] when `accumulate`), acc_ij = sum over the
// groups of row j's table entries of token i; s_out null: 1. Any layout.
inline void sign_gemm_f32_lut(LutTablesF32View x, LutWeightsView w, const float* s_out,
                              bool accumulate, float* y, std::size_t ldy, std::size_t j0,
                              std::size_t j1) noexcept {
  const std::size_t groups = w.cols32() / 4;
  for (std::size_t i = 0; i < x.tokens; ++i) {
    const float* tab = x.token(i);
    float* yi = y + i * ldy;
    for (std::size_t j = j0; j < j1; ++j) {
      const std::uint8_t* tile = w.tile(j / kLutTileRows);
      float acc = 0.0f;
      for (std::size_t g = 0; g < groups; ++g)
        acc += tab[16 * g + lut_f32_pattern(w.layout, tile, j % kLutTileRows, g)];
      const float v = s_out != nullptr ? s_out[j] * acc : acc;
      yi[j] = accumulate ? yi[j] + v : v;
    }
  }
}

}  // namespace mbok::detail::scalar
