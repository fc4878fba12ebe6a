#pragma once
/// \file
/// Losses for distillation and pretraining, each with its gradient (method.md section 4).
/// Inputs are row-major batches, one token per row. Every loss is a mean over tokens (MSE:
/// over elements), computed in double with log-sum-exp, so large logits neither overflow nor
/// underflow. Bad shapes, an empty batch, a non-finite input or a bad temperature or target
/// throw `InvalidArgument`.
///
///     KL:  L = (1 / t) sum_i sum_c p_ic (log p_ic - log q_ic),
///          p = softmax(teacher / T), q = softmax(student / T)
///          dL/dstudent_ic = (q_ic - p_ic) / (T t)
///          (no T^2 factor; multiply the loss and gradient by T^2 for Hinton's scaling)
///     MSE: L = (1 / (t d)) sum (student - teacher)^2 ;  dL/dstudent = 2 (student - teacher) / (t d)
///     CE:  L = (1 / t) sum_i -log softmax(logits_i)[target_i]
///          dL/dlogits_ic = (softmax(logits_i)_c - [c == target_i]) / t

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "error.hpp"

namespace mbok {

namespace detail {

template <typename A, typename B>
void check_same_batch(const A& a, const B& b, const char* loss, const char* a_name,
                      const char* b_name) {
  require(a.rows() > 0 && a.cols() > 0, loss, ": ", a_name, " is empty (", a.rows(), " x ",
          a.cols(), ")");
  require(a.rows() == b.rows() && a.cols() == b.cols(), loss, ": ", b_name, " is ", b.rows(),
          " x ", b.cols(), ", ", a_name, " is ", a.rows(), " x ", a.cols());
  require(a.allFinite(), loss, ": ", a_name, " is not finite");
  require(b.allFinite(), loss, ": ", b_name, " is not finite");
}

// log softmax of one row of logits scaled by 1 / temperature, in double.
template <typename Row>
Eigen::VectorXd log_softmax_row(const Row& row, double inv_temperature) {
  Eigen::VectorXd z = row.transpose().template cast<double>() * inv_temperature;
  const double peak = z.maxCoeff();
  const double lse = peak + std::log((z.array() - peak).exp().sum());
  return z.array() - lse;
}

template <typename Derived>
using GradientOf = Eigen::Matrix<typename Derived::Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

}  // namespace detail

/// KL(softmax(teacher / T) || softmax(student / T)), averaged over tokens (rows); `teacher`
/// and `student` are tokens x classes. When `grad` is not null it is resized to the
/// student's shape and receives dL/dstudent.
template <typename DerivedT, typename DerivedS>
double kl_divergence(const Eigen::MatrixBase<DerivedT>& teacher,
                     const Eigen::MatrixBase<DerivedS>& student, double temperature = 1.0,
                     detail::GradientOf<DerivedS>* grad = nullptr) {
  detail::check_same_batch(student, teacher, "kl_divergence", "student logits", "teacher logits");
  detail::require(std::isfinite(temperature) && temperature > 0,
                  "kl_divergence: temperature must be finite and > 0, got ", temperature);
  using S = typename DerivedS::Scalar;
  const double inv_t = 1.0 / temperature;
  const auto tokens = static_cast<double>(student.rows());
  if (grad) grad->resize(student.rows(), student.cols());
  double total = 0;
  for (Eigen::Index i = 0; i < student.rows(); ++i) {
    const Eigen::VectorXd lp = detail::log_softmax_row(teacher.row(i), inv_t);
    const Eigen::VectorXd lq = detail::log_softmax_row(student.row(i), inv_t);
    const Eigen::VectorXd p = lp.array().exp();
    total += (p.array() * (lp - lq).array()).sum();
    if (grad)
      grad->row(i) = ((lq.array().exp() - p.array()) * (inv_t / tokens)).matrix().transpose().template cast<S>();
  }
  return total / tokens;
}

/// Mean squared error over all elements of `student` and `teacher` (same shape, e.g.
/// hidden states tokens x features). When `grad` is not null it receives dL/dstudent.
template <typename DerivedT, typename DerivedS>
double mse(const Eigen::MatrixBase<DerivedT>& teacher, const Eigen::MatrixBase<DerivedS>& student,
           detail::GradientOf<DerivedS>* grad = nullptr) {
  detail::check_same_batch(student, teacher, "mse", "student", "teacher");
  using S = typename DerivedS::Scalar;
  const auto count = static_cast<double>(student.size());
  const Eigen::MatrixXd diff = student.template cast<double>() - teacher.template cast<double>();
  if (grad) *grad = (diff * (2.0 / count)).template cast<S>();
  return diff.squaredNorm() / count;
}

/// Cross-entropy of `logits` (tokens x classes) with integer targets (one per token, each in
/// [0, classes)), averaged over tokens. When `grad` is not null it receives dL/dlogits.
template <typename Derived>
double cross_entropy(const Eigen::MatrixBase<Derived>& logits, const std::vector<std::int32_t>& targets,
                     detail::GradientOf<Derived>* grad = nullptr) {
  detail::require(logits.rows() > 0 && logits.cols() > 0, "cross_entropy: logits are empty (",
                  logits.rows(), " x ", logits.cols(), ")");
  detail::require(static_cast<std::size_t>(logits.rows()) == targets.size(), "cross_entropy: ",
                  targets.size(), " targets for ", logits.rows(), " tokens");
  detail::require(logits.allFinite(), "cross_entropy: logits are not finite");
  for (std::size_t i = 0; i < targets.size(); ++i)
    detail::require(targets[i] >= 0 && targets[i] < logits.cols(), "cross_entropy: target ",
                    targets[i], " of token ", i, " is outside [0, ", logits.cols(), ")");
  using S = typename Derived::Scalar;
  const auto tokens = static_cast<double>(logits.rows());
  if (grad) grad->resize(logits.rows(), logits.cols());
  double total = 0;
  for (Eigen::Index i = 0; i < logits.rows(); ++i) {
    const Eigen::VectorXd lp = detail::log_softmax_row(logits.row(i), 1.0);
    const auto target = static_cast<Eigen::Index>(targets[static_cast<std::size_t>(i)]);
    total -= lp(target);
    if (grad) {
      Eigen::VectorXd g = lp.array().exp();
      g(target) -= 1.0;
      grad->row(i) = (g / tokens).transpose().template cast<S>();
    }
  }
  return total / tokens;
}

}  // namespace mbok
