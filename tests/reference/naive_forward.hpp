#pragma once
// Naive reference of the fused multi-kernel forward with float activations, element by
// element from the +-1 values and the scales, accumulated in double. Shares nothing with the
// shipped kernels.

#include <mbok/bit_matrix.hpp>
#include <mbok/multi_kernel_weights.hpp>

#include <cmath>
#include <cstddef>
#include <vector>

namespace mbok::test {

// The +-1 values of `b` as doubles, row-major (rows x cols).
inline std::vector<double> unpack_signs(const BitMatrixView& b) {
  std::vector<double> s(b.rows() * b.cols());
  for (std::size_t i = 0; i < b.rows(); ++i)
    for (std::size_t j = 0; j < b.cols(); ++j) s[i * b.cols() + j] = b.sign(i, j);
  return s;
}

// Y (t x m) = sum_k ((X (.) s_in_k^T) B_k^T) (.) s_out_k^T, X row-major with stride ldx.
// `bound` (t x m) receives sum_k |s_out_k[j]| sum_l |x_il s_in_k[l]|, the scale of the
// rounding error of any summation order.
inline std::vector<double> naive_multi_kernel_forward(const MultiKernelWeights<float>& w,
                                                      const float* x, std::size_t ldx,
                                                      std::size_t t,
                                                      std::vector<double>* bound = nullptr) {
  const std::size_t m = w.out_features(), n = w.in_features();
  std::vector<double> y(t * m, 0.0);
  if (bound) bound->assign(t * m, 0.0);
  for (std::size_t k = 0; k < w.num_kernels(); ++k) {
    const std::vector<double> b = unpack_signs(w.kernel_view(k));
    const auto& s_in = w.s_in(k);
    const auto& s_out = w.s_out(k);
    for (std::size_t i = 0; i < t; ++i)
      for (std::size_t j = 0; j < m; ++j) {
        double dot = 0, abs_dot = 0;
        for (std::size_t l = 0; l < n; ++l) {
          const double xs = static_cast<double>(x[i * ldx + l]) *
                            static_cast<double>(s_in(static_cast<Eigen::Index>(l)));
          dot += xs * b[j * n + l];
          abs_dot += std::fabs(xs);
        }
        const double so = s_out(static_cast<Eigen::Index>(j));
        y[i * m + j] += so * dot;
        if (bound) (*bound)[i * m + j] += std::fabs(so) * abs_dot;
      }
  }
  return y;
}

}  // namespace mbok::test
