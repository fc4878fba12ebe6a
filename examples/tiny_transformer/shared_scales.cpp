#include "shared_scales.hpp"

#include <mbok/error.hpp>
#include <mbok/svid.hpp>

#include <cmath>
#include <cstdlib>

namespace tiny {

ScaleRatio parse_ratio(const std::string& text) {
  const auto slash = text.find('/');
  char* end = nullptr;
  ScaleRatio r;
  bool ok = slash != std::string::npos;
  if (ok) {
    const std::string p = text.substr(0, slash), q = text.substr(slash + 1);
    r.p = int(std::strtol(p.c_str(), &end, 10));
    ok = !p.empty() && *end == '\0';
    r.q = int(std::strtol(q.c_str(), &end, 10));
    ok = ok && !q.empty() && *end == '\0';
  }
  if (!ok || r.p <= 0 || r.p >= r.q || r.q + r.p > 127)
    throw mbok::InvalidArgument("ratio '" + text +
                                "': expected p/q with integers 0 < p < q, q + p <= 127 (e.g. 1/2)");
  return r;
}

SharedScaleFit fit_shared_scales(const Eigen::MatrixXf& w, double c, int rounds) {
  if (!(c > 0 && c < 1)) throw mbok::InvalidArgument("fit_shared_scales: c must be in (0, 1)");
  if (rounds < 0) throw mbok::InvalidArgument("fit_shared_scales: rounds must be >= 0");
  const Eigen::MatrixXd a = w.cast<double>().cwiseAbs();
  // The rank-1 scale of one kernel: the top singular pair of |W| (svid checks w).
  const auto init = mbok::svid<double>(w.cast<double>(), 1);
  Eigen::VectorXd s_out = init.weights.s_out(0), s_in = init.weights.s_in(0);
  const double hi = 1 + c, lo = 1 - c;
  // Magnitude levels: the nearest of lo, hi to |W_ij| / (s_out_i s_in_j), i.e. hi where
  // |W_ij| >= s_out_i s_in_j (the midpoint (lo + hi) / 2 is 1). The sign is always sign(W):
  // with non-negative scales it is the better of the two for either level.
  const Eigen::ArrayXXd his = Eigen::ArrayXXd::Constant(a.rows(), a.cols(), hi);
  const Eigen::ArrayXXd los = Eigen::ArrayXXd::Constant(a.rows(), a.cols(), lo);
  Eigen::MatrixXd level;
  auto pick = [&] {
    level = (a.array() >= (s_out * s_in.transpose()).array()).select(his, los).matrix();
  };
  pick();
  for (int round = 0; round < rounds; ++round) {
    // min over s_out of sum_ij (|W_ij| - s_out_i s_in_j l_ij)^2, one row at a time.
    const Eigen::MatrixXd ls_in = level.array().rowwise() * s_in.transpose().array();
    s_out = (a.cwiseProduct(ls_in).rowwise().sum().array() /
             ls_in.cwiseAbs2().rowwise().sum().array().max(1e-300))
                .matrix();
    const Eigen::MatrixXd ls_out = level.array().colwise() * s_out.array();
    s_in = (a.cwiseProduct(ls_out).colwise().sum().array() /
            ls_out.cwiseAbs2().colwise().sum().array().max(1e-300))
               .transpose()
               .matrix();
    pick();
  }
  SharedScaleFit fit;
  const Eigen::ArrayXXd sign = (w.array() >= 0).cast<double>() * 2 - 1;
  fit.b1 = sign.cast<float>().matrix();
  fit.b2 = (level.array() == hi).select(sign, -sign).cast<float>().matrix();
  fit.s_out = s_out.cast<float>();
  fit.s_in = s_in.cast<float>();
  const Eigen::MatrixXd approx =
      ((s_out * s_in.transpose()).array() * level.array() * sign).matrix();
  fit.relative_error = (w.cast<double>() - approx).norm() / w.cast<double>().norm();
  return fit;
}

mbok::MultiKernelWeights<float> to_weights(const SharedScaleFit& fit, double c) {
  mbok::MultiKernelWeights<float> out(std::size_t(fit.b1.rows()), std::size_t(fit.b1.cols()));
  out.add_kernel(mbok::BitMatrix::pack(fit.b1), fit.s_out, fit.s_in);
  out.add_kernel(mbok::BitMatrix::pack(fit.b2), float(c) * fit.s_out, fit.s_in);
  return out;
}

namespace {

// min over (x1, x2) of sum_t (y_t - x1 f1_t - x2 f2_t)^2 for every row of y (f1, f2, y of the
// same shape): the 2 x 2 normal equations row by row. A singular row (one feature all zero)
// falls back to the one-feature solution.
void rowwise_two_feature_ls(const Eigen::ArrayXXd& y, const Eigen::ArrayXXd& f1,
                            const Eigen::ArrayXXd& f2, Eigen::VectorXd& x1, Eigen::VectorXd& x2) {
  const Eigen::ArrayXd a11 = (f1 * f1).rowwise().sum(), a22 = (f2 * f2).rowwise().sum();
  const Eigen::ArrayXd a12 = (f1 * f2).rowwise().sum();
  const Eigen::ArrayXd b1 = (f1 * y).rowwise().sum(), b2 = (f2 * y).rowwise().sum();
  for (Eigen::Index i = 0; i < y.rows(); ++i) {
    const double det = a11(i) * a22(i) - a12(i) * a12(i);
    if (det > 1e-12 * a11(i) * a22(i)) {
      x1(i) = (a22(i) * b1(i) - a12(i) * b2(i)) / det;
      x2(i) = (a11(i) * b2(i) - a12(i) * b1(i)) / det;
    } else if (a11(i) > 0) {
      x1(i) = b1(i) / a11(i);
      x2(i) = 0;
    }
  }
}

}  // namespace

mbok::MultiKernelWeights<float> fit_free_k2(const Eigen::MatrixXf& w, int rounds, double& error) {
  if (rounds < 0) throw mbok::InvalidArgument("fit_free_k2: rounds must be >= 0");
  const Eigen::ArrayXXd y = w.cast<double>().array();
  const auto init = mbok::svid<double>(w.cast<double>(), 2);
  Eigen::VectorXd u1 = init.weights.s_out(0), u2 = init.weights.s_out(1);
  Eigen::VectorXd v1 = init.weights.s_in(0), v2 = init.weights.s_in(1);
  Eigen::ArrayXXd b1 = init.weights.kernel(0).to_signs().cast<double>().array();
  Eigen::ArrayXXd b2 = init.weights.kernel(1).to_signs().cast<double>().array();
  for (int round = 0; round < rounds; ++round) {
    rowwise_two_feature_ls(y, b1.rowwise() * v1.transpose().array(),
                           b2.rowwise() * v2.transpose().array(), u1, u2);
    // The columns: the same on the transposes.
    rowwise_two_feature_ls(y.transpose(), (b1.colwise() * u1.array()).transpose(),
                           (b2.colwise() * u2.array()).transpose(), v1, v2);
    const Eigen::ArrayXXd p1 = (u1 * v1.transpose()).array(), p2 = (u2 * v2.transpose()).array();
    // The best of +-p1 +-p2 for each weight: b1 takes the sign of the residual against
    // b2 p2 for each choice of b2; keep the better choice.
    for (Eigen::Index i = 0; i < y.rows(); ++i)
      for (Eigen::Index j = 0; j < y.cols(); ++j) {
        double best = -1;
        for (const double s2 : {1.0, -1.0}) {
          const double r = y(i, j) - s2 * p2(i, j);
          const double s1 = r * p1(i, j) >= 0 ? 1.0 : -1.0;
          const double e = std::abs(r - s1 * p1(i, j));
          if (best < 0 || e < best) {
            best = e;
            b1(i, j) = s1;
            b2(i, j) = s2;
          }
        }
      }
  }
  const Eigen::ArrayXXd approx =
      b1 * (u1 * v1.transpose()).array() + b2 * (u2 * v2.transpose()).array();
  error = std::sqrt((y - approx).square().sum() / y.square().sum());
  mbok::MultiKernelWeights<float> out(std::size_t(w.rows()), std::size_t(w.cols()));
  out.add_kernel(mbok::BitMatrix::pack(b1.cast<float>()), u1.cast<float>(), v1.cast<float>());
  out.add_kernel(mbok::BitMatrix::pack(b2.cast<float>()), u2.cast<float>(), v2.cast<float>());
  return out;
}

void project_shared_scales(mbok::BooleanLinear<float>& layer, double c) {
  if (layer.num_kernels() != 2)
    throw mbok::InvalidArgument("project_shared_scales: the layer has " +
                                std::to_string(layer.num_kernels()) + " kernels, not 2");
  const float cf = float(c);
  const Eigen::VectorXf s_in = 0.5f * (layer.s_in(0) + layer.s_in(1));
  const Eigen::VectorXf s_out = (layer.s_out(0) + cf * layer.s_out(1)) / (1 + cf * cf);
  layer.s_in(0) = s_in;
  layer.s_in(1) = s_in;
  layer.s_out(0) = s_out;
  layer.s_out(1) = cf * s_out;
}

}  // namespace tiny
