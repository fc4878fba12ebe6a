#pragma once
#include "../../guard.hpp"

// avx2: the table-lookup int8 product (lut_format.hpp), lanes16 layout: VPSHUFB looks up a
// 16-entry table per 128-bit lane, so each lane of a 32-byte weight vector holds 16 rows of
// one group (low nibbles) and of a second group (high nibbles). Per 32 weight bytes (16 rows
// x 16 columns): two index vectors, four VPSHUFB into the chunk's L and H tables and two byte
// adds (each sum <= 120, unsigned). Two chunks' sums are added in bytes (<= 240), then
// VPUNPCKL/HBW interleave L and H per row and VPMADDUBSW with (1, 16) pairs gives L + 16 H
// <= 4080 per row and pair of chunks, summed in 16-bit lanes (as unsigned: 16 pairs <= 65280)
// and widened to 32 bits every 32 chunks. The two lanes of a row are added at the end. R tiles
// of 16 rows share each table load. Also the avx512 table's LUT product when the CPU lacks VBMI
// or VNNI.

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../lut_format.hpp"
#include "../table.hpp"
#include "sign_i8.hpp"

#include "begin.hpp"

namespace mbok::detail::avx2 {

/// Tables of t tokens (scalar::lut_tables_i8's contract), with VPSHUFB.
inline void lut_tables_shuf(const std::int8_t* x, std::size_t ldx, std::size_t t, std::size_t cols,
                            std::uint8_t* tables, std::size_t ld, std::int32_t* base) noexcept {
  const std::size_t cols32 = lut_cols32(cols), chunks = cols32 / 16;
  const std::size_t words = padded_row_words(cols);
  const __m128i nib = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
  // Entry p of lane h: bit k of p selects column 4 g + k (g = h for the first vector, 2 + h
  // for the second).
  __m256i idx[2][4], bit[4];
  for (int k = 0; k < 4; ++k) {
    idx[0][k] = _mm256_setr_m128i(_mm_set1_epi8(static_cast<char>(k)),
                                  _mm_set1_epi8(static_cast<char>(4 + k)));
    idx[1][k] = _mm256_setr_m128i(_mm_set1_epi8(static_cast<char>(8 + k)),
                                  _mm_set1_epi8(static_cast<char>(12 + k)));
    alignas(16) std::uint8_t m[16];
    for (int p = 0; p < 16; ++p) m[p] = ((p >> k) & 1) ? 0xff : 0;
    bit[k] = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(m)));
  }
  const __m256i h_bias = _mm256_set1_epi8(32);
  for (std::size_t i = 0; i < t; ++i) {
    const std::int8_t* xi = x + i * ldx;
    std::uint8_t* ti = tables + i * ld;
    base[i] = static_cast<std::int32_t>(static_cast<std::uint32_t>(i8_row_sum(xi, words)) +
                                        256u * static_cast<std::uint32_t>(cols32));
    for (std::size_t c = 0; c < chunks; ++c) {
      const __m128i xv = _mm_load_si128(reinterpret_cast<const __m128i*>(xi + 16 * c));
      const __m256i xl = _mm256_broadcastsi128_si256(_mm_and_si128(xv, nib));
      const __m256i xh = _mm256_broadcastsi128_si256(
          _mm_sub_epi8(_mm_xor_si128(_mm_and_si128(_mm_srli_epi16(xv, 4), nib), eight), eight));
      std::uint8_t* out = ti + kLutChunkBytes * c;
      for (int half = 0; half < 2; ++half) {
        __m256i l = _mm256_setzero_si256(), h = h_bias;
        for (int k = 0; k < 4; ++k) {
          l = _mm256_add_epi8(l, _mm256_and_si256(_mm256_shuffle_epi8(xl, idx[half][k]), bit[k]));
          h = _mm256_add_epi8(h, _mm256_and_si256(_mm256_shuffle_epi8(xh, idx[half][k]), bit[k]));
        }
        _mm256_store_si256(reinterpret_cast<__m256i*>(out + 32 * half), l);
        _mm256_store_si256(reinterpret_cast<__m256i*>(out + 64 + 32 * half), h);
      }
    }
  }
}

// Bytes ahead of the weight being read that the VPSHUFB kernel prefetches into L2, per tile.
inline constexpr std::size_t kLutPrefetchAhead = 2048;

inline __m256i load32(const std::uint8_t* p) noexcept {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
}

// R tiles x one token's tables over chunks [c0, c1) of `chunks` (c1 - c0 even): adds to
// acc[r][0..3] (rows 0-3, 4-7, 8-11, 12-15, one partial sum per 128-bit lane). Two chunks'
// lookups are summed in bytes before one widening (each chunk's L and H are <= 120, the pair's
// <= 240): one unpack pair, VPMADDUBSW pair and 16-bit add pair serve 512 weights instead of
// 256, which takes an eighth of the shuffle-port work out of the loop. Each tile is a stream
// of its own; once per 64-byte line the line 2 KiB ahead is prefetched, running on into
// next[r] (the tile read after this one) past the tile's end, as the avx512 product does.
template <int R>
inline void lut_tiles_shuf(const std::uint8_t* tab, const std::uint8_t* const* wt,
                           const std::uint8_t* const* next, std::size_t chunks, std::size_t c0,
                           std::size_t c1, __m256i (*acc)[4]) noexcept {
  const std::size_t tile_bytes = 32 * chunks;
  const __m256i nib = _mm256_set1_epi8(0x0f), pair = _mm256_set1_epi16(0x1001);  // (1, 16)
  const __m256i zero = _mm256_setzero_si256();
  __m256i a16[R][2];
  for (int r = 0; r < R; ++r) a16[r][0] = a16[r][1] = zero;
  for (std::size_t c = c0; c < c1; c += 2) {
    const std::uint8_t* tc = tab + kLutChunkBytes * c;
    const __m256i l01 = load32(tc), l23 = load32(tc + 32), h01 = load32(tc + 64),
                  h23 = load32(tc + 96);
    const __m256i m01 = load32(tc + 128), m23 = load32(tc + 160);  // the next chunk's L and H
    const __m256i g01 = load32(tc + 192), g23 = load32(tc + 224);
    const std::size_t ahead = 32 * c + kLutPrefetchAhead;
    for (int r = 0; r < R; ++r) {
      const __m256i w = load32(wt[r] + 32 * c), v = load32(wt[r] + 32 * c + 32);
      _mm_prefetch(reinterpret_cast<const char*>(
                       ahead < tile_bytes ? wt[r] + ahead : next[r] + (ahead - tile_bytes)),
                   _MM_HINT_T1);
      const __m256i wl = _mm256_and_si256(w, nib);
      const __m256i wh = _mm256_and_si256(_mm256_srli_epi16(w, 4), nib);
      const __m256i vl = _mm256_and_si256(v, nib);
      const __m256i vh = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
      const __m256i l = _mm256_add_epi8(
          _mm256_add_epi8(_mm256_shuffle_epi8(l01, wl), _mm256_shuffle_epi8(l23, wh)),
          _mm256_add_epi8(_mm256_shuffle_epi8(m01, vl), _mm256_shuffle_epi8(m23, vh)));
      const __m256i h = _mm256_add_epi8(
          _mm256_add_epi8(_mm256_shuffle_epi8(h01, wl), _mm256_shuffle_epi8(h23, wh)),
          _mm256_add_epi8(_mm256_shuffle_epi8(g01, vl), _mm256_shuffle_epi8(g23, vh)));
      a16[r][0] =
          _mm256_add_epi16(a16[r][0], _mm256_maddubs_epi16(_mm256_unpacklo_epi8(l, h), pair));
      a16[r][1] =
          _mm256_add_epi16(a16[r][1], _mm256_maddubs_epi16(_mm256_unpackhi_epi8(l, h), pair));
    }
  }
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < 2; ++k) {
      acc[r][2 * k] = _mm256_add_epi32(acc[r][2 * k], _mm256_unpacklo_epi16(a16[r][k], zero));
      acc[r][2 * k + 1] =
          _mm256_add_epi32(acc[r][2 * k + 1], _mm256_unpackhi_epi16(a16[r][k], zero));
    }
}

// Chunks per 16-bit block: 16 pairs x 4080 <= 65535 (an even count: chunks, cols32 / 16, is
// even, so every block is whole pairs).
inline constexpr std::size_t kLutChunksPerBlock = 32;

template <int R>
inline void lut_tiles_shuf_all(const std::uint8_t* tab, const std::uint8_t* const* wt,
                               const std::uint8_t* const* next, std::size_t chunks,
                               __m256i (*acc)[4]) noexcept {
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < 4; ++k) acc[r][k] = _mm256_setzero_si256();
  for (std::size_t c0 = 0; c0 < chunks; c0 += kLutChunksPerBlock)
    lut_tiles_shuf<R>(tab, wt, next, chunks, c0, std::min(chunks, c0 + kLutChunksPerBlock), acc);
}

// Tiles of 16 rows that share each table load (lut_tiles_shuf_all's R in the product).
inline constexpr std::size_t kLutShufTiles = 4;

/// The VPSHUFB kernel over lanes16 weights.
inline void sign_gemm_i8_lut_shuf(LutTablesView x, LutWeightsView w, std::int32_t* y,
                                  std::size_t ldy, std::size_t j0, std::size_t j1) noexcept {
  constexpr std::size_t R = kLutShufTiles;
  if (j0 >= j1) return;
  const std::size_t chunks = w.cols32() / 16;
  const std::size_t t0 = j0 / kLutTileRows, t1 = (j1 + kLutTileRows - 1) / kLutTileRows;
  for (std::size_t tb = t0; tb < t1; tb += R) {
    const std::size_t nt = std::min(R, t1 - tb);
    const std::uint8_t *wt[R], *next[R];
    lut_tile_streams<R>(w, tb, nt, wt, next);
    for (std::size_t i = 0; i < x.tokens; ++i) {
      __m256i acc[R][4];
      const std::uint8_t* tab = x.token(i);
      switch (nt) {
        case 4:
          lut_tiles_shuf_all<4>(tab, wt, next, chunks, acc);
          break;
        case 3:
          lut_tiles_shuf_all<3>(tab, wt, next, chunks, acc);
          break;
        case 2:
          lut_tiles_shuf_all<2>(tab, wt, next, chunks, acc);
          break;
        default:
          lut_tiles_shuf_all<1>(tab, wt, next, chunks, acc);
          break;
      }
      const __m256i base = _mm256_set1_epi32(x.base[i]);
      for (std::size_t r = 0; r < nt; ++r) {
        const std::size_t row0 = (tb + r) * kLutTileRows;
        const std::size_t lo = std::max(j0, row0) - row0, hi = std::min(j1, row0 + 16) - row0;
        std::int32_t* out = y + i * ldy;  // row q of the tile: out[row0 + q - j0]
        for (int half = 0; half < 2; ++half) {
          // Rows 8 half + 0..3 and + 4..7: the two lanes of each row added.
          const __m256i a = acc[r][2 * half], b = acc[r][2 * half + 1];
          const __m256i sum = _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                                               _mm256_permute2x128_si256(a, b, 0x31));
          const __m256i v = _mm256_sub_epi32(base, _mm256_slli_epi32(sum, 1));
          const std::size_t first = 8 * static_cast<std::size_t>(half);
          if (lo <= first && first + 8 <= hi) {
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + (row0 + first - j0)), v);
          } else {
            alignas(32) std::int32_t tmp[8];
            _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), v);
            for (std::size_t q = std::max(lo, first); q < std::min(hi, first + 8); ++q)
              out[row0 + q - j0] = tmp[q - first];
          }
        }
      }
    }
  }
}

}  // namespace mbok::detail::avx2

#include "end.hpp"

namespace mbok::detail::avx2 {

inline LutLayout lut_layout() noexcept { return LutLayout::lanes16; }

inline constexpr void install_lut_i8(ProductTable& t) noexcept {
  t.lut_layout = &lut_layout;
  t.lut_tables_i8 = &lut_tables_shuf;
  t.sign_gemm_i8_lut = &sign_gemm_i8_lut_shuf;
  t.sign_gemm_i8_lut_prefill = &sign_gemm_i8_lut_shuf;  // one product for every t
  // Measured: about 2x the masked avx2 product at t = 1, 128 and 512 (docs/lut_kernels.md).
  // Not above 512: the tables take 8 bytes per feature, token and kernel (32 MiB at t = 512,
  // n = 4096, K = 2), where the masked product needs none.
  t.lut_max_tokens = 512;
}

}  // namespace mbok::detail::avx2
