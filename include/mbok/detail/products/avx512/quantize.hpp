#pragma once
#include "../../guard.hpp"

// avx512: per-token int8 quantization of activations (table entries abs_max_bits_f32 and
// quantize_codes_f32), 16 floats per step, bit for bit scalar/quantize.hpp: the same float
// products in the same order (x s, then pre, then inv; the product r is also compared with 0,
// so no compiler fuses it with the rounding add into one FMA), the same rounding (r + 0.5
// carrying r's sign, truncated: VCVTTPS2DQ), the same clamp. Tails go through masked loads
// and stores: bytes of q past n are not written.

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "../table.hpp"

#include "begin.hpp"

namespace mbok::detail::avx512 {

inline __mmask16 quantize_tail_mask(std::size_t left) noexcept {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
}

inline std::uint32_t abs_max_bits_f32(const float* x, const float* s, std::size_t n) noexcept {
  const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
  __m512i best0 = _mm512_setzero_si512(), best1 = _mm512_setzero_si512();
  auto load = [x, s](std::size_t l, __mmask16 m) {
    const __m512 v = _mm512_maskz_loadu_ps(m, x + l);
    return s != nullptr ? _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, s + l)) : v;
  };
  std::size_t l = 0;
  for (; l + 32 <= n; l += 32) {
    best0 =
        _mm512_max_epu32(best0, _mm512_and_si512(_mm512_castps_si512(load(l, 0xFFFF)), abs_mask));
    best1 = _mm512_max_epu32(best1,
                             _mm512_and_si512(_mm512_castps_si512(load(l + 16, 0xFFFF)), abs_mask));
  }
  for (; l < n; l += 16)  // masked lanes load 0: |0| adds nothing to the maximum
    best0 = _mm512_max_epu32(
        best0, _mm512_and_si512(_mm512_castps_si512(load(l, quantize_tail_mask(n - l))), abs_mask));
  return static_cast<std::uint32_t>(_mm512_reduce_max_epu32(_mm512_max_epu32(best0, best1)));
}

template <bool kScaled, bool kPre>
std::int32_t quantize_codes_loop(const float* x, const float* s, std::size_t n, float pre,
                                 float inv, std::int8_t* q) noexcept {
  const __m512 vpre = _mm512_set1_ps(pre), vinv = _mm512_set1_ps(inv);
  const __m512 half = _mm512_set1_ps(0.5f), minus_half = _mm512_set1_ps(-0.5f);
  const __m512 zero = _mm512_setzero_ps();
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  __m512i sum = _mm512_setzero_si512();
  for (std::size_t l = 0; l < n; l += 16) {
    const __mmask16 m = quantize_tail_mask(n - l);
    __m512 v = _mm512_maskz_loadu_ps(m, x + l);
    if (kScaled) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, s + l));
    if (kPre) v = _mm512_mul_ps(v, vpre);
    const __m512 r = _mm512_mul_ps(v, vinv);
    // r >= 0 ? 0.5 : -0.5 (r is finite: the caller checked the values)
    const __m512 h =
        _mm512_mask_blend_ps(_mm512_cmp_ps_mask(r, zero, _CMP_LT_OQ), half, minus_half);
    const __m512i qv =
        _mm512_min_epi32(_mm512_max_epi32(_mm512_cvttps_epi32(_mm512_add_ps(r, h)), lo), hi);
    _mm512_mask_cvtepi32_storeu_epi8(q + l, m, qv);
    sum = _mm512_add_epi32(sum, qv);  // masked lanes: r = 0, q = 0
  }
  return _mm512_reduce_add_epi32(sum);
}

#include "../generic/quantize.hpp"

}  // namespace mbok::detail::avx512

#include "end.hpp"
