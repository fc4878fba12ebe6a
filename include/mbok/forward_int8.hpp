#pragma once
/// \file
/// The fused multi-kernel forward with int8 activations:
///
///     y(i, :) = sum_k s_out_k (.) (B_k (x(i, :) (.) s_in_k))        i < t, over all K kernels
///
/// Each kernel's input x (.) s_in_k is quantized per token to int8 (activations.hpp), the
/// +-1 product runs in exact int32 on the active ISA (`KernelSet::sign_gemm_i8`), and the
/// result is scaled by the token's quantization scale and s_out_k and summed over kernels
/// while the int32 block is still in cache. t = 1 is the decode GEMV, t > 1 the prefill GEMM.
///
/// Two ways to call it:
/// - `multi_kernel_forward_int8(w, x, ldx, t, y, ldy)`: quantizes and runs on the default
///   `parallel_for`;
/// - `prepare_int8_forward(w, x, ldx, t, workspace)` once, then
///   `multi_kernel_forward_int8_range(w, workspace, y, ldy, j0, j1)` for output features
///   [j0, j1) from a host engine's own threads (the workspace is read-only there).
///
/// Accuracy: per token and kernel, |v - scale q| <= scale / 2 elementwise (v = x (.) s_in_k,
/// scale = max|v| / 127), so |y_ij - exact_ij| <= sum_k |s_out_k(j)| scale_k(i) n / 2 at
/// worst, plus float rounding of the final scaling; typical errors are about sqrt(n) times
/// smaller. Exact int32 accumulation needs n <= kMaxInt8Features (2^24 - 1).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "activations.hpp"
#include "bit_matrix.hpp"
#include "error.hpp"
#include "kernels.hpp"
#include "multi_kernel_weights.hpp"
#include "parallel.hpp"

namespace mbok {

/// The quantized inputs of one forward call: one `QuantizedActivations` per kernel. Reuse
/// one workspace across calls to avoid reallocating.
class Int8ForwardWorkspace {
 public:
  /// Number of tokens prepared.
  std::size_t tokens() const noexcept { return tokens_; }
  /// Number of kernels prepared.
  std::size_t num_kernels() const noexcept { return kernels_; }
  /// Kernel k's quantized input x (.) s_in_k.
  const QuantizedActivations& input(std::size_t k) const {
    detail::require(k < kernels_, "Int8ForwardWorkspace: kernel ", k, " not prepared (K = ",
                    kernels_, ")");
    return inputs_[k];
  }

 private:
  friend void prepare_int8_forward(const MultiKernelWeights<float>&, const float*, std::size_t,
                                   std::size_t, Int8ForwardWorkspace&);
  std::vector<QuantizedActivations> inputs_;
  std::size_t tokens_ = 0;
  std::size_t kernels_ = 0;
};

/// Quantizes x (t tokens of w.in_features() floats, row i at x + i * ldx) once per kernel
/// into `ws`. Throws `InvalidArgument` for K = 0, ldx < n, n > kMaxInt8Features, a null x
/// with t > 0, or a non-finite x (s_in) value.
inline void prepare_int8_forward(const MultiKernelWeights<float>& w, const float* x,
                                 std::size_t ldx, std::size_t t, Int8ForwardWorkspace& ws) {
  const std::size_t n = w.in_features();
  detail::require(w.num_kernels() > 0, "multi_kernel_forward_int8: weights have no kernels");
  detail::require(n <= kMaxInt8Features, "multi_kernel_forward_int8: ", n,
                  " input features exceed the exact int32 limit of ", kMaxInt8Features);
  detail::require(ldx >= n, "multi_kernel_forward_int8: ldx ", ldx, " < input features ", n);
  detail::require(t == 0 || x != nullptr, "multi_kernel_forward_int8: null input");
  const std::size_t k_count = w.num_kernels();
  if (ws.inputs_.size() < k_count) ws.inputs_.resize(k_count);
  for (std::size_t k = 0; k < k_count; ++k)
    quantize_activations(x, ldx, t, n, ws.inputs_[k], w.s_in(k).data());
  ws.tokens_ = t;
  ws.kernels_ = k_count;
}

/// Output features [j0, j1) of every token: y(i, j) for i < ws.tokens(), row stride `ldy`
/// floats; the other columns of y are not touched. Runs on the calling thread.
/// Throws `InvalidArgument` when `ws` was not prepared for these weights' K and shape, for
/// ldy < m, a null y, or a range outside [0, m).
inline void multi_kernel_forward_int8_range(const MultiKernelWeights<float>& w,
                                            const Int8ForwardWorkspace& ws, float* y,
                                            std::size_t ldy, std::size_t j0, std::size_t j1,
                                            const KernelSet& kernels = KernelSet()) {
  const std::size_t m = w.out_features();
  const std::size_t t = ws.tokens();
  const std::size_t k_count = w.num_kernels();
  detail::require(ws.num_kernels() == k_count && k_count > 0,
                  "multi_kernel_forward_int8: workspace prepared for ", ws.num_kernels(),
                  " kernels, weights have ", k_count);
  detail::require(t == 0 || ws.input(0).cols() == w.in_features(),
                  "multi_kernel_forward_int8: workspace prepared for ", ws.input(0).cols(),
                  " input features, weights have ", w.in_features());
  detail::require(ldy >= m, "multi_kernel_forward_int8: ldy ", ldy, " < output features ", m);
  detail::require(j0 <= j1 && j1 <= m, "multi_kernel_forward_int8: range [", j0, ", ", j1,
                  ") out of [0, ", m, ")");
  detail::require(t == 0 || y != nullptr, "multi_kernel_forward_int8: null output");
  if (t == 0 || j0 == j1) return;
  // Output features per block: the int32 block (t x rows) stays in L1/L2 between the kernel
  // that writes it and the scaling that reads it.
  const std::size_t rows = std::clamp<std::size_t>((16384 / t) / 16 * 16, 16, 256);
  std::vector<std::int32_t> block(t * rows);
  for (std::size_t jb = j0; jb < j1; jb += rows) {
    const std::size_t nr = std::min(rows, j1 - jb);
    for (std::size_t k = 0; k < k_count; ++k) {
      const QuantizedActivations& q = ws.input(k);
      const BitMatrixView bk = w.kernel_view(k).middle_rows(jb, nr);
      kernels.sign_gemm_i8_range(q.data(), q.ld(), t, bk, block.data(), nr, 0, nr);
      const float* so = w.s_out(k).data() + jb;
      for (std::size_t i = 0; i < t; ++i) {
        const float a = q.scale(i);
        const std::int32_t* bi = block.data() + i * nr;
        float* yi = y + i * ldy + jb;
        if (k == 0)
          for (std::size_t j = 0; j < nr; ++j) yi[j] = static_cast<float>(bi[j]) * a * so[j];
        else
          for (std::size_t j = 0; j < nr; ++j) yi[j] += static_cast<float>(bi[j]) * a * so[j];
      }
    }
  }
}

/// All output features of a prepared workspace, on the default `parallel_for` (rows of y
/// split across threads).
inline void multi_kernel_forward_int8(const MultiKernelWeights<float>& w,
                                      const Int8ForwardWorkspace& ws, float* y, std::size_t ldy,
                                      const KernelSet& kernels = KernelSet()) {
  const std::size_t m = w.out_features();
  const std::size_t words = padded_row_words(w.in_features());
  const std::size_t per_row = std::max<std::size_t>(1, ws.tokens() * words * w.num_kernels());
  const std::size_t grain = std::max<std::size_t>(16, (std::size_t{1} << 16) / per_row);
  parallel_for(
      0, m, grain,
      [&](std::size_t j0, std::size_t j1) {
        multi_kernel_forward_int8_range(w, ws, y, ldy, j0, j1, kernels);
      },
      16);
}

/// y (t x m, row stride `ldy`) = sum_k s_out_k (.) (B_k (x (.) s_in_k)) for t tokens of x
/// (row i at x + i * ldx), with int8 activations: quantizes into a temporary workspace and
/// runs on the default `parallel_for`. Throws `InvalidArgument` as `prepare_int8_forward`
/// and `multi_kernel_forward_int8_range` do.
inline void multi_kernel_forward_int8(const MultiKernelWeights<float>& w, const float* x,
                                      std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
                                      const KernelSet& kernels = KernelSet()) {
  Int8ForwardWorkspace ws;
  prepare_int8_forward(w, x, ldx, t, ws);
  multi_kernel_forward_int8(w, ws, y, ldy, kernels);
}

}  // namespace mbok
