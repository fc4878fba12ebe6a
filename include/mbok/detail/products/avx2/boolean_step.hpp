#pragma once
#include "../../guard.hpp"

// avx2: the Boolean optimizer's update of a range of rows for f32 and i8 accumulators, 8
// weights per vector, bit for bit what the scalar loop of boolean_optimizer.hpp computes:
// every product and sum is one rounded operation in the scalar's order (an empty asm
// statement keeps each product from being contracted into a fused multiply-add), and the i8
// stochastic rounding draws detail::counter_uniform(key, index) with 64-bit lanes (products
// from 32-bit halves). f16 accumulators keep the scalar loop (the avx2 tier has no F16C).

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "../boolean_step_args.hpp"
#include "../table.hpp"
#include "begin.hpp"

namespace mbok::detail::avx2 {

// A rounded value the compiler may not fuse with the operation that consumes it.
inline __m256 settled(__m256 v) {
  __asm__("" : "+x"(v));
  return v;
}

// Lane-wise 64-bit product (low 64 bits).
inline __m256i mul64(__m256i a, __m256i b) {
  const __m256i lo = _mm256_mul_epu32(a, b);
  const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b),
                                         _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32)));
  return _mm256_add_epi64(lo, _mm256_slli_epi64(cross, 32));
}

// splitmix64(key ^ (index * 0xD1B54A32D192ED03)) >> 40 of 4 lanes, as 32-bit integers in the
// even 32-bit positions.
inline __m256i counter_bits4(std::uint64_t key, __m256i index) {
  __m256i x = _mm256_xor_si256(
      _mm256_set1_epi64x(static_cast<long long>(key)),
      mul64(index, _mm256_set1_epi64x(static_cast<long long>(0xD1B54A32D192ED03ull))));
  x = _mm256_add_epi64(x, _mm256_set1_epi64x(static_cast<long long>(0x9E3779B97F4A7C15ull)));
  x = mul64(_mm256_xor_si256(x, _mm256_srli_epi64(x, 30)),
            _mm256_set1_epi64x(static_cast<long long>(0xBF58476D1CE4E5B9ull)));
  x = mul64(_mm256_xor_si256(x, _mm256_srli_epi64(x, 27)),
            _mm256_set1_epi64x(static_cast<long long>(0x94D049BB133111EBull)));
  x = _mm256_xor_si256(x, _mm256_srli_epi64(x, 31));
  return _mm256_srli_epi64(x, 40);
}

// detail::counter_uniform of the 8 indices first, first + 1, ..., first + 7.
inline __m256 counter_uniform8(std::uint64_t key, std::uint64_t first) {
  const __m256i index = _mm256_add_epi64(_mm256_set1_epi64x(static_cast<long long>(first)),
                                         _mm256_setr_epi64x(0, 1, 2, 3));
  const __m256i lo = counter_bits4(key, index);
  const __m256i hi = counter_bits4(key, _mm256_add_epi64(index, _mm256_set1_epi64x(4)));
  const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  const __m256i both = _mm256_permute2x128_si256(_mm256_permutevar8x32_epi32(lo, even),
                                                 _mm256_permutevar8x32_epi32(hi, even), 0x20);
  // Integers below 2^24 convert exactly; the scaling by 2^-24 is exact.
  return _mm256_mul_ps(_mm256_cvtepi32_ps(both), _mm256_set1_ps(1.0f / 16777216.0f));
}

// Rows [r0, r1); returns the number of flips.
template <StepCodec kCodec>
std::size_t boolean_step_rows(const BooleanStepArgs& a, std::size_t r0, std::size_t r1) {
  static_assert(kCodec != StepCodec::f16, "avx2: f16 accumulators keep the scalar loop");
  const __m256 beta = _mm256_set1_ps(a.beta), eta = _mm256_set1_ps(a.eta),
               threshold = _mm256_set1_ps(a.threshold), zero = _mm256_setzero_ps();
  const __m256 one = _mm256_set1_ps(1.0f), minus_one = _mm256_set1_ps(-1.0f);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  std::size_t flips = 0;
  alignas(32) float buffer[8];
  for (std::size_t i = r0; i < r1; ++i) {
    std::uint64_t* row = a.bits + i * a.stride;
    const float* qi = a.q + i * a.ld;
    const std::size_t base = i * a.cols;
    for (std::size_t w = 0; w * 64 < a.cols; ++w) {
      const std::uint64_t word = row[w];
      std::uint64_t flip = 0;
      for (std::size_t v = 0; v < 8; ++v) {
        const std::size_t j = w * 64 + v * 8;
        if (j >= a.cols) break;
        const std::size_t count = a.cols - j < 8 ? a.cols - j : 8;
        const std::size_t e = base + j;
        __m256 g, old;
        if (count == 8) {
          g = _mm256_loadu_ps(qi + j);
        } else {
          for (std::size_t l = 0; l < 8; ++l) buffer[l] = l < count ? qi[j + l] : 0.0f;
          g = _mm256_load_ps(buffer);
        }
        if (a.sign_only) {
          const __m256 pos = _mm256_cmp_ps(g, zero, _CMP_GT_OQ);
          const __m256 neg = _mm256_cmp_ps(g, zero, _CMP_LT_OQ);
          g = _mm256_or_ps(_mm256_and_ps(pos, one), _mm256_and_ps(neg, minus_one));
        }
        if constexpr (kCodec == StepCodec::f32) {
          const float* acc = static_cast<const float*>(a.acc) + e;
          if (count == 8) {
            old = _mm256_loadu_ps(acc);
          } else {
            for (std::size_t l = 0; l < 8; ++l) buffer[l] = l < count ? acc[l] : 0.0f;
            old = _mm256_load_ps(buffer);
          }
        } else {
          const std::int8_t* acc = static_cast<const std::int8_t*>(a.acc) + e;
          alignas(8) std::int8_t codes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
          for (std::size_t l = 0; l < count; ++l) codes[l] = acc[l];
          const __m128i packed = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes));
          old = settled(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(packed)),
                                      _mm256_set1_ps(a.scale)));
        }
        __m256 m = _mm256_add_ps(settled(_mm256_mul_ps(beta, old)), settled(_mm256_mul_ps(eta, g)));
        m = settled(m);
        const auto negative_w = static_cast<unsigned>((word >> (v * 8)) & 0xFFu);
        const auto big = static_cast<unsigned>(
            _mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(m, abs_mask), threshold, _CMP_GE_OQ)));
        const auto below =
            static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(m, zero, _CMP_LT_OQ)));
        const unsigned valid = count == 8 ? 0xFFu : (1u << count) - 1u;
        const unsigned f = big & ~(below ^ negative_w) & valid;
        flip |= static_cast<std::uint64_t>(f) << (v * 8);
        // Lanes that flip reset to zero.
        const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        const __m256 reset = _mm256_castsi256_ps(_mm256_cmpeq_epi32(
            _mm256_and_si256(_mm256_set1_epi32(static_cast<int>(f)), lane_bits), lane_bits));
        m = _mm256_andnot_ps(reset, m);
        if constexpr (kCodec == StepCodec::f32) {
          m = _mm256_min_ps(_mm256_max_ps(m, _mm256_set1_ps(-3.0e38f)), _mm256_set1_ps(3.0e38f));
          float* acc = static_cast<float*>(a.acc) + e;
          if (count == 8) {
            _mm256_storeu_ps(acc, m);
          } else {
            _mm256_store_ps(buffer, m);
            for (std::size_t l = 0; l < count; ++l) acc[l] = buffer[l];
          }
        } else {
          const __m256 u = counter_uniform8(a.key, e);
          __m256 x = _mm256_add_ps(settled(_mm256_mul_ps(m, _mm256_set1_ps(a.inv))), u);
          x = _mm256_floor_ps(settled(x));
          x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
          alignas(32) std::int32_t codes[8];
          _mm256_store_si256(reinterpret_cast<__m256i*>(codes), _mm256_cvttps_epi32(x));
          std::int8_t* acc = static_cast<std::int8_t*>(a.acc) + e;
          for (std::size_t l = 0; l < count; ++l) acc[l] = static_cast<std::int8_t>(codes[l]);
        }
      }
      row[w] = word ^ flip;
      flips += static_cast<std::size_t>(__builtin_popcountll(flip));
    }
  }
  return flips;
}

// f16 accumulators and max_abs_bits keep the scalar entries.
inline constexpr void install_boolean_step(ProductTable& t) noexcept {
  t.boolean_step_rows[static_cast<int>(StepCodec::f32)] = &boolean_step_rows<StepCodec::f32>;
  t.boolean_step_rows[static_cast<int>(StepCodec::i8)] = &boolean_step_rows<StepCodec::i8>;
}

}  // namespace mbok::detail::avx2

#include "end.hpp"
