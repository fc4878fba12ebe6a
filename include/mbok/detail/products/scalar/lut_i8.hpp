#pragma once
#include "../../guard.hpp"

// Portable table-lookup int8 product (lut_format.hpp): the per-token tables and the kernel
// over the interleave4 layout. The reference the SIMD versions match bit for bit, and the
// LUT path on CPUs without a SIMD tier.

#include <cstddef>
#include <cstdint>

#include "../lut_format.hpp"

namespace mbok::detail::scalar {

// Tables of t tokens (x rows `ldx` bytes apart, zero past n up to the padded row) into
// `tables` (token i at tables + i * ld) and base(i) = sum(x_i) + 256 cols32, modulo 2^32.
inline void lut_tables_i8(const std::int8_t* x, std::size_t ldx, std::size_t t, std::size_t cols,
                          std::uint8_t* tables, std::size_t ld, std::int32_t* base) noexcept {
  const std::size_t cols32 = lut_cols32(cols);
  for (std::size_t i = 0; i < t; ++i) {
    const std::int8_t* xi = x + i * ldx;
    std::uint8_t* ti = tables + i * ld;
    std::uint32_t total = 0;
    for (std::size_t l = 0; l < cols32; ++l) total += static_cast<std::uint32_t>(xi[l]);
    base[i] = static_cast<std::int32_t>(total + 256u * static_cast<std::uint32_t>(cols32));
    for (std::size_t c = 0; c < cols32 / 16; ++c)
      for (std::size_t g = 0; g < 4; ++g) {
        const std::int8_t* v = xi + 16 * c + 4 * g;
        std::uint8_t* lo = ti + kLutChunkBytes * c + 16 * g;
        std::uint8_t* hi = lo + 64;
        lo[0] = 0;
        hi[0] = 32;
        // T(p) = T(p without its lowest bit) + the value of that bit's column.
        for (unsigned p = 1; p < 16; ++p) {
          const int xv = v[__builtin_ctz(p)];
          const int h = (xv + 128) / 16 - 8;  // floor(x / 16), in [-8, 7]
          const int l = xv - 16 * h;          // in [0, 15]
          lo[p] = static_cast<std::uint8_t>(lo[p & (p - 1)] + l);
          hi[p] = static_cast<std::uint8_t>(hi[p & (p - 1)] + h);
        }
      }
  }
}

// Y[i * ldy + j - j0] = X_i . W_j for every token of `x` and j in [j0, j1), interleave4
// weights.
inline void sign_gemm_i8_lut(LutTablesView x, LutWeightsView w, std::int32_t* y, std::size_t ldy,
                             std::size_t j0, std::size_t j1) noexcept {
  const std::size_t supers = w.cols32() / 32;
  for (std::size_t i = 0; i < x.tokens; ++i) {
    const std::uint8_t* tab = x.token(i);
    const auto base = static_cast<std::uint32_t>(x.base[i]);
    for (std::size_t j = j0; j < j1; ++j) {
      const std::uint8_t* wt = w.tile(j / kLutTileRows) + 4 * (j % kLutTileRows);
      std::uint32_t acc = 0;
      for (std::size_t s = 0; s < supers; ++s) {
        const std::uint8_t* b = wt + 64 * s;
        const std::uint8_t* ta = tab + 2 * kLutChunkBytes * s;
        const std::uint8_t* tb = ta + kLutChunkBytes;
        for (unsigned q = 0; q < 4; ++q) {
          const unsigned lo = 16 * q + (b[q] & 15u), hi = 16 * q + (b[q] >> 4);
          acc += ta[lo] + 16u * ta[64 + lo] + tb[hi] + 16u * tb[64 + hi];
        }
      }
      y[i * ldy + j - j0] = static_cast<std::int32_t>(base - 2u * acc);
    }
  }
}

inline LutLayout lut_layout() noexcept { return LutLayout::interleave4; }

}  // namespace mbok::detail::scalar
