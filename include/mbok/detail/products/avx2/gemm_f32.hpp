#pragma once
#include "../../guard.hpp"

// avx2: the dense float products of the training step as sums of outer products over a
// contraction index s: a register tile of 6 rows of C x 16 columns (12 accumulators) takes, per
// s, 6 broadcasts from a packed block of A (apack[s * 6 + r]) and two vectors of a packed panel
// of B (panel[s * 16 + c]).
// - gemm_tn_f32: P = Z^T X of the signals (A = Z, B = X, s = token);
// - the multi-kernel weight W = sum_k s_out_k (.) B_k (.) s_in_k enters the forward and dX
//   products as panels rebuilt from the bits and scales (w_rows_panel: 16 rows of W, s = input
//   feature; w_cols_panel: 16 columns of W, s = output feature), so the scales ride in the
//   panel and no scaled copy of X or Z and no dense W is ever formed.

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../../base/aligned_buffer.hpp"
#include "../weight_panels.hpp"
#include "begin.hpp"

namespace mbok::detail::avx2 {

inline constexpr std::size_t kGemmRows = 6, kGemmCols = 16;

// Rows [0, m) and columns [j, j + w) (w <= 16) of C, rows ldc apart: C = (or +=, with `add`)
// A^T panel over kc values of s. `apack` holds A in blocks of kGemmRows rows of C
// (apack[(block * kc + s) * kGemmRows + r], zero-padded); `panel` is 32-byte aligned,
// panel[s * kGemmCols + c], zero from column w.
inline void gemm_packed_f32(const float* apack, std::size_t kc, std::size_t m, const float* panel,
                            float* c, std::size_t ldc, std::size_t j, std::size_t w, bool add) {
  for (std::size_t i0 = 0; i0 < m; i0 += kGemmRows) {
    const float* ap = apack + (i0 / kGemmRows) * kc * kGemmRows;
    __m256 c0a = _mm256_setzero_ps(), c0b = _mm256_setzero_ps();
    __m256 c1a = _mm256_setzero_ps(), c1b = _mm256_setzero_ps();
    __m256 c2a = _mm256_setzero_ps(), c2b = _mm256_setzero_ps();
    __m256 c3a = _mm256_setzero_ps(), c3b = _mm256_setzero_ps();
    __m256 c4a = _mm256_setzero_ps(), c4b = _mm256_setzero_ps();
    __m256 c5a = _mm256_setzero_ps(), c5b = _mm256_setzero_ps();
    for (std::size_t s = 0; s < kc; ++s) {
      const __m256 b0 = _mm256_load_ps(panel + s * kGemmCols);
      const __m256 b1 = _mm256_load_ps(panel + s * kGemmCols + 8);
      const float* a = ap + s * kGemmRows;
      __m256 x = _mm256_broadcast_ss(a + 0);
      c0a = _mm256_fmadd_ps(x, b0, c0a);
      c0b = _mm256_fmadd_ps(x, b1, c0b);
      x = _mm256_broadcast_ss(a + 1);
      c1a = _mm256_fmadd_ps(x, b0, c1a);
      c1b = _mm256_fmadd_ps(x, b1, c1b);
      x = _mm256_broadcast_ss(a + 2);
      c2a = _mm256_fmadd_ps(x, b0, c2a);
      c2b = _mm256_fmadd_ps(x, b1, c2b);
      x = _mm256_broadcast_ss(a + 3);
      c3a = _mm256_fmadd_ps(x, b0, c3a);
      c3b = _mm256_fmadd_ps(x, b1, c3b);
      x = _mm256_broadcast_ss(a + 4);
      c4a = _mm256_fmadd_ps(x, b0, c4a);
      c4b = _mm256_fmadd_ps(x, b1, c4b);
      x = _mm256_broadcast_ss(a + 5);
      c5a = _mm256_fmadd_ps(x, b0, c5a);
      c5b = _mm256_fmadd_ps(x, b1, c5b);
    }
    alignas(32) float tile[kGemmRows][kGemmCols];
    const __m256 acc[kGemmRows][2] = {{c0a, c0b}, {c1a, c1b}, {c2a, c2b},
                                      {c3a, c3b}, {c4a, c4b}, {c5a, c5b}};
    const std::size_t rows = std::min(kGemmRows, m - i0);
    for (std::size_t r = 0; r < rows; ++r) {
      float* out = c + (i0 + r) * ldc + j;
      if (w == kGemmCols) {
        __m256 v0 = acc[r][0], v1 = acc[r][1];
        if (add) {
          v0 = _mm256_add_ps(v0, _mm256_loadu_ps(out));
          v1 = _mm256_add_ps(v1, _mm256_loadu_ps(out + 8));
        }
        _mm256_storeu_ps(out, v0);
        _mm256_storeu_ps(out + 8, v1);
      } else {
        _mm256_store_ps(tile[r], acc[r][0]);
        _mm256_store_ps(tile[r] + 8, acc[r][1]);
        if (add)
          for (std::size_t l = 0; l < w; ++l) out[l] += tile[r][l];
        else
          std::copy(tile[r], tile[r] + w, out);
      }
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
    for (std::size_t s = 0; s < t; ++s) {
      const float* row = b + s * ldb + j;
      float* dst = panel + s * kGemmCols;
      if (w == kGemmCols) {
        _mm256_store_ps(dst, _mm256_loadu_ps(row));
        _mm256_store_ps(dst + 8, _mm256_loadu_ps(row + 8));
      } else {
        for (std::size_t l = 0; l < kGemmCols; ++l) dst[l] = l < w ? row[l] : 0.0f;
      }
    }
    gemm_packed_f32(apack, t, m, panel, c, ldc, j, w, false);
  }
}

// Lanes [0, count) set (count <= 8).
inline __m256i lane_mask(std::size_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min<std::size_t>(count, 8))),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// 8 weights of row i from column j (a multiple of 8), lanes in `valid`: W_ij =
// sum_k s_out_k,i s_in_k,j (-1 where the bit is set).
inline __m256 w_row8(const SignKernels& w, std::size_t i, std::size_t j, __m256i valid) {
  const __m256i select = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  __m256 acc = _mm256_setzero_ps();
  for (std::size_t k = 0; k < w.count; ++k) {
    const auto byte = static_cast<int>((w.bits[k][i * w.stride[k] + j / 64] >> (j % 64)) & 0xffu);
    const __m256i set =
        _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(byte), select), select);
    const __m256 v =
        _mm256_mul_ps(_mm256_set1_ps(w.s_out[k][i]), _mm256_maskload_ps(w.s_in[k] + j, valid));
    acc = _mm256_add_ps(acc, _mm256_xor_ps(v, _mm256_castsi256_ps(_mm256_and_si256(set, sign))));
  }
  return acc;
}

// panel[s * kGemmCols + c] = W(i0 + c, s) for s < n and c < rows (rows i0 .. i0 + rows of W,
// transposed), zero for c >= rows.
inline void w_rows_panel(const SignKernels& w, std::size_t n, std::size_t i0, std::size_t rows,
                         float* panel) {
  alignas(32) float row[8];
  for (std::size_t c = 0; c < kGemmCols; ++c) {
    for (std::size_t j = 0; j < n; j += 8) {
      const std::size_t count = std::min<std::size_t>(8, n - j);
      if (c < rows)
        _mm256_store_ps(row, w_row8(w, i0 + c, j, lane_mask(count)));
      else
        _mm256_store_ps(row, _mm256_setzero_ps());
      for (std::size_t l = 0; l < count; ++l) panel[(j + l) * kGemmCols + c] = row[l];
    }
  }
}

// panel[s * kGemmCols + c] = W(s, j0 + c) for s < m and c < cols (columns j0 .. j0 + cols of
// W), zero for c >= cols; j0 is a multiple of kGemmCols.
inline void w_cols_panel(const SignKernels& w, std::size_t m, std::size_t j0, std::size_t cols,
                         float* panel) {
  const __m256i lo = lane_mask(cols), hi = lane_mask(cols > 8 ? cols - 8 : 0);
  for (std::size_t i = 0; i < m; ++i) {
    _mm256_store_ps(panel + i * kGemmCols, w_row8(w, i, j0, lo));
    _mm256_store_ps(panel + i * kGemmCols + 8, w_row8(w, i, j0 + 8, hi));
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
  const __m256i select = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  for (std::size_t i = r0; i < r1; ++i) {
    const float* pi = p + i * n;
    for (std::size_t o = 0; o < count; ++o) {
      const std::size_t k = order[o];
      const std::uint64_t* bits = w.bits[k] + i * w.stride[k];
      const float* s_in = w.s_in[k];
      float* part = ds_in[k];
      float* qi = q[k] != nullptr ? q[k] + i * n : nullptr;
      const __m256 so = _mm256_set1_ps(w.s_out[k][i]);
      __m256 acc = _mm256_setzero_ps();
      std::size_t j = 0;
      // Whole groups of 8 with plain loads and stores (masked stores are slow on some cores);
      // the tail in scalar code.
      for (; j + 8 <= n; j += 8) {
        const __m256 pv = _mm256_loadu_ps(pi + j);
        const auto byte = static_cast<int>((bits[j / 64] >> (j % 64)) & 0xffu);
        const __m256i set =
            _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(byte), select), select);
        const __m256 v = _mm256_xor_ps(pv, _mm256_castsi256_ps(_mm256_and_si256(set, sign)));
        const __m256 si = _mm256_loadu_ps(s_in + j);
        acc = _mm256_fmadd_ps(v, si, acc);
        _mm256_storeu_ps(part + j, _mm256_fmadd_ps(so, v, _mm256_loadu_ps(part + j)));
        if (qi != nullptr) {
          __m256 qv = _mm256_mul_ps(_mm256_mul_ps(pv, so), si);
          if (add_q[k]) qv = _mm256_add_ps(qv, _mm256_loadu_ps(qi + j));
          _mm256_storeu_ps(qi + j, qv);
        }
      }
      float tail = 0.0f;
      const float so1 = w.s_out[k][i];
      for (; j < n; ++j) {
        const float v = ((bits[j / 64] >> (j % 64)) & 1u) != 0 ? -pi[j] : pi[j];
        tail += v * s_in[j];
        part[j] += so1 * v;
        if (qi != nullptr) {
          const float qv = pi[j] * so1 * s_in[j];
          qi[j] = add_q[k] ? qi[j] + qv : qv;
        }
      }
      const __m128 half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
      const __m128 pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
      ds_out[k][i] += _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1))) + tail;
    }
  }
}

}  // namespace mbok::detail::avx2

#include "end.hpp"
