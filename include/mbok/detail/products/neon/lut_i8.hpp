#pragma once
#include "../../guard.hpp"

// neon: the table-lookup int8 product (lut_format.hpp), interleave4 layout (as AVX-512
// VBMI): TBL with four registers looks up a 64-byte table (4 groups x 16 entries), bits 4-5
// of an index picking the group. Per 16 weight bytes (4 rows x 32 columns): two index vectors
// ((w & 15) | q << 4 and (w >> 4) | q << 4, q = byte % 4), four TBL into the L and H tables of
// the two 16-column chunks, two byte adds (each sum <= 120, unsigned), pairwise widening
// (UADDLP) of L and H into 16 bits, L + 16 H (<= 4080 per pair) and a pairwise accumulate
// (UADALP) into the row's 32-bit lane. Needs only the ARMv8-A baseline.

#include <arm_neon.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../lut_format.hpp"
#include "../table.hpp"
#include "sign_i8.hpp"

#include "begin.hpp"

namespace mbok::detail::neon {

/// Tables of t tokens (scalar::lut_tables_i8's contract), with TBL.
inline void lut_tables_tbl(const std::int8_t* x, std::size_t ldx, std::size_t t, std::size_t cols,
                           std::uint8_t* tables, std::size_t ld, std::int32_t* base) noexcept {
  const std::size_t cols32 = lut_cols32(cols), chunks = cols32 / 16;
  const std::size_t words = padded_row_words(cols);
  static constexpr std::uint8_t kBits[4][16] = {
      {0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255},
      {0, 0, 255, 255, 0, 0, 255, 255, 0, 0, 255, 255, 0, 0, 255, 255},
      {0, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0, 255, 255, 255, 255},
      {0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255}};
  uint8x16_t bit[4];
  for (int k = 0; k < 4; ++k) bit[k] = vld1q_u8(kBits[k]);
  for (std::size_t i = 0; i < t; ++i) {
    const std::int8_t* xi = x + i * ldx;
    std::uint8_t* ti = tables + i * ld;
    base[i] = static_cast<std::int32_t>(static_cast<std::uint32_t>(int8_row_sum(xi, words)) +
                                        256u * static_cast<std::uint32_t>(cols32));
    for (std::size_t c = 0; c < chunks; ++c) {
      const int8x16_t xv = vld1q_s8(xi + 16 * c);
      const uint8x16_t xl = vandq_u8(vreinterpretq_u8_s8(xv), vdupq_n_u8(15));
      const uint8x16_t xh = vreinterpretq_u8_s8(vshrq_n_s8(xv, 4));  // arithmetic: h
      std::uint8_t* out = ti + kLutChunkBytes * c;
      for (unsigned g = 0; g < 4; ++g) {
        uint8x16_t l = vdupq_n_u8(0), h = vdupq_n_u8(32);
        for (unsigned k = 0; k < 4; ++k) {
          const uint8x16_t idx = vdupq_n_u8(static_cast<std::uint8_t>(4 * g + k));
          l = vaddq_u8(l, vandq_u8(vqtbl1q_u8(xl, idx), bit[k]));
          h = vaddq_u8(h, vandq_u8(vqtbl1q_u8(xh, idx), bit[k]));
        }
        vst1q_u8(out + 16 * g, l);
        vst1q_u8(out + 64 + 16 * g, h);
      }
    }
  }
}

inline uint8x16x4_t lut_load64(const std::uint8_t* p) noexcept {
  uint8x16x4_t v;
  v.val[0] = vld1q_u8(p);
  v.val[1] = vld1q_u8(p + 16);
  v.val[2] = vld1q_u8(p + 32);
  v.val[3] = vld1q_u8(p + 48);
  return v;
}

/// The TBL kernel over interleave4 weights.
inline void sign_gemm_i8_lut_tbl(LutTablesView x, LutWeightsView w, std::int32_t* y,
                                 std::size_t ldy, std::size_t j0, std::size_t j1) noexcept {
  if (j0 >= j1) return;
  static constexpr std::uint8_t kGroup[16] = {0, 16, 32, 48, 0, 16, 32, 48,
                                              0, 16, 32, 48, 0, 16, 32, 48};
  const uint8x16_t group = vld1q_u8(kGroup), nib = vdupq_n_u8(15);
  const std::size_t supers = w.cols32() / 32;
  const std::size_t t0 = j0 / kLutTileRows, t1 = (j1 + kLutTileRows - 1) / kLutTileRows;
  for (std::size_t tile = t0; tile < t1; ++tile) {
    const std::uint8_t* wt = w.tile(tile);
    const std::size_t row0 = tile * kLutTileRows;
    const std::size_t lo = std::max(j0, row0) - row0, hi = std::min(j1, row0 + 16) - row0;
    for (std::size_t i = 0; i < x.tokens; ++i) {
      const std::uint8_t* tab = x.token(i);
      uint32x4_t acc[4] = {vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0)};
      for (std::size_t s = 0; s < supers; ++s) {
        const std::uint8_t* ts = tab + 2 * kLutChunkBytes * s;
        const uint8x16x4_t la = lut_load64(ts), ha = lut_load64(ts + 64);
        const uint8x16x4_t lb = lut_load64(ts + 128), hb = lut_load64(ts + 192);
        for (int q = 0; q < 4; ++q) {
          const uint8x16_t wv = vld1q_u8(wt + 64 * s + 16 * static_cast<std::size_t>(q));
          const uint8x16_t il = vorrq_u8(vandq_u8(wv, nib), group);
          const uint8x16_t ih = vorrq_u8(vshrq_n_u8(wv, 4), group);
          const uint8x16_t l = vaddq_u8(vqtbl4q_u8(la, il), vqtbl4q_u8(lb, ih));
          const uint8x16_t h = vaddq_u8(vqtbl4q_u8(ha, il), vqtbl4q_u8(hb, ih));
          const uint16x8_t pair = vaddq_u16(vpaddlq_u8(l), vshlq_n_u16(vpaddlq_u8(h), 4));
          acc[q] = vpadalq_u16(acc[q], pair);
        }
      }
      const uint32x4_t b = vdupq_n_u32(static_cast<std::uint32_t>(x.base[i]));
      alignas(16) std::uint32_t r[16];
      for (int q = 0; q < 4; ++q) vst1q_u32(r + 4 * q, vsubq_u32(b, vshlq_n_u32(acc[q], 1)));
      std::int32_t* out = y + i * ldy;
      for (std::size_t q = lo; q < hi; ++q) out[row0 + q - j0] = static_cast<std::int32_t>(r[q]);
    }
  }
}

inline LutLayout lut_layout() noexcept { return LutLayout::interleave4; }

inline constexpr void install_lut_i8(ProductTable& t) noexcept {
  t.lut_layout = &lut_layout;
  t.lut_tables_i8 = &lut_tables_tbl;
  t.sign_gemm_i8_lut = &sign_gemm_i8_lut_tbl;
  t.sign_gemm_i8_lut_prefill = &sign_gemm_i8_lut_tbl;  // one product for every t
  t.lut_max_tokens = 8;
}

}  // namespace mbok::detail::neon

#include "end.hpp"
