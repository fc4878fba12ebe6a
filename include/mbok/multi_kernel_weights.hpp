#pragma once
/// \file
/// `MultiKernelWeights`: K Boolean kernels of one m x n shape with per-kernel scales,
/// W ~ sum_k B_k (.) (s_out_k s_in_k^T).

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <limits>
#include <utility>
#include <vector>

#include "bit_matrix.hpp"
#include "config.hpp"
#include "error.hpp"

#include "detail/base/checked.hpp"

namespace mbok {
namespace detail {
// Tag of `MultiKernelWeights::add_kernel` for loaders that checked the scales finite at their
// entrance (kernel_tensors.hpp): the shapes are checked, the values not scanned again.
struct ScalesChecked {};
}  // namespace detail

/// K packed kernels B_k (m x n, +-1) with scale vectors s_out_k (m) and s_in_k (n).
/// `Scalar` is the scale type (float by default).
template <typename Scalar = float>
class MultiKernelWeights {
 public:
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;

  /// An empty container (K = 0) for a later `add_kernel`.
  MultiKernelWeights() = default;

  /// A container for kernels of shape `out_features` x `in_features` (both > 0).
  MultiKernelWeights(std::size_t out_features, std::size_t in_features)
      : m_(out_features), n_(in_features) {
    detail::require(m_ > 0 && n_ > 0, "MultiKernelWeights: shape must be positive, got ", m_, " x ",
                    n_);
    // reconstruct() holds m x n scales as one Eigen matrix: the product must be countable
    // (and each side an Eigen::Index); the kernels themselves are checked by BitMatrix.
    constexpr auto kMaxIndex = static_cast<std::size_t>(std::numeric_limits<Eigen::Index>::max());
    detail::require(m_ <= kMaxIndex && n_ <= kMaxIndex, "MultiKernelWeights: shape ", m_, " x ", n_,
                    " is too large");
    detail::mul_or_throw({m_, n_, sizeof(Scalar)}, "MultiKernelWeights: shape ", m_, " x ", n_);
  }

  /// Appends kernel k = K: `bits` (m x n), `s_out` (m) and `s_in` (n), all finite.
  /// Throws `InvalidArgument` naming the part whose shape or values are wrong.
  void add_kernel(BitMatrix bits, Vector s_out, Vector s_in) {
    const std::size_t k = check_kernel(bits, s_out, s_in);
    detail::require(s_out.allFinite(), "MultiKernelWeights kernel ", k, ": s_out is not finite");
    detail::require(s_in.allFinite(), "MultiKernelWeights kernel ", k, ": s_in is not finite");
    push_kernel(std::move(bits), std::move(s_out), std::move(s_in));
  }
  /// The same for scales a loader has checked finite at its entrance (kernel_tensors.hpp):
  /// the shapes are checked, the values not scanned again.
  void add_kernel(BitMatrix bits, Vector s_out, Vector s_in, detail::ScalesChecked) {
    check_kernel(bits, s_out, s_in);
    push_kernel(std::move(bits), std::move(s_out), std::move(s_in));
  }

  /// Number of kernels K.
  std::size_t num_kernels() const noexcept { return kernels_.size(); }
  std::size_t out_features() const noexcept { return m_; }
  std::size_t in_features() const noexcept { return n_; }

  const BitMatrix& kernel(std::size_t k) const { return kernels_.at(check(k)); }
  BitMatrix& kernel(std::size_t k) { return kernels_.at(check(k)); }
  BitMatrixView kernel_view(std::size_t k) const { return kernel(k).view(); }
  MutableBitMatrixView mutable_kernel_view(std::size_t k) { return kernel(k).mutable_view(); }
  const Vector& s_out(std::size_t k) const { return s_out_.at(check(k)); }
  Vector& s_out(std::size_t k) { return s_out_.at(check(k)); }
  const Vector& s_in(std::size_t k) const { return s_in_.at(check(k)); }
  Vector& s_in(std::size_t k) { return s_in_.at(check(k)); }

  /// Dense W = sum_k B_k (.) s_out_k s_in_k^T over the first `k_count` kernels (all by
  /// default), m x n.
  Matrix reconstruct(std::size_t k_count = static_cast<std::size_t>(-1)) const {
    k_count = std::min(k_count, num_kernels());
    Matrix w = Matrix::Zero(static_cast<Eigen::Index>(m_), static_cast<Eigen::Index>(n_));
    for (std::size_t k = 0; k < k_count; ++k)
      w += (kernels_[k].to_signs().template cast<Scalar>().array() *
            (s_out_[k] * s_in_[k].transpose()).array())
               .matrix();
    return w;
  }

  /// ||W - reconstruct()||_F / ||W||_F for a dense m x n reference W (which must be non-zero).
  template <typename Derived>
  double relative_error(const Eigen::MatrixBase<Derived>& w,
                        std::size_t k_count = static_cast<std::size_t>(-1)) const {
    detail::require(
        static_cast<std::size_t>(w.rows()) == m_ && static_cast<std::size_t>(w.cols()) == n_,
        "relative_error: reference must be ", m_, " x ", n_, ", got ", w.rows(), " x ", w.cols());
    const double norm = static_cast<double>(w.template cast<double>().norm());
    detail::require(norm > 0 && std::isfinite(norm), "relative_error: reference norm is ", norm);
    const auto diff =
        (w.template cast<double>() - reconstruct(k_count).template cast<double>()).eval();
    return diff.norm() / norm;
  }

  /// Storage cost per weight in bits: K packed bits plus the K (m + n) scales.
  double bits_per_weight() const noexcept {
    if (m_ == 0 || n_ == 0) return 0.0;
    const double weights = static_cast<double>(m_) * static_cast<double>(n_);
    const double scale_bits =
        static_cast<double>(num_kernels()) * static_cast<double>(m_ + n_) * 8.0 * sizeof(Scalar);
    return static_cast<double>(num_kernels()) + scale_bits / weights;
  }

 private:
  // The shapes of kernel K's parts; returns K.
  std::size_t check_kernel(const BitMatrix& bits, const Vector& s_out, const Vector& s_in) const {
    const std::size_t k = kernels_.size();
    detail::require(m_ > 0, "MultiKernelWeights: shape not set before add_kernel");
    detail::require(bits.rows() == m_ && bits.cols() == n_, "MultiKernelWeights kernel ", k,
                    ": expected ", m_, " x ", n_, " bits, got ", bits.rows(), " x ", bits.cols());
    detail::require(static_cast<std::size_t>(s_out.size()) == m_, "MultiKernelWeights kernel ", k,
                    ": s_out must have ", m_, " entries, got ", s_out.size());
    detail::require(static_cast<std::size_t>(s_in.size()) == n_, "MultiKernelWeights kernel ", k,
                    ": s_in must have ", n_, " entries, got ", s_in.size());
    return k;
  }
  void push_kernel(BitMatrix bits, Vector s_out, Vector s_in) {
    kernels_.push_back(std::move(bits));
    s_out_.push_back(std::move(s_out));
    s_in_.push_back(std::move(s_in));
  }
  std::size_t check(std::size_t k) const {
    detail::require(k < kernels_.size(), "MultiKernelWeights: kernel ", k,
                    " does not exist (K = ", kernels_.size(), ")");
    return k;
  }

  std::size_t m_ = 0;
  std::size_t n_ = 0;
  std::vector<BitMatrix> kernels_;
  std::vector<Vector> s_out_;
  std::vector<Vector> s_in_;
};

}  // namespace mbok
