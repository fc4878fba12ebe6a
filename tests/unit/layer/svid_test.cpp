// Successive residual SVID against Eigen's full SVD of |R|, computed independently here.

#include <mbok/svid.hpp>

#include <Eigen/SVD>

#include <cmath>

#include "../../support.hpp"
#include "reference.hpp"

namespace mbok::test {
namespace {

// The top singular triple of a non-negative matrix by a full SVD, signs made positive.
struct Triple {
  double sigma;
  Eigen::VectorXd u, v;
};
Triple top_triple(const Eigen::MatrixXd& a) {
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(a, Eigen::ComputeThinU | Eigen::ComputeThinV);
  Triple t{svd.singularValues()(0), svd.matrixU().col(0), svd.matrixV().col(0)};
  if (t.u.sum() < 0) {
    t.u = -t.u;
    t.v = -t.v;
  }
  return t;
}

Eigen::MatrixXd signs_of(const Eigen::MatrixXd& r) {
  return r.unaryExpr([](double x) { return x < 0 ? -1.0 : 1.0; });
}

TEST_CASE("svid scales equal the top singular triple of |R| at every k", "[svid]") {
  for (auto shape : {std::pair<int, int>{7, 5}, {16, 33}, {40, 9}}) {
    const Eigen::MatrixXd w = random_matrix(static_cast<std::size_t>(shape.first),
                                            static_cast<std::size_t>(shape.second))
                                  .cast<double>();
    SvidOptions opt;
    opt.tolerance = 1e-13;
    opt.max_iterations = 5000;
    const auto res = svid<double>(w, 4, opt);
    REQUIRE(res.weights.num_kernels() == 4);
    Eigen::MatrixXd r = w;
    for (std::size_t k = 0; k < 4; ++k) {
      INFO("shape " << shape.first << " x " << shape.second << ", kernel " << k);
      const Eigen::MatrixXd s = signs_of(r);
      const Triple t = top_triple(r.cwiseAbs());
      const Eigen::VectorXd s_out = std::sqrt(t.sigma) * t.u, s_in = std::sqrt(t.sigma) * t.v;
      CHECK(res.singular_values[k] == Approx(t.sigma).epsilon(1e-9));
      CHECK((res.weights.s_out(k) - s_out).norm() <= 1e-6 * s_out.norm());
      CHECK((res.weights.s_in(k) - s_in).norm() <= 1e-6 * s_in.norm());
      CHECK((res.weights.kernel(k).to_signs().cast<double>() - s).cwiseAbs().maxCoeff() == 0.0);
      r -= (s.array() * (s_out * s_in.transpose()).array()).matrix();
      CHECK(res.relative_residual[k] == Approx(r.norm() / w.norm()).epsilon(1e-9));
      CHECK(res.weights.s_out(k).minCoeff() >= 0.0);
      CHECK(res.weights.s_in(k).minCoeff() >= 0.0);
    }
  }
}

TEST_CASE("svid residual falls with every kernel and matches reconstruct", "[svid]") {
  const Eigen::MatrixXf w = random_matrix(48, 80);
  const auto res = svid<float>(w, 5);
  REQUIRE(res.relative_residual.size() == 5);
  for (std::size_t k = 0; k < 5; ++k) {
    CHECK(res.iterations[k] >= 1);
    CHECK(res.relative_residual[k] == Approx(res.weights.relative_error(w, k + 1)).epsilon(1e-4));
    if (k > 0) CHECK(res.relative_residual[k] < res.relative_residual[k - 1]);
  }
  CHECK(res.relative_residual[0] < 1.0);
}

TEST_CASE("svid with K = 1 is the SVID of OneBit", "[svid]") {
  const Eigen::MatrixXd w = random_matrix(20, 30).cast<double>();
  SvidOptions opt;
  opt.tolerance = 1e-13;
  opt.max_iterations = 5000;
  const auto res = svid<double>(w, 1, opt);
  // OneBit: W ~ sign(W) (.) a b^T with a b^T the best rank-1 approximation of |W|.
  const Triple t = top_triple(w.cwiseAbs());
  const Eigen::MatrixXd onebit =
      (signs_of(w).array() * (t.sigma * t.u * t.v.transpose()).array()).matrix();
  CHECK((res.weights.reconstruct() - onebit).norm() <= 1e-8 * onebit.norm());
  CHECK(res.relative_residual[0] == Approx((w - onebit).norm() / w.norm()).epsilon(1e-9));
}

TEST_CASE("svid in float agrees with double", "[svid]") {
  const Eigen::MatrixXf w = random_matrix(64, 96);
  const auto f = svid<float>(w, 3);
  SvidOptions opt;
  opt.tolerance = 1e-12;
  const auto d = svid<double>(w.cast<double>(), 3, opt);
  for (std::size_t k = 0; k < 3; ++k) {
    CHECK(f.relative_residual[k] == Approx(d.relative_residual[k]).epsilon(1e-4));
    CHECK((f.weights.s_out(k).cast<double>() - d.weights.s_out(k)).norm() <= 1e-3 * d.weights.s_out(k).norm());
  }
}

TEST_CASE("svid takes sign(0) = +1 and handles an exactly representable matrix", "[svid]") {
  // W = sign pattern (.) rank-1 positive scale, with a zero entry: one kernel reproduces it
  // except at the zero, whose bit is +1.
  Eigen::MatrixXd w(3, 4);
  w << 1, -2, 3, 0, -2, 4, -6, 0, 3, 6, 9, 0;
  SvidOptions opt;
  opt.tolerance = 1e-14;
  const auto res = svid<double>(w, 2, opt);
  for (std::size_t i = 0; i < 3; ++i) CHECK(res.weights.kernel(0).sign(i, 3) == 1);
  CHECK(res.weights.kernel(0).sign(0, 1) == -1);
  CHECK(res.relative_residual[0] < 1e-10);
  // The second kernel of a zero residual adds nothing.
  CHECK(res.weights.s_out(1).norm() * res.weights.s_in(1).norm() < 1e-8);
}

TEST_CASE("svid rejects bad input", "[svid]") {
  const Eigen::MatrixXf w = random_matrix(4, 4);
  CHECK_THROWS_AS(svid<float>(w, 0), InvalidArgument);
  CHECK_THROWS_WITH(svid<float>(w, 0), test::contains("kernels"));
  Eigen::MatrixXf bad = w;
  bad(1, 2) = std::nanf("");
  CHECK_THROWS_WITH(svid<float>(bad, 1), test::contains("not finite"));
  CHECK_THROWS_AS(svid<float>(Eigen::MatrixXf::Zero(3, 3), 1), InvalidArgument);
  CHECK_THROWS_AS(svid<float>(Eigen::MatrixXf(0, 3), 1), InvalidArgument);
  SvidOptions opt;
  opt.max_iterations = 0;
  CHECK_THROWS_WITH(svid<float>(w, 1, opt), test::contains("max_iterations"));
}

}  // namespace
}  // namespace mbok::test
