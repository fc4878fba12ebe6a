#pragma once
// Losses on logits (rows x 256) with their gradients: next-byte cross-entropy for
// pretraining and the distillation objective (KL from the teacher plus hidden-state MSE).

#include <cmath>
#include <vector>

#include "common.hpp"

namespace tiny {

namespace detail {
template <typename T>
inline void log_softmax_row(const T* z, Index n, std::vector<double>& out) {
  double mx = z[0];
  for (Index j = 1; j < n; ++j) mx = std::max(mx, double(z[j]));
  double sum = 0;
  for (Index j = 0; j < n; ++j) sum += std::exp(double(z[j]) - mx);
  const double lse = mx + std::log(sum);
  out.resize(std::size_t(n));
  for (Index j = 0; j < n; ++j) out[std::size_t(j)] = double(z[j]) - lse;
}
}  // namespace detail

/// Mean cross-entropy (nats per token) of `targets` under softmax(logits); when `grad` is
/// given, writes dL/dlogits.
template <typename T>
double cross_entropy(const Mat<T>& logits, const std::vector<std::uint8_t>& targets, Mat<T>* grad) {
  const Index n = logits.rows(), v = logits.cols();
  if (grad) grad->resize(n, v);
  double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static) if (n > 256)
  for (Index i = 0; i < n; ++i) {
    std::vector<double> lp;
    detail::log_softmax_row(logits.row(i).data(), v, lp);
    const auto t = targets[std::size_t(i)];
    total -= lp[t];
    if (grad) {
      for (Index j = 0; j < v; ++j) (*grad)(i, j) = T(std::exp(lp[std::size_t(j)]) / double(n));
      (*grad)(i, t) -= T(1.0 / double(n));
    }
  }
  return total / double(n);
}

/// Mean over rows of KL(softmax(teacher) || softmax(student)); when `grad` is given,
/// writes dL/dstudent.
template <typename T>
double kl_divergence(const Mat<T>& teacher, const Mat<T>& student, Mat<T>* grad) {
  const Index n = student.rows(), v = student.cols();
  if (grad) grad->resize(n, v);
  double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static) if (n > 256)
  for (Index i = 0; i < n; ++i) {
    std::vector<double> lt, ls;
    detail::log_softmax_row(teacher.row(i).data(), v, lt);
    detail::log_softmax_row(student.row(i).data(), v, ls);
    for (Index j = 0; j < v; ++j) {
      const double pt = std::exp(lt[std::size_t(j)]);
      total += pt * (lt[std::size_t(j)] - ls[std::size_t(j)]);
      if (grad) (*grad)(i, j) = T((std::exp(ls[std::size_t(j)]) - pt) / double(n));
    }
  }
  return total / double(n);
}

/// weight * mean squared difference; when `grad` is given, writes d/dstudent.
template <typename T>
double mse(const Mat<T>& teacher, const Mat<T>& student, double weight, Mat<T>* grad) {
  const double count = double(student.size());
  const Mat<T> diff = student - teacher;
  if (grad) *grad = diff * T(2.0 * weight / count);
  return weight * diff.template cast<double>().squaredNorm() / count;
}

}  // namespace tiny
