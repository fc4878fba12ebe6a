#pragma once
#include "../../guard.hpp"

// avx2: Boolean weights x int8 activations: table entry sign_gemm_i8.
//
// With w = 1 - 2 b (b = the stored bit), sum_l x_l w_l = sum(x) - 2 sum_{b_l = 1} x_l. Each
// 32 weight bits expand to 32 bytes of 0/1 (broadcast, VPSHUFB to put byte k/8 in byte k,
// AND with the bit of k, clamp to 1), once per weight chunk; VPMADDUBSW with the activations
// then sums the selected pairs into int16 lanes (at most 2 x 128 in magnitude per chunk, so
// 126 chunks fit), widened to int32 with VPMADDWD every 126 chunks. A tile of TI tokens x TJ
// weight rows keeps its accumulators in registers.
//
// Exact for n < 2^24 (|selected sum| <= 128 n < 2^31); the int32 results wrap beyond.

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../table.hpp"

#include "begin.hpp"

namespace mbok::detail::avx2 {

// The sums of the 8 int32 lanes of a, b, c and d, in that order.
inline __m128i i8_reduce4(__m256i a, __m256i b, __m256i c, __m256i d) noexcept {
  const __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

inline std::int32_t i8_row_sum(const std::int8_t* x, std::size_t words) noexcept {
  const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
  __m256i acc = _mm256_setzero_si256();
  for (std::size_t q = 0; q < words * 2; ++q) {
    const __m256i v =
        _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(x + q * 32)), bias);
    acc = _mm256_add_epi64(acc, _mm256_sad_epu8(v, _mm256_setzero_si256()));
  }
  const __m128i s = _mm_add_epi64(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  return static_cast<std::int32_t>(_mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1) -
                                   static_cast<long long>(128 * 64 * words));
}

// 32 weight bits as 32 bytes of 0 or 1.
inline __m256i expand_bits(std::uint32_t bits, __m256i spread, __m256i bit_of_byte,
                           __m256i ones8) noexcept {
  const __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), spread);
  return _mm256_min_epu8(_mm256_and_si256(b, bit_of_byte), ones8);
}

template <int TI, int TJ>
inline void i8_tile(const std::int8_t* const* x, const std::uint64_t* const* w, std::size_t words,
                    const std::int32_t* totals, std::int32_t* y, std::size_t ldy, int tj) noexcept {
  static_assert(TJ == 4 || TJ == 8, "results are stored four at a time");
  const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                          2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit_of_byte = _mm256_set1_epi64x(0x8040201008040201ll);
  const __m256i ones8 = _mm256_set1_epi8(1);
  const __m256i ones16 = _mm256_set1_epi16(1);
  __m256i acc[TI][TJ];
  for (int i = 0; i < TI; ++i)
    for (int j = 0; j < TJ; ++j) acc[i][j] = _mm256_setzero_si256();
  // 63 words = 126 chunks of 32 bytes per int16 block.
  for (std::size_t q0 = 0; q0 < words; q0 += 63) {
    const std::size_t q1 = std::min(words, q0 + 63);
    __m256i acc16[TI][TJ];
    for (int i = 0; i < TI; ++i)
      for (int j = 0; j < TJ; ++j) acc16[i][j] = _mm256_setzero_si256();
    for (std::size_t q = q0; q < q1; ++q) {
      for (int h = 0; h < 2; ++h) {
        __m256i xv[TI];
        for (int i = 0; i < TI; ++i)
          xv[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(x[i] + q * 64 + h * 32));
        for (int j = 0; j < TJ; ++j) {
          const __m256i wv = expand_bits(static_cast<std::uint32_t>(w[j][q] >> (32 * h)), spread,
                                         bit_of_byte, ones8);
          for (int i = 0; i < TI; ++i)
            acc16[i][j] = _mm256_add_epi16(acc16[i][j], _mm256_maddubs_epi16(wv, xv[i]));
        }
      }
    }
    for (int i = 0; i < TI; ++i)
      for (int j = 0; j < TJ; ++j)
        acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(acc16[i][j], ones16));
  }
  for (int i = 0; i < TI; ++i) {
    const __m128i total = _mm_set1_epi32(totals[i]);
    std::int32_t* out = y + static_cast<std::size_t>(i) * ldy;
    for (int j = 0; j < TJ; j += 4) {
      const __m128i sel = i8_reduce4(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]);
      const __m128i r = _mm_sub_epi32(total, _mm_slli_epi32(sel, 1));
      const int left = tj - j;
      if (left >= 4) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j), r);
      } else if (left > 0) {
        alignas(16) std::int32_t tmp[4];
        _mm_store_si128(reinterpret_cast<__m128i*>(tmp), r);
        for (int k = 0; k < left; ++k) out[j + k] = tmp[k];
      }
    }
  }
}

#include "../generic/sign_i8.hpp"

inline void sign_gemm_i8(const std::int8_t* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                         std::int32_t* y, std::size_t ldy, std::size_t j0, std::size_t j1) {
  sign_gemm_i8_tiled<2>(x, ldx, t, w, y, ldy, j0, j1,
                        [](auto ti, auto tj, auto&&... args) MBOK_TILE_INLINE {
                          i8_tile<decltype(ti)::value, decltype(tj)::value>(args...);
                        });
}

}  // namespace mbok::detail::avx2

#include "end.hpp"

namespace mbok::detail::avx2 {

inline constexpr void install_sign_i8(ProductTable& t) noexcept { t.sign_gemm_i8 = &sign_gemm_i8; }

}  // namespace mbok::detail::avx2
