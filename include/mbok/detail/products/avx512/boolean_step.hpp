#pragma once
#include "../../guard.hpp"

// avx512: the Boolean optimizer's update of a range of rows, 16 weights per vector,
//     m <- beta m + eta q;  flip where |m| >= threshold and sign(m) opposes the weight, m <- 0,
// bit for bit what the scalar loop of boolean_optimizer.hpp computes: every product and sum is
// one rounded operation in the scalar's order (the *_round_ps forms, which compilers never
// contract into fused multiply-adds), the f16 conversions round to nearest even and saturate
// like detail::float_to_f16_saturating (hardware conversions after a clamp to +-65504), and the i8
// stochastic rounding draws detail::counter_uniform(key, index) with 64-bit lanes.

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "../boolean_step_args.hpp"
#include "../table.hpp"
#include "begin.hpp"

namespace mbok::detail::avx512 {

// Lanes l of splitmix64(key ^ (index_l * 0xD1B54A32D192ED03)) >> 40, as floats times 2^-24.
inline __m256 counter_uniform8(std::uint64_t key, __m512i index) {
  __m512i x = _mm512_xor_si512(
      _mm512_set1_epi64(static_cast<long long>(key)),
      _mm512_mullo_epi64(index, _mm512_set1_epi64(static_cast<long long>(0xD1B54A32D192ED03ull))));
  x = _mm512_add_epi64(x, _mm512_set1_epi64(static_cast<long long>(0x9E3779B97F4A7C15ull)));
  x = _mm512_mullo_epi64(_mm512_xor_si512(x, _mm512_srli_epi64(x, 30)),
                         _mm512_set1_epi64(static_cast<long long>(0xBF58476D1CE4E5B9ull)));
  x = _mm512_mullo_epi64(_mm512_xor_si512(x, _mm512_srli_epi64(x, 27)),
                         _mm512_set1_epi64(static_cast<long long>(0x94D049BB133111EBull)));
  x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 31));
  return _mm256_mul_ps(_mm512_cvtepu64_ps(_mm512_srli_epi64(x, 40)),
                       _mm256_set1_ps(1.0f / 16777216.0f));
}

// The largest |q| over rows x cols (rows ld apart) as its bit pattern: the bits of |x| order
// like the values, and a NaN or an infinity gives a pattern >= 0x7F800000.
inline std::uint32_t max_abs_bits(const float* q, std::size_t ld, std::size_t rows,
                                  std::size_t cols) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
  __m512i best = _mm512_setzero_si512();
  for (std::size_t i = 0; i < rows; ++i) {
    const float* qi = q + i * ld;
    std::size_t j = 0;
    for (; j + 16 <= cols; j += 16)
      best = _mm512_max_epu32(
          best, _mm512_and_si512(_mm512_loadu_si512(static_cast<const void*>(qi + j)), abs_mask));
    if (j < cols) {
      const auto tail = static_cast<__mmask16>((1u << (cols - j)) - 1u);
      best = _mm512_max_epu32(best,
                              _mm512_and_si512(_mm512_maskz_loadu_epi32(tail, qi + j), abs_mask));
    }
  }
  return static_cast<std::uint32_t>(_mm512_reduce_max_epu32(best));
}

// Rows [r0, r1); returns the number of flips.
template <StepCodec kCodec>
std::size_t boolean_step_rows(const BooleanStepArgs& a, std::size_t r0, std::size_t r1) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m512 beta = _mm512_set1_ps(a.beta), eta = _mm512_set1_ps(a.eta),
               threshold = _mm512_set1_ps(a.threshold), zero = _mm512_setzero_ps();
  const __m512 one = _mm512_set1_ps(1.0f), minus_one = _mm512_set1_ps(-1.0f);
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
  std::size_t flips = 0;
  for (std::size_t i = r0; i < r1; ++i) {
    std::uint64_t* row = a.bits + i * a.stride;
    const float* qi = a.q + i * a.ld;
    const std::size_t base = i * a.cols;
    for (std::size_t w = 0; w * 64 < a.cols; ++w) {
      const std::uint64_t word = row[w];
      std::uint64_t flip = 0;
      for (std::size_t v = 0; v < 4; ++v) {
        const std::size_t j = w * 64 + v * 16;
        if (j >= a.cols) break;
        const std::size_t count = a.cols - j < 16 ? a.cols - j : 16;
        const auto valid = static_cast<__mmask16>(count == 16 ? 0xFFFFu : (1u << count) - 1u);
        const std::size_t e = base + j;
        __m512 g = _mm512_maskz_loadu_ps(valid, qi + j);
        if (a.sign_only) {
          const __mmask16 pos = _mm512_cmp_ps_mask(g, zero, _CMP_GT_OQ);
          const __mmask16 neg = _mm512_cmp_ps_mask(g, zero, _CMP_LT_OQ);
          g = _mm512_mask_mov_ps(_mm512_mask_mov_ps(zero, pos, one), neg, minus_one);
        }
        __m512 old;
        if constexpr (kCodec == StepCodec::f32) {
          old = _mm512_maskz_loadu_ps(valid, static_cast<const float*>(a.acc) + e);
        } else if constexpr (kCodec == StepCodec::f16) {
          old = _mm512_cvtph_ps(
              _mm256_maskz_loadu_epi16(valid, static_cast<const std::uint16_t*>(a.acc) + e));
        } else {
          old = _mm512_mul_round_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(
                                        valid, static_cast<const std::int8_t*>(a.acc) + e))),
                                    _mm512_set1_ps(a.scale), kRound);
        }
        __m512 m = _mm512_add_round_ps(_mm512_mul_round_ps(beta, old, kRound),
                                       _mm512_mul_round_ps(eta, g, kRound), kRound);
        const auto negative_w = static_cast<__mmask16>(word >> (v * 16));
        const __mmask16 big = _mm512_cmp_ps_mask(_mm512_and_ps(m, abs_mask), threshold, _CMP_GE_OQ);
        const __mmask16 below = _mm512_cmp_ps_mask(m, zero, _CMP_LT_OQ);
        const auto f = static_cast<__mmask16>(big & ~(below ^ negative_w) & valid);
        flip |= static_cast<std::uint64_t>(f) << (v * 16);
        m = _mm512_mask_mov_ps(m, f, zero);
        if constexpr (kCodec == StepCodec::f32) {
          m = _mm512_min_ps(_mm512_max_ps(m, _mm512_set1_ps(-3.0e38f)), _mm512_set1_ps(3.0e38f));
          _mm512_mask_storeu_ps(static_cast<float*>(a.acc) + e, valid, m);
        } else if constexpr (kCodec == StepCodec::f16) {
          m = _mm512_min_ps(_mm512_max_ps(m, _mm512_set1_ps(-65504.0f)), _mm512_set1_ps(65504.0f));
          _mm256_mask_storeu_epi16(
              static_cast<std::uint16_t*>(a.acc) + e, valid,
              _mm512_cvtps_ph(m, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        } else {
          const __m512i index =
              _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(e)), lane);
          const __m256 u_lo = counter_uniform8(a.key, index);
          const __m256 u_hi =
              counter_uniform8(a.key, _mm512_add_epi64(index, _mm512_set1_epi64(8)));
          const __m512 u = _mm512_insertf32x8(_mm512_castps256_ps512(u_lo), u_hi, 1);
          __m512 x =
              _mm512_add_round_ps(_mm512_mul_round_ps(m, _mm512_set1_ps(a.inv), kRound), u, kRound);
          x = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
          x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
          _mm_mask_storeu_epi8(static_cast<std::int8_t*>(a.acc) + e, valid,
                               _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(x)));
        }
      }
      row[w] = word ^ flip;
      flips += static_cast<std::size_t>(__builtin_popcountll(flip));
    }
  }
  return flips;
}

inline constexpr void install_boolean_step(ProductTable& t) noexcept {
  t.boolean_step_rows[static_cast<int>(StepCodec::f32)] = &boolean_step_rows<StepCodec::f32>;
  t.boolean_step_rows[static_cast<int>(StepCodec::f16)] = &boolean_step_rows<StepCodec::f16>;
  t.boolean_step_rows[static_cast<int>(StepCodec::i8)] = &boolean_step_rows<StepCodec::i8>;
  t.max_abs_bits = &max_abs_bits;
}

}  // namespace mbok::detail::avx512

#include "end.hpp"
