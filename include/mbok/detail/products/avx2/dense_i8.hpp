#pragma once
#include "../../guard.hpp"

// avx2: dense int8 weights with row scales x float activations (table entry dense_i8_f32):
// each 8 weights widened (VPMOVSXBD, VCVTDQ2PS) and multiplied into float accumulators, four
// rows at a time with two chains each so that one token keeps the FMA units busy.

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../table.hpp"

#include "begin.hpp"

namespace mbok::detail::avx2 {

inline __m256 dense_i8_widen(const std::int8_t* p) {
  std::int64_t bytes;
  std::memcpy(&bytes, p, sizeof bytes);
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(bytes)));
}

inline float dense_i8_sum(__m256 v) {
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 d = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(d, _mm_movehdup_ps(d)));
}

// y[i * ldy + r] = s[r] * dot(q row r, x row i) for R rows starting at q, every token i.
template <int R>
inline void dense_i8_rows(const std::int8_t* q, std::size_t ldq, const float* s, std::size_t n,
                          const float* x, std::size_t ldx, std::size_t t, float* y,
                          std::size_t ldy) {
  const std::size_t body = n / 16 * 16;
  for (std::size_t i = 0; i < t; ++i) {
    const float* xi = x + i * ldx;
    __m256 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (std::size_t l = 0; l < body; l += 16) {
      const __m256 x0 = _mm256_loadu_ps(xi + l), x1 = _mm256_loadu_ps(xi + l + 8);
      for (int r = 0; r < R; ++r) {
        const std::int8_t* p = q + static_cast<std::size_t>(r) * ldq + l;
        acc[r][0] = _mm256_fmadd_ps(dense_i8_widen(p), x0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(dense_i8_widen(p + 8), x1, acc[r][1]);
      }
    }
    for (int r = 0; r < R; ++r) {
      const std::int8_t* row = q + static_cast<std::size_t>(r) * ldq;
      float tail = 0.0f;
      for (std::size_t l = body; l < n; ++l) tail += static_cast<float>(row[l]) * xi[l];
      y[i * ldy + static_cast<std::size_t>(r)] =
          s[r] * (dense_i8_sum(_mm256_add_ps(acc[r][0], acc[r][1])) + tail);
    }
  }
}

#include "../generic/dense_i8.hpp"

}  // namespace mbok::detail::avx2

#include "end.hpp"
