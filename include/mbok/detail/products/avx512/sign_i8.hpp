#pragma once
#include "../../guard.hpp"

// avx512: Boolean weights x int8 activations: table entry sign_gemm_i8.
//
// With w = 1 - 2 b (b = the stored bit), sum_l x_l w_l = sum(x) - 2 sum_{b_l = 1} x_l. Each
// 64-bit weight word is the mask of 64 activations: a masked byte move turns it into 0/1
// bytes once per weight chunk, and the selected sum is then one product per activation
// chunk and token:
// - with VNNI: VPDPBUSD (0/1 as the unsigned operand, x as the signed one) into int32 lanes;
// - without (AVX-512BW only): VPMADDUBSW into int16 lanes (a pair sums to at most 2 x 128
//   in magnitude, so 127 chunks fit in int16), widened to int32 every 127 chunks.
// A tile of TI tokens x TJ weight rows keeps its accumulators in registers, so each
// activation vector is reused TJ times and each expanded weight vector TI times; weight rows
// are walked in L1-sized blocks while the token tiles pass over them.
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

namespace mbok::detail::avx512 {

// The sums of the 16 int32 lanes of a, b, c and d, in that order.
inline __m128i i8_reduce4(__m512i a, __m512i b, __m512i c, __m512i d) noexcept {
  const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  // Per 128-bit lane: ab = [a' b' a" b"], cd = [c' d' c" d"].
  const __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
  // Per 128-bit lane: [a b c d] partial sums; fold the four lanes.
  const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// sum of the `words * 64` int8 values of a padded row.
inline std::int32_t i8_row_sum(const std::int8_t* x, std::size_t words) noexcept {
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512i acc = _mm512_setzero_si512();
  for (std::size_t q = 0; q < words; ++q) {
    // x xor 0x80 is x + 128 as an unsigned byte; VPSADBW sums 8 of them into a qword.
    const __m512i v = _mm512_xor_si512(_mm512_load_si512(x + q * 64), bias);
    acc = _mm512_add_epi64(acc, _mm512_sad_epu8(v, _mm512_setzero_si512()));
  }
  return static_cast<std::int32_t>(_mm512_reduce_add_epi64(acc) -
                                   static_cast<long long>(128 * 64 * words));
}

// One tile: TI tokens x TJ (4 or 8) weight rows. sel[i][j] = sum of x_i where w_j's bit is set.
template <int TI, int TJ, bool Vnni>
inline void i8_tile(const std::int8_t* const* x, const std::uint64_t* const* w, std::size_t words,
                    const std::int32_t* totals, std::int32_t* y, std::size_t ldy, int tj) noexcept {
  static_assert(TJ == 4 || TJ == 8, "results are stored four at a time");
  const __m512i ones8 = _mm512_set1_epi8(1);
  __m512i acc[TI][TJ];
  for (int i = 0; i < TI; ++i)
    for (int j = 0; j < TJ; ++j) acc[i][j] = _mm512_setzero_si512();
  if constexpr (Vnni) {
    for (std::size_t q = 0; q < words; ++q) {
      __m512i xv[TI];
      for (int i = 0; i < TI; ++i) xv[i] = _mm512_load_si512(x[i] + q * 64);
      for (int j = 0; j < TJ; ++j) {
        const __m512i wv = _mm512_maskz_mov_epi8(_cvtu64_mask64(w[j][q]), ones8);
        for (int i = 0; i < TI; ++i) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], wv, xv[i]);
      }
    }
  } else {
    const __m512i ones16 = _mm512_set1_epi16(1);
    for (std::size_t q0 = 0; q0 < words; q0 += 127) {
      const std::size_t q1 = std::min(words, q0 + 127);
      __m512i acc16[TI][TJ];
      for (int i = 0; i < TI; ++i)
        for (int j = 0; j < TJ; ++j) acc16[i][j] = _mm512_setzero_si512();
      for (std::size_t q = q0; q < q1; ++q) {
        __m512i xv[TI];
        for (int i = 0; i < TI; ++i) xv[i] = _mm512_load_si512(x[i] + q * 64);
        for (int j = 0; j < TJ; ++j) {
          const __m512i wv = _mm512_maskz_mov_epi8(_cvtu64_mask64(w[j][q]), ones8);
          for (int i = 0; i < TI; ++i)
            acc16[i][j] = _mm512_add_epi16(acc16[i][j], _mm512_maddubs_epi16(wv, xv[i]));
        }
      }
      for (int i = 0; i < TI; ++i)
        for (int j = 0; j < TJ; ++j)
          acc[i][j] = _mm512_add_epi32(acc[i][j], _mm512_madd_epi16(acc16[i][j], ones16));
    }
  }
  for (int i = 0; i < TI; ++i) {
    const __m128i total = _mm_set1_epi32(totals[i]);
    std::int32_t* out = y + static_cast<std::size_t>(i) * ldy;
    for (int j = 0; j < TJ; j += 4) {
      const __m128i sel = i8_reduce4(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]);
      const __m128i r = _mm_sub_epi32(total, _mm_slli_epi32(sel, 1));
      const int left = tj - j;
      if (left >= 4)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j), r);
      else if (left > 0)
        _mm_mask_storeu_epi32(out + j, static_cast<__mmask8>((1u << left) - 1u), r);
    }
  }
}

#include "../generic/sign_i8.hpp"

template <bool Vnni>
inline void sign_gemm_i8_impl(const std::int8_t* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                              std::int32_t* y, std::size_t ldy, std::size_t j0, std::size_t j1) {
  sign_gemm_i8_tiled<4>(x, ldx, t, w, y, ldy, j0, j1,
                        [](auto ti, auto tj, auto&&... args) MBOK_TILE_INLINE {
                          i8_tile<decltype(ti)::value, decltype(tj)::value, Vnni>(args...);
                        });
}

// The two variants, callable directly (tests run the AVX-512BW one on VNNI machines too).
inline void sign_gemm_i8_vnni(const std::int8_t* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                              std::int32_t* y, std::size_t ldy, std::size_t j0, std::size_t j1) {
  sign_gemm_i8_impl<true>(x, ldx, t, w, y, ldy, j0, j1);
}
inline void sign_gemm_i8_bw(const std::int8_t* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                            std::int32_t* y, std::size_t ldy, std::size_t j0, std::size_t j1) {
  sign_gemm_i8_impl<false>(x, ldx, t, w, y, ldy, j0, j1);
}

}  // namespace mbok::detail::avx512

#include "end.hpp"

namespace mbok::detail::avx512 {

// True when the table's sign_gemm_i8 runs the VNNI variant on this CPU.
inline bool sign_i8_uses_vnni() noexcept { return cpu_features().avx512vnni; }

inline void sign_gemm_i8(const std::int8_t* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                         std::int32_t* y, std::size_t ldy, std::size_t j0, std::size_t j1) {
  if (sign_i8_uses_vnni())
    sign_gemm_i8_vnni(x, ldx, t, w, y, ldy, j0, j1);
  else
    sign_gemm_i8_bw(x, ldx, t, w, y, ldy, j0, j1);
}

inline constexpr void install_sign_i8(ProductTable& t) noexcept { t.sign_gemm_i8 = &sign_gemm_i8; }

}  // namespace mbok::detail::avx512
