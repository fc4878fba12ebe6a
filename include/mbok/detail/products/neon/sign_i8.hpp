#pragma once
#include "../../guard.hpp"

// neon: Boolean weights x int8 activations: table entry sign_gemm_i8.
//
// Each 16 weight bits become 16 byte masks (TBL spreads two bytes of the word over eight
// lanes each, CMTST picks each lane's bit). Two variants, both exact for n < 2^24:
// - sdot: with the dot-product extension (ARMv8.2+, optional; hwcap ASIMDDP), the masks
//   become +-1 bytes (mask | 1) and SDOT multiplies and sums four of them per 32-bit lane.
//   The baseline ARMv8-A lacks SDOT, so only these functions are compiled for it, and only
//   run when the CPU reports it.
// - plain: the masks select the activations at -1 weights (AND), SADALP sums them pairwise
//   into 16-bit lanes (at most 1024 in magnitude per 64 activations, flushed into 32-bit
//   lanes every 31 words), and dot = sum(all) - 2 sum(selected), in 64 bits.
// The table entry picks the variant from cpu_features().dotprod.

#include <arm_neon.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../../../isa.hpp"
#include "../table.hpp"

#include "begin.hpp"

// GCC declares vdotq_s32 under "arch=armv8.2-a+dotprod", and a caller must hold every flag
// of an always_inline callee; clang names the extension alone.
#if defined(__clang__)
#define MBOK_NEON_DOTPROD_TARGET __attribute__((target("dotprod")))
#else
#define MBOK_NEON_DOTPROD_TARGET __attribute__((target("arch=armv8.2-a+dotprod")))
#endif

namespace mbok::detail::neon {

// The byte masks (0xFF where the weight is -1) of the 64 weights in `word`, 16 per vector.
struct ByteMasks64 {
  uint8x16_t m[4];
};

inline ByteMasks64 byte_masks64(std::uint64_t word) noexcept {
  static constexpr std::uint8_t kIndex[4][16] = {{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
                                                 {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
                                                 {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5},
                                                 {6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7}};
  static constexpr std::uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128,
                                            1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t bytes = vreinterpretq_u8_u64(vdupq_n_u64(word));
  const uint8x16_t bit = vld1q_u8(kBit);
  ByteMasks64 s;
  for (int k = 0; k < 4; ++k) s.m[k] = vtstq_u8(vqtbl1q_u8(bytes, vld1q_u8(kIndex[k])), bit);
  return s;
}

// One tile of the sdot variant: TI tokens x TJ weight rows over `words` 64-bit words.
template <int TI, int TJ>
MBOK_NEON_DOTPROD_TARGET inline void sign_i8_tile_sdot(const std::int8_t* const* x,
                                                       const std::uint64_t* const* w,
                                                       std::size_t words, std::int32_t* y,
                                                       std::size_t ldy) noexcept {
  const uint8x16_t one = vdupq_n_u8(1);
  int32x4_t acc[TI][TJ];
  for (int i = 0; i < TI; ++i)
    for (int j = 0; j < TJ; ++j) acc[i][j] = vdupq_n_s32(0);
  for (std::size_t q = 0; q < words; ++q) {
    int8x16_t xv[TI][4];
    for (int i = 0; i < TI; ++i)
      for (int k = 0; k < 4; ++k)
        xv[i][k] = vld1q_s8(x[i] + q * 64 + static_cast<std::size_t>(k) * 16);
    for (int j = 0; j < TJ; ++j) {
      const ByteMasks64 s = byte_masks64(w[j][q]);
      for (int k = 0; k < 4; ++k) {
        const int8x16_t sign = vreinterpretq_s8_u8(vorrq_u8(s.m[k], one));  // +1 or -1
        for (int i = 0; i < TI; ++i) acc[i][j] = vdotq_s32(acc[i][j], xv[i][k], sign);
      }
    }
  }
  for (int i = 0; i < TI; ++i)
    for (int j = 0; j < TJ; ++j)
      y[static_cast<std::size_t>(i) * ldy + static_cast<std::size_t>(j)] = vaddvq_s32(acc[i][j]);
}

// Words per 16-bit accumulation block of the plain variant: 31 * 4 * 256 < 32768.
inline constexpr std::size_t kI8WordsPerBlock = 31;

// sum of the int8 values selected by `mask` (all of them for an all-ones mask), 64 at a time.
inline int16x8_t masked_pair_sums(int16x8_t acc, const int8x16_t* xv,
                                  const ByteMasks64& s) noexcept {
  for (int k = 0; k < 4; ++k) acc = vpadalq_s8(acc, vandq_s8(xv[k], vreinterpretq_s8_u8(s.m[k])));
  return acc;
}

// One tile of the plain variant. `total[i]` is the sum of token i's activations.
template <int TI, int TJ>
inline void sign_i8_tile_plain(const std::int8_t* const* x, const std::int64_t* total,
                               const std::uint64_t* const* w, std::size_t words, std::int32_t* y,
                               std::size_t ldy) noexcept {
  int32x4_t neg[TI][TJ];
  for (int i = 0; i < TI; ++i)
    for (int j = 0; j < TJ; ++j) neg[i][j] = vdupq_n_s32(0);
  for (std::size_t q0 = 0; q0 < words; q0 += kI8WordsPerBlock) {
    const std::size_t q1 = std::min(words, q0 + kI8WordsPerBlock);
    int16x8_t acc[TI][TJ];
    for (int i = 0; i < TI; ++i)
      for (int j = 0; j < TJ; ++j) acc[i][j] = vdupq_n_s16(0);
    for (std::size_t q = q0; q < q1; ++q) {
      int8x16_t xv[TI][4];
      for (int i = 0; i < TI; ++i)
        for (int k = 0; k < 4; ++k)
          xv[i][k] = vld1q_s8(x[i] + q * 64 + static_cast<std::size_t>(k) * 16);
      for (int j = 0; j < TJ; ++j) {
        const ByteMasks64 s = byte_masks64(w[j][q]);
        for (int i = 0; i < TI; ++i) acc[i][j] = masked_pair_sums(acc[i][j], xv[i], s);
      }
    }
    for (int i = 0; i < TI; ++i)
      for (int j = 0; j < TJ; ++j) neg[i][j] = vpadalq_s16(neg[i][j], acc[i][j]);
  }
  for (int i = 0; i < TI; ++i)
    for (int j = 0; j < TJ; ++j)
      y[static_cast<std::size_t>(i) * ldy + static_cast<std::size_t>(j)] =
          static_cast<std::int32_t>(total[i] -
                                    2 * static_cast<std::int64_t>(vaddlvq_s32(neg[i][j])));
}

// Sum of one padded activation row (zeros past n), exact in 64 bits.
inline std::int64_t int8_row_sum(const std::int8_t* x, std::size_t words) noexcept {
  int64x2_t total = vdupq_n_s64(0);
  for (std::size_t q0 = 0; q0 < words; q0 += kI8WordsPerBlock) {
    const std::size_t q1 = std::min(words, q0 + kI8WordsPerBlock);
    int16x8_t acc = vdupq_n_s16(0);
    for (std::size_t q = q0; q < q1; ++q)
      for (int k = 0; k < 4; ++k)
        acc = vpadalq_s8(acc, vld1q_s8(x + q * 64 + static_cast<std::size_t>(k) * 16));
    total = vpadalq_s32(total, vpaddlq_s16(acc));
  }
  return vaddvq_s64(total);
}

#include "../generic/tile_loop.hpp"

// Both variants run tiles of 2 tokens x 4 weight rows over rows [j0, j1), with no L1 blocking.
inline constexpr std::size_t kI8TileI = 2;
inline constexpr std::size_t kI8TileJ = 4;

/// The sdot variant; call it only when cpu_features().dotprod.
MBOK_NEON_DOTPROD_TARGET inline void sign_gemm_i8_sdot(const std::int8_t* x, std::size_t ldx,
                                                       std::size_t t, BitMatrixView w,
                                                       std::int32_t* y, std::size_t ldy,
                                                       std::size_t j0, std::size_t j1) {
  const std::size_t words = w.row_words();
  tile_loop<kI8TileI, kI8TileJ>(
      x, ldx, t, w, j0, j1, j1 - j0,
      [&](std::size_t i, std::size_t ti, const std::int8_t* const* xr, std::size_t j,
          std::size_t tj, const std::uint64_t* const* wr) {
        std::int32_t* out = y + i * ldy + j;
        with_tile_size<kI8TileI>(ti, [&](auto tile_i) {
          with_tile_size<kI8TileJ>(tj, [&](auto tile_j) {
            sign_i8_tile_sdot<decltype(tile_i)::value, decltype(tile_j)::value>(xr, wr, words, out,
                                                                                ldy);
          });
        });
      });
}

/// The variant for every AArch64 CPU (no dot-product extension needed).
inline void sign_gemm_i8_plain(const std::int8_t* x, std::size_t ldx, std::size_t t,
                               BitMatrixView w, std::int32_t* y, std::size_t ldy, std::size_t j0,
                               std::size_t j1) {
  const std::size_t words = w.row_words();
  // The activation sums of the current token tile, computed once per tile of tokens.
  std::size_t summed = ~std::size_t{0};
  std::int64_t total[kI8TileI] = {0, 0};
  tile_loop<kI8TileI, kI8TileJ>(
      x, ldx, t, w, j0, j1, j1 - j0,
      [&](std::size_t i, std::size_t ti, const std::int8_t* const* xr, std::size_t j,
          std::size_t tj, const std::uint64_t* const* wr) {
        if (i != summed) {
          summed = i;
          total[0] = int8_row_sum(xr[0], words);
          total[1] = ti == 2 ? int8_row_sum(xr[1], words) : 0;
        }
        std::int32_t* out = y + i * ldy + j;
        with_tile_size<kI8TileI>(ti, [&](auto tile_i) {
          with_tile_size<kI8TileJ>(tj, [&](auto tile_j) {
            sign_i8_tile_plain<decltype(tile_i)::value, decltype(tile_j)::value>(xr, total, wr,
                                                                                 words, out, ldy);
          });
        });
      });
}

/// True when the table entry runs the sdot variant (the CPU has the dot-product extension).
inline bool sign_i8_uses_sdot() noexcept { return cpu_features().dotprod; }

inline void sign_gemm_i8(const std::int8_t* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                         std::int32_t* y, std::size_t ldy, std::size_t j0, std::size_t j1) {
  if (sign_i8_uses_sdot())
    sign_gemm_i8_sdot(x, ldx, t, w, y, ldy, j0, j1);
  else
    sign_gemm_i8_plain(x, ldx, t, w, y, ldy, j0, j1);
}

inline constexpr void install_sign_i8(ProductTable& t) noexcept { t.sign_gemm_i8 = &sign_gemm_i8; }

}  // namespace mbok::detail::neon

#undef MBOK_NEON_DOTPROD_TARGET

#include "end.hpp"
