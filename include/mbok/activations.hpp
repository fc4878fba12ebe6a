#pragma once
/// \file
/// Activations for the integer kernels:
/// - `QuantizedActivations` and `quantize_activations`: per-token symmetric int8 (absmax),
///   optionally after an elementwise scale (a kernel's s_in), laid out as
///   `ProductSet::sign_gemm_i8` requires (rows of `padded_row_words(n) * 64` bytes, 64-byte
///   aligned, zero past n);
/// - `BinaryActivations` and `binarize_activations`: per-token sign bits packed into a
///   `BitMatrix` (for `ProductSet::xnor_gemm`), with the per-token mean |x| as scale;
/// - `xnor_output_to_float` and `xnor_output_to_bits`: the output transform of an XNOR
///   product (int32 -> float with per-row and per-column scales, or thresholded straight
///   back to packed bits for the next Boolean layer).

#include <Eigen/Core>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "bit_matrix.hpp"
#include "config.hpp"
#include "error.hpp"
#include "parallel.hpp"

#include "detail/base/aligned_buffer.hpp"
#include "detail/base/bits.hpp"
#include "detail/base/checked.hpp"
#include "detail/products/dispatch.hpp"

namespace mbok {

/// Longest input row for which the int8 products (`ProductSet::sign_gemm_i8`, the table-lookup
/// product, the int8 forward) are exact: |sum_l x_l w_l| <= 128 n must fit in int32. Longer
/// rows are rejected (`InvalidArgument`). The one int8 limit of the library.
inline constexpr std::size_t kMaxInt8Features = (std::size_t{1} << 24) - 1;

/// t tokens of n features quantized to int8: x(i, l) ~ scale(i) * q(i, l), q in [-127, 127].
/// Rows are `ld()` = padded_row_words(n) * 64 bytes apart, the buffer is 64-byte aligned
/// and bytes past n are zero, as `ProductSet::sign_gemm_i8` requires. `row_sum(i)` is
/// sum_l q(i, l), kept for kernels that want it. Storage is reused by later quantizations
/// into the same object when it is large enough.
class QuantizedActivations {
 public:
  QuantizedActivations() = default;
  QuantizedActivations(const QuantizedActivations& o) { *this = o; }
  QuantizedActivations& operator=(const QuantizedActivations& o) {
    if (this == &o) return *this;
    resize(o.tokens_, o.cols_);  // all or nothing; nothing below allocates
    if (bytes() > 0) std::memcpy(data_.data(), o.data_.data(), bytes());
    std::copy(o.scale_.begin(), o.scale_.end(), scale_.begin());
    std::copy(o.sums_.begin(), o.sums_.end(), sums_.begin());
    return *this;
  }
  QuantizedActivations(QuantizedActivations&&) noexcept = default;
  QuantizedActivations& operator=(QuantizedActivations&&) noexcept = default;
  ~QuantizedActivations() = default;

  /// Number of tokens t.
  std::size_t tokens() const noexcept { return tokens_; }
  /// Features per token n.
  std::size_t cols() const noexcept { return cols_; }
  /// Bytes between the starts of two rows (a multiple of 64, covering the padded row).
  std::size_t ld() const noexcept { return ld_; }
  /// Row-major int8 values (t rows of `ld()` bytes), 64-byte aligned.
  const std::int8_t* data() const noexcept { return data_.data(); }
  const std::int8_t* row(std::size_t i) const MBOK_NOEXCEPT_UNLESS_ASSERTS {
    MBOK_ASSERT(i < tokens_);
    return data_.data() + i * ld_;
  }
  /// Per-token scales: x(i, l) ~ scale(i) * q(i, l). Zero for an all-zero token.
  const float* scales() const noexcept { return scale_.data(); }
  float scale(std::size_t i) const noexcept { return scale_[i]; }
  /// Per-token sums of the int8 values.
  const std::int32_t* row_sums() const noexcept { return sums_.data(); }
  std::int32_t row_sum(std::size_t i) const noexcept { return sums_[i]; }

  /// Sets the shape (t x n, zero-filled), reusing the buffer when it is large enough. All or
  /// nothing: every allocation comes first, so when it throws (`InvalidArgument` for a size
  /// that overflows, `std::bad_alloc`) the object keeps its shape and values.
  void resize(std::size_t t, std::size_t n) {
    detail::require(n > 0 || t == 0, "QuantizedActivations: zero features for ", t, " tokens");
    detail::require(n < kMaxBits, "QuantizedActivations: ", n, " features is too large");
    const std::size_t ld = padded_row_words(n) * 64;  // < 2^52: n is bounded
    const std::size_t need = detail::mul_or_throw({t, ld}, "QuantizedActivations: ", t,
                                                  " tokens x ", ld, " bytes per row");
    detail::AlignedBuffer<std::int8_t> grown;
    if (need > data_.capacity()) grown = detail::AlignedBuffer<std::int8_t>::uninitialized(need);
    // reserve either allocates or changes nothing; after it, assign cannot throw.
    scale_.reserve(t);
    sums_.reserve(t);
    if (grown.data() != nullptr) data_ = std::move(grown);
    tokens_ = t;
    cols_ = n;
    ld_ = ld;
    if (need > 0) std::memset(data_.data(), 0, need);
    scale_.assign(t, 0.0f);
    sums_.assign(t, 0);
  }

  /// Writable row i (bytes past n must stay zero).
  std::int8_t* mutable_row(std::size_t i) MBOK_NOEXCEPT_UNLESS_ASSERTS {
    MBOK_ASSERT(i < tokens_);
    return data_.data() + i * ld_;
  }
  void set_scale(std::size_t i, float s) noexcept { scale_[i] = s; }
  void set_row_sum(std::size_t i, std::int32_t s) noexcept { sums_[i] = s; }

 private:
  std::size_t bytes() const noexcept { return tokens_ * ld_; }

  detail::AlignedBuffer<std::int8_t> data_;
  std::size_t tokens_ = 0;
  std::size_t cols_ = 0;
  std::size_t ld_ = 0;
  std::vector<float> scale_;
  std::vector<std::int32_t> sums_;
};

namespace detail {
// The smallest amax quantized with 127 / amax directly (2^-100: the inverse is at most
// 127 * 2^100, finite).
inline constexpr float kQuantizeDirectMin = 0x1p-100f;

// Token i (n values v(l) = x(l) s(l), s null: x(l)) into q (n bytes, zero on entry) with the
// table's products: sets `scale` and returns sum q.
inline std::int32_t quantize_row(const ProductTable& table, const float* x, const float* s,
                                 std::size_t n, std::size_t i, std::int8_t* q, float& scale) {
  const std::uint32_t max_bits = table.abs_max_bits_f32(x, s, n);
  if (max_bits >= 0x7F800000u) {
    for (std::size_t l = 0; l < n; ++l) {
      const float v = s != nullptr ? x[l] * s[l] : x[l];
      require(std::isfinite(v), "quantize_activations: token ", i, " feature ", l, " is ", v,
              " (activations must be finite)");
    }
  }
  float amax;
  std::memcpy(&amax, &max_bits, sizeof amax);
  // Only zeros and subnormal values: the all-zero token (scale 0, q = 0). Their 127 / amax
  // would overflow float, and an infinite inverse makes the conversion to int undefined.
  if (!(amax >= FLT_MIN)) {
    scale = 0.0f;
    return 0;
  }
  scale = amax / 127.0f;  // subnormal, and rounded, when amax < 127 FLT_MIN
  if (amax >= kQuantizeDirectMin) return table.quantize_codes_f32(x, s, n, 1.0f, 127.0f / amax, q);
  // amax in [FLT_MIN, 2^-100): 127 / amax can overflow, so the values are scaled by 2^64
  // first. Scaling by a power of two is exact here (no overflow, subnormals become normal),
  // so the codes are exactly those of the token times 2^64.
  return table.quantize_codes_f32(x, s, n, 0x1p64f, 127.0f / (amax * 0x1p64f), q);
}

// quantize_activations (below) on the products of `table`.
inline void quantize_activations(const ProductTable& table, const float* x, std::size_t ldx,
                                 std::size_t t, std::size_t n, QuantizedActivations& out,
                                 const float* s_in) {
  require(n > 0, "quantize_activations: zero features");
  require(ldx >= n, "quantize_activations: ldx ", ldx, " < features ", n);
  require(t == 0 || x != nullptr, "quantize_activations: null input for ", t, " tokens");
  require_addressable(t, ldx, n, sizeof(float), "quantize_activations: input");
  out.resize(t, n);
  // Tokens are independent: many of them (a prefill) split across threads.
  parallel_for(0, t, grain_for_cost(n), [&](std::size_t i0, std::size_t i1) {
    for (std::size_t i = i0; i < i1; ++i) {
      float scale = 0.0f;
      const std::int32_t sum =
          quantize_row(table, x + i * ldx, s_in, n, i, out.mutable_row(i), scale);
      out.set_scale(i, scale);
      out.set_row_sum(i, sum);
    }
  });
}
}  // namespace detail

/// Quantizes t tokens of n floats (row i at x + i * ldx) into `out`, per token:
/// v = x(i, :) (.) s_in (s_in has n entries; null means all ones), scale(i) = max |v| / 127,
/// q = v / scale(i) rounded to nearest (halves away from zero), so q is in [-127, 127] and
/// |v - scale(i) q| <= scale(i) / 2. An all-zero token gets scale 0 and q = 0, and so does a
/// token whose max |v| is below FLT_MIN (only zeros and subnormal values: 127 / max |v| would
/// not be a finite float). A token whose max |v| is at least FLT_MIN gets the codes it would
/// get scaled by any power of two (values below 2^-100 are scaled up by 2^64 first, exactly)
/// and scale max |v| / 127 as a float, which is subnormal below 127 FLT_MIN. The results are
/// the same, bit for bit, on every ISA; this overload runs `active_isa()`'s products
/// (`ProductSet::quantize_activations` those of a set). Many tokens are split across threads
/// on the default `parallel_for` (each token's values do not depend on the split). Throws
/// `InvalidArgument` for a null pointer with t > 0, ldx < n, n == 0, or a NaN or infinite
/// value of v (naming a token and feature that hold one).
inline void quantize_activations(const float* x, std::size_t ldx, std::size_t t, std::size_t n,
                                 QuantizedActivations& out, const float* s_in = nullptr) {
  detail::quantize_activations(detail::product_table(active_isa()), x, ldx, t, n, out, s_in);
}

/// `quantize_activations` into a new object.
inline QuantizedActivations quantize_activations(const float* x, std::size_t ldx, std::size_t t,
                                                 std::size_t n, const float* s_in = nullptr) {
  QuantizedActivations out;
  quantize_activations(x, ldx, t, n, out, s_in);
  return out;
}

/// `quantize_activations` of a row-major t x n Eigen matrix (one token per row).
inline QuantizedActivations quantize_activations(
    const Eigen::Ref<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>&
        x,
    const float* s_in = nullptr) {
  return quantize_activations(x.data(), static_cast<std::size_t>(x.outerStride()),
                              static_cast<std::size_t>(x.rows()),
                              static_cast<std::size_t>(x.cols()), s_in);
}

/// Tokens as packed signs for the XNOR product: bits(i, l) = 1 where x(i, l) < 0, and
/// scale(i) = mean_l |x(i, l)|, so x(i, :) ~ scale(i) * sign(x(i, :)) (the XNOR-Net rule).
struct BinaryActivations {
  BitMatrix bits;            ///< t x n, the bit-layout contract of bit_matrix.hpp
  std::vector<float> scale;  ///< t per-token scales
};

/// Packs t tokens of n floats (row i at x + i * ldx) into `out`, reusing its storage when the
/// shape is unchanged. Throws `InvalidArgument` for t == 0, n == 0, ldx < n, a null pointer
/// or a NaN or infinite value (naming the token and feature).
inline void binarize_activations(const float* x, std::size_t ldx, std::size_t t, std::size_t n,
                                 BinaryActivations& out) {
  detail::require(t > 0 && n > 0, "binarize_activations: shape must be positive, got ", t, " x ",
                  n);
  detail::require(ldx >= n, "binarize_activations: ldx ", ldx, " < features ", n);
  detail::require(x != nullptr, "binarize_activations: null input");
  detail::require_addressable(t, ldx, n, sizeof(float), "binarize_activations: input");
  if (out.bits.rows() != t || out.bits.cols() != n || out.bits.is_borrowed())
    out.bits = BitMatrix(t, n);
  out.scale.assign(t, 0.0f);
  const MutableBitMatrixView bits = out.bits.mutable_view();
  for (std::size_t i = 0; i < t; ++i) {
    const float* xi = x + i * ldx;
    std::uint64_t* row = bits.row(i);
    double abs_sum = 0.0;
    for (std::size_t w = 0; w * 64 < n; ++w) {
      const std::size_t end = std::min<std::size_t>(64, n - w * 64);
      std::uint64_t word = 0;
      float part = 0.0f;
      for (std::size_t b = 0; b < end; ++b) {
        const float v = xi[w * 64 + b];
        word |= static_cast<std::uint64_t>(v < 0.0f) << b;
        part += std::fabs(v);
      }
      if (!(part <= 3.40282347e38f)) {
        for (std::size_t b = 0; b < end; ++b)
          detail::require(std::isfinite(xi[w * 64 + b]), "binarize_activations: token ", i,
                          " feature ", w * 64 + b, " is ", xi[w * 64 + b],
                          " (activations must be finite)");
      }
      row[w] = word;
      abs_sum += static_cast<double>(part);
    }
    out.scale[i] = static_cast<float>(abs_sum / static_cast<double>(n));
  }
}

/// `binarize_activations` into a new object.
inline BinaryActivations binarize_activations(const float* x, std::size_t ldx, std::size_t t,
                                              std::size_t n) {
  BinaryActivations out;
  binarize_activations(x, ldx, t, n, out);
  return out;
}

/// Binarizes a float batch (tokens x features, row-major), as the pointer overload: signs and
/// scale_i = mean_l |x_il| (the L2-optimal scale of a sign approximation). Throws
/// `InvalidArgument` for an empty or non-finite x.
inline BinaryActivations binarize_activations(
    const Eigen::Ref<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>&
        x) {
  detail::require(x.rows() > 0 && x.cols() > 0, "binarize_activations: empty input ", x.rows(),
                  " x ", x.cols());
  return binarize_activations(x.data(), static_cast<std::size_t>(x.outerStride()),
                              static_cast<std::size_t>(x.rows()),
                              static_cast<std::size_t>(x.cols()));
}

/// The float output of an XNOR product: y(i, j) = c(i, j) * row_scale[i] * col_scale[j],
/// for i < t, j < m (c row stride `ldc`, y row stride `ldy`). A null scale means all ones.
/// Typically row_scale = the tokens' `BinaryActivations::scale` and col_scale = the layer's
/// per-output scale. Throws `InvalidArgument` for ldc or ldy < m or null c or y with t, m > 0.
inline void xnor_output_to_float(const std::int32_t* c, std::size_t ldc, std::size_t t,
                                 std::size_t m, const float* row_scale, const float* col_scale,
                                 float* y, std::size_t ldy) {
  detail::require(ldc >= m && ldy >= m, "xnor_output_to_float: ldc ", ldc, " and ldy ", ldy,
                  " must be >= ", m, " outputs");
  detail::require(t == 0 || m == 0 || (c != nullptr && y != nullptr),
                  "xnor_output_to_float: null input or output");
  detail::require_addressable(m == 0 ? 0 : t, ldc, m, sizeof(std::int32_t),
                              "xnor_output_to_float: input");
  detail::require_addressable(m == 0 ? 0 : t, ldy, m, sizeof(float),
                              "xnor_output_to_float: output");
  for (std::size_t i = 0; i < t; ++i) {
    const float rs = row_scale != nullptr ? row_scale[i] : 1.0f;
    const std::int32_t* ci = c + i * ldc;
    float* yi = y + i * ldy;
    if (col_scale != nullptr)
      for (std::size_t j = 0; j < m; ++j) yi[j] = static_cast<float>(ci[j]) * rs * col_scale[j];
    else
      for (std::size_t j = 0; j < m; ++j) yi[j] = static_cast<float>(ci[j]) * rs;
  }
}

/// The XNOR output thresholded back to packed bits for the next Boolean layer:
/// bit(i, j) = 1 (the value -1) where c(i, j) * row_scale[i] * col_scale[j] < threshold[j],
/// else 0 (+1). Null scales mean all ones, a null threshold means all zeros (plain sign).
/// `out` becomes t x m (reused when already that shape). Throws `InvalidArgument` for
/// ldc < m, t == 0, m == 0 or a null c.
inline void xnor_output_to_bits(const std::int32_t* c, std::size_t ldc, std::size_t t,
                                std::size_t m, const float* row_scale, const float* col_scale,
                                const float* threshold, BitMatrix& out) {
  detail::require(t > 0 && m > 0, "xnor_output_to_bits: shape must be positive, got ", t, " x ", m);
  detail::require(ldc >= m, "xnor_output_to_bits: ldc ", ldc, " < ", m, " outputs");
  detail::require(c != nullptr, "xnor_output_to_bits: null input");
  detail::require_addressable(t, ldc, m, sizeof(std::int32_t), "xnor_output_to_bits: input");
  if (out.rows() != t || out.cols() != m || out.is_borrowed()) out = BitMatrix(t, m);
  const MutableBitMatrixView bits = out.mutable_view();
  for (std::size_t i = 0; i < t; ++i) {
    const float rs = row_scale != nullptr ? row_scale[i] : 1.0f;
    const std::int32_t* ci = c + i * ldc;
    std::uint64_t* row = bits.row(i);
    for (std::size_t w = 0; w * 64 < m; ++w) {
      const std::size_t end = std::min<std::size_t>(64, m - w * 64);
      std::uint64_t word = 0;
      for (std::size_t b = 0; b < end; ++b) {
        const std::size_t j = w * 64 + b;
        const float v =
            static_cast<float>(ci[j]) * rs * (col_scale != nullptr ? col_scale[j] : 1.0f);
        const float th = threshold != nullptr ? threshold[j] : 0.0f;
        word |= static_cast<std::uint64_t>(v < th) << b;
      }
      row[w] = word;
    }
  }
}

}  // namespace mbok
