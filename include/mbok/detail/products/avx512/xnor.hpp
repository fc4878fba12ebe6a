#pragma once
#include "../../guard.hpp"

// avx512: Boolean x Boolean (XNOR/popcount): table entry xnor_gemm.
//
// C(i, j) = n - 2 popcount(A_i xor B_j). The inner loop is XOR + VPOPCNTQ + VPADDQ over
// 512-bit chunks of a tile of activation rows x weight rows, so each loaded vector is used
// several times from a register and the loop runs at the rate of the three vector
// operations. Weight rows are walked in blocks small enough to stay in L1 while every
// activation tile passes over them. Popcounts accumulate in 64-bit lanes, so no row length
// a bit matrix can have overflows them.

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../table.hpp"

#include "begin.hpp"

namespace mbok::detail::avx512 {

// The sums of the 8 qword lanes of a, b, c and d, in qword lanes 0..3 of the result.
inline __m256i xnor_reduce4(__m512i a, __m512i b, __m512i c, __m512i d) noexcept {
  // Per 128-bit lane L: ab = [a(2L) + a(2L+1), b(2L) + b(2L+1)], cd likewise.
  const __m512i ab = _mm512_add_epi64(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
  const __m512i cd = _mm512_add_epi64(_mm512_unpacklo_epi64(c, d), _mm512_unpackhi_epi64(c, d));
  const __m512i x = _mm512_shuffle_i64x2(ab, cd, _MM_SHUFFLE(2, 0, 2, 0));  // ab0 ab2 cd0 cd2
  const __m512i y = _mm512_shuffle_i64x2(ab, cd, _MM_SHUFFLE(3, 1, 3, 1));  // ab1 ab3 cd1 cd3
  const __m512i z = _mm512_add_epi64(x, y);                                 // ab' ab" cd' cd"
  const __m512i u = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(2, 3, 0, 1));
  const __m512i v = _mm512_add_epi64(z, u);  // 128-bit lanes: [a b] [a b] [c d] [c d]
  return _mm512_castsi512_si256(
      _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 4, 5, 0, 1, 4, 5), v));
}

// One tile: TI activation rows x TJ (<= 4) weight rows, over `chunks` 512-bit chunks.
template <int TI, int TJ>
inline void xnor_tile(const std::uint64_t* const* a, const std::uint64_t* const* b,
                      std::size_t chunks, std::int32_t n, std::int32_t* c,
                      std::size_t ldc) noexcept {
  static_assert(TJ >= 1 && TJ <= 4, "the reduction handles up to 4 weight rows");
  __m512i acc[TI][4];
  for (int i = 0; i < TI; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_si512();
  for (std::size_t q = 0; q < chunks; ++q) {
    __m512i bv[TJ];
    for (int j = 0; j < TJ; ++j) bv[j] = _mm512_load_si512(b[j] + q * 8);
    for (int i = 0; i < TI; ++i) {
      const __m512i av = _mm512_load_si512(a[i] + q * 8);
      for (int j = 0; j < TJ; ++j)
        acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_popcnt_epi64(_mm512_xor_si512(av, bv[j])));
    }
  }
  const __m128i nv = _mm_set1_epi32(n);
  for (int i = 0; i < TI; ++i) {
    const __m128i ones =
        _mm256_cvtepi64_epi32(xnor_reduce4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]));
    const __m128i r = _mm_sub_epi32(nv, _mm_slli_epi32(ones, 1));
    std::int32_t* out = c + static_cast<std::size_t>(i) * ldc;
    if (TJ == 4) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out), r);
    } else {
      _mm_mask_storeu_epi32(out, static_cast<__mmask8>((1u << TJ) - 1u), r);
    }
  }
}

// The register tile (activation rows x weight rows) and the words of one vector chunk.
inline constexpr std::size_t kXnorTileI = 4, kXnorTileJ = 4, kXnorChunkWords = 8;
#include "../generic/xnor.hpp"

}  // namespace mbok::detail::avx512

#include "end.hpp"

namespace mbok::detail::avx512 {

inline constexpr void install_xnor(ProductTable& t) noexcept { t.xnor_gemm = &xnor_gemm; }

}  // namespace mbok::detail::avx512
