#pragma once
#include "../../guard.hpp"

// avx512: the dense float products of the training step as sums of outer products over a
// contraction index s: a register tile of 8 rows of C x 32 columns (16 accumulators) takes, per
// s, 8 broadcasts from a packed block of A (apack[s * 8 + r]) and two vectors of a packed
// panel of B (panel[s * 32 + c]).
// - gemm_tn_f32: P = Z^T X of the signals (A = Z, B = X, s = token);
// - the multi-kernel weight W = sum_k s_out_k (.) B_k (.) s_in_k enters the forward and dX
//   products as panels rebuilt from the bits and scales (w_rows_panel: 32 rows of W, s = input
//   feature; w_cols_panel: 32 columns of W, s = output feature), so the scales ride in the
//   panel and no scaled copy of X or Z and no dense W is ever formed.

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../../base/aligned_buffer.hpp"
#include "../weight_panels.hpp"
#include "begin.hpp"

namespace mbok::detail::avx512 {

inline constexpr std::size_t kGemmRows = 8, kGemmCols = 32;

inline __mmask16 gemm_mask_lo(std::size_t w) {
  return static_cast<__mmask16>(w >= 16 ? 0xffffu : (1u << w) - 1u);
}
inline __mmask16 gemm_mask_hi(std::size_t w) {
  return static_cast<__mmask16>(w >= 32 ? 0xffffu : w > 16 ? (1u << (w - 16)) - 1u : 0u);
}

// Rows [0, m) and columns [j, j + w) (w <= 32) of C, rows ldc apart: C = (or +=, with `add`)
// A^T panel over kc values of s. `apack` holds A in blocks of kGemmRows rows of C
// (apack[(block * kc + s) * kGemmRows + r], zero-padded); `panel` is 64-byte aligned,
// panel[s * kGemmCols + c], zero from column w.
inline void gemm_packed_f32(const float* apack, std::size_t kc, std::size_t m, const float* panel,
                            float* c, std::size_t ldc, std::size_t j, std::size_t w, bool add) {
  const __mmask16 lo = gemm_mask_lo(w), hi = gemm_mask_hi(w);
  for (std::size_t i0 = 0; i0 < m; i0 += kGemmRows) {
    const float* ap = apack + (i0 / kGemmRows) * kc * kGemmRows;
    __m512 c0a = _mm512_setzero_ps(), c0b = _mm512_setzero_ps();
    __m512 c1a = _mm512_setzero_ps(), c1b = _mm512_setzero_ps();
    __m512 c2a = _mm512_setzero_ps(), c2b = _mm512_setzero_ps();
    __m512 c3a = _mm512_setzero_ps(), c3b = _mm512_setzero_ps();
    __m512 c4a = _mm512_setzero_ps(), c4b = _mm512_setzero_ps();
    __m512 c5a = _mm512_setzero_ps(), c5b = _mm512_setzero_ps();
    __m512 c6a = _mm512_setzero_ps(), c6b = _mm512_setzero_ps();
    __m512 c7a = _mm512_setzero_ps(), c7b = _mm512_setzero_ps();
    for (std::size_t s = 0; s < kc; ++s) {
      const __m512 b0 = _mm512_load_ps(panel + s * kGemmCols);
      const __m512 b1 = _mm512_load_ps(panel + s * kGemmCols + 16);
      const float* a = ap + s * kGemmRows;
      __m512 x = _mm512_set1_ps(a[0]);
      c0a = _mm512_fmadd_ps(x, b0, c0a);
      c0b = _mm512_fmadd_ps(x, b1, c0b);
      x = _mm512_set1_ps(a[1]);
      c1a = _mm512_fmadd_ps(x, b0, c1a);
      c1b = _mm512_fmadd_ps(x, b1, c1b);
      x = _mm512_set1_ps(a[2]);
      c2a = _mm512_fmadd_ps(x, b0, c2a);
      c2b = _mm512_fmadd_ps(x, b1, c2b);
      x = _mm512_set1_ps(a[3]);
      c3a = _mm512_fmadd_ps(x, b0, c3a);
      c3b = _mm512_fmadd_ps(x, b1, c3b);
      x = _mm512_set1_ps(a[4]);
      c4a = _mm512_fmadd_ps(x, b0, c4a);
      c4b = _mm512_fmadd_ps(x, b1, c4b);
      x = _mm512_set1_ps(a[5]);
      c5a = _mm512_fmadd_ps(x, b0, c5a);
      c5b = _mm512_fmadd_ps(x, b1, c5b);
      x = _mm512_set1_ps(a[6]);
      c6a = _mm512_fmadd_ps(x, b0, c6a);
      c6b = _mm512_fmadd_ps(x, b1, c6b);
      x = _mm512_set1_ps(a[7]);
      c7a = _mm512_fmadd_ps(x, b0, c7a);
      c7b = _mm512_fmadd_ps(x, b1, c7b);
    }
    const __m512 acc[kGemmRows][2] = {{c0a, c0b}, {c1a, c1b}, {c2a, c2b}, {c3a, c3b},
                                      {c4a, c4b}, {c5a, c5b}, {c6a, c6b}, {c7a, c7b}};
    const std::size_t rows = std::min(kGemmRows, m - i0);
    for (std::size_t r = 0; r < rows; ++r) {
      float* out = c + (i0 + r) * ldc + j;
      __m512 v0 = acc[r][0], v1 = acc[r][1];
      if (add) {
        v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(lo, out));
        v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(hi, out + 16));
      }
      _mm512_mask_storeu_ps(out, lo, v0);
      _mm512_mask_storeu_ps(out + 16, hi, v1);
    }
  }
}

// Columns [j0, j1) of C (m x n, rows ldc apart) = A^T B; `apack` holds A (t x m) in blocks of
// kGemmRows columns, zero-padded (apack[(block * t + token) * kGemmRows + r]); B is t x n,
// rows ldb apart. j0 is a multiple of kGemmCols.
inline void gemm_tn_panels(const float* apack, std::size_t t, std::size_t m, const float* b,
                           std::size_t ldb, float* c, std::size_t ldc, std::size_t j0,
                           std::size_t j1) {
  AlignedBuffer<float> storage = AlignedBuffer<float>::zeroed(t * kGemmCols);
  float* panel = storage.data();
  for (std::size_t j = j0; j < j1; j += kGemmCols) {
    const std::size_t w = std::min(kGemmCols, j1 - j);
    const __mmask16 lo = gemm_mask_lo(w), hi = gemm_mask_hi(w);
    for (std::size_t s = 0; s < t; ++s) {
      _mm512_store_ps(panel + s * kGemmCols, _mm512_maskz_loadu_ps(lo, b + s * ldb + j));
      _mm512_store_ps(panel + s * kGemmCols + 16, _mm512_maskz_loadu_ps(hi, b + s * ldb + j + 16));
    }
    gemm_packed_f32(apack, t, m, panel, c, ldc, j, w, false);
  }
}

// 16 weights of row i from column j (a multiple of 16), lanes from `valid` on: W_ij =
// sum_k s_out_k,i s_in_k,j (-1 where the bit is set).
inline __m512 w_row16(const SignKernels& w, std::size_t i, std::size_t j, __mmask16 valid) {
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  __m512 acc = _mm512_setzero_ps();
  for (std::size_t k = 0; k < w.count; ++k) {
    const auto bits = static_cast<__mmask16>(w.bits[k][i * w.stride[k] + j / 64] >> (j % 64));
    const __m512 v =
        _mm512_mul_ps(_mm512_set1_ps(w.s_out[k][i]), _mm512_maskz_loadu_ps(valid, w.s_in[k] + j));
    acc = _mm512_add_ps(acc, _mm512_castsi512_ps(_mm512_mask_xor_epi32(
                                 _mm512_castps_si512(v), bits, _mm512_castps_si512(v), sign)));
  }
  return acc;
}

// panel[s * kGemmCols + c] = W(i0 + c, s) for s < n and c < w (rows i0 .. i0 + w of W,
// transposed), zero for c >= w.
inline void w_rows_panel(const SignKernels& w, std::size_t n, std::size_t i0, std::size_t rows,
                         float* panel) {
  const __m512i index =
      _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                         _mm512_set1_epi32(static_cast<int>(kGemmCols)));
  for (std::size_t c = 0; c < kGemmCols; ++c) {
    for (std::size_t j = 0; j < n; j += 16) {
      const __mmask16 valid = gemm_mask_lo(n - j);
      const __m512 v = c < rows ? w_row16(w, i0 + c, j, valid) : _mm512_setzero_ps();
      _mm512_mask_i32scatter_ps(panel + j * kGemmCols + c, valid, index, v, 4);
    }
  }
}

// panel[s * kGemmCols + c] = W(s, j0 + c) for s < m and c < w (columns j0 .. j0 + w of W),
// zero for c >= w; j0 is a multiple of kGemmCols.
inline void w_cols_panel(const SignKernels& w, std::size_t m, std::size_t j0, std::size_t cols,
                         float* panel) {
  const __mmask16 lo = gemm_mask_lo(cols), hi = gemm_mask_hi(cols);
  for (std::size_t i = 0; i < m; ++i) {
    _mm512_store_ps(panel + i * kGemmCols, w_row16(w, i, j0, lo));
    _mm512_store_ps(panel + i * kGemmCols + 16, w_row16(w, i, j0 + 16, hi));
  }
}

#include "../generic/weight_products.hpp"

// The backward's elementwise pass over rows [r0, r1) of P = Z^T X (m x n, rows n apart), for
// the kernels in `order` (count entries of w's kernel indices): ds_out_k,i += sum_j P_ij b_ij
// s_in_k,j and ds_in_k,j += sum_i P_ij b_ij s_out_k,i (b = +-1 from the bits), and, where
// q[k] is not null, Q_k,ij = P_ij s_out_k,i s_in_k,j (added to q[k] when add_q[k], written
// otherwise; q[k] may be P itself for the last kernel of `order`, which reads P last).
inline void signal_rows(const SignKernels& w, const std::size_t* order, std::size_t count,
                        const float* p, std::size_t n, std::size_t r0, std::size_t r1,
                        float* const* ds_out, float* const* ds_in, float* const* q,
                        const bool* add_q) {
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  for (std::size_t i = r0; i < r1; ++i) {
    const float* pi = p + i * n;
    for (std::size_t o = 0; o < count; ++o) {
      const std::size_t k = order[o];
      const std::uint64_t* bits = w.bits[k] + i * w.stride[k];
      const float* s_in = w.s_in[k];
      float* part = ds_in[k];
      float* qi = q[k] != nullptr ? q[k] + i * n : nullptr;
      const __m512 so = _mm512_set1_ps(w.s_out[k][i]);
      __m512 acc = _mm512_setzero_ps();
      for (std::size_t j = 0; j < n; j += 16) {
        const __mmask16 valid = gemm_mask_lo(n - j);
        const __m512 pv = _mm512_maskz_loadu_ps(valid, pi + j);
        const auto neg = static_cast<__mmask16>(bits[j / 64] >> (j % 64));
        const __m512 v = _mm512_castsi512_ps(
            _mm512_mask_xor_epi32(_mm512_castps_si512(pv), neg, _mm512_castps_si512(pv), sign));
        const __m512 si = _mm512_maskz_loadu_ps(valid, s_in + j);
        acc = _mm512_fmadd_ps(v, si, acc);
        _mm512_mask_storeu_ps(part + j, valid,
                              _mm512_fmadd_ps(so, v, _mm512_maskz_loadu_ps(valid, part + j)));
        if (qi != nullptr) {
          __m512 qv = _mm512_mul_ps(_mm512_mul_ps(pv, so), si);
          if (add_q[k]) qv = _mm512_add_ps(qv, _mm512_maskz_loadu_ps(valid, qi + j));
          _mm512_mask_storeu_ps(qi + j, valid, qv);
        }
      }
      ds_out[k][i] += _mm512_reduce_add_ps(acc);
    }
  }
}

}  // namespace mbok::detail::avx512

#include "end.hpp"
