#pragma once
#include "../guard.hpp"

// The packed operands of the register-tiled float products (avx2, avx512): the tile reads its
// broadcast operand in blocks of `rows`, zero-padded, so a tile never reads past the operand.

#include <algorithm>
#include <cstddef>
#include <vector>

#include "../../parallel.hpp"

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

// X (t x n, rows ldx apart) in blocks of `rows` tokens, zero-padded:
// out[(block * n + s) * rows + r] = X(block * rows + r, s).
inline std::vector<float> pack_gemm_tokens(const float* x, std::size_t ldx, std::size_t t,
                                           std::size_t n, std::size_t rows) {
  const std::size_t blocks = (t + rows - 1) / rows;
  std::vector<float> out(blocks * n * rows);
  parallel_for(0, blocks, std::max<std::size_t>(1, 4096 / std::max<std::size_t>(n, 1)),
               [&](std::size_t b0, std::size_t b1) {
                 for (std::size_t blk = b0; blk < b1; ++blk) {
                   const std::size_t first = blk * rows, count = std::min(rows, t - first);
                   float* dst = out.data() + blk * n * rows;
                   for (std::size_t r = 0; r < rows; ++r) {
                     if (r < count) {
                       const float* src = x + (first + r) * ldx;
                       for (std::size_t s = 0; s < n; ++s) dst[s * rows + r] = src[s];
                     } else {
                       for (std::size_t s = 0; s < n; ++s) dst[s * rows + r] = 0.0f;
                     }
                   }
                 }
               });
  return out;
}

}  // namespace mbok::detail
