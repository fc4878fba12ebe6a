#pragma once
#include "guard.hpp"

// The dense float products of the training step, on the register-tiled kernels of the ISA when
// it has them (avx512, avx2), in parallel (parallel.hpp) over panels of output columns:
// - gemm_tn_f32: C = A^T B (A: t x m, B: t x n, C: m x n, all row-major), the signals'
//   P = Z^T X (Eigen on other ISAs);
// - weight_forward_f32 / weight_backward_dx_f32: Y = X W^T and dX += Z W for the multi-kernel
//   weight W = sum_k s_out_k (.) B_k (.) s_in_k, whose panels the kernels rebuild from the
//   bits and scales as they go (a panel of 32 or 16 rows or columns of W at a time, per thread):
//   one float product for all K kernels, no dense W kept and no scaled copy of X or Z.

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../isa.hpp"
#include "../multi_kernel_weights.hpp"
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

// Whether `isa` has the register-tiled products of the multi-kernel weight
// (weight_forward_f32, weight_backward_dx_f32).
inline bool has_weight_products(Isa isa) noexcept {
#if MBOK_HAS_X86_KERNELS
  return isa == Isa::avx512 || isa == Isa::avx2;
#else
  (void)isa;
  return false;
#endif
}

#if MBOK_HAS_X86_KERNELS
// The kernels' view of a MultiKernelWeights<float>: arrays of bit rows, strides and scales.
class SignKernelArrays {
 public:
  explicit SignKernelArrays(const MultiKernelWeights<float>& w) {
    for (std::size_t k = 0; k < w.num_kernels(); ++k) {
      const BitMatrixView v = w.kernel_view(k);
      bits_.push_back(v.row(0));
      stride_.push_back(v.stride_words());
      s_out_.push_back(w.s_out(k).data());
      s_in_.push_back(w.s_in(k).data());
    }
  }
  SignKernels get() const {
    return SignKernels{bits_.data(), stride_.data(), s_out_.data(), s_in_.data(), bits_.size()};
  }

 private:
  std::vector<const std::uint64_t*> bits_;
  std::vector<std::size_t> stride_;
  std::vector<const float*> s_out_, s_in_;
};
#endif

#if MBOK_HAS_X86_KERNELS
// The driver shared by the two products of the multi-kernel weight w (m x n): Forward, out
// (t x m) = A W^T, summing over n in panels of W's rows; else out (t x n) += A W, summing over
// m in panels of W's columns. A is t tokens, rows lda apart.
template <bool Forward>
inline void weight_product_f32(Isa isa, const MultiKernelWeights<float>& w, const float* a,
                               std::size_t lda, std::size_t t, float* out, std::size_t ldo) {
  const std::size_t m = w.out_features(), n = w.in_features();
  const std::size_t inner = Forward ? n : m, outer = Forward ? m : n;
  const SignKernelArrays arrays(w);
  const bool wide = isa == Isa::avx512;
  const std::size_t rows = wide ? avx512::kGemmRows : avx2::kGemmRows;
  const std::size_t cols = wide ? avx512::kGemmCols : avx2::kGemmCols;
  const std::vector<float> apack = pack_gemm_tokens(a, lda, t, inner, rows);
  const std::size_t panels = (outer + cols - 1) / cols;
  parallel_for(0, panels, 1, [&](std::size_t p0, std::size_t p1) {
    const std::size_t o0 = p0 * cols, o1 = std::min(outer, p1 * cols);
    if constexpr (Forward) {
      if (wide)
        avx512::weight_forward_f32(arrays.get(), apack.data(), t, inner, out, ldo, o0, o1);
      else
        avx2::weight_forward_f32(arrays.get(), apack.data(), t, inner, out, ldo, o0, o1);
    } else {
      if (wide)
        avx512::weight_backward_f32(arrays.get(), apack.data(), t, inner, out, ldo, o0, o1);
      else
        avx2::weight_backward_f32(arrays.get(), apack.data(), t, inner, out, ldo, o0, o1);
    }
  });
}
#endif

// Y (t x m, rows ldy apart) = X W^T for X (t x n, rows ldx apart) and the multi-kernel weight
// w (m x n), overwriting Y. Needs has_weight_products(isa) and t, m, n > 0. Float sums over n
// in the order of the products' tile (one sum for all kernels), not per kernel.
inline void weight_forward_f32(Isa isa, const MultiKernelWeights<float>& w, const float* x,
                               std::size_t ldx, std::size_t t, float* y, std::size_t ldy) {
#if MBOK_HAS_X86_KERNELS
  weight_product_f32<true>(isa, w, x, ldx, t, y, ldy);
#else
  (void)isa, (void)w, (void)x, (void)ldx, (void)t, (void)y, (void)ldy;
#endif
}

// dX (t x n, rows lddx apart) += Z W for Z (t x m, rows ldz apart) and the multi-kernel weight
// w (m x n). Needs has_weight_products(isa) and t, m, n > 0. Float sums over m in the order of
// the products' tile.
inline void weight_backward_dx_f32(Isa isa, const MultiKernelWeights<float>& w, const float* z,
                                   std::size_t ldz, std::size_t t, float* dx, std::size_t lddx) {
#if MBOK_HAS_X86_KERNELS
  weight_product_f32<false>(isa, w, z, ldz, t, dx, lddx);
#else
  (void)isa, (void)w, (void)z, (void)ldz, (void)t, (void)dx, (void)lddx;
#endif
}

// The backward's elementwise pass over P = Z^T X (m x n, rows n apart) for the kernels of w in
// `order`: ds_out[k] += row sums of P (.) B_k (.) s_in_k^T, ds_in[k] += column sums of
// P (.) B_k (.) s_out_k, and Q_k = P (.) s_out_k s_in_k^T into q[k] where it is not null
// (added when add_q[k]; q[k] may be P itself for the last kernel of `order`). One read of each
// row of P serves every kernel. Needs has_weight_products(isa). Rows run in parallel; each
// chunk sums its ds_in partials, added in row order afterwards (the same result for any thread
// timing).
inline void signal_pass_kernels(Isa isa, const MultiKernelWeights<float>& w,
                                const std::vector<std::size_t>& order, const float* p,
                                float* const* ds_out, float* const* ds_in, float* const* q,
                                const bool* add_q) {
#if MBOK_HAS_X86_KERNELS
  const std::size_t m = w.out_features(), n = w.in_features(), k_count = w.num_kernels();
  if (m == 0 || n == 0 || order.empty()) return;
  const SignKernelArrays arrays(w);
  const bool wide = isa == Isa::avx512;
  std::mutex merge;
  std::vector<std::pair<std::size_t, std::vector<float>>> partials;
  const std::size_t grain =
      std::max<std::size_t>(1, (std::size_t{1} << 16) / std::max<std::size_t>(n * order.size(), 1));
  parallel_for(0, m, grain, [&](std::size_t r0, std::size_t r1) {
    std::vector<float> part(k_count * n, 0.0f);
    std::vector<float*> part_rows(k_count);
    for (std::size_t k = 0; k < k_count; ++k) part_rows[k] = part.data() + k * n;
    if (wide)
      avx512::signal_rows(arrays.get(), order.data(), order.size(), p, n, r0, r1, ds_out,
                          part_rows.data(), q, add_q);
    else
      avx2::signal_rows(arrays.get(), order.data(), order.size(), p, n, r0, r1, ds_out,
                        part_rows.data(), q, add_q);
    const std::lock_guard<std::mutex> lock(merge);
    partials.emplace_back(r0, std::move(part));
  });
  std::sort(partials.begin(), partials.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& chunk : partials)
    for (std::size_t k : order)
      for (std::size_t l = 0; l < n; ++l) ds_in[k][l] += chunk.second[k * n + l];
#else
  (void)isa, (void)w, (void)order, (void)p, (void)ds_out, (void)ds_in, (void)q, (void)add_q;
#endif
}

}  // namespace mbok::detail
