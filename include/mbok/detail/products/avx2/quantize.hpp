#pragma once
#include "../../guard.hpp"

// avx2: per-token int8 quantization of activations (table entries abs_max_bits_f32 and
// quantize_codes_f32), 8 floats per step, bit for bit scalar/quantize.hpp: the same float
// products in the same order (x s, then pre, then inv; the product r is also compared with 0,
// so no compiler fuses it with the rounding add into one FMA), the same rounding (r + 0.5
// carrying r's sign, truncated: VCVTTPS2DQ), the same clamp. The last n % 8 values go through
// the portable code.

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "../scalar/quantize.hpp"
#include "../table.hpp"

#include "begin.hpp"

namespace mbok::detail::avx2 {

inline std::uint32_t abs_max_bits_f32(const float* x, const float* s, std::size_t n) noexcept {
  const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF);
  __m256i best0 = _mm256_setzero_si256(), best1 = _mm256_setzero_si256();
  auto load = [x, s](std::size_t l) {
    const __m256 v = _mm256_loadu_ps(x + l);
    return _mm256_castps_si256(s != nullptr ? _mm256_mul_ps(v, _mm256_loadu_ps(s + l)) : v);
  };
  std::size_t l = 0;
  for (; l + 16 <= n; l += 16) {
    best0 = _mm256_max_epu32(best0, _mm256_and_si256(load(l), abs_mask));
    best1 = _mm256_max_epu32(best1, _mm256_and_si256(load(l + 8), abs_mask));
  }
  for (; l + 8 <= n; l += 8) best0 = _mm256_max_epu32(best0, _mm256_and_si256(load(l), abs_mask));
  alignas(32) std::uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_max_epu32(best0, best1));
  std::uint32_t best = scalar::abs_max_bits_f32(x + l, s != nullptr ? s + l : nullptr, n - l);
  for (std::uint32_t v : lanes) best = v > best ? v : best;
  return best;
}

template <bool kScaled, bool kPre>
std::int32_t quantize_codes_loop(const float* x, const float* s, std::size_t n, float pre,
                                 float inv, std::int8_t* q) noexcept {
  const __m256 vpre = _mm256_set1_ps(pre), vinv = _mm256_set1_ps(inv);
  const __m256 half = _mm256_set1_ps(0.5f), minus_half = _mm256_set1_ps(-0.5f);
  const __m256 zero = _mm256_setzero_ps();
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  __m256i sum = _mm256_setzero_si256();
  std::size_t l = 0;
  for (; l + 8 <= n; l += 8) {
    __m256 v = _mm256_loadu_ps(x + l);
    if (kScaled) v = _mm256_mul_ps(v, _mm256_loadu_ps(s + l));
    if (kPre) v = _mm256_mul_ps(v, vpre);
    const __m256 r = _mm256_mul_ps(v, vinv);
    // r >= 0 ? 0.5 : -0.5 (r is finite: the caller checked the values)
    const __m256 h = _mm256_blendv_ps(half, minus_half, _mm256_cmp_ps(r, zero, _CMP_LT_OQ));
    const __m256i qv =
        _mm256_min_epi32(_mm256_max_epi32(_mm256_cvttps_epi32(_mm256_add_ps(r, h)), lo), hi);
    sum = _mm256_add_epi32(sum, qv);
    // Eight int32 in [-127, 127] to eight bytes: saturating packs are exact here; each
    // 128-bit half holds four codes in its low 4 bytes.
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(qv, qv), _mm256_setzero_si256());
    const __m128i bytes =
        _mm_unpacklo_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + l), bytes);
  }
  alignas(32) std::int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sum);
  std::int32_t total =
      scalar::quantize_codes_f32(x + l, kScaled ? s + l : nullptr, n - l, pre, inv, q + l);
  for (std::int32_t v : lanes) total += v;
  return total;
}

#include "../generic/quantize.hpp"

}  // namespace mbok::detail::avx2

#include "end.hpp"
