#pragma once
#include "../guard.hpp"

// The training step's products through one table (table.hpp), for the layer and the
// optimizer, which check their operands at their own entrance:
// - gemm_tn_f32: C = A^T B, the signals' P = Z^T X;
// - weight_forward_f32 / weight_backward_dx_f32: Y = X W^T and dX += Z W for the multi-kernel
//   weight W = sum_k s_out_k (.) B_k (.) s_in_k (rebuilt panel by panel, never stored);
// - signal_pass: ds_out, ds_in and Q of every kernel from one read of P;
// - boolean_step: the optimizer's update of one tensor, and max_abs_bits for its checks.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "../../multi_kernel_weights.hpp"
#include "../../parallel.hpp"
#include "boolean_step_args.hpp"
#include "table.hpp"
#include "weight_panels.hpp"

namespace mbok::detail {

// The products' view of a MultiKernelWeights<float>: arrays of bit rows, strides and scales.
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

// C (m x n, rows ldc apart) = A^T B for A t x m (rows lda apart) and B t x n (rows ldb
// apart), overwriting C; t = 0 gives zeros.
inline void gemm_tn_f32(const ProductTable& table, const float* a, std::size_t lda, const float* b,
                        std::size_t ldb, std::size_t t, std::size_t m, std::size_t n, float* c,
                        std::size_t ldc) {
  if (m == 0 || n == 0) return;
  if (t == 0) {
    for (std::size_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
  table.gemm_tn_f32(a, lda, b, ldb, t, m, n, c, ldc);
}

// Whether the table's weight products (and its dense product) are register-tiled ones that
// beat the sign products from some size on.
inline bool has_weight_products(const ProductTable& table) noexcept {
  return table.weight_product_min_work != SIZE_MAX;
}

// Whether the float forward and dX of t tokens through w take the weight products (K t at
// least the table's weight_product_min_work) rather than K sign products.
inline bool uses_weight_products(const ProductTable& table, const MultiKernelWeights<float>& w,
                                 std::size_t t) noexcept {
  return has_weight_products(table) && w.in_features() > 0 && w.out_features() > 0 &&
         t * w.num_kernels() >= table.weight_product_min_work;
}

// Y (t x m, rows ldy apart) = X W^T for X (t x n, rows ldx apart), overwriting Y. Float sums
// over n in the order of the product's tile (one sum for all kernels), not per kernel.
inline void weight_forward_f32(const ProductTable& table, const MultiKernelWeights<float>& w,
                               const float* x, std::size_t ldx, std::size_t t, float* y,
                               std::size_t ldy) {
  const std::size_t m = w.out_features(), n = w.in_features();
  if (t == 0 || m == 0) return;
  if (n == 0 || w.num_kernels() == 0) {
    for (std::size_t i = 0; i < t; ++i) std::fill(y + i * ldy, y + i * ldy + m, 0.0f);
    return;
  }
  const SignKernelArrays arrays(w);
  table.weight_forward_f32(arrays.get(), m, n, x, ldx, t, y, ldy);
}

// dX (t x n, rows lddx apart) += Z W for Z (t x m, rows ldz apart).
inline void weight_backward_dx_f32(const ProductTable& table, const MultiKernelWeights<float>& w,
                                   const float* z, std::size_t ldz, std::size_t t, float* dx,
                                   std::size_t lddx) {
  const std::size_t m = w.out_features(), n = w.in_features();
  if (t == 0 || m == 0 || n == 0 || w.num_kernels() == 0) return;
  const SignKernelArrays arrays(w);
  table.weight_backward_dx_f32(arrays.get(), m, n, z, ldz, t, dx, lddx);
}

// The backward's elementwise pass over P = Z^T X (m x n, rows n apart) for the kernels of w in
// `order` (the table's signal_rows, whose contract this is). Rows run in parallel; each chunk
// sums its ds_in partials, added in row order afterwards (the same result for any thread
// timing).
inline void signal_pass(const ProductTable& table, const MultiKernelWeights<float>& w,
                        const std::vector<std::size_t>& order, const float* p, float* const* ds_out,
                        float* const* ds_in, float* const* q, const bool* add_q) {
  const std::size_t m = w.out_features(), n = w.in_features(), k_count = w.num_kernels();
  if (m == 0 || n == 0 || order.empty()) return;
  const SignKernelArrays arrays(w);
  std::mutex merge;
  std::vector<std::pair<std::size_t, std::vector<float>>> partials;
  const std::size_t grain =
      std::max<std::size_t>(1, (std::size_t{1} << 16) / std::max<std::size_t>(n * order.size(), 1));
  parallel_for(0, m, grain, [&](std::size_t r0, std::size_t r1) {
    std::vector<float> part(k_count * n, 0.0f);
    std::vector<float*> part_rows(k_count);
    for (std::size_t k = 0; k < k_count; ++k) part_rows[k] = part.data() + k * n;
    table.signal_rows(arrays.get(), order.data(), order.size(), p, n, r0, r1, ds_out,
                      part_rows.data(), q, add_q);
    const std::lock_guard<std::mutex> lock(merge);
    partials.emplace_back(r0, std::move(part));
  });
  std::sort(partials.begin(), partials.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& chunk : partials)
    for (std::size_t k : order)
      for (std::size_t l = 0; l < n; ++l) ds_in[k][l] += chunk.second[k * n + l];
}

// The optimizer's step over `rows` rows of one tensor (args.cols columns) with accumulators
// stored as `codec`, rows split on parallel_for; returns the flips.
inline std::size_t boolean_step(const ProductTable& table, StepCodec codec,
                                const BooleanStepArgs& args, std::size_t rows) {
  if (rows == 0 || args.cols == 0) return 0;
  const auto step = table.boolean_step_rows[static_cast<int>(codec)];
  std::atomic<std::size_t> total{0};
  parallel_for(0, rows, std::max<std::size_t>(1, (std::size_t{1} << 15) / args.cols),
               [&](std::size_t r0, std::size_t r1) {
                 total.fetch_add(step(args, r0, r1), std::memory_order_relaxed);
               });
  return total.load();
}

}  // namespace mbok::detail
