#pragma once
#include "../../guard.hpp"

// avx2: Boolean x Boolean (XNOR/popcount): table entry xnor_gemm.
//
// AVX2 has no vector popcount: each byte's popcount is looked up per nibble with VPSHUFB
// (the method of Mula, Kurz and Lemire), summed in byte lanes for up to 31 chunks (8 x 31 =
// 248 < 256 cannot overflow), then widened with VPSADBW into 64-bit lanes. A tile of
// activation rows x weight rows reuses every loaded vector from a register, and weight rows
// are walked in L1-sized blocks.

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../table.hpp"

#include "begin.hpp"

namespace mbok::detail::avx2 {

inline __m256i popcount_bytes(__m256i v, __m256i lut, __m256i low_mask) noexcept {
  const __m256i lo = _mm256_and_si256(v, low_mask);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low_mask);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

inline std::int64_t hsum_epi64(__m256i v) noexcept {
  const __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

// One tile: TI activation rows x TJ weight rows, over `chunks` 256-bit chunks.
template <int TI, int TJ>
inline void xnor_tile(const std::uint64_t* const* a, const std::uint64_t* const* b,
                      std::size_t chunks, std::int32_t n, std::int32_t* c,
                      std::size_t ldc) noexcept {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                       1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low_mask = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  __m256i total[TI][TJ];
  for (int i = 0; i < TI; ++i)
    for (int j = 0; j < TJ; ++j) total[i][j] = zero;
  for (std::size_t q0 = 0; q0 < chunks; q0 += 31) {
    const std::size_t q1 = std::min(chunks, q0 + 31);
    __m256i acc[TI][TJ];
    for (int i = 0; i < TI; ++i)
      for (int j = 0; j < TJ; ++j) acc[i][j] = zero;
    for (std::size_t q = q0; q < q1; ++q) {
      __m256i av[TI];
      for (int i = 0; i < TI; ++i)
        av[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(a[i] + q * 4));
      for (int j = 0; j < TJ; ++j) {
        const __m256i bv = _mm256_load_si256(reinterpret_cast<const __m256i*>(b[j] + q * 4));
        for (int i = 0; i < TI; ++i)
          acc[i][j] = _mm256_add_epi8(acc[i][j],
                                      popcount_bytes(_mm256_xor_si256(av[i], bv), lut, low_mask));
      }
    }
    for (int i = 0; i < TI; ++i)
      for (int j = 0; j < TJ; ++j)
        total[i][j] = _mm256_add_epi64(total[i][j], _mm256_sad_epu8(acc[i][j], zero));
  }
  for (int i = 0; i < TI; ++i)
    for (int j = 0; j < TJ; ++j)
      // In int64: 2 popcount exceeds INT32_MAX from n > 2^30 on (the result itself fits).
      c[static_cast<std::size_t>(i) * ldc + static_cast<std::size_t>(j)] =
          static_cast<std::int32_t>(std::int64_t{n} -
                                    2 * static_cast<std::int64_t>(hsum_epi64(total[i][j])));
}

// The register tile (activation rows x weight rows) and the words of one vector chunk.
inline constexpr std::size_t kXnorTileI = 2, kXnorTileJ = 4, kXnorChunkWords = 4;
#include "../generic/xnor.hpp"

}  // namespace mbok::detail::avx2

#include "end.hpp"

namespace mbok::detail::avx2 {

inline constexpr void install_xnor(ProductTable& t) noexcept { t.xnor_gemm = &xnor_gemm; }

}  // namespace mbok::detail::avx2
