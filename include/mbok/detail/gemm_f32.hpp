#pragma once
#include "guard.hpp"

// The dense float product C = A^T B (A: t x m, B: t x n, C: m x n, all row-major) of the
// training backward, on the register-tiled kernels of the ISA when it has them (avx512, avx2)
// and on Eigen otherwise. Rows of C run in parallel (parallel.hpp) in panels of columns.

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "../config.hpp"
#include "../isa.hpp"
#include "../parallel.hpp"
#if MBOK_HAS_X86_KERNELS
#include "kernels/avx2/gemm_f32.hpp"
#include "kernels/avx512/gemm_f32.hpp"
#endif

namespace mbok::detail {

// A (t x m, rows lda apart) in blocks of `rows` columns, zero-padded:
// out[(block * t + token) * rows + r] = A(token, block * rows + r).
inline std::vector<float> pack_gemm_tn_a(const float* a, std::size_t lda, std::size_t t,
                                         std::size_t m, std::size_t rows) {
  const std::size_t blocks = (m + rows - 1) / rows;
  std::vector<float> out(blocks * t * rows);
  parallel_for(0, blocks, std::max<std::size_t>(1, 4096 / std::max<std::size_t>(t, 1)),
               [&](std::size_t b0, std::size_t b1) {
                 for (std::size_t blk = b0; blk < b1; ++blk) {
                   const std::size_t first = blk * rows, count = std::min(rows, m - first);
                   float* dst = out.data() + blk * t * rows;
                   for (std::size_t s = 0; s < t; ++s) {
                     const float* src = a + s * lda + first;
                     std::size_t r = 0;
                     for (; r < count; ++r) dst[s * rows + r] = src[r];
                     for (; r < rows; ++r) dst[s * rows + r] = 0.0f;
                   }
                 }
               });
  return out;
}

// C (m x n, rows ldc apart) = A^T B for A t x m (rows lda apart) and B t x n (rows ldb
// apart), overwriting C; t = 0 gives zeros. Float sums in a different order than Eigen's:
// equal within float rounding.
inline void gemm_tn_f32(Isa isa, const float* a, std::size_t lda, const float* b, std::size_t ldb,
                        std::size_t t, std::size_t m, std::size_t n, float* c, std::size_t ldc) {
  using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Map = Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>>;
  using ConstMap = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;
  if (m == 0 || n == 0) return;
  Map cm(c, static_cast<Eigen::Index>(m), static_cast<Eigen::Index>(n),
         Eigen::OuterStride<>(static_cast<Eigen::Index>(ldc)));
  if (t == 0) {
    cm.setZero();
    return;
  }
#if MBOK_HAS_X86_KERNELS
  if (isa == Isa::avx512 || isa == Isa::avx2) {
    const bool wide = isa == Isa::avx512;
    const std::size_t rows = wide ? avx512::kGemmRows : avx2::kGemmRows;
    const std::size_t cols = wide ? avx512::kGemmCols : avx2::kGemmCols;
    const std::vector<float> apack = pack_gemm_tn_a(a, lda, t, m, rows);
    const std::size_t panels = (n + cols - 1) / cols;
    parallel_for(0, panels, 1, [&](std::size_t p0, std::size_t p1) {
      const std::size_t j0 = p0 * cols, j1 = std::min(n, p1 * cols);
      if (wide)
        avx512::gemm_tn_f32(apack.data(), t, m, b, ldb, c, ldc, j0, j1);
      else
        avx2::gemm_tn_f32(apack.data(), t, m, b, ldb, c, ldc, j0, j1);
    });
    return;
  }
#endif
  (void)isa;
  const ConstMap am(a, static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(m),
                    Eigen::OuterStride<>(static_cast<Eigen::Index>(lda)));
  const ConstMap bm(b, static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(n),
                    Eigen::OuterStride<>(static_cast<Eigen::Index>(ldb)));
  cm.noalias() = am.transpose() * bm;
}

}  // namespace mbok::detail
