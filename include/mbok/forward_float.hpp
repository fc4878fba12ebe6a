#pragma once
/// \file
/// The fused multi-kernel forward pass with float activations:
///
///     Y = sum_k ((X (.) s_in_k^T) B_k^T) (.) s_out_k^T        (all K kernels, one call)
///
/// X holds one token per row (t x n, row stride `ldx` floats), Y one token per row (t x m,
/// row stride `ldy` floats), for `MultiKernelWeights<float>` of shape m x n. Y is
/// overwritten (with K = 0 it becomes zero). t = 1 is a GEMV, t > 1 a GEMM.
///
/// Two algorithms (`FloatAlgorithm`): K sign products of the bits (`sign_products`), or one
/// float product whose panels of W = sum_k s_out_k (.) B_k (.) s_in_k are rebuilt from the
/// bits and scales as they are used (`weight_panels`; no W is kept). Rebuilding costs about
/// K m n operations per call against K t m n for the sign products, so `automatic` takes the
/// panels from K t >= `KernelSet::weight_product_min_work()` on (measured per ISA; never where
/// the ISA has no register-tiled float product). The two sum in different orders: equal within
/// float rounding.
///
/// `multi_kernel_forward` splits the output features across the default `parallel_for`;
/// `multi_kernel_forward_range` computes output features [j0, j1) only (sign products), on the
/// calling thread, for engines that run their own threads (it reads all of X and writes only
/// columns [j0, j1) of Y).
///
/// X and Y must not overlap. Results equal the exact sum up to float rounding of a sum of n
/// terms per kernel (the order of summation differs between ISAs).
///
/// Errors: `InvalidArgument` (naming the operand, the expected and the actual value) for a
/// stride shorter than a row, a null pointer with t > 0, or a range outside [0, m].

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

#include "bit_matrix.hpp"
#include "config.hpp"
#include "error.hpp"
#include "kernels.hpp"
#include "multi_kernel_weights.hpp"
#include "parallel.hpp"

#include "detail/kernels/dispatch.hpp"
#include "detail/kernels/training.hpp"

namespace mbok {

/// The algorithm of the fused float forward (see the file comment).
enum class FloatAlgorithm {
  automatic,      ///< weight_panels from K t >= KernelSet::weight_product_min_work(), else
                  ///< sign_products
  sign_products,  ///< K sign products, one per kernel
  weight_panels,  ///< one float product over W rebuilt panel by panel
};

namespace detail {

// A 64-byte-aligned float buffer that only grows; one per thread, so repeated forward calls
// do not allocate (and do not fault in fresh pages) each time.
class ScratchFloats {
 public:
  float* get(std::size_t count) {
    if (count > capacity_) {
      const std::size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
      data_.reset(static_cast<float*>(::operator new(bytes, std::align_val_t(64))));
      capacity_ = bytes / sizeof(float);
    }
    return data_.get();
  }

 private:
  struct Delete {
    void operator()(float* p) const noexcept { ::operator delete(p, std::align_val_t(64)); }
  };
  std::unique_ptr<float, Delete> data_;
  std::size_t capacity_ = 0;
};

inline ScratchFloats& forward_scratch() {
  static thread_local ScratchFloats scratch;
  return scratch;
}

// Tokens whose scaled copy is made at once: bounds the scratch to kForwardTokenBlock * n
// floats while each pass over the weights still serves many tokens.
inline constexpr std::size_t kForwardTokenBlock = 64;

inline void check_forward(const MultiKernelWeights<float>& w, const float* x, std::size_t ldx,
                          std::size_t t, const float* y, std::size_t ldy) {
  detail::require(ldx >= w.in_features(), "multi_kernel_forward: ldx ", ldx, " < input features ",
                  w.in_features());
  detail::require(ldy >= w.out_features(), "multi_kernel_forward: ldy ", ldy, " < output features ",
                  w.out_features());
  detail::require(t == 0 || (x != nullptr && y != nullptr),
                  "multi_kernel_forward: null input or output");
  detail::require_addressable(t, ldx, w.in_features(), sizeof(float),
                              "multi_kernel_forward: input");
  detail::require_addressable(t, ldy, w.out_features(), sizeof(float),
                              "multi_kernel_forward: output");
}

// xs (tb x ld_xs) = X[i0 .. i0 + tb) (.) s_in^T, zero from column n to ld_xs.
inline void scale_tokens(const float* x, std::size_t ldx, std::size_t tb, const float* s_in,
                         std::size_t n, float* xs, std::size_t ld_xs) noexcept {
  for (std::size_t i = 0; i < tb; ++i) {
    const float* xi = x + i * ldx;
    float* o = xs + i * ld_xs;
    for (std::size_t l = 0; l < n; ++l) o[l] = xi[l] * s_in[l];
    for (std::size_t l = n; l < ld_xs; ++l) o[l] = 0.0f;
  }
}

// Output features [j0, j1) for tokens [0, t): Y is cleared, then each kernel adds
// s_out_k (.) ((X (.) s_in_k) B_k^T) through the table's accumulate entry, on a scaled copy
// of up to kForwardTokenBlock tokens at a time (this thread's scratch).
inline void forward_rows(const KernelSet& kernels, const MultiKernelWeights<float>& w,
                         const float* x, std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
                         std::size_t j0, std::size_t j1) {
  if (t == 0 || j0 >= j1) return;
  for (std::size_t i = 0; i < t; ++i) std::fill(y + i * ldy + j0, y + i * ldy + j1, 0.0f);
  const std::size_t n = w.in_features();
  if (w.num_kernels() == 0) return;
  const std::size_t ld_xs = padded_row_words(n) * 64;
  float* xs = forward_scratch().get(std::min(t, kForwardTokenBlock) * ld_xs);
  for (std::size_t i0 = 0; i0 < t; i0 += kForwardTokenBlock) {
    const std::size_t tb = std::min(kForwardTokenBlock, t - i0);
    for (std::size_t k = 0; k < w.num_kernels(); ++k) {
      scale_tokens(x + i0 * ldx, ldx, tb, w.s_in(k).data(), n, xs, ld_xs);
      kernels.sign_gemm_acc_range(xs, ld_xs, tb, w.kernel_view(k), w.s_out(k).data(), y + i0 * ldy,
                                  ldy, j0, j1);
    }
  }
}

}  // namespace detail

/// Output features [j0, j1) of the fused forward (see the file comment), on the calling
/// thread. Y columns outside [j0, j1) are not touched.
inline void multi_kernel_forward_range(const MultiKernelWeights<float>& w, const float* x,
                                       std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
                                       std::size_t j0, std::size_t j1,
                                       const KernelSet& kernels = KernelSet()) {
  detail::check_forward(w, x, ldx, t, y, ldy);
  detail::require(j0 <= j1 && j1 <= w.out_features(), "multi_kernel_forward_range: range [", j0,
                  ", ", j1, ") out of [0, ", w.out_features(), ")");
  detail::forward_rows(kernels, w, x, ldx, t, y, ldy, j0, j1);
}

/// The fused forward Y (t x m, stride `ldy`) = sum_k ((X (.) s_in_k^T) B_k^T) (.) s_out_k^T
/// for X (t x n, stride `ldx`) by `algorithm`, split over output features on the default
/// `parallel_for`.
inline void multi_kernel_forward(const MultiKernelWeights<float>& w, const float* x,
                                 std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
                                 const KernelSet& kernels = KernelSet(),
                                 FloatAlgorithm algorithm = FloatAlgorithm::automatic) {
  detail::check_forward(w, x, ldx, t, y, ldy);
  if (t == 0) return;
  if (algorithm == FloatAlgorithm::weight_panels ||
      (algorithm == FloatAlgorithm::automatic &&
       detail::uses_weight_products(kernels.table(), w, t))) {
    detail::weight_forward_f32(kernels.table(), w, x, ldx, t, y, ldy);
    return;
  }
  const std::size_t m = w.out_features();
  // Chunks of at least ~2^18 weight-token products, in whole 16-row groups.
  const std::size_t work_per_row =
      std::max<std::size_t>(1, w.num_kernels() * std::min<std::size_t>(t, 64) * w.in_features());
  const std::size_t grain = std::max<std::size_t>(16, (std::size_t{1} << 18) / work_per_row);
  parallel_for(
      0, m, grain,
      [&](std::size_t j0, std::size_t j1) {
        detail::forward_rows(kernels, w, x, ldx, t, y, ldy, j0, j1);
      },
      16);
}

/// Row-major float matrices, as Eigen sees them.
using RowMajorMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// The fused forward on Eigen matrices: X (t x n) -> Y (t x m), both row-major. Throws
/// `InvalidArgument` when X does not have n columns or Y is not t x m.
inline void multi_kernel_forward(const MultiKernelWeights<float>& w,
                                 const Eigen::Ref<const RowMajorMatrixXf>& x,
                                 Eigen::Ref<RowMajorMatrixXf> y,
                                 const KernelSet& kernels = KernelSet(),
                                 FloatAlgorithm algorithm = FloatAlgorithm::automatic) {
  detail::require(static_cast<std::size_t>(x.cols()) == w.in_features(),
                  "multi_kernel_forward: X has ", x.cols(), " columns, expected ", w.in_features());
  detail::require(y.rows() == x.rows() && static_cast<std::size_t>(y.cols()) == w.out_features(),
                  "multi_kernel_forward: Y is ", y.rows(), " x ", y.cols(), ", expected ", x.rows(),
                  " x ", w.out_features());
  if (x.rows() == 0) return;
  multi_kernel_forward(w, x.data(), static_cast<std::size_t>(x.outerStride()),
                       static_cast<std::size_t>(x.rows()), y.data(),
                       static_cast<std::size_t>(y.outerStride()), kernels, algorithm);
}

}  // namespace mbok
