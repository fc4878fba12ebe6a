#pragma once
#include "../../guard.hpp"

// avx2: the table-lookup float product (lut_f32_format.hpp) over lanes16 weights. A 32-byte
// weight vector of one chunk holds, per byte 16 e + r, row r's group e (low nibble) and group
// 2 + e (high nibble). VPMOVZXBD widens 8 such bytes (8 rows) to 32-bit lanes; VPERMPS looks
// up 8 entries, so each group costs two of them (entries 0-7 and 8-15, the index's low 3 bits)
// and a VBLENDVPS on the pattern's bit 3 (shifted to the sign bit), then one add. R tiles of
// 16 rows share each table line while it is in L1. Also the avx512 table's product for
// lanes16 weights (CPUs without VBMI); interleave4 weights run the portable product here.

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../lut_f32_format.hpp"
#include "../scalar/lut_f32.hpp"
#include "../table.hpp"

#include "begin.hpp"

namespace mbok::detail::avx2 {

/// Tables of t tokens (scalar::lut_tables_f32's contract and bits), 8 entries per vector.
inline void lut_tables_f32_perm(const float* x, std::size_t ldx, std::size_t t, std::size_t cols,
                                const float* s, float* tables, std::size_t ld) noexcept {
  const std::size_t cols32 = lut_cols32(cols);
  // Lane p of sk: -1 where bit k of p is set (entries 0-7; entries 8-15 have bit 3 set).
  const __m256 s0 = _mm256_setr_ps(1, -1, 1, -1, 1, -1, 1, -1);
  const __m256 s1 = _mm256_setr_ps(1, 1, -1, -1, 1, 1, -1, -1);
  const __m256 s2 = _mm256_setr_ps(1, 1, 1, 1, -1, -1, -1, -1);
  alignas(32) float v[8];
  for (std::size_t i = 0; i < t; ++i) {
    const float* xi = x + i * ldx;
    float* ti = tables + i * ld;
    for (std::size_t c = 0; c < cols32; c += 8) {
      if (c + 8 <= cols) {
        const __m256 xv = _mm256_loadu_ps(xi + c);
        _mm256_store_ps(v, s != nullptr ? _mm256_mul_ps(xv, _mm256_loadu_ps(s + c)) : xv);
      } else {
        for (std::size_t k = 0; k < 8; ++k)
          v[k] = c + k < cols ? (s != nullptr ? xi[c + k] * s[c + k] : xi[c + k]) : 0.0f;
      }
      for (std::size_t q = 0; q < 2; ++q) {
        const float* vq = v + 4 * q;
        const __m256 b0 = _mm256_broadcast_ss(vq), b1 = _mm256_broadcast_ss(vq + 1);
        const __m256 b2 = _mm256_broadcast_ss(vq + 2), b3 = _mm256_broadcast_ss(vq + 3);
        // (sigma_0 v_0 + sigma_1 v_1) + (sigma_2 v_2 + sigma_3 v_3): each FMA is one rounded
        // add of two exact products, as the portable order.
        const __m256 a = _mm256_fmadd_ps(b1, s1, _mm256_mul_ps(b0, s0));
        const __m256 lo = _mm256_fmadd_ps(b2, s2, b3), hi = _mm256_fmsub_ps(b2, s2, b3);
        float* e = ti + 4 * (c + 4 * q);  // group (c + 4 q) / 4, 16 floats each
        _mm256_store_ps(e, _mm256_add_ps(a, lo));
        _mm256_store_ps(e + 8, _mm256_add_ps(a, hi));
      }
    }
  }
}

// Entry p of a group's table (lo: entries 0-7, hi: 8-15) for the patterns in the low nibble
// of each 32-bit lane of `idx`; `top` holds the pattern's bit 3 in its sign bit.
inline __m256 lut_f32_lookup(const float* table, __m256i idx, __m256i top) noexcept {
  const __m256 lo = _mm256_permutevar8x32_ps(_mm256_load_ps(table), idx);
  const __m256 hi = _mm256_permutevar8x32_ps(_mm256_load_ps(table + 8), idx);
  return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(top));
}

// Bytes ahead of the weight being read that the kernel prefetches into L2, per tile.
inline constexpr std::size_t kLutF32PrefetchAhead = 1024;

// R tiles x one token's tables: acc[r][h] = the sums of rows 8 h .. 8 h + 7 of tile r.
template <int R>
inline void lut_f32_tiles_perm(const float* tab, const std::uint8_t* const* wt,
                               const std::uint8_t* const* next, std::size_t chunks,
                               __m256 (*acc)[2]) noexcept {
  const std::size_t tile_bytes = 32 * chunks;
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (std::size_t c = 0; c < chunks; ++c) {
    const float* tc = tab + 64 * c;  // groups 4 c .. 4 c + 3
    const std::size_t ahead = 32 * c + kLutF32PrefetchAhead;
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* wc = wt[r] + 32 * c;
      if (c % 2 == 0)
        _mm_prefetch(reinterpret_cast<const char*>(
                         ahead < tile_bytes ? wt[r] + ahead : next[r] + (ahead - tile_bytes)),
                     _MM_HINT_T1);
      for (int h = 0; h < 2; ++h) {
        __m256 sum[2];
        for (int e = 0; e < 2; ++e) {
          const __m256i d = _mm256_cvtepu8_epi32(
              _mm_loadl_epi64(reinterpret_cast<const __m128i*>(wc + 16 * e + 8 * h)));
          const __m256 g0 = lut_f32_lookup(tc + 16 * e, d, _mm256_slli_epi32(d, 28));
          const __m256 g1 =
              lut_f32_lookup(tc + 16 * (2 + e), _mm256_srli_epi32(d, 4), _mm256_slli_epi32(d, 24));
          sum[e] = _mm256_add_ps(g0, g1);
        }
        acc[r][h] = _mm256_add_ps(acc[r][h], _mm256_add_ps(sum[0], sum[1]));
      }
    }
  }
}

// Y of rows [lo, hi) of the 8 rows at row0 + 8 h: s_out (.) acc (+ Y).
inline void lut_f32_store(__m256 v, const float* s_out, bool accumulate, float* y,
                          std::size_t first, std::size_t lo, std::size_t hi) noexcept {
  if (lo <= first && first + 8 <= hi) {
    if (s_out != nullptr) v = _mm256_mul_ps(v, _mm256_loadu_ps(s_out + first));
    if (accumulate) v = _mm256_add_ps(v, _mm256_loadu_ps(y + first));
    _mm256_storeu_ps(y + first, v);
    return;
  }
  alignas(32) float tmp[8];
  _mm256_store_ps(tmp, v);
  for (std::size_t q = std::max(lo, first); q < std::min(hi, first + 8); ++q) {
    const float a = s_out != nullptr ? s_out[q] * tmp[q - first] : tmp[q - first];
    y[q] = accumulate ? y[q] + a : a;
  }
}

/// The VPERMPS kernel over lanes16 weights.
inline void sign_gemm_f32_lut_perm(LutTablesF32View x, LutWeightsView w, const float* s_out,
                                   bool accumulate, float* y, std::size_t ldy, std::size_t j0,
                                   std::size_t j1) noexcept {
  constexpr std::size_t R = 4;
  if (j0 >= j1) return;
  const std::size_t chunks = w.cols32() / 16;
  const std::size_t t0 = j0 / kLutTileRows, t1 = (j1 + kLutTileRows - 1) / kLutTileRows;
  // Tokens in blocks whose tables stay in L2 while every tile passes over them.
  const std::size_t block = std::max<std::size_t>(
      1, kLutTableBlockBytes / (sizeof(float) * std::max<std::size_t>(x.ld, 1)));
  for (std::size_t i0 = 0; i0 < x.tokens; i0 += block)
    for (std::size_t tb = t0; tb < t1; tb += R) {
      const std::size_t nt = std::min(R, t1 - tb);
      const std::uint8_t *wt[R], *next[R];
      lut_tile_streams<R>(w, tb, nt, wt, next);
      for (std::size_t i = i0; i < std::min(x.tokens, i0 + block); ++i) {
        __m256 acc[R][2];
        const float* tab = x.token(i);
        switch (nt) {
          case 4:
            lut_f32_tiles_perm<4>(tab, wt, next, chunks, acc);
            break;
          case 3:
            lut_f32_tiles_perm<3>(tab, wt, next, chunks, acc);
            break;
          case 2:
            lut_f32_tiles_perm<2>(tab, wt, next, chunks, acc);
            break;
          default:
            lut_f32_tiles_perm<1>(tab, wt, next, chunks, acc);
            break;
        }
        float* yi = y + i * ldy;
        for (std::size_t r = 0; r < nt; ++r) {
          const std::size_t row0 = (tb + r) * kLutTileRows;
          const std::size_t lo = std::max(j0, row0), hi = std::min(j1, row0 + 16);
          for (std::size_t h = 0; h < 2; ++h)
            lut_f32_store(acc[r][h], s_out, accumulate, yi, row0 + 8 * h, lo, hi);
        }
      }
    }
}

// The layout decides the kernel: interleave4 weights (packed for another ISA) run the
// portable product.
inline void sign_gemm_f32_lut(LutTablesF32View x, LutWeightsView w, const float* s_out,
                              bool accumulate, float* y, std::size_t ldy, std::size_t j0,
                              std::size_t j1) noexcept {
  if (w.layout == LutLayout::lanes16)
    sign_gemm_f32_lut_perm(x, w, s_out, accumulate, y, ldy, j0, j1);
  else
    scalar::sign_gemm_f32_lut(x, w, s_out, accumulate, y, ldy, j0, j1);
}

}  // namespace mbok::detail::avx2

#include "end.hpp"

namespace mbok::detail::avx2 {

inline constexpr void install_lut_f32(ProductTable& t) noexcept {
  t.lut_tables_f32 = &lut_tables_f32_perm;
  t.sign_gemm_f32_lut = &sign_gemm_f32_lut;
  // Measured (4096 x 4096, one thread, docs/performance.md): 1.7x the avx2 sign products at
  // t = 1, even at t = 8, 1.2-1.4x at t = 32. Not measured beyond 32.
  t.lut_f32_max_tokens = 32;
}

}  // namespace mbok::detail::avx2
