#pragma once
#include "../../guard.hpp"

// avx512: the table-lookup float product (lut_f32_format.hpp) over interleave4 weights, with
// AVX-512F only (no VBMI needed). Lane r of a 64-byte weight vector (16 rows x 32 columns)
// holds row r's patterns of the super's 8 groups: bits 8 q .. 8 q + 3 group q, bits 8 q + 4 ..
// 8 q + 7 group 4 + q. VPERMPS reads only the low 4 bits of each index lane, so the vector
// shifted right by 4 k (no masking) looks up group k's 16-entry table (one zmm) for all 16
// rows at once: per 512 weights, 7 shifts, 8 VPERMPS and 8 adds. R = 8 tiles share each
// table load, and their weights are prefetched into L2 as the int8 product does. lanes16
// weights (packed on CPUs without VBMI) run the avx2 product.

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../avx2/lut_f32.hpp"
#include "../lut_f32_format.hpp"
#include "../table.hpp"

#include "begin.hpp"

namespace mbok::detail::avx512 {

/// Tables of t tokens (scalar::lut_tables_f32's contract and bits), one group per vector.
inline void lut_tables_f32_perm(const float* x, std::size_t ldx, std::size_t t, std::size_t cols,
                                const float* s, float* tables, std::size_t ld) noexcept {
  const std::size_t cols32 = lut_cols32(cols);
  // Lane p of sk: -1 where bit k of p is set.
  const __m512 s0 = _mm512_setr_ps(1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1);
  const __m512 s1 = _mm512_setr_ps(1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1);
  const __m512 s2 = _mm512_setr_ps(1, 1, 1, 1, -1, -1, -1, -1, 1, 1, 1, 1, -1, -1, -1, -1);
  const __m512 s3 = _mm512_setr_ps(1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1);
  alignas(64) float v[16];
  for (std::size_t i = 0; i < t; ++i) {
    const float* xi = x + i * ldx;
    float* ti = tables + i * ld;
    for (std::size_t c = 0; c < cols32; c += 16) {
      // Columns past cols read as zero (masked loads touch nothing there).
      const std::size_t valid = cols > c ? std::min<std::size_t>(cols - c, 16) : 0;
      const auto k = static_cast<__mmask16>((1u << valid) - 1u);
      const __m512 xv = _mm512_maskz_loadu_ps(k, xi + c);
      _mm512_store_ps(v, s != nullptr ? _mm512_mul_ps(xv, _mm512_maskz_loadu_ps(k, s + c)) : xv);
      for (std::size_t q = 0; q < 4; ++q) {
        const float* vq = v + 4 * q;
        // (sigma_0 v_0 + sigma_1 v_1) + (sigma_2 v_2 + sigma_3 v_3): each FMA is one rounded
        // add of two exact products, as the portable order.
        const __m512 a =
            _mm512_fmadd_ps(_mm512_set1_ps(vq[1]), s1, _mm512_mul_ps(_mm512_set1_ps(vq[0]), s0));
        const __m512 b =
            _mm512_fmadd_ps(_mm512_set1_ps(vq[3]), s3, _mm512_mul_ps(_mm512_set1_ps(vq[2]), s2));
        _mm512_store_ps(ti + 4 * (c + 4 * q), _mm512_add_ps(a, b));
      }
    }
  }
}

// Steps of 64 bytes ahead of the weight being read that the kernel prefetches, per tile.
inline constexpr std::size_t kLutF32PrefetchSteps = 16;

// R tiles (weights wt[r]) x one token's tables: out[r] lane q = row q's sum. The prefetches
// run on into next[r] over the last steps (lut_tiles_vbmi's scheme).
template <int R>
inline void lut_f32_tiles(const float* tab, const std::uint8_t* const* wt,
                          const std::uint8_t* const* next, std::size_t supers,
                          __m512* out) noexcept {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  const std::size_t own = supers > kLutF32PrefetchSteps ? supers - kLutF32PrefetchSteps : 0;
  for (std::size_t s = 0; s < supers; ++s) {
    const float* ts = tab + 128 * s;  // groups 8 s .. 8 s + 7
    __m512 tg[8];
    for (int g = 0; g < 8; ++g) tg[g] = _mm512_load_ps(ts + 16 * g);
    const std::uint8_t* const* ahead = s < own ? wt : next;
    const std::size_t ahead_step = s < own ? s + kLutF32PrefetchSteps : s - own;
    for (int r = 0; r < R; ++r) {
      const __m512i w = _mm512_load_si512(wt[r] + 64 * s);
      _mm_prefetch(reinterpret_cast<const char*>(ahead[r] + 64 * ahead_step), _MM_HINT_T1);
      // Shift 8 q: group q; shift 8 q + 4: group 4 + q.
      const __m512 p0 = _mm512_permutexvar_ps(w, tg[0]);
      const __m512 p1 = _mm512_permutexvar_ps(_mm512_srli_epi32(w, 4), tg[4]);
      const __m512 p2 = _mm512_permutexvar_ps(_mm512_srli_epi32(w, 8), tg[1]);
      const __m512 p3 = _mm512_permutexvar_ps(_mm512_srli_epi32(w, 12), tg[5]);
      const __m512 p4 = _mm512_permutexvar_ps(_mm512_srli_epi32(w, 16), tg[2]);
      const __m512 p5 = _mm512_permutexvar_ps(_mm512_srli_epi32(w, 20), tg[6]);
      const __m512 p6 = _mm512_permutexvar_ps(_mm512_srli_epi32(w, 24), tg[3]);
      const __m512 p7 = _mm512_permutexvar_ps(_mm512_srli_epi32(w, 28), tg[7]);
      const __m512 sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(p0, p1), _mm512_add_ps(p2, p3)),
                                       _mm512_add_ps(_mm512_add_ps(p4, p5), _mm512_add_ps(p6, p7)));
      acc[r] = _mm512_add_ps(acc[r], sum);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = acc[r];
}

// lut_f32_tiles for n <= R tiles (n a run-time value).
template <int R>
inline void lut_f32_tiles_n(std::size_t n, const float* tab, const std::uint8_t* const* wt,
                            const std::uint8_t* const* next, std::size_t supers,
                            __m512* out) noexcept {
  if constexpr (R > 1) {
    if (n < static_cast<std::size_t>(R)) {
      lut_f32_tiles_n<R - 1>(n, tab, wt, next, supers, out);
      return;
    }
  }
  lut_f32_tiles<R>(tab, wt, next, supers, out);
}

/// The VPERMPS kernel over interleave4 weights.
inline void sign_gemm_f32_lut_perm(LutTablesF32View x, LutWeightsView w, const float* s_out,
                                   bool accumulate, float* y, std::size_t ldy, std::size_t j0,
                                   std::size_t j1) noexcept {
  constexpr std::size_t R = 8;
  if (j0 >= j1) return;
  const std::size_t supers = w.cols32() / 32;
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
        __m512 acc[R];
        lut_f32_tiles_n<R>(nt, x.token(i), wt, next, supers, acc);
        float* yi = y + i * ldy;
        for (std::size_t r = 0; r < nt; ++r) {
          const std::size_t row0 = (tb + r) * kLutTileRows;
          const std::size_t lo = std::max(j0, row0) - row0, hi = std::min(j1, row0 + 16) - row0;
          const auto k = static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
          __m512 v = acc[r];
          if (s_out != nullptr) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, s_out + row0));
          if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, yi + row0));
          _mm512_mask_storeu_ps(yi + row0, k, v);
        }
      }
    }
}

// The layout decides the kernel.
inline void sign_gemm_f32_lut(LutTablesF32View x, LutWeightsView w, const float* s_out,
                              bool accumulate, float* y, std::size_t ldy, std::size_t j0,
                              std::size_t j1) noexcept {
  if (w.layout == LutLayout::interleave4)
    sign_gemm_f32_lut_perm(x, w, s_out, accumulate, y, ldy, j0, j1);
  else
    avx2::sign_gemm_f32_lut_perm(x, w, s_out, accumulate, y, ldy, j0, j1);
}

}  // namespace mbok::detail::avx512

#include "end.hpp"

namespace mbok::detail::avx512 {

inline constexpr void install_lut_f32(ProductTable& t) noexcept {
  t.lut_tables_f32 = &lut_tables_f32_perm;
  t.sign_gemm_f32_lut = &sign_gemm_f32_lut;
  // Measured (4096 x 4096, one thread, docs/performance.md): 2.7x the sign products at t = 1,
  // 1.9x at t = 8, 2.1x at t = 32 (K = 1). Not measured beyond 32.
  t.lut_f32_max_tokens = 32;
}

}  // namespace mbok::detail::avx512
