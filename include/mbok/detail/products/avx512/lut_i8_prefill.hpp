#pragma once
#include "../../guard.hpp"

// avx512: the table-lookup int8 product for many tokens (prefill), over the same interleave4
// weights and tables as sign_gemm_i8_lut_vbmi (lut_i8.hpp) and with the same inner arithmetic
// (exact for the same reasons: lut_format.hpp), blocked like a GEMM:
//
// - T = 2 tokens share each weight load and its two index vectors (low / high nibble | group),
//   so a 512-weight step costs 4 VPERMB + 2 byte adds + 2 VPDPBUSD per token plus 3 index ops
//   per 2 tokens, against 11 ops per token in the per-token product. The per-token product ran
//   at about 90 % of its own loop's rate from cache at t = 128 (CPU time), so the gain had to
//   come from the instruction count, not from the memory blocking alone (docs/prefill.md);
// - columns in blocks of kLutPrefillSupers * 32 (2048): a panel of R = 4 row tiles' weights
//   over one column block (16 KiB) stays in L1 while every token of the token block passes
//   over it, each token's tables of the block (16 KiB) streaming from L2;
// - partial sums of each (token, tile) live in a small accumulator block between column blocks
//   (int32 lanes, wrapping: splitting a row's sum is exact modulo 2^32 like the sum itself).
// No prefetch: from 16 tokens on (lut_prefill_min_tokens) each weight byte read serves 16 or
// more tokens, and the hardware prefetcher keeps up with the 4 sequential streams.

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../lut_format.hpp"

#include "vbmi_begin.hpp"

namespace mbok::detail::avx512 {

// Supers (32 columns, 64 weight bytes per tile) per column block.
inline constexpr std::size_t kLutPrefillSupers = 64;
// Row tiles per panel and tokens per register block of the prefill product.
inline constexpr int kLutPrefillTiles = 4;
inline constexpr int kLutPrefillTokens = 2;
// Most tokens per token block (their accumulators: tokens x tiles x 64 bytes on the stack).
inline constexpr std::size_t kLutPrefillMaxBlock = 32;

// acc[i * R + r] += the sums of R tiles (wt[r], at the block's first super) against T tokens'
// tables (tab[i], same super), over `supers` supers.
template <int R, int T>
MBOK_AVX512_VBMI_TARGET inline void lut_prefill_block(const std::uint8_t* const* tab,
                                                      const std::uint8_t* const* wt,
                                                      std::size_t supers, __m512i* acc) noexcept {
  const __m512i nib = _mm512_set1_epi8(0x0f);
  const __m512i group = _mm512_set1_epi32(0x30201000);  // q << 4 in byte 4 r + q
  const __m512i ones = _mm512_set1_epi8(1), sixteen = _mm512_set1_epi8(16);
  __m512i a[T][R];
  for (int i = 0; i < T; ++i)
    for (int r = 0; r < R; ++r) a[i][r] = _mm512_load_si512(acc + i * R + r);
  for (std::size_t s = 0; s < supers; ++s) {
    __m512i la[T], ha[T], lb[T], hb[T];
    for (int i = 0; i < T; ++i) {
      const std::uint8_t* ts = tab[i] + 2 * kLutChunkBytes * s;
      la[i] = _mm512_load_si512(ts);
      ha[i] = _mm512_load_si512(ts + 64);
      lb[i] = _mm512_load_si512(ts + 128);
      hb[i] = _mm512_load_si512(ts + 192);
    }
    for (int r = 0; r < R; ++r) {
      const __m512i w = _mm512_load_si512(wt[r] + 64 * s);
      // (w & 15) | group and ((w >> 4) & 15) | group: 0xea is (A & B) | C.
      const __m512i lo = _mm512_ternarylogic_epi32(w, nib, group, 0xea);
      const __m512i hi = _mm512_ternarylogic_epi32(_mm512_srli_epi16(w, 4), nib, group, 0xea);
      for (int i = 0; i < T; ++i) {
        const __m512i l =
            _mm512_add_epi8(_mm512_permutexvar_epi8(lo, la[i]), _mm512_permutexvar_epi8(hi, lb[i]));
        const __m512i h =
            _mm512_add_epi8(_mm512_permutexvar_epi8(lo, ha[i]), _mm512_permutexvar_epi8(hi, hb[i]));
        a[i][r] = _mm512_dpbusd_epi32(a[i][r], l, ones);
        a[i][r] = _mm512_dpbusd_epi32(a[i][r], h, sixteen);
      }
    }
  }
  for (int i = 0; i < T; ++i)
    for (int r = 0; r < R; ++r) _mm512_store_si512(acc + i * R + r, a[i][r]);
}

// The prefill product with R tiles per panel, T tokens per register block and KS supers per
// column block (parameters, so that the benchmark can measure the alternatives).
template <int R, int T, std::size_t KS>
MBOK_AVX512_VBMI_TARGET inline void lut_prefill_vbmi(LutTablesView x, LutWeightsView w,
                                                     std::int32_t* y, std::size_t ldy,
                                                     std::size_t j0, std::size_t j1) noexcept {
  constexpr std::size_t B = kLutPrefillMaxBlock;
  if (j0 >= j1 || x.tokens == 0) return;
  const std::size_t supers = w.cols32() / 32;
  const std::size_t t0 = j0 / kLutTileRows, t1 = (j1 + kLutTileRows - 1) / kLutTileRows;
  // Tokens in blocks whose tables stay in L2 while every panel passes over them.
  const std::size_t block =
      std::clamp<std::size_t>(kLutTableBlockBytes / std::max<std::size_t>(x.ld, 1), 1, B);
  alignas(64) __m512i acc[(B + T - 1) / T * T * R];
  for (std::size_t i0 = 0; i0 < x.tokens; i0 += block) {
    const std::size_t nb = std::min(block, x.tokens - i0);
    for (std::size_t tb = t0; tb < t1; tb += R) {
      const std::size_t nt = std::min<std::size_t>(R, t1 - tb);
      const std::uint8_t* wt[R];
      for (int r = 0; r < R; ++r)  // past the range's last tile, that tile again (not stored)
        wt[r] = w.tile(tb + std::min<std::size_t>(static_cast<std::size_t>(r), nt - 1));
      for (std::size_t k = 0; k < (nb + T - 1) / T * T * R; ++k) acc[k] = _mm512_setzero_si512();
      for (std::size_t s0 = 0; s0 < supers; s0 += KS) {
        const std::size_t ks = std::min(KS, supers - s0);
        const std::uint8_t* ws[R];
        for (int r = 0; r < R; ++r) ws[r] = wt[r] + 64 * s0;
        for (std::size_t i = 0; i < nb; i += T) {
          const std::uint8_t* tab[T];
          for (int k = 0; k < T; ++k)  // past the block's last token, that token again
            tab[k] = x.token(i0 + std::min(i + static_cast<std::size_t>(k), nb - 1)) +
                     2 * kLutChunkBytes * s0;
          lut_prefill_block<R, T>(tab, ws, ks, acc + i * R);
        }
      }
      for (std::size_t i = 0; i < nb; ++i) {
        const __m512i base = _mm512_set1_epi32(x.base[i0 + i]);
        for (std::size_t r = 0; r < nt; ++r) {
          const std::size_t row0 = (tb + r) * kLutTileRows;
          const std::size_t lo = std::max(j0, row0) - row0, hi = std::min(j1, row0 + 16) - row0;
          const __m512i v = _mm512_sub_epi32(base, _mm512_slli_epi32(acc[i * R + r], 1));
          std::int32_t* out = y + (i0 + i) * ldy + (row0 + lo - j0);
          if (lo == 0 && hi == 16)
            _mm512_storeu_si512(out, v);
          else  // an edge tile: its rows [lo, hi), packed to the front
            _mm512_mask_compressstoreu_epi32(
                out, static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u)), v);
        }
      }
    }
  }
}

/// The prefill product (sign_gemm_i8_lut_vbmi's contract); call it only when the CPU has VBMI
/// and VNNI.
MBOK_AVX512_VBMI_TARGET inline void sign_gemm_i8_lut_prefill_vbmi(LutTablesView x, LutWeightsView w,
                                                                  std::int32_t* y, std::size_t ldy,
                                                                  std::size_t j0,
                                                                  std::size_t j1) noexcept {
  lut_prefill_vbmi<kLutPrefillTiles, kLutPrefillTokens, kLutPrefillSupers>(x, w, y, ldy, j0, j1);
}

}  // namespace mbok::detail::avx512

#include "vbmi_end.hpp"
