#pragma once
/// \file
/// Losses for distillation and pretraining, each with its gradient (method.md section 4).
/// Inputs are row-major batches, one token per row. Every loss is a mean over tokens (MSE:
/// over elements), computed in double with log-sum-exp, so large logits neither overflow nor
/// underflow. KL and CE run rows in parallel (`parallel_for`) and sum the rows' losses in row
/// order, so results do not depend on the number of threads. Bad shapes, an empty batch, a
/// non-finite input or a bad temperature or target throw `InvalidArgument`.
///
///     KL:  L = (1 / t) sum_i sum_c p_ic (log p_ic - log q_ic),
///          p = softmax(teacher / T), q = softmax(student / T)
///          dL/dstudent_ic = (q_ic - p_ic) / (T t)
///          (no T^2 factor; multiply the loss and gradient by T^2 for Hinton's scaling)
///     MSE: L = (1 / (t d)) sum (student - teacher)^2
///          dL/dstudent = 2 (student - teacher) / (t d)
///     CE:  L = (1 / t) sum_i -log softmax(logits_i)[target_i]
///          dL/dlogits_ic = (softmax(logits_i)_c - [c == target_i]) / t

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "error.hpp"
#include "parallel.hpp"

namespace mbok {

namespace detail {

template <typename A, typename B>
void check_same_batch(const A& a, const B& b, const char* loss, const char* a_name,
                      const char* b_name) {
  require(a.rows() > 0 && a.cols() > 0, loss, ": ", a_name, " is empty (", a.rows(), " x ",
          a.cols(), ")");
  require(a.rows() == b.rows() && a.cols() == b.cols(), loss, ": ", b_name, " is ", b.rows(), " x ",
          b.cols(), ", ", a_name, " is ", a.rows(), " x ", a.cols());
  require(a.allFinite(), loss, ": ", a_name, " is not finite");
  require(b.allFinite(), loss, ": ", b_name, " is not finite");
}

// log softmax of one row of logits scaled by 1 / temperature, in double, into `out` (which
// keeps its buffer from row to row once sized).
template <typename Row>
void log_softmax_row(const Row& row, double inv_temperature, Eigen::VectorXd& out) {
  out = row.transpose().template cast<double>() * inv_temperature;
  const double peak = out.maxCoeff();
  const double lse = peak + std::log((out.array() - peak).exp().sum());
  out.array() -= lse;
}

// Rows per chunk of `parallel_for`: a row of a few hundred classes costs about a microsecond,
// so small batches stay on the calling thread.
inline constexpr std::size_t kLossRowsPerChunk = 64;

// Calls `row_loss(i, buffers)` for every row, in parallel chunks (each with its own
// `Buffers`), and returns the sum of the rows' losses taken in row order, so the result does
// not depend on the number of threads.
template <typename Buffers, typename RowLoss>
double sum_over_rows(Eigen::Index rows, RowLoss&& row_loss) {
  std::vector<double> losses(static_cast<std::size_t>(rows));
  parallel_for(0, losses.size(), kLossRowsPerChunk, [&](std::size_t begin, std::size_t end) {
    Buffers buffers;
    for (std::size_t i = begin; i < end; ++i)
      losses[i] = row_loss(static_cast<Eigen::Index>(i), buffers);
  });
  double total = 0;
  for (double l : losses) total += l;
  return total;
}

template <typename Derived>
using GradientOf =
    Eigen::Matrix<typename Derived::Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

}  // namespace detail

/// KL(softmax(teacher / T) || softmax(student / T)), averaged over tokens (rows); `teacher`
/// and `student` are tokens x classes. When `grad` is not null it is resized to the
/// student's shape and receives dL/dstudent. Rows run in parallel (`parallel_for`); the
/// result does not depend on the number of threads.
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
  struct Buffers {
    Eigen::VectorXd lp, lq, p;
  };
  const double total =
      detail::sum_over_rows<Buffers>(student.rows(), [&](Eigen::Index i, Buffers& b) {
        detail::log_softmax_row(teacher.row(i), inv_t, b.lp);
        detail::log_softmax_row(student.row(i), inv_t, b.lq);
        b.p = b.lp.array().exp();
        if (grad)
          grad->row(i) = ((b.lq.array().exp() - b.p.array()) * (inv_t / tokens))
                             .matrix()
                             .transpose()
                             .template cast<S>();
        return (b.p.array() * (b.lp - b.lq).array()).sum();
      });
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
/// [0, classes); any integer type, e.g. `std::uint8_t` for byte-level models), averaged over
/// tokens. When `grad` is not null it receives dL/dlogits. Rows run in parallel
/// (`parallel_for`); the result does not depend on the number of threads.
template <typename Derived, typename Target = std::int32_t>
double cross_entropy(const Eigen::MatrixBase<Derived>& logits, const std::vector<Target>& targets,
                     detail::GradientOf<Derived>* grad = nullptr) {
  static_assert(std::is_integral_v<Target>, "cross_entropy: targets are class indices");
  detail::require(logits.rows() > 0 && logits.cols() > 0, "cross_entropy: logits are empty (",
                  logits.rows(), " x ", logits.cols(), ")");
  detail::require(static_cast<std::size_t>(logits.rows()) == targets.size(),
                  "cross_entropy: ", targets.size(), " targets for ", logits.rows(), " tokens");
  detail::require(logits.allFinite(), "cross_entropy: logits are not finite");
  for (std::size_t i = 0; i < targets.size(); ++i) {
    // Printed as a number (a std::uint8_t target would print as a character).
    const auto target = static_cast<long long>(targets[i]);
    detail::require(target >= 0 && target < logits.cols(), "cross_entropy: target ", target,
                    " of token ", i, " is outside [0, ", logits.cols(), ")");
  }
  using S = typename Derived::Scalar;
  const auto tokens = static_cast<double>(logits.rows());
  if (grad) grad->resize(logits.rows(), logits.cols());
  struct Buffers {
    Eigen::VectorXd lp, g;
  };
  const double total =
      detail::sum_over_rows<Buffers>(logits.rows(), [&](Eigen::Index i, Buffers& b) {
        detail::log_softmax_row(logits.row(i), 1.0, b.lp);
        const auto target = static_cast<Eigen::Index>(targets[static_cast<std::size_t>(i)]);
        if (grad) {
          b.g = b.lp.array().exp();
          b.g(target) -= 1.0;
          grad->row(i) = (b.g / tokens).transpose().template cast<S>();
        }
        return -b.lp(target);
      });
  return total / tokens;
}

}  // namespace mbok
