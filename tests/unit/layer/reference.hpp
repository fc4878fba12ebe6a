#pragma once
// Naive references for the layer tests: dense +-1 matrices and loops in double, sharing no
// code with the shipped layer (no packed kernels, no Eigen products on the hot path).

#include <mbok/multi_kernel_weights.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <vector>

namespace mbok::test {

using RowMatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A multi-kernel weight in plain doubles: signs as +-1 doubles (perturbable), scales.
struct DenseKernels {
  std::vector<RowMatrixD> b;  // m x n, entries +-1 (or perturbed)
  std::vector<Eigen::VectorXd> s_out, s_in;
  Eigen::VectorXd bias;  // empty = no bias

  template <typename Scalar>
  static DenseKernels of(const MultiKernelWeights<Scalar>& w) {
    DenseKernels d;
    for (std::size_t k = 0; k < w.num_kernels(); ++k) {
      RowMatrixD s(static_cast<Eigen::Index>(w.out_features()), static_cast<Eigen::Index>(w.in_features()));
      for (Eigen::Index i = 0; i < s.rows(); ++i)
        for (Eigen::Index j = 0; j < s.cols(); ++j)
          s(i, j) = w.kernel(k).sign(static_cast<std::size_t>(i), static_cast<std::size_t>(j));
      d.b.push_back(s);
      d.s_out.push_back(w.s_out(k).template cast<double>());
      d.s_in.push_back(w.s_in(k).template cast<double>());
    }
    return d;
  }

  // Y(i, j) = sum_k s_out_k(j) sum_l b_k(j, l) s_in_k(l) X(i, l) + bias(j)
  RowMatrixD forward(const RowMatrixD& x) const {
    const Eigen::Index t = x.rows(), m = b[0].rows(), n = b[0].cols();
    RowMatrixD y(t, m);
    for (Eigen::Index i = 0; i < t; ++i)
      for (Eigen::Index j = 0; j < m; ++j) {
        double acc = bias.size() ? bias(j) : 0.0;
        for (std::size_t k = 0; k < b.size(); ++k) {
          double dot = 0;
          for (Eigen::Index l = 0; l < n; ++l) dot += b[k](j, l) * s_in[k](l) * x(i, l);
          acc += s_out[k](j) * dot;
        }
        y(i, j) = acc;
      }
    return y;
  }

  // Q_k(j, l) = sum_i Z(i, j) s_out_k(j) X(i, l) s_in_k(l), by loops.
  RowMatrixD signal(std::size_t k, const RowMatrixD& x, const RowMatrixD& z) const {
    RowMatrixD q(b[k].rows(), b[k].cols());
    for (Eigen::Index j = 0; j < q.rows(); ++j)
      for (Eigen::Index l = 0; l < q.cols(); ++l) {
        double acc = 0;
        for (Eigen::Index i = 0; i < x.rows(); ++i) acc += z(i, j) * x(i, l);
        q(j, l) = acc * s_out[k](j) * s_in[k](l);
      }
    return q;
  }
};

// sum(Y (.) C): a loss whose gradient with respect to Y is C.
inline double contract(const RowMatrixD& y, const RowMatrixD& c) { return (y.array() * c.array()).sum(); }

// Central finite difference of f at `value` (changed and restored in place).
template <typename F>
double central_difference(double& value, double h, F&& f) {
  const double saved = value;
  value = saved + h;
  const double up = f();
  value = saved - h;
  const double down = f();
  value = saved;
  return (up - down) / (2 * h);
}

}  // namespace mbok::test
