#pragma once
#include "../../guard.hpp"

// avx2: the dense float product C = A^T B of the training backward (the signal's P = Z^T X),
// as a sum of outer products: a register tile of 6 rows of C x 16 columns (12 accumulators)
// takes, per token, 6 broadcasts of A and two vectors of B. A comes packed in blocks of 6
// columns (pack_gemm_tn_a in gemm_f32.hpp); each 16-column panel of B is packed once per call
// and reused by every block of A.

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "begin.hpp"

namespace mbok::detail::avx2 {

inline constexpr std::size_t kGemmRows = 6, kGemmCols = 16;

// Columns [j0, j1) of C (m x n, rows ldc apart) = A^T B; `apack` holds A (t x m) in blocks of
// kGemmRows columns, zero-padded (apack[(block * t + token) * kGemmRows + r]); B is t x n,
// rows ldb apart. j0 is a multiple of kGemmCols.
inline void gemm_tn_f32(const float* apack, std::size_t t, std::size_t m, const float* b,
                        std::size_t ldb, float* c, std::size_t ldc, std::size_t j0,
                        std::size_t j1) {
  std::vector<float> panel_storage(t * kGemmCols + 8);
  float* panel = panel_storage.data();
  while (reinterpret_cast<std::uintptr_t>(panel) % 32 != 0) ++panel;
  for (std::size_t j = j0; j < j1; j += kGemmCols) {
    const std::size_t w = std::min(kGemmCols, j1 - j);
    for (std::size_t s = 0; s < t; ++s) {
      const float* row = b + s * ldb + j;
      float* dst = panel + s * kGemmCols;
      if (w == kGemmCols) {
        _mm256_store_ps(dst, _mm256_loadu_ps(row));
        _mm256_store_ps(dst + 8, _mm256_loadu_ps(row + 8));
      } else {
        for (std::size_t l = 0; l < kGemmCols; ++l) dst[l] = l < w ? row[l] : 0.0f;
      }
    }
    for (std::size_t i0 = 0; i0 < m; i0 += kGemmRows) {
      const float* ap = apack + (i0 / kGemmRows) * t * kGemmRows;
      __m256 c0a = _mm256_setzero_ps(), c0b = _mm256_setzero_ps();
      __m256 c1a = _mm256_setzero_ps(), c1b = _mm256_setzero_ps();
      __m256 c2a = _mm256_setzero_ps(), c2b = _mm256_setzero_ps();
      __m256 c3a = _mm256_setzero_ps(), c3b = _mm256_setzero_ps();
      __m256 c4a = _mm256_setzero_ps(), c4b = _mm256_setzero_ps();
      __m256 c5a = _mm256_setzero_ps(), c5b = _mm256_setzero_ps();
      for (std::size_t s = 0; s < t; ++s) {
        const __m256 b0 = _mm256_load_ps(panel + s * kGemmCols);
        const __m256 b1 = _mm256_load_ps(panel + s * kGemmCols + 8);
        const float* a = ap + s * kGemmRows;
        __m256 x = _mm256_broadcast_ss(a + 0);
        c0a = _mm256_fmadd_ps(x, b0, c0a);
        c0b = _mm256_fmadd_ps(x, b1, c0b);
        x = _mm256_broadcast_ss(a + 1);
        c1a = _mm256_fmadd_ps(x, b0, c1a);
        c1b = _mm256_fmadd_ps(x, b1, c1b);
        x = _mm256_broadcast_ss(a + 2);
        c2a = _mm256_fmadd_ps(x, b0, c2a);
        c2b = _mm256_fmadd_ps(x, b1, c2b);
        x = _mm256_broadcast_ss(a + 3);
        c3a = _mm256_fmadd_ps(x, b0, c3a);
        c3b = _mm256_fmadd_ps(x, b1, c3b);
        x = _mm256_broadcast_ss(a + 4);
        c4a = _mm256_fmadd_ps(x, b0, c4a);
        c4b = _mm256_fmadd_ps(x, b1, c4b);
        x = _mm256_broadcast_ss(a + 5);
        c5a = _mm256_fmadd_ps(x, b0, c5a);
        c5b = _mm256_fmadd_ps(x, b1, c5b);
      }
      alignas(32) float tile[kGemmRows][kGemmCols];
      const __m256 acc[kGemmRows][2] = {{c0a, c0b}, {c1a, c1b}, {c2a, c2b},
                                        {c3a, c3b}, {c4a, c4b}, {c5a, c5b}};
      const std::size_t rows = std::min(kGemmRows, m - i0);
      for (std::size_t r = 0; r < rows; ++r) {
        float* out = c + (i0 + r) * ldc + j;
        if (w == kGemmCols) {
          _mm256_storeu_ps(out, acc[r][0]);
          _mm256_storeu_ps(out + 8, acc[r][1]);
        } else {
          _mm256_store_ps(tile[r], acc[r][0]);
          _mm256_store_ps(tile[r] + 8, acc[r][1]);
          std::copy(tile[r], tile[r] + w, out);
        }
      }
    }
  }
}

}  // namespace mbok::detail::avx2

#include "end.hpp"
