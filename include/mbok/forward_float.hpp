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
/// panels from K t >= `ProductSet::weight_product_min_work()` on (measured per ISA; never where
/// the ISA has no register-tiled float product). The two sum in different orders: equal within
/// float rounding.
///
/// `multi_kernel_forward` splits the output features across the default `parallel_for`;
/// `multi_kernel_forward_range` computes output features [j0, j1) only (sign products), on the
/// calling thread, for engines that run their own threads (it reads all of X and writes only
/// columns [j0, j1) of Y).
///
/// With the kernels repacked for the table-lookup products (`Int8PreparedWeights`, the layout
/// the int8 forward reads), the overloads taking them add a third algorithm, `lut`: per token
/// and kernel, a table of the 16 signed sums of each group of 4 scaled activations (16 bytes
/// per feature, built in the call), then one lookup per 4 weights (a VPERMPS for 16 rows at
/// once on AVX-512). It needs only the scales and the repacked weights, not the bits, and is
/// the fastest for few tokens: `automatic` takes it for t <= ProductSet::lut_f32_max_tokens()
/// of the prepared weights' set (measured per ISA), and the two algorithms above otherwise.
/// Its error: |y_ij - exact_ij| <= gamma(ceil(n / 4) + K + 3) sum_k |s_out_k,j| sum_l |x_il
/// s_in_k,l| (gamma(k) = k u / (1 - k u), u = 2^-24; plus one subnormal per rounding where
/// products underflow), detail/products/lut_f32_format.hpp.
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
#include <vector>

#include "bit_matrix.hpp"
#include "config.hpp"
#include "error.hpp"
#include "forward_int8.hpp"
#include "multi_kernel_weights.hpp"
#include "parallel.hpp"
#include "products.hpp"

#include "detail/base/aligned_buffer.hpp"
#include "detail/products/dispatch.hpp"
#include "detail/products/training.hpp"

namespace mbok {

/// The algorithm of the fused float forward (see the file comment).
enum class FloatAlgorithm {
  automatic,      ///< weight_panels from K t >= ProductSet::weight_product_min_work(), else
                  ///< sign_products
  sign_products,  ///< K sign products, one per kernel
  weight_panels,  ///< one float product over W rebuilt panel by panel
  lut,            ///< table lookup over the repacked kernels (the overloads taking
                  ///< `Int8PreparedWeights` only)
};

namespace detail {

// This thread's scaled copy of the activations: it only grows (AlignedBuffer::grow), so
// repeated forward calls do not allocate (and do not fault in fresh pages) each time.
inline AlignedBuffer<float>& forward_scratch() {
  static thread_local AlignedBuffer<float> scratch;
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
inline void forward_rows(const ProductSet& products, const MultiKernelWeights<float>& w,
                         const float* x, std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
                         std::size_t j0, std::size_t j1) {
  if (t == 0 || j0 >= j1) return;
  for (std::size_t i = 0; i < t; ++i) std::fill(y + i * ldy + j0, y + i * ldy + j1, 0.0f);
  const std::size_t n = w.in_features();
  if (w.num_kernels() == 0) return;
  const std::size_t ld_xs = padded_row_words(n) * 64;
  float* xs = forward_scratch().grow(std::min(t, kForwardTokenBlock) * ld_xs);
  for (std::size_t i0 = 0; i0 < t; i0 += kForwardTokenBlock) {
    const std::size_t tb = std::min(kForwardTokenBlock, t - i0);
    for (std::size_t k = 0; k < w.num_kernels(); ++k) {
      scale_tokens(x + i0 * ldx, ldx, tb, w.s_in(k).data(), n, xs, ld_xs);
      products.sign_gemm_acc_range(xs, ld_xs, tb, w.kernel_view(k), w.s_out(k).data(), y + i0 * ldy,
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
                                       const ProductSet& products = ProductSet()) {
  detail::check_forward(w, x, ldx, t, y, ldy);
  detail::require(j0 <= j1 && j1 <= w.out_features(), "multi_kernel_forward_range: range [", j0,
                  ", ", j1, ") out of [0, ", w.out_features(), ")");
  detail::forward_rows(products, w, x, ldx, t, y, ldy, j0, j1);
}

/// The fused forward Y (t x m, stride `ldy`) = sum_k ((X (.) s_in_k^T) B_k^T) (.) s_out_k^T
/// for X (t x n, stride `ldx`) by `algorithm`, split over output features on the default
/// `parallel_for`.
inline void multi_kernel_forward(const MultiKernelWeights<float>& w, const float* x,
                                 std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
                                 const ProductSet& products = ProductSet(),
                                 FloatAlgorithm algorithm = FloatAlgorithm::automatic) {
  detail::check_forward(w, x, ldx, t, y, ldy);
  detail::require(algorithm != FloatAlgorithm::lut,
                  "multi_kernel_forward: FloatAlgorithm::lut needs Int8PreparedWeights");
  if (t == 0) return;
  if (algorithm == FloatAlgorithm::weight_panels ||
      (algorithm == FloatAlgorithm::automatic &&
       detail::uses_weight_products(products.table(), w, t))) {
    detail::weight_forward_f32(products.table(), w, x, ldx, t, y, ldy);
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
        detail::forward_rows(products, w, x, ldx, t, y, ldy, j0, j1);
      },
      16);
}

namespace detail {

// One thread's tables of the LUT float forward (grows only; no allocation once warm).
inline AlignedBuffer<float>& lut_f32_scratch() {
  static thread_local AlignedBuffer<float> scratch;
  return scratch;
}

// The LUT float forward over repacked weights, output features [j0, j1) of t tokens on the
// calling thread: y(i, j) = sum_k s_out[k][j] sum_l x(i, l) s_in[k][l] W_k(j, l), overwritten
// (zero for kernels = 0). Needs only the scales (s_out[k]: m floats, s_in[k]: n floats) and
// the repacked kernels w[k] (all m x n, either layout), not the bits: the form a layer that
// keeps only the repacked weights calls. Checks nothing (the public overloads do). Tables of
// all kernels for a block of tokens (within kLutTableBlockBytes, at least one token) are
// built into this thread's scratch, then each kernel passes over the rows once per block.
inline void lut_forward_f32_range(const ProductTable& table, std::size_t kernels,
                                  const float* const* s_out, const float* const* s_in,
                                  const LutWeightsView* w, const float* x, std::size_t ldx,
                                  std::size_t t, float* y, std::size_t ldy, std::size_t j0,
                                  std::size_t j1) {
  if (t == 0 || j0 >= j1) return;
  if (kernels == 0) {
    for (std::size_t i = 0; i < t; ++i) std::fill(y + i * ldy + j0, y + i * ldy + j1, 0.0f);
    return;
  }
  const std::size_t n = w[0].cols, ld = lut_f32_table_floats(n);
  const std::size_t block =
      std::clamp<std::size_t>(kLutTableBlockBytes / (kernels * ld * sizeof(float)), 1, t);
  float* tables = lut_f32_scratch().grow(kernels * block * ld);
  for (std::size_t i0 = 0; i0 < t; i0 += block) {
    const std::size_t tb = std::min(block, t - i0);
    for (std::size_t k = 0; k < kernels; ++k)
      table.lut_tables_f32(x + i0 * ldx, ldx, tb, n, s_in[k], tables + k * block * ld, ld);
    for (std::size_t k = 0; k < kernels; ++k)
      table.sign_gemm_f32_lut({tables + k * block * ld, tb, n, ld}, w[k], s_out[k], k > 0,
                              y + i0 * ldy, ldy, j0, j1);
  }
}

// Least work per thread of the LUT float forward, in 64-weight words x tokens x kernels: 2^14
// words (1 Mi weights, about 10 us on avx512) where idle threads spin, 2^17 where waking them
// costs tens of microseconds (as kInt8MinWordsPerThread, at about half the int8 LUT's speed).
inline constexpr std::size_t kLutF32MinWordsPerThread = std::size_t{1} << 14;
inline constexpr std::size_t kLutF32MinWordsPerWokenThread = std::size_t{1} << 17;

// lut_forward_f32_range over all m output features on the default `parallel_for` (rows split
// on multiples of 16; every chunk builds its own tables, a few microseconds, rather than
// reading another core's).
inline void lut_forward_f32(const ProductTable& table, std::size_t kernels,
                            const float* const* s_out, const float* const* s_in,
                            const LutWeightsView* w, std::size_t m, const float* x, std::size_t ldx,
                            std::size_t t, float* y, std::size_t ldy) {
  const std::size_t n = kernels > 0 ? w[0].cols : 0;
  const std::size_t grain = std::max<std::size_t>(
      64, grain_for_cost(std::max<std::size_t>(1, t * padded_row_words(n) * kernels),
                         kLutF32MinWordsPerThread, kLutF32MinWordsPerWokenThread));
  parallel_for(
      0, m, grain,
      [&](std::size_t j0, std::size_t j1) {
        lut_forward_f32_range(table, kernels, s_out, s_in, w, x, ldx, t, y, ldy, j0, j1);
      },
      kLutTileRows);
}

// Kernel k's scales and repacked weights of w and pw, for the functions above. `W` is any
// weights type with num_kernels(), s_out(k) and s_in(k) (`MultiKernelWeights<float>`, the
// bit-free `PackedLinear`).
struct LutF32Operands {
  std::vector<const float*> s_out, s_in;
  std::vector<LutWeightsView> w;
  template <class W>
  LutF32Operands(const W& weights, const Int8PreparedWeights& pw) {
    for (std::size_t k = 0; k < weights.num_kernels(); ++k) {
      s_out.push_back(weights.s_out(k).data());
      s_in.push_back(weights.s_in(k).data());
      w.push_back(pw.kernel(k).view());
    }
  }
};

inline void check_prepared_f32(const MultiKernelWeights<float>& w, const Int8PreparedWeights& pw) {
  Int8Forward::check_prepared(w, pw, "multi_kernel_forward");
}

// Whether the forward over prepared weights runs the table lookup.
inline bool float_uses_lut(const Int8PreparedWeights& pw, std::size_t t,
                           FloatAlgorithm algorithm) noexcept {
  return algorithm == FloatAlgorithm::lut ||
         (algorithm == FloatAlgorithm::automatic && t <= pw.products().lut_f32_max_tokens());
}

}  // namespace detail

/// Output features [j0, j1) of the fused forward with the kernels also repacked in `pw`
/// (built from these weights), on the calling thread, on pw.products(): the table lookup
/// (`FloatAlgorithm::lut`, or `automatic` with t <= pw.products().lut_f32_max_tokens()) or
/// the sign products otherwise (`weight_panels` runs the sign products here, as the overload
/// without `pw`). Y columns outside [j0, j1) are not touched; ranges on multiples of 16 waste
/// nothing. Uses this thread's scratch for the tables (16 bytes per feature, token and kernel,
/// at most about 512 KiB; kept between calls). Throws `InvalidArgument` as the overload
/// without `pw`, and when `pw` does not match `w` (K, m, n).
inline void multi_kernel_forward_range(const MultiKernelWeights<float>& w,
                                       const Int8PreparedWeights& pw, const float* x,
                                       std::size_t ldx, std::size_t t, float* y, std::size_t ldy,
                                       std::size_t j0, std::size_t j1,
                                       FloatAlgorithm algorithm = FloatAlgorithm::automatic) {
  detail::check_forward(w, x, ldx, t, y, ldy);
  detail::check_prepared_f32(w, pw);
  detail::require(j0 <= j1 && j1 <= w.out_features(), "multi_kernel_forward_range: range [", j0,
                  ", ", j1, ") out of [0, ", w.out_features(), ")");
  if (!detail::float_uses_lut(pw, t, algorithm)) {
    detail::forward_rows(pw.products(), w, x, ldx, t, y, ldy, j0, j1);
    return;
  }
  const detail::LutF32Operands ops(w, pw);
  detail::lut_forward_f32_range(pw.products().table(), w.num_kernels(), ops.s_out.data(),
                                ops.s_in.data(), ops.w.data(), x, ldx, t, y, ldy, j0, j1);
}

/// The fused forward (Y overwritten) with the kernels also repacked in `pw` (built from these
/// weights), on pw.products() and the default `parallel_for`: the table lookup for
/// `FloatAlgorithm::lut`, or `automatic` with t <= pw.products().lut_f32_max_tokens(); the
/// overload without `pw` otherwise (with `algorithm`). Error bound of the table lookup in the
/// file comment. Throws `InvalidArgument` as the overload without `pw`, and when `pw` does
/// not match `w` (K, m, n).
inline void multi_kernel_forward(const MultiKernelWeights<float>& w, const Int8PreparedWeights& pw,
                                 const float* x, std::size_t ldx, std::size_t t, float* y,
                                 std::size_t ldy,
                                 FloatAlgorithm algorithm = FloatAlgorithm::automatic) {
  detail::check_forward(w, x, ldx, t, y, ldy);
  detail::check_prepared_f32(w, pw);
  if (!detail::float_uses_lut(pw, t, algorithm)) {
    multi_kernel_forward(w, x, ldx, t, y, ldy, pw.products(), algorithm);
    return;
  }
  if (t == 0) return;
  const detail::LutF32Operands ops(w, pw);
  detail::lut_forward_f32(pw.products().table(), w.num_kernels(), ops.s_out.data(), ops.s_in.data(),
                          ops.w.data(), w.out_features(), x, ldx, t, y, ldy);
}

/// Row-major float matrices, as Eigen sees them.
using RowMajorMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// The fused forward on Eigen matrices: X (t x n) -> Y (t x m), both row-major. Throws
/// `InvalidArgument` when X does not have n columns or Y is not t x m.
inline void multi_kernel_forward(const MultiKernelWeights<float>& w,
                                 const Eigen::Ref<const RowMajorMatrixXf>& x,
                                 Eigen::Ref<RowMajorMatrixXf> y,
                                 const ProductSet& products = ProductSet(),
                                 FloatAlgorithm algorithm = FloatAlgorithm::automatic) {
  detail::require(static_cast<std::size_t>(x.cols()) == w.in_features(),
                  "multi_kernel_forward: X has ", x.cols(), " columns, expected ", w.in_features());
  detail::require(y.rows() == x.rows() && static_cast<std::size_t>(y.cols()) == w.out_features(),
                  "multi_kernel_forward: Y is ", y.rows(), " x ", y.cols(), ", expected ", x.rows(),
                  " x ", w.out_features());
  if (x.rows() == 0) return;
  multi_kernel_forward(w, x.data(), static_cast<std::size_t>(x.outerStride()),
                       static_cast<std::size_t>(x.rows()), y.data(),
                       static_cast<std::size_t>(y.outerStride()), products, algorithm);
}

}  // namespace mbok
