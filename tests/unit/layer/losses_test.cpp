// Losses and their gradients against central finite differences and direct formulas.

#include <mbok/losses.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "../../support.hpp"
#include "reference.hpp"

namespace mbok::test {
namespace {

using RowMatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

TEST_CASE("KL divergence: value, gradient, temperature", "[losses]") {
  for (double temperature : {1.0, 2.5, 0.5}) {
    RowMatrixD teacher = random_matrix(4, 7, 2.0f).cast<double>();
    RowMatrixD student = random_matrix(4, 7, 2.0f).cast<double>();
    RowMatrixD grad;
    const double loss = kl_divergence(teacher, student, temperature, &grad);
    // Direct formula, row by row, with plain exp / log.
    double expect = 0;
    for (Eigen::Index i = 0; i < 4; ++i) {
      const Eigen::ArrayXd p = (teacher.row(i).array() / temperature).exp() /
                               (teacher.row(i).array() / temperature).exp().sum();
      const Eigen::ArrayXd q = (student.row(i).array() / temperature).exp() /
                               (student.row(i).array() / temperature).exp().sum();
      expect += (p * (p / q).log()).sum();
    }
    CHECK(loss == Approx(expect / 4).epsilon(1e-12));
    CHECK(loss >= 0);
    for (Eigen::Index i = 0; i < 4; ++i)
      for (Eigen::Index c = 0; c < 7; ++c)
        CHECK(grad(i, c) == Approx(central_difference(student(i, c), 1e-6, [&] {
                              return kl_divergence(teacher, student, temperature);
                            })).margin(1e-8));
  }
  RowMatrixD same = random_matrix(3, 5).cast<double>();
  CHECK(kl_divergence(same, same) == Approx(0).margin(1e-15));
}

TEST_CASE("losses stay finite for huge logits (log-sum-exp)", "[losses]") {
  Eigen::MatrixXf logits(2, 3);
  logits << 1000, -1000, 999, -5000, 4000, 3999;
  Eigen::MatrixXf shifted = logits.array() - 3.0f;
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> g;
  const double kl = kl_divergence(logits, shifted, 1.0, &g);
  CHECK(std::isfinite(kl));
  CHECK(kl == Approx(0).margin(1e-9));  // softmax is shift-invariant
  CHECK(g.allFinite());
  const double ce = cross_entropy(logits, {0, 2}, &g);
  CHECK(ce ==
        Approx((std::log1p(std::exp(-1.0)) + 1 + std::log1p(std::exp(-1.0))) / 2).epsilon(1e-6));
  CHECK(g.allFinite());
}

TEST_CASE("MSE: value and gradient", "[losses]") {
  RowMatrixD teacher = random_matrix(3, 6).cast<double>();
  RowMatrixD student = random_matrix(3, 6).cast<double>();
  RowMatrixD grad;
  const double loss = mse(teacher, student, &grad);
  CHECK(loss == Approx((student - teacher).squaredNorm() / 18).epsilon(1e-12));
  for (Eigen::Index i = 0; i < 3; ++i)
    for (Eigen::Index c = 0; c < 6; ++c)
      CHECK(grad(i, c) == Approx(central_difference(student(i, c), 1e-6, [&] {
                            return mse(teacher, student);
                          })).margin(1e-8));
}

TEST_CASE("cross-entropy: value and gradient", "[losses]") {
  RowMatrixD logits = random_matrix(5, 4, 3.0f).cast<double>();
  const std::vector<std::int32_t> targets = {0, 3, 1, 1, 2};
  RowMatrixD grad;
  const double loss = cross_entropy(logits, targets, &grad);
  double expect = 0;
  for (Eigen::Index i = 0; i < 5; ++i)
    expect -= std::log(std::exp(logits(i, targets[static_cast<std::size_t>(i)])) /
                       logits.row(i).array().exp().sum());
  CHECK(loss == Approx(expect / 5).epsilon(1e-12));
  for (Eigen::Index i = 0; i < 5; ++i)
    for (Eigen::Index c = 0; c < 4; ++c)
      CHECK(grad(i, c) == Approx(central_difference(logits(i, c), 1e-6, [&] {
                            return cross_entropy(logits, targets);
                          })).margin(1e-8));
}

TEST_CASE("cross-entropy takes byte targets like int32 ones", "[losses]") {
  const RowMatrixF logits = random_matrix(6, 256, 3.0f);
  const std::vector<std::uint8_t> bytes = {0, 255, 7, 128, 7, 64};
  const std::vector<std::int32_t> ints(bytes.begin(), bytes.end());
  RowMatrixF g8, g32;
  CHECK(cross_entropy(logits, bytes, &g8) == cross_entropy(logits, ints, &g32));
  CHECK(g8 == g32);
  CHECK_THROWS_WITH(cross_entropy(random_matrix(1, 4), std::vector<std::uint8_t>{200}),
                    test::contains("target 200"));
}

#if defined(_OPENMP)
TEST_CASE("losses give the same result on any number of threads", "[losses]") {
  // Enough rows for several chunks of parallel_for.
  const RowMatrixF teacher = random_matrix(700, 40, 2.0f), student = random_matrix(700, 40, 2.0f);
  std::vector<std::int32_t> targets(700);
  for (std::size_t i = 0; i < targets.size(); ++i) targets[i] = std::int32_t(i % 40);
  const int saved = omp_get_max_threads();
  RowMatrixF g1, g4, c1, c4;
  omp_set_num_threads(1);
  const double kl1 = kl_divergence(teacher, student, 1.5, &g1);
  const double ce1 = cross_entropy(student, targets, &c1);
  omp_set_num_threads(4);
  const double kl4 = kl_divergence(teacher, student, 1.5, &g4);
  const double ce4 = cross_entropy(student, targets, &c4);
  omp_set_num_threads(saved);
  CHECK(kl1 == kl4);
  CHECK(ce1 == ce4);
  CHECK(g1 == g4);
  CHECK(c1 == c4);
}
#endif

TEST_CASE("losses reject bad shapes, non-finite input and bad targets", "[losses][errors]") {
  const Eigen::MatrixXf a = random_matrix(3, 4), b = random_matrix(3, 5);
  CHECK_THROWS_WITH(kl_divergence(a, b), test::contains("3 x 4"));
  CHECK_THROWS_AS(mse(a, b), InvalidArgument);
  CHECK_THROWS_WITH(kl_divergence(a, a, 0.0), test::contains("temperature"));
  Eigen::MatrixXf nan = a;
  nan(0, 0) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(kl_divergence(nan, a), test::contains("not finite"));
  CHECK_THROWS_WITH(mse(a, nan), test::contains("not finite"));
  CHECK_THROWS_WITH(cross_entropy(nan, {0, 1, 2}), test::contains("not finite"));
  CHECK_THROWS_WITH(cross_entropy(a, {0, 1}), test::contains("2 targets for 3 tokens"));
  CHECK_THROWS_WITH(cross_entropy(a, {0, 4, 1}), test::contains("target 4"));
  CHECK_THROWS_AS(cross_entropy(a, {0, -1, 1}), InvalidArgument);
  CHECK_THROWS_AS(mse(Eigen::MatrixXf(0, 3), Eigen::MatrixXf(0, 3)), InvalidArgument);
}

}  // namespace
}  // namespace mbok::test
