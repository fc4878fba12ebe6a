#pragma once
#include "../../guard.hpp"

// avx2: Boolean weights x float activations: table entries sign_gemm_f32, sign_gemm_acc_f32
// and sign_gemm_t_f32.
//
// AVX2 has no mask registers, so each byte of a packed row (8 weights) indexes a 256-entry
// table of 8 sign-bit masks (8 KiB, resident in L1): x (.) w is then one XOR of the sign
// bits, and every 8 weights cost a table load, an XOR and an add, the table load shared by
// all tokens of a register tile.

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "../table.hpp"

namespace mbok::detail::avx2 {

// kSignMasks[b][l] = 0x80000000 when bit l of byte b is set (weight -1), else 0.
struct alignas(32) F32SignMasks {
  std::uint32_t lanes[256][8];
};

inline constexpr F32SignMasks make_f32_sign_masks() noexcept {
  F32SignMasks t{};
  for (unsigned b = 0; b < 256; ++b)
    for (unsigned l = 0; l < 8; ++l) t.lanes[b][l] = ((b >> l) & 1u) ? 0x80000000u : 0u;
  return t;
}

inline constexpr F32SignMasks kF32SignMasks = make_f32_sign_masks();

}  // namespace mbok::detail::avx2

#include "begin.hpp"

namespace mbok::detail::avx2 {

inline __m256 f32_signs(const unsigned char* bits, std::size_t byte) noexcept {
  return _mm256_load_ps(reinterpret_cast<const float*>(kF32SignMasks.lanes[bits[byte]]));
}

// Lanes [0, count) set, count < 8: the mask of a partial chunk for maskload/maskstore.
inline __m256i f32_lane_mask(std::size_t count) noexcept {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), lanes);
}

inline float f32_hsum(__m256 v) noexcept {
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

// dot[r][i] = sum over columns [0, n) of x_i[l] W(row r, l), R rows `stride` words apart and
// T tokens `ldx` floats apart.
template <int R, int T>
inline void f32_tile(const float* x, std::size_t ldx, const std::uint64_t* w, std::size_t stride,
                     std::size_t n, float (&dot)[R][T]) noexcept {
  __m256 acc[R][T];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) acc[r][i] = _mm256_setzero_ps();
  const unsigned char* rows[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
    rows[r] = reinterpret_cast<const unsigned char*>(w + static_cast<std::size_t>(r) * stride);
  const float* xs[T];
#pragma GCC unroll 16
  for (int i = 0; i < T; ++i) xs[i] = x + static_cast<std::size_t>(i) * ldx;
  const std::size_t full = n / 8;
  for (std::size_t c = 0; c < full; ++c) {
    __m256 xv[T];
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) xv[i] = _mm256_loadu_ps(xs[i] + c * 8);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m256 s = f32_signs(rows[r], c);
#pragma GCC unroll 16
      for (int i = 0; i < T; ++i) acc[r][i] = _mm256_add_ps(acc[r][i], _mm256_xor_ps(xv[i], s));
    }
  }
  if (n % 8 != 0) {
    const __m256i lanes = f32_lane_mask(n % 8);
    __m256 xv[T];
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) xv[i] = _mm256_maskload_ps(xs[i] + full * 8, lanes);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m256 s = f32_signs(rows[r], full);  // bits past n are zero: +1 on zero lanes
#pragma GCC unroll 16
      for (int i = 0; i < T; ++i) acc[r][i] = _mm256_add_ps(acc[r][i], _mm256_xor_ps(xv[i], s));
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) dot[r][i] = f32_hsum(acc[r][i]);
}

template <int R, int T, bool Acc>
inline void f32_rows(const float* x, std::size_t ldx, BitMatrixView w, const float* s_out, float* y,
                     std::size_t ldy, std::size_t j0, std::size_t j1) noexcept {
  const std::size_t n = w.cols(), stride = w.stride_words();
  std::size_t j = j0;
  for (; j + R <= j1; j += R) {
    float dot[R][T];
    f32_tile<R, T>(x, ldx, w.row(j), stride, n, dot);
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < T; ++i) {
        const std::size_t jr = j + static_cast<std::size_t>(r);
        float& out = y[static_cast<std::size_t>(i) * ldy + jr];
        if (Acc)
          out += s_out[jr] * dot[r][i];
        else
          out = dot[r][i];
      }
  }
  for (; j < j1; ++j) {
    float dot[1][T];
    f32_tile<1, T>(x, ldx, w.row(j), stride, n, dot);
    for (int i = 0; i < T; ++i) {
      float& out = y[static_cast<std::size_t>(i) * ldy + j];
      if (Acc)
        out += s_out[j] * dot[0][i];
      else
        out = dot[0][i];
    }
  }
}

// Tiles of 3 tokens x 3 rows (9 accumulators, 3 activation vectors, one sign vector: 16 ymm
// registers hold it all); fewer tokens get 4 rows.
template <bool Acc>
inline void f32_gemm(const float* x, std::size_t ldx, std::size_t t, BitMatrixView w,
                     const float* s_out, float* y, std::size_t ldy, std::size_t j0,
                     std::size_t j1) noexcept {
  if (j0 >= j1) return;
  std::size_t i = 0;
  for (; i + 3 <= t; i += 3)
    f32_rows<3, 3, Acc>(x + i * ldx, ldx, w, s_out, y + i * ldy, ldy, j0, j1);
  if (t - i == 2) f32_rows<4, 2, Acc>(x + i * ldx, ldx, w, s_out, y + i * ldy, ldy, j0, j1);
  if (t - i == 1) f32_rows<6, 1, Acc>(x + i * ldx, ldx, w, s_out, y + i * ldy, ldy, j0, j1);
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

// dX columns [l, l + 8 C) of T tokens: dx_i = sum_j z_ij (.) W(j, .); `cols_left` bounds the
// columns stored.
template <int C, int T>
inline void f32_t_tile(const float* z, std::size_t ldz, BitMatrixView w, float* dx,
                       std::size_t lddx, std::size_t l, std::size_t cols_left) noexcept {
  __m256 acc[C][T];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c)
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) acc[c][i] = _mm256_setzero_ps();
  const std::size_t m = w.rows(), stride = w.stride_words() * 8, byte0 = l / 8;
  const unsigned char* row = reinterpret_cast<const unsigned char*>(w.data()) + byte0;
  for (std::size_t j = 0; j < m; ++j, row += stride) {
    __m256 zv[T];
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i)
      zv[i] = _mm256_broadcast_ss(z + static_cast<std::size_t>(i) * ldz + j);
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      const __m256 s = f32_signs(row, static_cast<std::size_t>(c));
#pragma GCC unroll 16
      for (int i = 0; i < T; ++i) acc[c][i] = _mm256_add_ps(acc[c][i], _mm256_xor_ps(zv[i], s));
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < T; ++i) {
    float* out = dx + static_cast<std::size_t>(i) * lddx + l;
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      const std::size_t first = static_cast<std::size_t>(c) * 8;
      if (first + 8 <= cols_left)
        _mm256_storeu_ps(out + first, acc[c][i]);
      else if (first < cols_left)
        _mm256_maskstore_ps(out + first, f32_lane_mask(cols_left - first), acc[c][i]);
    }
  }
}

template <int C, int T>
inline void f32_t_cols(const float* z, std::size_t ldz, BitMatrixView w, float* dx,
                       std::size_t lddx, std::size_t l0, std::size_t l1) noexcept {
  std::size_t l = l0;
  for (; l + 8 * C <= l1; l += 8 * C) f32_t_tile<C, T>(z, ldz, w, dx, lddx, l, 8 * C);
  for (; l < l1; l += 8) f32_t_tile<1, T>(z, ldz, w, dx, lddx, l, l1 - l);
}

inline void sign_gemm_t_f32(const float* z, std::size_t ldz, std::size_t t, BitMatrixView w,
                            float* dx, std::size_t lddx, std::size_t l0, std::size_t l1) {
  if (l0 >= l1) return;
  std::size_t i = 0;
  for (; i + 3 <= t; i += 3) f32_t_cols<3, 3>(z + i * ldz, ldz, w, dx + i * lddx, lddx, l0, l1);
  if (t - i == 2) f32_t_cols<4, 2>(z + i * ldz, ldz, w, dx + i * lddx, lddx, l0, l1);
  if (t - i == 1) f32_t_cols<8, 1>(z + i * ldz, ldz, w, dx + i * lddx, lddx, l0, l1);
}

inline constexpr void install_sign_f32(ProductTable& t) noexcept {
  t.sign_gemm_f32 = &sign_gemm_f32;
  t.sign_gemm_acc_f32 = &sign_gemm_acc_f32;
  t.sign_gemm_t_f32 = &sign_gemm_t_f32;
}

}  // namespace mbok::detail::avx2

#include "end.hpp"
