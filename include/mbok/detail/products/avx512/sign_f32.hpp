#pragma once
#include "../../guard.hpp"

// avx512: Boolean weights x float activations: table entries sign_gemm_f32, sign_gemm_acc_f32
// and sign_gemm_t_f32.
//
// Each 16 bits of a packed row are a ready-made AVX-512 mask register (bit l set = -1 at
// column l), loaded straight from memory with KMOVW. With the sum of the activations known,
//     sum_l x_l W(j, l) = sum_l x_l - 2 sum_{W(j,l) = -1} x_l,
// so every 16 weights cost one masked add (VADDPS zmm{k}) and nothing else: no sign
// expansion, no multiply. Register tiles of several weight rows x several tokens reuse each
// loaded activation vector and each mask from registers. The backward orientation
// dX = Z W adds broadcast z_ij under the mask of row j into accumulators that span a block
// of dX columns, for a tile of tokens.

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../table.hpp"

#include "begin.hpp"

namespace mbok::detail::avx512 {

// 16 weight bits read through a type that may alias the packed uint64_t words.
typedef std::uint16_t F32MaskBits __attribute__((may_alias));

// KMOVW k, m16 is a plain load; compilers otherwise load a general register and move it
// to the mask register, an extra operation on the port the masked adds also need.
inline __mmask16 f32_mask(const F32MaskBits* bits, std::size_t chunk) noexcept {
  __mmask16 k;
  __asm__("kmovw %1, %0" : "=k"(k) : "m"(bits[chunk]));
  return k;
}
inline __mmask16 f32_mask(const std::uint64_t* row, std::size_t chunk) noexcept {
  return f32_mask(reinterpret_cast<const F32MaskBits*>(row), chunk);
}

inline __mmask16 f32_tail_mask(std::size_t n) noexcept {
  return static_cast<__mmask16>((1u << (n % 16)) - 1u);
}

// The sum of the 16 lanes (through intrinsics whose GCC definitions use no `undefined`
// vector: _mm512_reduce_add_ps trips -Wuninitialized with GCC 12 at the caller's site).
inline float f32_hsum(__m512 v) noexcept {
  const __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

// Sum of x[0, n), never reading past n.
inline float f32_sum(const float* x, std::size_t n) noexcept {
  __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
  std::size_t l = 0;
  for (; l + 32 <= n; l += 32) {
    a = _mm512_add_ps(a, _mm512_loadu_ps(x + l));
    b = _mm512_add_ps(b, _mm512_loadu_ps(x + l + 16));
  }
  for (; l + 16 <= n; l += 16) a = _mm512_add_ps(a, _mm512_loadu_ps(x + l));
  if (l < n) b = _mm512_add_ps(b, _mm512_maskz_loadu_ps(f32_tail_mask(n), x + l));
  return f32_hsum(_mm512_add_ps(a, b));
}

// neg[r][i] = sum over columns [0, n) of x_i[l] where W(row r, l) = -1, for R consecutive
// weight rows (`stride` words apart) and T tokens (`ldx` floats apart).
template <int R, int T>
inline void f32_tile(const float* x, std::size_t ldx, const std::uint64_t* w, std::size_t stride,
                     std::size_t n, float (&neg)[R][T]) noexcept {
  __m512 acc[R][T];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) acc[r][i] = _mm512_setzero_ps();
  // One pointer per row and per token, so that every load in the loop is pointer + index.
  const F32MaskBits* rows[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    rows[r] = reinterpret_cast<const F32MaskBits*>(w + static_cast<std::size_t>(r) * stride);
  const float* xs[T];
#pragma GCC unroll 16
  for (int i = 0; i < T; ++i) xs[i] = x + static_cast<std::size_t>(i) * ldx;
  // The next tile's rows (contiguous after this one's) are fetched while this tile runs, one
  // line per 64 columns: enough for 8 rows, so weights streamed from L3 or memory arrive
  // before they are needed (the hardware prefetcher follows R interleaved streams poorly).
  // Prefetches never fault, so running past the matrix is harmless.
  const char* ahead = reinterpret_cast<const char*>(w + static_cast<std::size_t>(R) * stride);
  const std::size_t full = n / 16;
  for (std::size_t c = 0; c < full; ++c) {
    if ((c & 3) == 0) _mm_prefetch(ahead + (c >> 2) * 64, _MM_HINT_T0);
    __m512 xv[T];
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) xv[i] = _mm512_loadu_ps(xs[i] + c * 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __mmask16 k = f32_mask(rows[r], c);
#pragma GCC unroll 16
      for (int i = 0; i < T; ++i) acc[r][i] = _mm512_mask_add_ps(acc[r][i], k, acc[r][i], xv[i]);
    }
  }
  if (n % 16 != 0) {
    const __mmask16 tail = f32_tail_mask(n);
    __m512 xv[T];
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i)
      xv[i] = _mm512_maskz_loadu_ps(tail, x + static_cast<std::size_t>(i) * ldx + full * 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __mmask16 k = f32_mask(w + static_cast<std::size_t>(r) * stride, full) & tail;
#pragma GCC unroll 16
      for (int i = 0; i < T; ++i) acc[r][i] = _mm512_mask_add_ps(acc[r][i], k, acc[r][i], xv[i]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) neg[r][i] = f32_hsum(acc[r][i]);
}

// Rows [j0, j1) for T tokens: Y = total - 2 neg, or Y += s_out (total - 2 neg) when Acc.
template <int R, int T, bool Acc>
inline void f32_rows(const float* x, std::size_t ldx, const float* totals, BitMatrixView w,
                     const float* s_out, float* y, std::size_t ldy, std::size_t j0,
                     std::size_t j1) noexcept {
  const std::size_t n = w.cols(), stride = w.stride_words();
  std::size_t j = j0;
  for (; j + R <= j1; j += R) {
    float neg[R][T];
    f32_tile<R, T>(x, ldx, w.row(j), stride, n, neg);
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < T; ++i) {
        const float v = totals[i] - 2.0f * neg[r][i];
        float& out = y[static_cast<std::size_t>(i) * ldy + j + static_cast<std::size_t>(r)];
        if (Acc)
          out += s_out[j + static_cast<std::size_t>(r)] * v;
        else
          out = v;
      }
  }
  for (; j < j1; ++j) {
    float neg[1][T];
    f32_tile<1, T>(x, ldx, w.row(j), stride, n, neg);
    for (int i = 0; i < T; ++i) {
      const float v = totals[i] - 2.0f * neg[0][i];
      float& out = y[static_cast<std::size_t>(i) * ldy + j];
      if (Acc)
        out += s_out[j] * v;
      else
        out = v;
    }
  }
}

// Tiles: 6 tokens x 4 rows (24 accumulators, 6 activation vectors, 4 masks per 24 masked
// adds: the mask loads compete with the adds for the same ports, so each mask serves as many
// tokens as the registers allow); fewer tokens get more rows so that at least 8 independent
// additions are in flight.
template <bool Acc>
inline void f32_gemm(const float* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                     const float* s_out, float* y, std::size_t ldy, std::size_t j0,
                     std::size_t j1) noexcept {
  if (j0 >= j1) return;
  const std::size_t n = w.cols();
  constexpr std::size_t kTile = 6;
  float totals[kTile];
  for (std::size_t i = 0; i < t; i += kTile) {
    const std::size_t tokens = std::min(kTile, t - i);
    for (std::size_t a = 0; a < tokens; ++a) totals[a] = f32_sum(x + (i + a) * ldx, n);
    const float* xi = x + i * ldx;
    float* yi = y + i * ldy;
    switch (tokens) {
      case 1:
        f32_rows<8, 1, Acc>(xi, ldx, totals, w, s_out, yi, ldy, j0, j1);
        break;
      case 2:
        f32_rows<8, 2, Acc>(xi, ldx, totals, w, s_out, yi, ldy, j0, j1);
        break;
      case 3:
        f32_rows<8, 3, Acc>(xi, ldx, totals, w, s_out, yi, ldy, j0, j1);
        break;
      case 4:
        f32_rows<6, 4, Acc>(xi, ldx, totals, w, s_out, yi, ldy, j0, j1);
        break;
      case 5:
        f32_rows<4, 5, Acc>(xi, ldx, totals, w, s_out, yi, ldy, j0, j1);
        break;
      default:
        f32_rows<4, 6, Acc>(xi, ldx, totals, w, s_out, yi, ldy, j0, j1);
        break;
    }
  }
}

inline void sign_gemm_f32(const float* x, std::size_t ldx, std::size_t t, BitMatrixView w, float* y,
                          std::size_t ldy, std::size_t j0, std::size_t j1) {
  f32_gemm<false>(x, ldx, t, w, nullptr, y, ldy, j0, j1);
}

inline void sign_gemm_acc_f32(const float* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                              const float* s_out, float* y, std::size_t ldy, std::size_t j0,
                              std::size_t j1) {
  f32_gemm<true>(x, ldx, t, w, s_out, y, ldy, j0, j1);
}

// dX columns [l, l + 16 C) of T tokens: dx_i = total_i - 2 sum_j z_ij [W(j, .) = -1].
// `cols_left` bounds the last chunk (columns past it are neither stored nor counted).
template <int C, int T>
inline void f32_t_tile(const float* z, std::size_t ldz, const float* totals, BitMatrixView w,
                       float* dx, std::size_t lddx, std::size_t l, std::size_t cols_left) noexcept {
  __m512 acc[C][T];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c)
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) acc[c][i] = _mm512_setzero_ps();
  const std::size_t m = w.rows(), stride = w.stride_words();
  const std::uint64_t* row = w.data();
  const std::size_t chunk0 = l / 16;
  for (std::size_t j = 0; j < m; ++j, row += stride) {
    __m512 zv[T];
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) zv[i] = _mm512_set1_ps(z[static_cast<std::size_t>(i) * ldz + j]);
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      const __mmask16 k = f32_mask(row, chunk0 + static_cast<std::size_t>(c));
#pragma GCC unroll 16
      for (int i = 0; i < T; ++i) acc[c][i] = _mm512_mask_add_ps(acc[c][i], k, acc[c][i], zv[i]);
    }
  }
  const __m512 minus_two = _mm512_set1_ps(-2.0f);
#pragma GCC unroll 16
  for (int i = 0; i < T; ++i) {
    const __m512 total = _mm512_set1_ps(totals[i]);
    float* out = dx + static_cast<std::size_t>(i) * lddx + l;
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      const __m512 v = _mm512_fmadd_ps(minus_two, acc[c][i], total);
      const std::size_t first = static_cast<std::size_t>(c) * 16;
      if (first + 16 <= cols_left)
        _mm512_storeu_ps(out + first, v);
      else if (first < cols_left)
        _mm512_mask_storeu_ps(out + first, f32_tail_mask(cols_left - first), v);
    }
  }
}

// Columns [l0, l1) of T tokens in blocks of C chunks, the rest chunk by chunk.
template <int C, int T>
inline void f32_t_cols(const float* z, std::size_t ldz, const float* totals, BitMatrixView w,
                       float* dx, std::size_t lddx, std::size_t l0, std::size_t l1) noexcept {
  std::size_t l = l0;
  for (; l + 16 * C <= l1; l += 16 * C) f32_t_tile<C, T>(z, ldz, totals, w, dx, lddx, l, 16 * C);
  for (; l < l1; l += 16) f32_t_tile<1, T>(z, ldz, totals, w, dx, lddx, l, l1 - l);
}

inline void sign_gemm_t_f32(const float* z, std::size_t ldz, std::size_t t, BitMatrixView w,
                            float* dx, std::size_t lddx, std::size_t l0, std::size_t l1) {
  if (l0 >= l1) return;
  const std::size_t m = w.rows();
  std::size_t i = 0;
  for (; i + 6 <= t; i += 6) {
    float totals[6];
    for (std::size_t a = 0; a < 6; ++a) totals[a] = f32_sum(z + (i + a) * ldz, m);
    f32_t_cols<4, 6>(z + i * ldz, ldz, totals, w, dx + i * lddx, lddx, l0, l1);
  }
  const std::size_t rest = t - i;
  float totals[5];
  for (std::size_t a = 0; a < rest; ++a) totals[a] = f32_sum(z + (i + a) * ldz, m);
  const float* zi = z + i * ldz;
  float* di = dx + i * lddx;
  switch (rest) {
    case 1:
      f32_t_cols<12, 1>(zi, ldz, totals, w, di, lddx, l0, l1);
      break;
    case 2:
      f32_t_cols<8, 2>(zi, ldz, totals, w, di, lddx, l0, l1);
      break;
    case 3:
      f32_t_cols<6, 3>(zi, ldz, totals, w, di, lddx, l0, l1);
      break;
    case 4:
      f32_t_cols<4, 4>(zi, ldz, totals, w, di, lddx, l0, l1);
      break;
    case 5:
      f32_t_cols<4, 5>(zi, ldz, totals, w, di, lddx, l0, l1);
      break;
    default:
      break;
  }
}

inline constexpr void install_sign_f32(ProductTable& t) noexcept {
  t.sign_gemm_f32 = &sign_gemm_f32;
  t.sign_gemm_acc_f32 = &sign_gemm_acc_f32;
  t.sign_gemm_t_f32 = &sign_gemm_t_f32;
}

}  // namespace mbok::detail::avx512

#include "end.hpp"
