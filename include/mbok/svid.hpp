#pragma once
/// \file
/// Successive residual SVID (method.md section 2): the data-free initialization of K Boolean
/// kernels from a dense weight W (m x n),
///
///     R = W ;  for k = 1..K:  B_k = sign(R)   (sign(0) = +1)
///                             (u, sigma, v) = top singular triple of |R|   (u, v >= 0)
///                             s_out_k = sqrt(sigma) u ;  s_in_k = sqrt(sigma) v
///                             R = R - B_k (.) s_out_k s_in_k^T
///
/// The top triple comes from power iteration on |R|, started from the row and column means
/// of |R| (positive, so the start is never orthogonal to the Perron vector, and the result
/// is deterministic). K = 1 is the SVID of OneBit.

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "bit_matrix.hpp"
#include "error.hpp"
#include "multi_kernel_weights.hpp"
#include "parallel.hpp"

namespace mbok {

/// Options of `svid`.
struct SvidOptions {
  /// Power iteration stops when the unit right singular vector moves by less than
  /// `tolerance` (2-norm) between two iterations; the tolerance is floored at what `Scalar`
  /// resolves, 8 sqrt(n) epsilon (about 1e-4 for float at n = 11008) ...
  double tolerance = 1e-6;
  /// ... or after this many iterations (>= 1).
  int max_iterations = 200;
};

/// The result of `svid`: the kernels and, for each k, what it cost to find them.
template <typename Scalar = float>
struct SvidResult {
  MultiKernelWeights<Scalar> weights;
  /// ||W - sum_{j<=k} B_j (.) s_out_j s_in_j^T||_F / ||W||_F after kernel k (K entries).
  std::vector<double> relative_residual;
  /// Power iterations used for kernel k (K entries).
  std::vector<int> iterations;
  /// The top singular value sigma_k of |R| at step k (K entries).
  std::vector<double> singular_values;
};

namespace detail {

// y = A x over row blocks on parallel_for (Eigen runs matrix-vector products on one thread).
template <typename Mat, typename Vec>
void parallel_gemv(const Mat& a, const Vec& x, Vec& y) {
  const std::size_t rows = static_cast<std::size_t>(a.rows());
  parallel_for(0, rows, 256, [&](std::size_t b, std::size_t e) {
    const auto eb = static_cast<Eigen::Index>(b), len = static_cast<Eigen::Index>(e - b);
    y.segment(eb, len).noalias() = a.middleRows(eb, len) * x;
  });
}

// y = A^T x: each thread sums its own row block's contribution, then the partial sums add.
template <typename Mat, typename Vec>
void parallel_gemv_transposed(const Mat& a, const Vec& x, Vec& y) {
  const std::size_t rows = static_cast<std::size_t>(a.rows());
  const std::size_t chunks = static_cast<std::size_t>(std::max(1, max_threads()));
  std::vector<Vec> partial(chunks, Vec::Zero(a.cols()));
  const std::size_t per = (rows + chunks - 1) / chunks;
  parallel_for(0, chunks, 1, [&](std::size_t c0, std::size_t c1) {
    for (std::size_t c = c0; c < c1; ++c) {
      const std::size_t b = std::min(rows, c * per), e = std::min(rows, b + per);
      if (e <= b) continue;
      const auto eb = static_cast<Eigen::Index>(b), len = static_cast<Eigen::Index>(e - b);
      partial[c].noalias() = a.middleRows(eb, len).transpose() * x.segment(eb, len);
    }
  });
  y = partial[0];
  for (std::size_t c = 1; c < chunks; ++c) y += partial[c];
}

}  // namespace detail

/// Successive residual SVID of `w` (m x n, finite, not all zero) into `num_kernels` kernels.
/// Computes in `Scalar` precision (float or double). Throws `InvalidArgument` for K = 0, an
/// empty or non-finite `w`, or bad options.
template <typename Scalar = float, typename Derived>
SvidResult<Scalar> svid(const Eigen::MatrixBase<Derived>& w, std::size_t num_kernels,
                        const SvidOptions& options = {}) {
  using RowMat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vec = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
  detail::require(num_kernels > 0, "svid: number of kernels must be > 0, got 0");
  detail::require(w.rows() > 0 && w.cols() > 0, "svid: weight must be non-empty, got ", w.rows(),
                  " x ", w.cols());
  detail::require(options.max_iterations >= 1, "svid: max_iterations must be >= 1, got ",
                  options.max_iterations);
  detail::require(std::isfinite(options.tolerance) && options.tolerance >= 0,
                  "svid: tolerance must be finite and >= 0, got ", options.tolerance);
  const std::size_t m = static_cast<std::size_t>(w.rows()), n = static_cast<std::size_t>(w.cols());

  RowMat r = w.template cast<Scalar>();
  detail::require(r.allFinite(), "svid: weight (", m, " x ", n, ") is not finite");
  const double w_norm = r.template cast<double>().norm();
  detail::require(w_norm > 0 && std::isfinite(w_norm), "svid: weight norm is ", w_norm);

  const double tol = std::max(options.tolerance, 8.0 * std::sqrt(static_cast<double>(n)) *
                                                     static_cast<double>(Eigen::NumTraits<Scalar>::epsilon()));
  SvidResult<Scalar> out;
  out.weights = MultiKernelWeights<Scalar>(m, n);
  RowMat a(r.rows(), r.cols());
  Vec u(r.rows()), v(r.cols()), v_prev;
  for (std::size_t k = 0; k < num_kernels; ++k) {
    BitMatrix bits(m, n);
    {
      MutableBitMatrixView bv = bits.mutable_view();
      parallel_for(0, m, 64, [&](std::size_t i0, std::size_t i1) {
        for (std::size_t i = i0; i < i1; ++i) {
          const Scalar* ri = r.data() + i * n;
          std::uint64_t* row = bv.row(i);
          for (std::size_t word = 0; word * 64 < n; ++word) {
            std::uint64_t bits_word = 0;
            const std::size_t end = std::min<std::size_t>(64, n - word * 64);
            for (std::size_t b = 0; b < end; ++b)
              bits_word |= static_cast<std::uint64_t>(ri[word * 64 + b] < 0) << b;
            row[word] = bits_word;
          }
        }
      });
    }
    a = r.cwiseAbs();
    // Start from the column means of |R| (positive unless |R| is zero).
    v = a.colwise().mean().transpose();
    u.setZero();
    Scalar sigma = 0;
    int it = 0;
    const double v0 = v.norm();
    if (v0 > 0) {
      v /= static_cast<Scalar>(v0);
      for (it = 1; it <= options.max_iterations; ++it) {
        v_prev = v;
        detail::parallel_gemv(a, v, u);
        const Scalar un = u.norm();
        if (!(un > 0)) break;
        u /= un;
        detail::parallel_gemv_transposed(a, u, v);
        const Scalar s = v.norm();
        if (!(s > 0)) break;
        v /= s;
        const double change = static_cast<double>((v - v_prev).norm());
        const bool settled = it > 1 && change <= tol;
        sigma = s;
        if (settled) break;
      }
      it = std::min(it, options.max_iterations);
    }
    if (!(sigma > 0)) {  // R == 0: the kernel adds nothing
      u.setZero();
      v.setZero();
      sigma = 0;
    }
    const Scalar root = std::sqrt(sigma);
    Vec s_out = root * u, s_in = root * v;
    // R = sign(R) (.) (|R| - s_out s_in^T), with the residual's squared norm on the way.
    std::vector<double> partial(m, 0.0);
    parallel_for(0, m, 64, [&](std::size_t i0, std::size_t i1) {
      for (std::size_t i = i0; i < i1; ++i) {
        Scalar* ri = r.data() + i * n;
        const Scalar* ai = a.data() + i * n;
        const Scalar so = s_out(static_cast<Eigen::Index>(i));
        double sq = 0;
        for (std::size_t j = 0; j < n; ++j) {
          const Scalar mag = ai[j] - so * s_in(static_cast<Eigen::Index>(j));
          ri[j] = ri[j] < 0 ? -mag : mag;
          sq += static_cast<double>(mag) * static_cast<double>(mag);
        }
        partial[i] = sq;
      }
    });
    double sq = 0;
    for (double p : partial) sq += p;
    out.weights.add_kernel(std::move(bits), std::move(s_out), std::move(s_in));
    out.relative_residual.push_back(std::sqrt(sq) / w_norm);
    out.iterations.push_back(it);
    out.singular_values.push_back(static_cast<double>(sigma));
  }
  return out;
}

}  // namespace mbok
