#pragma once
#include "../../guard.hpp"

// avx512: the table-lookup int8 product (lut_format.hpp), interleave4 layout. Needs VBMI
// (VPERMB) and VNNI (VPDPBUSD) on top of the avx512 tier; without them the avx512 table packs
// the lanes16 layout and runs the avx2 product (lut_layout below).
//
// Per 64 weight bytes (16 rows x 32 columns): two index vectors (low nibbles, high nibbles
// shifted down; VPTERNLOG puts the group q = byte % 4 into bits 4-5), four VPERMB into the
// two 64-byte L and H tables of each of the two 16-column chunks, two byte adds (L: two
// entries <= 60 sum to <= 120; H: <= 120, both unsigned), and two VPDPBUSD: acc += L * 1 and
// acc += H * 16, each summing the 4 bytes of one row into its int32 lane (exact: VPDPBUSD
// does not saturate and the lanes wrap modulo 2^32, see lut_format.hpp). R = 8 tiles of 16
// rows share each table load, and their weights are prefetched (lut_tiles_vbmi).

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../lut_format.hpp"
#include "../table.hpp"
#include "sign_i8.hpp"

#include "vbmi_begin.hpp"

namespace mbok::detail::avx512 {

/// Tables of t tokens (scalar::lut_tables_i8's contract), with VPERMB.
MBOK_AVX512_VBMI_TARGET inline void lut_tables_vbmi(const std::int8_t* x, std::size_t ldx,
                                                    std::size_t t, std::size_t cols,
                                                    std::uint8_t* tables, std::size_t ld,
                                                    std::int32_t* base) noexcept {
  const std::size_t cols32 = lut_cols32(cols), chunks = cols32 / 16;
  const std::size_t words = padded_row_words(cols);
  // Entry e = 16 g + p of a chunk: bit k of p selects column 4 g + k of the chunk.
  const __m512i group =
      _mm512_set_epi64(0x0c0c0c0c0c0c0c0cll, 0x0c0c0c0c0c0c0c0cll, 0x0808080808080808ll,
                       0x0808080808080808ll, 0x0404040404040404ll, 0x0404040404040404ll, 0, 0);
  const __mmask64 bit[4] = {0xaaaaaaaaaaaaaaaaull, 0xccccccccccccccccull, 0xf0f0f0f0f0f0f0f0ull,
                            0xff00ff00ff00ff00ull};
  const __m512i nib = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8);
  const __m512i h_bias = _mm512_set1_epi8(32);
  for (std::size_t i = 0; i < t; ++i) {
    const std::int8_t* xi = x + i * ldx;
    std::uint8_t* ti = tables + i * ld;
    base[i] = static_cast<std::int32_t>(static_cast<std::uint32_t>(i8_row_sum(xi, words)) +
                                        256u * static_cast<std::uint32_t>(cols32));
    for (std::size_t v = 0; v * 4 < chunks; ++v) {
      const __m512i xv = _mm512_load_si512(xi + 64 * v);
      const __m512i xl = _mm512_and_si512(xv, nib);
      // h = (x >> 4) as a signed nibble: ((x >> 4) & 15) xor 8, minus 8.
      const __m512i xh = _mm512_sub_epi8(
          _mm512_xor_si512(_mm512_and_si512(_mm512_srli_epi16(xv, 4), nib), eight), eight);
      for (std::size_t c = 0; c < 4 && 4 * v + c < chunks; ++c) {
        __m512i l = _mm512_setzero_si512(), h = h_bias;
        for (int k = 0; k < 4; ++k) {
          const __m512i idx =
              _mm512_add_epi8(group, _mm512_set1_epi8(static_cast<char>(16 * c + k)));
          l = _mm512_mask_add_epi8(l, bit[k], l, _mm512_permutexvar_epi8(idx, xl));
          h = _mm512_mask_add_epi8(h, bit[k], h, _mm512_permutexvar_epi8(idx, xh));
        }
        std::uint8_t* out = ti + kLutChunkBytes * (4 * v + c);
        _mm512_store_si512(out, l);
        _mm512_store_si512(out + 64, h);
      }
    }
  }
}

// Steps of 64 bytes ahead of the weight being read that the VBMI product prefetches, per tile.
inline constexpr std::size_t kLutPrefetchSteps = 32;

// R tiles (weights wt[r]) x one token's tables: acc[r] lane q = row q's sum of L + 16 H.
// Every tile is a stream of its own, and each step prefetches into L2 the line 2 KiB ahead in
// it; over the last 2 KiB of the tiles the prefetches run on into the tiles that follow
// (next[r], the ones the caller reads next), so the streams never restart cold. From DRAM
// this keeps about 1.4x more weight bytes per second coming than the hardware prefetcher
// alone (docs/lut_kernels.md); from cache it costs nothing measurable.
template <int R>
MBOK_AVX512_VBMI_TARGET inline void lut_tiles_vbmi(const std::uint8_t* tab,
                                                   const std::uint8_t* const* wt,
                                                   const std::uint8_t* const* next,
                                                   std::size_t supers, __m512i* out) noexcept {
  const __m512i nib = _mm512_set1_epi8(0x0f);
  const __m512i group = _mm512_set1_epi32(0x30201000);  // q << 4 in byte 4 r + q
  const __m512i ones = _mm512_set1_epi8(1), sixteen = _mm512_set1_epi8(16);
  __m512i acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
  const std::size_t own = supers > kLutPrefetchSteps ? supers - kLutPrefetchSteps : 0;
  for (std::size_t s = 0; s < supers; ++s) {
    const std::uint8_t* ts = tab + 2 * kLutChunkBytes * s;
    const __m512i la = _mm512_load_si512(ts), ha = _mm512_load_si512(ts + 64);
    const __m512i lb = _mm512_load_si512(ts + 128), hb = _mm512_load_si512(ts + 192);
    const std::uint8_t* const* ahead = s < own ? wt : next;
    const std::size_t ahead_step = s < own ? s + kLutPrefetchSteps : s - own;
    for (int r = 0; r < R; ++r) {
      const __m512i w = _mm512_load_si512(wt[r] + 64 * s);
      _mm_prefetch(reinterpret_cast<const char*>(ahead[r] + 64 * ahead_step), _MM_HINT_T1);
      // (w & 15) | group and ((w >> 4) & 15) | group: 0xea is (A & B) | C.
      const __m512i lo = _mm512_ternarylogic_epi32(w, nib, group, 0xea);
      const __m512i hi = _mm512_ternarylogic_epi32(_mm512_srli_epi16(w, 4), nib, group, 0xea);
      const __m512i l =
          _mm512_add_epi8(_mm512_permutexvar_epi8(lo, la), _mm512_permutexvar_epi8(hi, lb));
      const __m512i h =
          _mm512_add_epi8(_mm512_permutexvar_epi8(lo, ha), _mm512_permutexvar_epi8(hi, hb));
      acc[r] = _mm512_dpbusd_epi32(acc[r], l, ones);
      acc[r] = _mm512_dpbusd_epi32(acc[r], h, sixteen);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = acc[r];
}

// lut_tiles_vbmi for n <= R tiles (n a run-time value).
template <int R>
MBOK_AVX512_VBMI_TARGET inline void lut_tiles_vbmi_n(std::size_t n, const std::uint8_t* tab,
                                                     const std::uint8_t* const* wt,
                                                     const std::uint8_t* const* next,
                                                     std::size_t supers, __m512i* out) noexcept {
  if constexpr (R > 1) {
    if (n < static_cast<std::size_t>(R)) {
      lut_tiles_vbmi_n<R - 1>(n, tab, wt, next, supers, out);
      return;
    }
  }
  lut_tiles_vbmi<R>(tab, wt, next, supers, out);
}

// Tiles of 16 rows that share each table load (lut_tiles_vbmi's R in the product).
inline constexpr std::size_t kLutVbmiTiles = 8;

/// The VBMI product over interleave4 weights; call it only when the CPU has VBMI and VNNI.
MBOK_AVX512_VBMI_TARGET inline void sign_gemm_i8_lut_vbmi(LutTablesView x, LutWeightsView w,
                                                          std::int32_t* y, std::size_t ldy,
                                                          std::size_t j0, std::size_t j1) noexcept {
  constexpr std::size_t R = kLutVbmiTiles;
  if (j0 >= j1) return;
  const std::size_t supers = w.cols32() / 32;
  const std::size_t t0 = j0 / kLutTileRows, t1 = (j1 + kLutTileRows - 1) / kLutTileRows;
  // Tokens in blocks whose tables stay in L2 while every tile passes over them (at t = 128
  // and n = 4096 all tables together are 4 MiB).
  const std::size_t block =
      std::max<std::size_t>(1, kLutTableBlockBytes / std::max<std::size_t>(x.ld, 1));
  for (std::size_t i0 = 0; i0 < x.tokens; i0 += block)
    for (std::size_t tb = t0; tb < t1; tb += R) {
      const std::size_t nt = std::min(R, t1 - tb);
      const std::uint8_t *wt[R], *next[R];
      lut_tile_streams<R>(w, tb, nt, wt, next);
      for (std::size_t i = i0; i < std::min(x.tokens, i0 + block); ++i) {
        __m512i acc[R];
        const std::uint8_t* tab = x.token(i);
        lut_tiles_vbmi_n<R>(nt, tab, wt, next, supers, acc);
        const __m512i base = _mm512_set1_epi32(x.base[i]);
        for (std::size_t r = 0; r < nt; ++r) {
          const std::size_t row0 = (tb + r) * kLutTileRows;
          const std::size_t lo = std::max(j0, row0) - row0, hi = std::min(j1, row0 + 16) - row0;
          const __m512i v = _mm512_sub_epi32(base, _mm512_slli_epi32(acc[r], 1));
          std::int32_t* out = y + i * ldy + (row0 + lo - j0);
          if (lo == 0 && hi == 16)
            _mm512_storeu_si512(out, v);
          else  // an edge tile: its rows [lo, hi), packed to the front
            _mm512_mask_compressstoreu_epi32(
                out, static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u)), v);
        }
      }
    }
}

}  // namespace mbok::detail::avx512

#include "vbmi_end.hpp"

#include "../avx2/lut_i8.hpp"
#include "lut_i8_prefill.hpp"

namespace mbok::detail::avx512 {

/// True when the avx512 LUT path runs the VBMI product (interleave4), else the avx2 one.
inline bool lut_uses_vbmi() noexcept {
  return cpu_features().avx512vbmi && cpu_features().avx512vnni;
}

inline LutLayout lut_layout() noexcept {
  return lut_uses_vbmi() ? LutLayout::interleave4 : LutLayout::lanes16;
}

inline void lut_tables_i8(const std::int8_t* x, std::size_t ldx, std::size_t t, std::size_t cols,
                          std::uint8_t* tables, std::size_t ld, std::int32_t* base) {
  if (lut_uses_vbmi())
    lut_tables_vbmi(x, ldx, t, cols, tables, ld, base);
  else
    avx2::lut_tables_shuf(x, ldx, t, cols, tables, ld, base);
}

// The layout decides the kernel (ProductSet only passes weights packed in lut_layout()).
inline void sign_gemm_i8_lut(LutTablesView x, LutWeightsView w, std::int32_t* y, std::size_t ldy,
                             std::size_t j0, std::size_t j1) {
  if (w.layout == LutLayout::interleave4)
    sign_gemm_i8_lut_vbmi(x, w, y, ldy, j0, j1);
  else
    avx2::sign_gemm_i8_lut_shuf(x, w, y, ldy, j0, j1);
}

// Many tokens: the blocked product over interleave4 weights (lut_i8_prefill.hpp).
inline void sign_gemm_i8_lut_prefill(LutTablesView x, LutWeightsView w, std::int32_t* y,
                                     std::size_t ldy, std::size_t j0, std::size_t j1) {
  if (w.layout == LutLayout::interleave4)
    sign_gemm_i8_lut_prefill_vbmi(x, w, y, ldy, j0, j1);
  else
    avx2::sign_gemm_i8_lut_shuf(x, w, y, ldy, j0, j1);
}

inline constexpr void install_lut_i8(ProductTable& t) noexcept {
  t.lut_layout = &lut_layout;
  t.lut_tables_i8 = &lut_tables_i8;
  t.sign_gemm_i8_lut = &sign_gemm_i8_lut;
  // Measured: 2.4x the masked product at t = 1, 1.6x at t = 128, 1.45x at t = 512 (with the
  // forward's token blocks; docs/lut_kernels.md). Not above 512: the tables take 8 bytes per
  // feature, token and kernel (32 MiB at t = 512, n = 4096, K = 2).
  t.lut_max_tokens = 512;
  // Measured on cache-resident weights (4096x4096, CPU time, one thread): 1.2x the per-token
  // product from t = 2 to 512; from 16 tokens on, each weight byte read feeds enough work that
  // the product needs no prefetched streams (the per-token product's answer to DRAM).
  t.sign_gemm_i8_lut_prefill = &sign_gemm_i8_lut_prefill;
  t.lut_prefill_min_tokens = 16;
}

}  // namespace mbok::detail::avx512
