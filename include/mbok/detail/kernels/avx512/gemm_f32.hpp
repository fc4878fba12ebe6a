#pragma once
#include "../../guard.hpp"

// avx512: the dense float product C = A^T B of the training backward (the signal's
// P = Z^T X), as a sum of outer products: a register tile of 8 rows of C x 32 columns (16
// accumulators) takes, per token, 8 broadcasts of A and two vectors of B. A comes packed in
// blocks of 8 columns (pack_gemm_tn_a in gemm_f32.hpp); each 32-column panel of B is packed
// once per call and reused by every block of A.

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "begin.hpp"

namespace mbok::detail::avx512 {

inline constexpr std::size_t kGemmRows = 8, kGemmCols = 32;

// Columns [j0, j1) of C (m x n, rows ldc apart) = A^T B; `apack` holds A (t x m) in blocks of
// kGemmRows columns, zero-padded (apack[(block * t + token) * kGemmRows + r]); B is t x n,
// rows ldb apart. j0 is a multiple of kGemmCols.
inline void gemm_tn_f32(const float* apack, std::size_t t, std::size_t m, const float* b,
                        std::size_t ldb, float* c, std::size_t ldc, std::size_t j0,
                        std::size_t j1) {
  std::vector<float> panel_storage(t * kGemmCols + 16);
  float* panel = panel_storage.data();
  while (reinterpret_cast<std::uintptr_t>(panel) % 64 != 0) ++panel;
  for (std::size_t j = j0; j < j1; j += kGemmCols) {
    const std::size_t w = std::min(kGemmCols, j1 - j);
    const auto lo = static_cast<__mmask16>(w >= 16 ? 0xffffu : (1u << w) - 1u);
    const auto hi = static_cast<__mmask16>(w >= 32 ? 0xffffu : w > 16 ? (1u << (w - 16)) - 1u : 0u);
    for (std::size_t s = 0; s < t; ++s) {
      _mm512_store_ps(panel + s * kGemmCols, _mm512_maskz_loadu_ps(lo, b + s * ldb + j));
      _mm512_store_ps(panel + s * kGemmCols + 16, _mm512_maskz_loadu_ps(hi, b + s * ldb + j + 16));
    }
    for (std::size_t i0 = 0; i0 < m; i0 += kGemmRows) {
      const float* ap = apack + (i0 / kGemmRows) * t * kGemmRows;
      __m512 c0a = _mm512_setzero_ps(), c0b = _mm512_setzero_ps();
      __m512 c1a = _mm512_setzero_ps(), c1b = _mm512_setzero_ps();
      __m512 c2a = _mm512_setzero_ps(), c2b = _mm512_setzero_ps();
      __m512 c3a = _mm512_setzero_ps(), c3b = _mm512_setzero_ps();
      __m512 c4a = _mm512_setzero_ps(), c4b = _mm512_setzero_ps();
      __m512 c5a = _mm512_setzero_ps(), c5b = _mm512_setzero_ps();
      __m512 c6a = _mm512_setzero_ps(), c6b = _mm512_setzero_ps();
      __m512 c7a = _mm512_setzero_ps(), c7b = _mm512_setzero_ps();
      for (std::size_t s = 0; s < t; ++s) {
        const __m512 b0 = _mm512_load_ps(panel + s * kGemmCols);
        const __m512 b1 = _mm512_load_ps(panel + s * kGemmCols + 16);
        const float* a = ap + s * kGemmRows;
        __m512 x = _mm512_set1_ps(a[0]);
        c0a = _mm512_fmadd_ps(x, b0, c0a);
        c0b = _mm512_fmadd_ps(x, b1, c0b);
        x = _mm512_set1_ps(a[1]);
        c1a = _mm512_fmadd_ps(x, b0, c1a);
        c1b = _mm512_fmadd_ps(x, b1, c1b);
        x = _mm512_set1_ps(a[2]);
        c2a = _mm512_fmadd_ps(x, b0, c2a);
        c2b = _mm512_fmadd_ps(x, b1, c2b);
        x = _mm512_set1_ps(a[3]);
        c3a = _mm512_fmadd_ps(x, b0, c3a);
        c3b = _mm512_fmadd_ps(x, b1, c3b);
        x = _mm512_set1_ps(a[4]);
        c4a = _mm512_fmadd_ps(x, b0, c4a);
        c4b = _mm512_fmadd_ps(x, b1, c4b);
        x = _mm512_set1_ps(a[5]);
        c5a = _mm512_fmadd_ps(x, b0, c5a);
        c5b = _mm512_fmadd_ps(x, b1, c5b);
        x = _mm512_set1_ps(a[6]);
        c6a = _mm512_fmadd_ps(x, b0, c6a);
        c6b = _mm512_fmadd_ps(x, b1, c6b);
        x = _mm512_set1_ps(a[7]);
        c7a = _mm512_fmadd_ps(x, b0, c7a);
        c7b = _mm512_fmadd_ps(x, b1, c7b);
      }
      const __m512 acc[kGemmRows][2] = {{c0a, c0b}, {c1a, c1b}, {c2a, c2b}, {c3a, c3b},
                                        {c4a, c4b}, {c5a, c5b}, {c6a, c6b}, {c7a, c7b}};
      const std::size_t rows = std::min(kGemmRows, m - i0);
      for (std::size_t r = 0; r < rows; ++r) {
        float* out = c + (i0 + r) * ldc + j;
        _mm512_mask_storeu_ps(out, lo, acc[r][0]);
        _mm512_mask_storeu_ps(out + 16, hi, acc[r][1]);
      }
    }
  }
}

}  // namespace mbok::detail::avx512

#include "end.hpp"
