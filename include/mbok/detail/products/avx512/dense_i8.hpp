#pragma once
#include "../../guard.hpp"

// avx512: dense int8 weights with row scales x float activations (table entry dense_i8_f32),
// the product of an int8-quantized dense layer such as a model's output head. Each 16 weights
// are widened (VPMOVSXBD, VCVTDQ2PS) and multiplied into float accumulators: one byte per
// weight is read from memory, four rows at a time so that a decode step (one token) keeps
// eight independent FMA chains in flight and stays bound by memory, not by FMA latency.

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "../table.hpp"

#include "begin.hpp"

namespace mbok::detail::avx512 {

inline __m512 dense_i8_widen(const std::int8_t* p) {
  return _mm512_cvtepi32_ps(
      _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
inline __m512 dense_i8_widen_masked(const std::int8_t* p, __mmask16 m) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));
}

// y[i * ldy + r] = s[r] * dot(q row r, x row i) for R rows starting at q, every token i.
template <int R>
inline void dense_i8_rows(const std::int8_t* q, std::size_t ldq, const float* s, std::size_t n,
                          const float* x, std::size_t ldx, std::size_t t, float* y,
                          std::size_t ldy) {
  const std::size_t body = n / 32 * 32;
  for (std::size_t i = 0; i < t; ++i) {
    const float* xi = x + i * ldx;
    __m512 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (std::size_t l = 0; l < body; l += 32) {
      const __m512 x0 = _mm512_loadu_ps(xi + l), x1 = _mm512_loadu_ps(xi + l + 16);
      for (int r = 0; r < R; ++r) {
        const std::int8_t* p = q + static_cast<std::size_t>(r) * ldq + l;
        acc[r][0] = _mm512_fmadd_ps(dense_i8_widen(p), x0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(dense_i8_widen(p + 16), x1, acc[r][1]);
      }
    }
    for (std::size_t l = body; l < n; l += 16) {
      const __mmask16 m =
          n - l >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (n - l)) - 1);
      const __m512 x0 = _mm512_maskz_loadu_ps(m, xi + l);
      for (int r = 0; r < R; ++r)
        acc[r][0] = _mm512_fmadd_ps(
            dense_i8_widen_masked(q + static_cast<std::size_t>(r) * ldq + l, m), x0, acc[r][0]);
    }
    for (int r = 0; r < R; ++r)
      y[i * ldy + static_cast<std::size_t>(r)] =
          s[r] * _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
  }
}

#include "../generic/dense_i8.hpp"

}  // namespace mbok::detail::avx512

#include "end.hpp"
